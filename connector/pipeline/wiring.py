"""The composition root: settings in, wired objects out. The only place that decides which real
implementation (Kafka, HTTP, registry) stands behind each port; tests wire fakes instead."""

from __future__ import annotations

import functools
import json
import random
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from connector import __version__
from connector.avro.decoding import (
    ConfluentAvroDecoder,
    RawAvroDecoder,
    RecordDecoder,
    RegistryUnavailable,
    SchemaRegistryClient,
    load_schema,
)
from connector.config.settings import ConfigError, MappingSettings, Settings
from connector.ingest.client import IngestClient
from connector.kafka.ports import ConsumerPort, KafkaPortError, ProducerPort
from connector.mapping.compiled import TopicMapping
from connector.pipeline.deadletter import DeadLetterWriter
from connector.pipeline.loop import Pipeline, Route, Uploader
from connector.runtime.health import Health
from connector.runtime.logs import get_logger
from connector.runtime.metrics import Metrics

log = get_logger(__name__)

# librdkafka prefetches up to 64 MB per consumer by default; that memory is outside our in-flight
# accounting, so keep it smaller unless the user says otherwise.
CONSUMER_DEFAULTS: dict[str, object] = {"queued.max.messages.kbytes": 16384}
# Settings the guarantees depend on; user properties cannot turn them off.
CONSUMER_REQUIRED: dict[str, object] = {"enable.auto.commit": False, "enable.auto.offset.store": False}
PRODUCER_REQUIRED: dict[str, object] = {"enable.idempotence": True, "acks": "all"}


def schema_dirs(settings: Settings) -> list[Path]:
    return [Path(settings.source).resolve().parent, Path.cwd()]


def build_decoder(
    m: MappingSettings, settings: Settings, registry: SchemaRegistryClient | None
) -> RecordDecoder:
    try:
        reader = load_schema(m.schema_path, schema_dirs(settings)) if m.schema_path else None
    except ValueError as exc:  # SchemaFileError, InvalidSchemaError: the user's file, a config problem
        index = settings.mappings.index(m)
        raise ConfigError([f"{settings.source}: mappings[{index}].schema: {exc}"]) from None
    if m.format == "avro":
        assert reader is not None  # config requires a schema for raw Avro
        return RawAvroDecoder(reader)
    assert registry is not None  # config requires schema_registry for confluent-avro
    return ConfluentAvroDecoder(registry, reader)


def build_routes(settings: Settings, registry: SchemaRegistryClient | None) -> dict[str, Route]:
    return {
        m.topic: Route(
            TopicMapping.from_settings(m, settings.destination(m.destination)),
            build_decoder(m, settings, registry),
        )
        for m in settings.mappings
    }


def build_registry(settings: Settings) -> SchemaRegistryClient | None:
    sr = settings.schema_registry
    if sr is None:
        return None
    try:
        return SchemaRegistryClient(sr.url, sr.properties)
    except ValueError as exc:
        raise ConfigError([f"{settings.source}: schema_registry.properties: {exc}"]) from None


def kafka_consumer_config(settings: Settings) -> dict[str, object]:
    from connector.kafka.adapter import consumer_config

    k = settings.kafka
    assert k is not None
    config = consumer_config(
        k.bootstrap_servers, k.group_id, k.auto_offset_reset, {**CONSUMER_DEFAULTS, **k.properties}
    )
    config.update(CONSUMER_REQUIRED)
    return config


def kafka_producer_config(settings: Settings) -> dict[str, object]:
    from connector.kafka.adapter import producer_config

    k = settings.kafka
    assert k is not None
    # Consumer-only properties would make librdkafka warn on every start.
    props = {
        key: v
        for key, v in k.properties.items()
        if not key.startswith(
            (
                "group.",
                "session.",
                "heartbeat.",
                "max.poll.",
                "auto.offset",
                "partition.assignment",
                "queued.",
                "fetch.",
                "enable.auto",
            )
        )
    }
    config = producer_config(k.bootstrap_servers, props, client_id="optikpi-connector-dlq")
    config.update(PRODUCER_REQUIRED)
    return config


@dataclass
class Connector:
    """A wired pipeline and everything that must be closed with it."""

    pipeline: Pipeline
    health: Health
    metrics: Metrics
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception as exc:  # closing must go on whatever one part says
                log.warning("error while closing", error=str(exc))


