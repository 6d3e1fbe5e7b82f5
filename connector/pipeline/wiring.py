"""The composition root: settings in, wired objects out. The only place that decides which real
implementation (Kafka, HTTP, registry) stands behind each port; tests wire fakes instead."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from connector.avro.registry import SchemaRegistryClient
from connector.avro.schemas import load_schema
from connector.config.settings import MappingSettings, Settings
from connector.errors import ConfigError, DecodeError, KafkaPortError, RegistryError, RegistryUnavailable
from connector.ingest.client import IngestClient
from connector.ingest.outage import ApiOutage
from connector.kafka.config import consumer_config, producer_config
from connector.kafka.ports import AdminPort, ConsumerPort, ProducerPort
from connector.kafka.rdlogs import LibrdkafkaLogs
from connector.mapping.check import check_mapping
from connector.mapping.compiled import TopicMapping
from connector.pipeline.cluster import ClusterWatch
from connector.pipeline.deadletter import DeadLetterWriter
from connector.pipeline.loop import Pipeline, Route, Uploader
from connector.runtime.cpus import resolve_workers
from connector.runtime.health import Health
from connector.runtime.logs import get_logger
from connector.runtime.metrics import Metrics
from connector.transform.framing import ConfluentFraming, RawAvroFraming, ValueFraming
from connector.transform.workers import TransformPool

if TYPE_CHECKING:
    from connector.kafka.admin import KafkaAdmin

log = get_logger(__name__)


def schema_dirs(settings: Settings) -> list[Path]:
    return [Path(settings.source).resolve().parent, Path.cwd()]


def build_framing(
    m: MappingSettings, settings: Settings, registry: SchemaRegistryClient | None
) -> ValueFraming:
    """Raises ConfigError when the schema file cannot be used, or when the mapping cannot apply to
    it (what `check` reports as errors): every record would be dead-lettered."""
    index = settings.mappings.index(m)
    try:
        schema = load_schema(m.schema_path, schema_dirs(settings)) if m.schema_path else None
        framing: ValueFraming | None = RawAvroFraming(schema) if m.format == "avro" and schema else None
    except ValueError as exc:  # SchemaFileError, InvalidSchemaError: the user's file, a config problem
        raise ConfigError([f"{settings.source}: mappings[{index}].schema: {exc}"]) from None
    if schema is not None:
        result = check_mapping(m, schema, str(m.schema_path))
        if not result.ok:
            raise ConfigError(
                [f"{settings.source}: mappings[{index}] (topic {m.topic}): {result.headline()}"]
            )
    if framing is not None:
        return framing
    assert registry is not None  # config requires schema_registry for confluent-avro
    return ConfluentFraming(registry, schema, checked=m)


def warn_unfit_latest(settings: Settings, registry: SchemaRegistryClient) -> None:
    """Check each registry-only mapping against its subject's latest version, and warn: its
    records may be written with an older schema, and each writer schema is checked when first
    seen anyway. An unreachable registry ends the round: starting does not wait for it."""
    for m in settings.mappings:
        if m.format != "confluent-avro" or m.schema_path:
            continue
        subject = m.value_subject
        try:
            latest = registry.latest(subject)
        except (RegistryUnavailable, RegistryError, DecodeError) as exc:
            log.warning("mapping not checked at start: schema registry", topic=m.topic, error=str(exc))
            if isinstance(exc, RegistryUnavailable):
                return
            continue
        if latest is None:
            log.warning(
                "mapping not checked at start: no schema under its subject", topic=m.topic, subject=subject
            )
            continue
        result = check_mapping(m, latest[1], f"{subject} (id {latest[0]})")
        if not result.ok:
            log.warning(
                "the mapping cannot apply to its subject's latest schema; records written with it will "
                "pause the topic",
                topic=m.topic,
                subject=subject,
                schema_id=latest[0],
                problem=result.headline(),
            )


def build_routes(settings: Settings, registry: SchemaRegistryClient | None) -> dict[str, Route]:
    return {
        m.topic: Route(
            TopicMapping.from_settings(m, settings.destination(m.destination)),
            build_framing(m, settings, registry),
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
    k = settings.kafka
    assert k is not None
    return consumer_config(k.bootstrap_servers, k.group_id, k.auto_offset_reset, k.properties)


def kafka_producer_config(settings: Settings, logs: LibrdkafkaLogs | None = None) -> dict[str, object]:
    """The dead-letter producer's settings (also used to replay dead letters and produce samples)."""
    k = settings.kafka
    assert k is not None
    return producer_config(k.bootstrap_servers, k.properties, client_id="optikpi-connector-dlq", logs=logs)


