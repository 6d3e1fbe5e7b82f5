"""Building blocks for pipeline tests: an in-memory broker, a scripted uploader, an inline executor."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from connector.config.settings import (
    BackpressureSettings,
    BatchingSettings,
    DeadLetterSettings,
    DestinationSettings,
    MappingSettings,
)
from connector.errors import DecodeError, RegistryUnavailable, UploadCancelled
from connector.ingest.client import Rejection, UploadResult
from connector.ingest.jsjson import dumps_bytes
from connector.kafka.memory.broker import InMemoryBroker
from connector.kafka.memory.clients import InMemoryConsumer
from connector.kafka.ports import Record, TopicPartition
from connector.mapping.compiled import TopicMapping
from connector.pipeline.deadletter import DeadLetterWriter
from connector.pipeline.loop import Pipeline, Route
from connector.runtime.clock import FakeClock
from connector.transform.factory import TransformFactory
from connector.transform.framing import ValueFraming
from connector.transform.reference import reference_steps
from connector.transform.spec import Transform, TransformSpec
from connector.transform.workers import TransformPool

DEST = DestinationSettings(
    base_url="http://api.invalid/apigw/ingest",
    account_id="acc",
    workspace_id="ws",
    auth_token=SecretStr("t0ken-value"),
)


class JsonFraming:
    """Stands in for Avro framing in pipeline tests: the whole value is the payload, which
    `json_transform` reads as JSON (b"poison" does not decode). One schema key, 0. `schema` is
    passed to the transforms as the spec's writer schema (test transforms read options there)."""

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        self.schema = schema or {}

    def frame(self, value: bytes | None) -> tuple[int, bytes]:
        if not value:
            raise DecodeError("empty value")
        return 0, value

    def spec(self, schema_key: int, mapping: TopicMapping) -> TransformSpec:
        return TransformSpec(mapping, self.schema, f"json (schema key {schema_key})")


def json_transform(spec: TransformSpec) -> Transform:
    """The reference transform's steps with JSON instead of Avro (module level: workers import it)."""
    return reference_steps(spec.mapping, _decode_json)