def build_connector(
    settings: Settings,
    *,
    consumer: ConsumerPort | None = None,
    producer: ProducerPort | None = None,
    uploaders: Mapping[str, Uploader] | None = None,
    registry: SchemaRegistryClient | None = None,
    clock: Callable[[], float] | None = None,
) -> Connector:
    import time

    clock = clock or time.monotonic
    metrics = Metrics()
    health = Health(clock)
    health.on_change = lambda reason, active: _track_readiness(metrics, health, reason, active)
    _track_readiness(metrics, health, "starting", True)
    closers: list[Callable[[], None]] = []
    if registry is None:
        registry = build_registry(settings)
        if registry is not None:
            closers.append(registry.close)
    routes = build_routes(settings, registry)
    try:
        if consumer is None:
            from connector.kafka.adapter import KafkaConsumer

            consumer = KafkaConsumer(kafka_consumer_config(settings))
        if producer is None:
            from connector.kafka.adapter import KafkaProducer

            producer = KafkaProducer(kafka_producer_config(settings))
            closers.append(producer.close)
    except KafkaPortError as exc:  # librdkafka refused a property: the user's configuration
        raise ConfigError([f"{settings.source}: kafka.properties: {exc}"]) from None
    if uploaders is None:
        used = {m.destination for m in settings.mappings}
        clients = {
            name: IngestClient(
                settings.destination(name), settings.retry, settings.batching, metrics=metrics, name=name
            )
            for name in sorted(used)
        }
        uploaders = clients
    else:
        clients = {}
    workers = sum(settings.destination(name).max_concurrency for name in uploaders)
    executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="upload")
    closers.append(lambda: executor.shutdown(wait=True, cancel_futures=True))
    # Closed first (closers run in reverse): closing the HTTP clients ends uploads still waiting
    # on the network, so the executor shutdown does not wait out a request timeout.
    closers.extend(c.close for c in clients.values())
    assert settings.dead_letter is not None
    pipeline = Pipeline(
        consumer,
        DeadLetterWriter(producer, settings.dead_letter.topic),
        uploaders,
        routes,
        batching=settings.batching,
        dead_letter=settings.dead_letter,
        backpressure=settings.backpressure,
        executor=executor,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        clock=clock,
        metrics=metrics,
        health=health,
        lanes={name: settings.destination(name).max_concurrency for name in uploaders},
    )
    return Connector(pipeline, health, metrics, closers)


def _track_readiness(metrics: Metrics, health: Health, reason: str, active: bool) -> None:
    metrics.unready_reason.labels(reason).set(1 if active else 0)
    metrics.ready.set(1 if health.ready else 0)


def install_signal_handlers(stop: Callable[[], None]) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received; stopping", signal=signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_connector(settings: Settings) -> int:
    from connector.kafka.adapter import kafka_version
    from connector.runtime.server import HealthServer

    log.info(
        "starting optikpi-connector",
        version=__version__,
        kafka=kafka_version(),
        config=settings.source,
        topics=[m.topic for m in settings.mappings],
    )
    connector = build_connector(settings)
    server = None
    if settings.server.port:
        server = HealthServer(
            connector.health, connector.metrics, settings.server.host, settings.server.port
        ).start()
        log.info("health server listening", port=server.port)
    install_signal_handlers(connector.pipeline.request_stop)
    try:
        return connector.pipeline.run()
    finally:
        connector.close()
        if server is not None:
            server.stop()


# ---------------------------------------------------------------------------------------- check
def run_check(settings: Settings, offline: bool, as_json: bool) -> int:
    from connector.mapping.check import CheckIssue, CheckResult, check_mapping

    registry = None if offline else build_registry(settings)
    results: list[CheckResult] = []
    for m in settings.mappings:
        schema, source = _schema_for_check(m, settings, registry, offline)
        if isinstance(schema, str):  # a problem fetching it
            results.append(CheckResult(m.topic, m.endpoint, source, (CheckIssue("error", "schema", schema),)))
            continue
        results.append(check_mapping(m, schema, source))
    reach: list[tuple[str, bool, str]] = [] if offline else _reachability(settings, registry)
    if registry is not None:
        registry.close()
    ok = all(r.ok for r in results) and all(good for _, good, _ in reach)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "mappings": [
                        {
                            "topic": r.topic,
                            "endpoint": r.endpoint,
                            "schema": r.schema_source,
                            "ok": r.ok,
                            "issues": [
                                {"level": i.level, "field": i.field, "message": i.message} for i in r.issues
                            ],
                        }
                        for r in results
                    ],
                    "connectivity": [{"target": t, "ok": good, "detail": d} for t, good, d in reach],
                },
                indent=2,
            )
        )
    else:
        _print_check(results, reach)
    return 0 if ok else 2


