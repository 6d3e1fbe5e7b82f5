"""librdkafka errors as port errors: shared by the consumer, producer, reader and admin adapters."""

from __future__ import annotations

import confluent_kafka as ck

from connector.errors import FatalKafkaError, KafkaPortError
from connector.kafka.config import broker_hosts


def describe(error: ck.KafkaError) -> str:
    return f"{error.name()}: {error.str()}"


def kafka_error_of(exc: ck.KafkaException) -> ck.KafkaError | None:
    return exc.args[0] if exc.args and isinstance(exc.args[0], ck.KafkaError) else None


def port_error(exc: ck.KafkaException, what: str) -> KafkaPortError:
    """FatalKafkaError when librdkafka says the client cannot go on, else a retryable KafkaPortError."""
    error = kafka_error_of(exc)
    if error is None:
        return KafkaPortError(f"{what}: {exc}")
    if error.fatal():
        return FatalKafkaError(f"{what}: {describe(error)}")
    return KafkaPortError(f"{what}: {describe(error)}")


def unreachable(bootstrap_servers: str, timeout_s: float, why: str) -> KafkaPortError:
    """The one line every command prints when no broker answers (hosts only, never credentials)."""
    return KafkaPortError(
        f"cannot reach Kafka at {broker_hosts(bootstrap_servers)} within {timeout_s:g} s: {why}"
    )