def _decode_json(payload: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(payload)
    except ValueError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise DecodeError("not an object")
    return decoded


class RegistryDownFraming(JsonFraming):
    """A JsonFraming whose schema registry is unreachable for its first `failures` lookups.

    `needs_registry` picks the values written with a schema not looked up yet (schema key 1;
    default: all of them); the others (key 0) go through even while the registry is down, as
    with a real registry client's cache."""

    def __init__(
        self,
        failures: int,
        clock: Callable[[], float] | None = None,
        needs_registry: Callable[[bytes | None], bool] = lambda value: True,
    ) -> None:
        super().__init__()
        self.failures = failures
        self.clock = clock
        self.needs_registry = needs_registry
        self.calls = 0
        self.failed_at: list[float] = []  # clock time of each refused call

    def frame(self, value: bytes | None) -> tuple[int, bytes]:
        _, payload = super().frame(value)
        return (1 if self.needs_registry(value) else 0), payload

    def spec(self, schema_key: int, mapping: TopicMapping) -> TransformSpec:
        self.calls += 1
        if self.failures > 0 and schema_key == 1:
            self.failures -= 1
            self.failed_at.append(self.clock() if self.clock else float(self.calls))
            raise RegistryUnavailable("registry answered 503", status=503)
        return super().spec(schema_key, mapping)


class InlineExecutor(Executor):
    """Runs each upload at submit time: deterministic completion order."""

    def __init__(self) -> None:
        self.held: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self.hold = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        if self.hold:
            self.held.append((future, fn, args, kwargs))
            return future
        _run(future, fn, args, kwargs)
        return future

    def release(self, index: int | None = None) -> None:
        """Finish held uploads: all (in order) or the one at `index` (out of order)."""
        items = self.held if index is None else [self.held[index]]
        for item in list(items):
            self.held.remove(item)
            _run(*item)

    def held_ids(self, index: int) -> list[str]:
        """The `event_id`s of the records in the held upload at `index`."""
        _endpoint, parts = self.held[index][2]
        return [json.loads(part)["event_id"] for part in parts]


def _run(future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        future.set_result(fn(*args, **kwargs))
    except BaseException as exc:
        future.set_exception(exc)


@dataclass
class ScriptedUploader:
    """Accepts everything unless told otherwise; records what the API 'received'."""

    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reject_if: Callable[[dict[str, Any]], bool] = lambda record: False
    # One entry per call, in order: raised, or None for a call that goes through.
    fail_with: list[BaseException | None] = field(default_factory=list)
    cancelled: bool = False
    calls: int = 0
    clock: Callable[[], float] | None = None
    call_times: list[float] = field(default_factory=list)  # clock time of every call
    trace_ids: list[str | None] = field(default_factory=list)  # the trace id of every call

    def upload_encoded(
        self, endpoint: str, parts: Sequence[bytes], *, trace_id: str | None = None
    ) -> UploadResult:
        self.calls += 1
        self.trace_ids.append(trace_id)
        self.call_times.append(self.clock() if self.clock else float(self.calls))
        if self.fail_with:
            error = self.fail_with.pop(0)
            if error is not None:
                raise error
        if self.cancelled:
            raise UploadCancelled("cancelled")
        result = UploadResult(endpoint, requests=1)
        for i, part in enumerate(parts):
            record = json.loads(part)
            if self.reject_if(record):
                result.rejected.append(
                    Rejection(i, 400, "Validation failed: amount", '{"error":"Bad Request"}')
                )
            else:
                self.received.append((endpoint, record))
                result.accepted += 1
        return result

    def cancel(self) -> None:
        self.cancelled = True


def deposit(i: int, **extra: Any) -> bytes:
    record = {
        "player_id": f"p{i}",
        "deposit_id": f"d{i}",
        "created_at": "2024-01-15T10:30:00Z",
        "amount": 10 + i,
    }
    record.update(extra)
    return dumps_bytes(record)


DEPOSIT_MAPPING = MappingSettings(
    topic="deposits",
    endpoint="deposit",
    format="avro",
    schema="unused.avsc",
    fields={"user_id": "player_id", "event_id": "deposit_id", "event_time": "created_at"},
    constants={"event_name": "Successful Deposit"},
)


EPOCH = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)  # wall time of FakeClock 0, for dead-letter stamps


class ClockRanAway(BaseException):
    """The fake clock passed a test's limit: a loop that never ends. A BaseException, so that the
    pipeline's own error handling cannot turn it into an ordinary (and maybe expected) exit code."""


@dataclass
class Kit:
    broker: InMemoryBroker
    clock: FakeClock
    uploader: ScriptedUploader
    executor: InlineExecutor
    dlq_topic: str = "dlq"
    consumers: dict[str, InMemoryConsumer] = field(default_factory=dict)  # member id → its consumer
    # Run after every pipeline sleep (drain loops): lets a test finish uploads "while" it waits.
    sleep_hooks: list[Callable[[], None]] = field(default_factory=list)
    clock_limit: float = 10_000.0

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)
        if self.clock.now() > self.clock_limit:
            raise ClockRanAway(f"fake clock passed {self.clock_limit}s")
        for hook in list(self.sleep_hooks):
            hook()

    def utc_now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.clock.now())

    def pipeline(
        self,
        *,
        member: str = "m1",
        max_records: int = 3,
        max_wait_ms: int = 1000,
        max_in_flight: int = 10_000,
        max_in_flight_bytes: int = 64 * 1024 * 1024,
        window: int = 1000,
        max_ratio: float = 0.5,
        shutdown_timeout_s: float = 5.0,
        mappings: Sequence[MappingSettings] = (DEPOSIT_MAPPING,),
        framing: ValueFraming | None = None,
        framings: Mapping[str, ValueFraming] | None = None,
        commit_interval_s: float = 0.5,
        seed: int = 1,
        pool: TransformPool | None = None,
        make: TransformFactory = json_transform,
    ) -> Pipeline:
        """`pool`: transforms in worker processes (started, e.g. by `start_pool`), else inline.
        `framings`: per topic, instead of `framing` for every topic."""
        routes = {
            m.topic: Route(
                TopicMapping.from_settings(m, DEST), (framings or {}).get(m.topic) or framing or JsonFraming()
            )
            for m in mappings
        }
        consumer = self.broker.consumer("g", member_id=member)
        self.consumers[member] = consumer
        return Pipeline(
            consumer,
            DeadLetterWriter(self.broker.producer(), self.dlq_topic, now=self.utc_now),
            {"optikpi": self.uploader},
            routes,
            batching=BatchingSettings(max_records=max_records, max_wait_ms=max_wait_ms),
            dead_letter=DeadLetterSettings(topic=self.dlq_topic, window=window, max_ratio=max_ratio),
            backpressure=BackpressureSettings(
                max_in_flight_records=max_in_flight, max_in_flight_bytes=max_in_flight_bytes
            ),
            executor=self.executor,
            shutdown_timeout_s=shutdown_timeout_s,
            clock=self.clock.now,
            sleep=self.sleep,
            commit_interval_s=commit_interval_s,
            credentials_retry_s=(5.0, 60.0),
            rng=random.Random(seed),  # jittered retry waits, the same on every run
            wall_clock=self.clock.now,  # the in-memory broker stamps records with the same clock
            pool=pool,
            make=make,
            admin=self.broker.admin(),  # as in production: paused partitions' end offsets are asked for
        )

    def started(self, **kwargs: Any) -> Pipeline:
        """A pipeline subscribed to its topics, for tests that drive it with `step()` (run() subscribes
        by itself)."""
        p = self.pipeline(**kwargs)
        mappings: Sequence[MappingSettings] = kwargs.get("mappings", (DEPOSIT_MAPPING,))
        self.consumers[kwargs.get("member", "m1")].subscribe(sorted({m.topic for m in mappings}), p)
        return p

    def paused(self, member: str = "m1") -> set[TopicPartition]:
        return self.consumers[member].paused()

    def dlq(self) -> list[Record]:
        return self.broker.records(self.dlq_topic)


def make_kit(partitions: int = 1) -> Kit:
    clock = FakeClock()
    broker = InMemoryBroker(clock)
    broker.create_topic("deposits", partitions)
    broker.create_topic("dlq", 1)
    return Kit(broker, clock, ScriptedUploader(clock=clock.now), InlineExecutor())