def _schema_for_check(
    m: MappingSettings, settings: Settings, registry: SchemaRegistryClient | None, offline: bool
) -> tuple[dict[str, Any] | str | None, str]:
    if m.schema_path:
        try:
            return load_schema(m.schema_path, schema_dirs(settings)), m.schema_path
        except ValueError as exc:
            return str(exc), m.schema_path
    if offline or registry is None:
        return None, "(none offline)"
    subject = f"{m.topic}-value"
    try:
        latest = registry.latest(subject)
    except RegistryUnavailable as exc:
        return f"schema registry unreachable: {exc}", f"registry {subject}"
    if latest is None:
        return f"no schema registered under subject {subject}", f"registry {subject}"
    return latest[1], f"registry {subject} (id {latest[0]})"


def _reachability(settings: Settings, registry: SchemaRegistryClient | None) -> list[tuple[str, bool, str]]:
    import httpx

    out: list[tuple[str, bool, str]] = []
    try:
        from connector.kafka.adapter import KafkaAdmin, admin_config

        k = settings.kafka
        assert k is not None
        topics = KafkaAdmin(admin_config(k.bootstrap_servers, k.properties)).list_topics(10.0)
        missing = [m.topic for m in settings.mappings if m.topic not in topics]
        detail = f"{len(topics)} topics" + (f"; missing: {', '.join(missing)}" if missing else "")
        out.append(("kafka", not missing, detail))
    except Exception as exc:
        out.append(("kafka", False, str(exc)[:200]))
    for name, dest in settings.destinations.items():
        # An unsigned GET: reaching the gateway at all is what this proves, not the credentials
        # (`send` with one record checks those).
        try:
            response = httpx.get(dest.base_url, timeout=10.0)
            out.append((f"api {name}", response.status_code < 500, f"HTTP {response.status_code}"))
        except httpx.HTTPError as exc:
            out.append((f"api {name}", False, type(exc).__name__))
    return out


def _print_check(results: list[Any], reach: list[tuple[str, bool, str]]) -> None:
    rows = [("TOPIC", "ENDPOINT", "SCHEMA", "RESULT")]
    for r in results:
        errors = sum(1 for i in r.issues if i.level == "error")
        warnings = len(r.issues) - errors
        rows.append(
            (
                r.topic,
                r.endpoint,
                r.schema_source,
                "ok" if not r.issues else f"{errors} error(s), {warnings} warning(s)",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for r in results:
        for issue in r.issues:
            print(f"  {r.topic}: {issue.level}: {issue.field}: {issue.message}")
    for target, good, detail in reach:
        print(f"{target}: {'ok' if good else 'FAILED'} ({detail})")


# ---------------------------------------------------------------------------------------- samples
def run_produce_sample(settings: Settings, count: int, poison_rate: float, seed: int) -> int:
    from connector.kafka.adapter import KafkaAdmin, KafkaProducer, admin_config

    k = settings.kafka
    assert k is not None
    registry = build_registry(settings)
    producer = KafkaProducer(kafka_producer_config(settings))
    admin = KafkaAdmin(admin_config(k.bootstrap_servers, k.properties))
    try:
        produced = produce_samples(
            settings, producer, admin, registry, count, poison_rate, random.Random(seed)
        )
    finally:
        producer.close()
        if registry is not None:
            registry.close()
    for topic, (good, poison) in produced.items():
        print(f"{topic}: {good + poison} events ({poison} poison)")
    return 0


def produce_samples(
    settings: Settings,
    producer: ProducerPort,
    admin: Any,
    registry: SchemaRegistryClient | None,
    count: int,
    poison_rate: float,
    rng: random.Random,
    partitions: int = 3,
) -> dict[str, tuple[int, int]]:
    """Write `count` sample events to every mapped topic whose schema is one of the samples."""
    from connector.avro.decoding import encode_confluent, encode_raw, parse
    from connector.devtools.samples import SAMPLE_KINDS, make_messages

    admin.create_topics([m.topic for m in settings.mappings], partitions, 30.0)
    produced: dict[str, tuple[int, int]] = {}
    errors: list[str] = []
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
            producer.produce(
                m.topic, msg.key, msg.value, msg.headers, lambda err: errors.append(str(err)) if err else None
            )
        produced[m.topic] = (sum(1 for x in messages if not x.poison), sum(1 for x in messages if x.poison))
    if producer.flush(60.0) or errors:
        print(f"error: {len(errors)} sample events were not acknowledged: {errors[:3]}", file=sys.stderr)
    return produced
