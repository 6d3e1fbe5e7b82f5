"""Prometheus metrics. One registry per Metrics object so tests and several pipelines never collide."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# Delivery latency spans the batching wait, the upload and any backlog: from a second to hours.
DELIVERY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)

# Otherwise every counter and histogram child also exports a `_created` series: more series for
# Prometheus to store, read by nothing. The switch is process-wide in prometheus-client.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "optikpi_ingest_requests", "HTTP requests to the ingest API", ["endpoint", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "optikpi_ingest_request_seconds", "Ingest API request latency", ["endpoint"], registry=r
        )
        self.retries = Counter(
            "optikpi_ingest_retries", "Requests retried, by reason", ["endpoint", "reason"], registry=r
        )
        self.rate_limit = Gauge(
            "optikpi_ingest_rate_limit",
            "Requests per second the client allows itself now (lowered on 429, back up when quiet)",
            ["destination", "endpoint"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "optikpi_delivery_seconds",
            "From the Kafka timestamp of a batch's oldest record to the API accepting the batch",
            ["endpoint"],
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.records_accepted = Counter(
            "optikpi_records_accepted", "Records accepted by the ingest API", ["endpoint"], registry=r
        )
        self.records_rejected = Counter(
            "optikpi_records_rejected",
            "Records the ingest API rejected for their content",
            ["endpoint"],
            registry=r,
        )
        self.records_consumed = Counter(
            "optikpi_records_consumed", "Records read from Kafka", ["topic"], registry=r
        )
        self.dead_lettered = Counter(
            "optikpi_dead_lettered",
            "Records written to the dead-letter topic",
            ["stage", "topic"],
            registry=r,
        )
        self.commits = Counter("optikpi_offset_commits", "Offset commits", ["result"], registry=r)
        self.in_flight_records = Gauge(
            "optikpi_in_flight_records", "Records consumed but not yet done", registry=r
        )
        self.in_flight_bytes = Gauge("optikpi_in_flight_bytes", "Bytes consumed but not yet done", registry=r)
        self.paused_partitions = Gauge("optikpi_paused_partitions", "Partitions paused", registry=r)
        self.paused_topics = Gauge(
            "optikpi_paused_topics",
            "Topics paused until a restart: their mapping cannot apply, or their breaker tripped",
            ["reason"],
            registry=r,
        )
        for reason in ("mapping", "breaker"):  # exported at 0, so an alert has a series to watch
            self.paused_topics.labels(reason).set(0)
        self.lag = Gauge(
            "optikpi_consumer_lag",
            "End offset (as last fetched, or asked every 5 s while paused) minus the commit position",
            ["topic", "partition"],
            registry=r,
        )
        self.ready = Gauge("optikpi_ready", "1 when the connector is ready", registry=r)
        self.unready_reason = Gauge(
            "optikpi_unready", "1 for the reason the connector is not ready", ["reason"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
