"""`produce-sample`: write generated sample events (some of them poison) to every mapped topic.

Used by the `produce-sample` command and by the demo. The exit code says whether every event was
delivered: 1 when any delivery failed or was never acknowledged.
"""

from __future__ import annotations

import functools
import random
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from connector.avro.decoding import encode_confluent, encode_raw
from connector.avro.registry import SchemaRegistryClient
from connector.avro.schemas import load_schema, parse
from connector.config.settings import Settings
from connector.devtools.samples import SAMPLE_KINDS, make_messages
from connector.errors import DeliveryError, ExitCode, KafkaPortError
from connector.kafka.ports import AdminPort, ProducerPort
from connector.pipeline.wiring import build_registry, kafka_producer_config, schema_dirs
from connector.runtime.logs import get_logger

log = get_logger(__name__)

_FLUSH_TIMEOUT_S = 60.0


class ProducedSamples(dict[str, tuple[int, int]]):
    """Topic → (good, poison) events written; `failed` counts the events that were not delivered
    (a delivery error, or no acknowledgement within the flush timeout)."""

    failed: int = 0


def run_produce_sample(
    settings: Settings, count: int, poison_rate: float, seed: int, timeout_s: float = 10.0
) -> int:
    from connector.kafka.admin import KafkaAdmin
    from connector.kafka.config import admin_config
    from connector.kafka.producer import KafkaProducer
    from connector.kafka.rdlogs import LibrdkafkaLogs

    k = settings.kafka
    assert k is not None
    # This command says what went wrong in one line; librdkafka's own lines stay at debug level.
    admin = KafkaAdmin(
        admin_config(k.bootstrap_servers, k.properties, logs=LibrdkafkaLogs(reported_by_caller=True))
    )
    try:
        admin.list_topics(timeout_s)  # no broker: this one line now, before any client has retried
    except KafkaPortError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    registry = build_registry(settings)
    producer = KafkaProducer(kafka_producer_config(settings, LibrdkafkaLogs(reported_by_caller=True)))
    try:
        produced = produce_samples(
            settings, producer, admin, registry, count, poison_rate, random.Random(seed), timeout_s=timeout_s
        )
    finally:
        producer.close()
        if registry is not None:
            registry.close()
    for topic, (good, poison) in produced.items():
        print(f"{topic}: {good + poison} events ({poison} poison)")
    return ExitCode.FAILURE if produced.failed else ExitCode.OK


def produce_samples(
    settings: Settings,
    producer: ProducerPort,
    admin: AdminPort,
    registry: SchemaRegistryClient | None,
    count: int,
    poison_rate: float,
    rng: random.Random,
    partitions: int = 3,
    timeout_s: float = 10.0,
) -> ProducedSamples:
    """Write `count` sample events to every mapped topic whose schema is one of the samples."""
    admin.create_topics([m.topic for m in settings.mappings], partitions, timeout_s)
    produced = ProducedSamples()
    errors: list[str] = []

    def delivered(error: DeliveryError | None) -> None:
        if error is not None:
            errors.append(str(error))

    for m in settings.mappings:
        kind = Path(m.schema_path or "").stem
        if kind not in SAMPLE_KINDS:
            log.warning(
                "no sample generator for this mapping's schema; skipped", topic=m.topic, schema=m.schema_path
            )
            continue
        schema = load_schema(kind, schema_dirs(settings))
        parsed = parse(schema)
        encode: Callable[[Mapping[str, Any]], bytes]
        if m.format == "confluent-avro":
            assert registry is not None
            encode = functools.partial(
                encode_confluent, registry.register(f"{m.topic}-value", schema), parsed
            )
        else:
            encode = functools.partial(encode_raw, parsed)
        messages = make_messages(kind, count, encode, rng, poison_rate, wire_format=m.format)
        for msg in messages:
            producer.produce(m.topic, msg.key, msg.value, msg.headers, delivered)
        produced[m.topic] = (sum(1 for x in messages if not x.poison), sum(1 for x in messages if x.poison))
    unacknowledged = producer.flush(_FLUSH_TIMEOUT_S)
    produced.failed = len(errors) + unacknowledged
    if produced.failed:
        total = sum(good + poison for good, poison in produced.values())
        print(
            f"error: {produced.failed} of {total} sample events were not delivered "
            f"({unacknowledged} unacknowledged): {errors[:3]}",
            file=sys.stderr,
        )
    return produced
