"""Building blocks for pipeline tests: an in-memory broker, a scripted uploader, an inline executor."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from connector.avro import DecodeError
from connector.config import (
    BackpressureSettings,
    BatchingSettings,
    DeadLetterSettings,
    DestinationSettings,
    MappingSettings,
)
from connector.deadletter import DeadLetterWriter
from connector.ingest import Rejection, UploadCancelled, UploadResult
from connector.jsjson import dumps_bytes
from connector.kafka_memory import FakeClock, InMemoryBroker
from connector.mapping import TopicMapping
from connector.pipeline import Pipeline, Route

DEST = DestinationSettings(
    base_url="http://api.invalid/apigw/ingest", account_id="acc", workspace_id="ws", auth_token="t0ken-value"
)


class JsonDecoder:
    """Stands in for Avro in pipeline tests: the value is JSON; b"poison" does not decode."""

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value:
            raise DecodeError("empty value")
        try:
            out = json.loads(value)
        except ValueError as exc:
            raise DecodeError(f"not JSON: {exc}") from None
        if not isinstance(out, dict):
            raise DecodeError("not an object")
        return out


class InlineExecutor(Executor):
    """Runs each upload at submit time: deterministic completion order."""

    def __init__(self) -> None:
        self.held: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = []
        self.hold = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        if self.hold:
            self.held.append((future, fn, args))
            return future
        _run(future, fn, args)
        return future

    def release(self, index: int | None = None) -> None:
        """Finish held uploads: all (in order) or the one at `index` (out of order)."""
        items = self.held if index is None else [self.held[index]]
        for item in list(items):
            self.held.remove(item)
            _run(item[0], item[1], item[2])


def _run(future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        future.set_result(fn(*args))
    except BaseException as exc:
        future.set_exception(exc)


@dataclass
class ScriptedUploader:
    """Accepts everything unless told otherwise; records what the API 'received'."""

    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reject_if: Callable[[dict[str, Any]], bool] = lambda record: False
    fail_with: list[BaseException] = field(default_factory=list)  # raised once each, in order
    cancelled: bool = False
    calls: int = 0

    def upload_encoded(self, endpoint: str, parts: Sequence[bytes]) -> UploadResult:
        self.calls += 1
        if self.fail_with:
            raise self.fail_with.pop(0)
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


@dataclass
class Kit:
    broker: InMemoryBroker
    clock: FakeClock
    uploader: ScriptedUploader
    executor: InlineExecutor
    dlq_topic: str = "dlq"

    def pipeline(
        self,
        *,
        member: str = "m1",
        max_records: int = 3,
        max_wait_ms: int = 1000,
        max_in_flight: int = 10_000,
        window: int = 1000,
        max_ratio: float = 0.5,
        shutdown_timeout_s: float = 5.0,
        mappings: Sequence[MappingSettings] = (DEPOSIT_MAPPING,),
    ) -> Pipeline:
        routes = {m.topic: Route(TopicMapping.from_settings(m, DEST), JsonDecoder()) for m in mappings}
        return Pipeline(
            self.broker.consumer("g", member_id=member),
            DeadLetterWriter(self.broker.producer(), self.dlq_topic),
            {"optikpi": self.uploader},
            routes,
            batching=BatchingSettings(max_records=max_records, max_wait_ms=max_wait_ms),
            dead_letter=DeadLetterSettings(topic=self.dlq_topic, window=window, max_ratio=max_ratio),
            backpressure=BackpressureSettings(max_in_flight_records=max_in_flight),
            executor=self.executor,
            shutdown_timeout_s=shutdown_timeout_s,
            clock=self.clock.now,
            sleep=self.clock.sleep,
            commit_interval_s=0.5,
            credentials_retry_s=(5.0, 60.0),
        )


def make_kit(partitions: int = 1) -> Kit:
    clock = FakeClock()
    broker = InMemoryBroker(clock)
    broker.create_topic("deposits", partitions)
    broker.create_topic("dlq", 1)
    return Kit(broker, clock, ScriptedUploader(), InlineExecutor())
