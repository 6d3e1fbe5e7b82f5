"""Reading the dead-letter topic, and which of its records a command looks at.

Reading never joins a consumer group and never commits: the partitions are assigned explicitly and
read from the beginning up to the end offset seen when reading started (records dead-lettered
meanwhile are left for the next run). That end comes from partition-EOF events and from watermarks
cached from fetch responses, not from ListOffsets, which some brokers answer wrongly. `--since` and
`--until` filter on `optikpi.failed_at`, so they cannot skip a record because of a wrong offset
lookup.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from connector.kafka.ports import Header, Record, TopicPartition
from connector.pipeline.deadletter import (
    H_CLASS,
    H_ENDPOINT,
    H_FAILED_AT,
    H_HTTP_RESPONSE,
    H_HTTP_STATUS,
    H_MESSAGE,
    H_OFFSET,
    H_PARTITION,
    H_STAGE,
    H_TOPIC,
    H_TRACE_ID,
    H_VALUE_OMITTED,
    H_VERSION,
)

NO_VALUE = "-"

_READ_BATCH = 500
_POLL_S = 0.2


# ------------------------------------------------------------------------------------ arguments
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time_bound(text: str, now: datetime) -> datetime:
    """`2h`, `30m`, `1d12h` (that long before `now`) or an ISO 8601 time (UTC unless it says otherwise)."""
    spec = text.strip()
    if spec and _DURATION.sub("", spec) == "":
        seconds = sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION.findall(spec))
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"{text!r} reaches back before the year 1") from None
    try:
        moment = datetime.fromisoformat(spec)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (like 90s, 30m, 2h, 7d) nor an ISO 8601 time "
            "(like 2024-01-15T10:30:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_position(text: str) -> tuple[int | None, int]:
    """`PARTITION:OFFSET` or `OFFSET` → (partition or None, offset)."""
    partition, sep, offset = text.strip().rpartition(":")
    try:
        if not sep:
            return None, _non_negative(offset)
        return _non_negative(partition), _non_negative(offset)
    except ValueError:
        raise ValueError(f"{text!r} is not PARTITION:OFFSET or OFFSET (non-negative integers)") from None


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0 or not text.isdigit():
        raise ValueError(text)
    return value


# -------------------------------------------------------------------------------------- records
def header_value(headers: Iterable[Header], name: str) -> bytes | None:
    """The last value of header `name`: the writer appends its headers after the original ones."""
    found: bytes | None = None
    for key, value in headers:
        if key == name:
            found = value
    return found


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _int(value: bytes | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _time(value: bytes | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What the dead-letter headers say about one DLQ record (None where a header is missing)."""

    dlq_partition: int
    dlq_offset: int
    topic: str | None
    partition: int | None
    offset: int | None
    stage: str | None
    endpoint: str | None
    error_class: str | None
    reason: str
    http_status: int | None
    failed_at: datetime | None
    # The start of the API's answer (stage UPLOAD), cut by the writer.
    http_response: str | None = None
    # The upload's X-Trace-Id, or the record's own traceparent: what to look up in traces.
    trace_id: str | None = None
    connector_version: str | None = None
    # Set on a copy written without its value: the original value's size in bytes.
    value_omitted: int | None = None

    @classmethod
    def from_record(cls, record: Record) -> DeadLetter:
        h = record.headers
        failed_at = _time(header_value(h, H_FAILED_AT))
        if failed_at is None and record.timestamp_ms is not None:
            # Written by another tool: the DLQ record's own timestamp is the next best thing.
            failed_at = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
        return cls(
            dlq_partition=record.partition,
            dlq_offset=record.offset,
            topic=_text(header_value(h, H_TOPIC)),
            partition=_int(header_value(h, H_PARTITION)),
            offset=_int(header_value(h, H_OFFSET)),
            stage=_text(header_value(h, H_STAGE)),
            endpoint=_text(header_value(h, H_ENDPOINT)),
            error_class=_text(header_value(h, H_CLASS)),
            reason=_text(header_value(h, H_MESSAGE)) or "",
            http_status=_int(header_value(h, H_HTTP_STATUS)),
            failed_at=failed_at,
            http_response=_text(header_value(h, H_HTTP_RESPONSE)),
            trace_id=_text(header_value(h, H_TRACE_ID)),
            connector_version=_text(header_value(h, H_VERSION)),
            value_omitted=_int(header_value(h, H_VALUE_OMITTED)),
        )

    @property
    def position(self) -> str:
        return f"{self.dlq_partition}:{self.dlq_offset}"

    @property
    def source(self) -> str:
        if self.topic is None:
            return NO_VALUE
        return f"{self.topic}:{_or_dash(self.partition)}:{_or_dash(self.offset)}"