@dataclass
class Connector:
    """A wired pipeline and everything that must be closed with it."""

    pipeline: Pipeline
    health: Health
    metrics: Metrics
    closers: list[Callable[[], None]] = field(default_factory=list)
    # The one Kafka admin client start-up asks the cluster with (`run` reuses it); None when
    # build_connector built none: the producer passed in, and the consumer or the admin too.
    kafka_admin: KafkaAdmin | None = None

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
    admin: AdminPort | None = None,
) -> Connector:
    """`admin`: what ClusterWatch asks for the topics (reasons `topic` and `kafka`), and the lag
    metric for the end offsets of paused partitions; by default a Kafka admin client when the
    consumer is the real one, else neither."""
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
    consumer_is_kafka = consumer is None
    if registry is not None:
        warn_unfit_latest(settings, registry)
    try:
        if consumer is None:
            from connector.kafka.consumer import KafkaConsumer

            consumer = KafkaConsumer(kafka_consumer_config(settings))
        dead_letter_max_bytes: int | None = None
        # One admin client for what start-up asks the cluster: the dead-letter topic's size
        # limit, and the topics and brokers the ClusterWatch keeps an eye on.
        kafka_admin = (
            _kafka_admin(settings) if producer is None or (admin is None and consumer_is_kafka) else None
        )
        if producer is None:
            from connector.kafka.producer import KafkaProducer, dead_letter_size_limit

            producer = KafkaProducer(kafka_producer_config(settings))
            closers.append(producer.close)
            assert kafka_admin is not None and settings.dead_letter is not None
            # Copies above the limit are written without their value, so they cannot block a partition.
            dead_letter_max_bytes = dead_letter_size_limit(
                kafka_producer_config(settings), kafka_admin, settings.dead_letter.topic, 5.0
            )
        if admin is None and consumer_is_kafka:
            admin = kafka_admin
    except KafkaPortError as exc:  # librdkafka refused a property: the user's configuration
        raise ConfigError([f"{settings.source}: kafka.properties: {exc}"]) from None
    if admin is not None:
        assert settings.kafka is not None
        watch = ClusterWatch(admin, list(routes), health, settings.kafka.bootstrap_servers, clock=clock)
        closers.append(watch.start().stop)
    if uploaders is None:
        used = {m.destination for m in settings.mappings}
        outage = ApiOutage(health, settings.retry.unready_after_s, clock)
        clients = {
            name: IngestClient(
                settings.destination(name),
                settings.retry,
                settings.batching,
                metrics=metrics,
                name=name,
                outage=outage,
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
    pool = start_pool(settings)
    if pool is not None:
        closers.append(lambda: pool.close(0.0))  # the pipeline closes it; this is for a failed start
    pipeline = Pipeline(
        consumer,
        DeadLetterWriter(producer, settings.dead_letter.topic, max_bytes=dead_letter_max_bytes),
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
        pool=pool,
        admin=admin,
    )
    return Connector(pipeline, health, metrics, closers, kafka_admin)


def _kafka_admin(settings: Settings) -> KafkaAdmin:
    from connector.kafka.admin import KafkaAdmin
    from connector.kafka.config import admin_config

    assert settings.kafka is not None
    return KafkaAdmin(admin_config(settings.kafka.bootstrap_servers, settings.kafka.properties))


def start_pool(settings: Settings) -> TransformPool | None:
    """The transform worker processes `processing.workers` asks for; None: transforms run inline.
    Raises WorkerPoolError when they cannot start."""
    count = resolve_workers(settings.processing.workers)
    if count <= 1:
        return None
    pool = TransformPool(count).start()
    log.info("transform workers started", workers=count)
    return pool


def _track_readiness(metrics: Metrics, health: Health, reason: str, active: bool) -> None:
    metrics.unready_reason.labels(reason).set(1 if active else 0)
    metrics.ready.set(1 if health.ready else 0)
