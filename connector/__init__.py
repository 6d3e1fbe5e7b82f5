"""optikpi-connector: Kafka (Avro) → OptiKPI Data Pipeline Ingest API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("optikpi-connector")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