def _or_dash(value: object) -> str:
    return NO_VALUE if value is None else str(value)


@dataclass(frozen=True)
class Filters:
    """Which records a command looks at; empty sets match everything."""

    stages: frozenset[str] = frozenset()
    endpoints: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None

    def matches(self, entry: DeadLetter) -> bool:
        if self.stages and entry.stage not in self.stages:
            return False
        if self.endpoints and entry.endpoint not in self.endpoints:
            return False
        if self.topics and entry.topic not in self.topics:
            return False
        if self.since is not None and (entry.failed_at is None or entry.failed_at < self.since):
            return False
        return not (self.until is not None and (entry.failed_at is None or entry.failed_at > self.until))


def select(records: Iterable[Record], filters: Filters) -> list[Record]:
    """The matching records in DLQ order (partition, then offset), at most `filters.limit` of them."""
    chosen = sorted(
        (r for r in records if filters.matches(DeadLetter.from_record(r))),
        key=lambda r: (r.partition, r.offset),
    )
    return chosen if filters.limit is None else chosen[: filters.limit]


# -------------------------------------------------------------------------------------- reading
class PartitionSource(Protocol):
    """What reading needs from Kafka (`connector.kafka.reader.PartitionReader` implements it)."""

    last_error: str | None

    def topics(self, timeout_s: float) -> dict[str, int]: ...

    def assign(self, positions: Mapping[TopicPartition, int | None]) -> None: ...

    def read(self, max_records: int, timeout_s: float) -> tuple[list[Record], dict[TopicPartition, int]]: ...

    def high_watermarks(self) -> dict[TopicPartition, int]: ...

    def close(self) -> None: ...


@dataclass
class ReadResult:
    records: list[Record]
    # Partitions that went quiet before reaching the end seen at start: the result may be partial.
    incomplete: list[TopicPartition] = field(default_factory=list)


def read_partitions(
    source: PartitionSource,
    positions: Mapping[TopicPartition, int | None],
    *,
    idle_timeout_s: float,
    stop: Callable[[Record], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ReadResult:
    """Read each partition from its position (None: the beginning) up to the end offset seen first.

    Returns early, with what was read so far, as soon as `stop(record)` says so.
    """
    wanted = set(positions)
    if not wanted:
        return ReadResult([])
    source.assign(positions)
    next_offset = {tp: offset for tp, offset in positions.items() if offset is not None}
    end: dict[TopicPartition, int] = {}
    done: set[TopicPartition] = set()
    records: list[Record] = []
    last_progress = clock()
    while True:
        batch, reached_end = source.read(_READ_BATCH, _POLL_S)
        for tp, mark in source.high_watermarks().items():
            end.setdefault(tp, mark)
        for record in batch:
            tp = record.tp
            if tp not in wanted or tp in done:
                continue
            next_offset[tp] = record.offset + 1
            if tp in end and record.offset >= end[tp]:
                done.add(tp)  # written after reading started
                continue
            records.append(record)
            if stop is not None and stop(record):
                return ReadResult(records)
        # An EOF comes after the partition's records of the same batch. It means the position caught
        # up with the newest end offset, which is never below the one captured first.
        done.update(tp for tp in reached_end if tp in wanted)
        for tp in wanted - done:
            if tp in end and (end[tp] == 0 or next_offset.get(tp, -1) >= end[tp]):
                done.add(tp)
        if done >= wanted:
            return ReadResult(records)
        if batch or reached_end:
            last_progress = clock()
        elif clock() - last_progress >= idle_timeout_s:
            return ReadResult(records, sorted(wanted - done))
