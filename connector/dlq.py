"""`dlq list / show / stats / replay`: inspect and redrive the dead-letter topic.

Reading never joins a consumer group and never commits: the partitions are assigned explicitly and
read from the beginning up to the end offset seen when reading started (records dead-lettered
meanwhile are left for the next run). That end comes from partition-EOF events and from watermarks
cached from fetch responses, not from ListOffsets, which some brokers answer wrongly. `--since` and
`--until` filter on `optikpi.failed_at`, so they cannot skip a record because of a wrong offset
lookup.

Replay re-publishes a record as it was before it failed: original key, value and headers, byte for
byte, minus the headers the dead-letter writer added, plus `optikpi.replayed_from`.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, Protocol

from connector.config import ConfigError, Settings
from connector.deadletter import (
    ADDED_HEADERS,
    H_CLASS,
    H_ENDPOINT,
    H_FAILED_AT,
    H_HTTP_STATUS,
    H_MESSAGE,
    H_OFFSET,
    H_PARTITION,
    H_STAGE,
    H_TOPIC,
)
from connector.kafka_port import DeliveryError, Header, KafkaPortError, ProducerPort, Record, TopicPartition

if TYPE_CHECKING:
    from connector.avro import SchemaRegistryClient

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

REPLAYED_FROM = "optikpi.replayed_from"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RATE = 100.0
HEX_PREVIEW_BYTES = 256
REASON_COLUMN_CHARS = 60
NO_VALUE = "-"

_READ_BATCH = 500
_POLL_S = 0.2
_CONNECT_ERRORS_PREFIX = "__connect.errors."
_STRIPPED_ON_REPLAY = ADDED_HEADERS | {REPLAYED_FROM}
_MAX_LISTED_FAILURES = 10


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
    """What reading needs from Kafka (`connector.kafka.PartitionReader` implements it)."""

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


# ------------------------------------------------------------------------------------ rendering
def format_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def format_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def one_line(text: str, width: int) -> str:
    # Control characters from a header written by another tool must not reach the terminal.
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def render_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()
) -> list[str]:
    """Plain-text columns, two spaces apart; columns in `right` are right-aligned."""
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    right_aligned = set(right)
    lines = []
    for row in table:
        cells = [
            cell.rjust(width) if i in right_aligned else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _age_s(entry: DeadLetter, now: datetime) -> float | None:
    return None if entry.failed_at is None else (now - entry.failed_at).total_seconds()


def list_lines(entries: Sequence[DeadLetter], now: datetime) -> list[str]:
    rows = []
    for e in entries:
        age = _age_s(e, now)
        rows.append(
            [
                e.position,
                e.source,
                e.stage or NO_VALUE,
                e.endpoint or NO_VALUE,
                NO_VALUE if age is None else format_age(age),
                one_line(e.reason, REASON_COLUMN_CHARS) or NO_VALUE,
            ]
        )
    return render_table(["DLQ", "SOURCE", "STAGE", "ENDPOINT", "AGE", "REASON"], rows, right=[4])


def entry_json(e: DeadLetter, now: datetime) -> dict[str, Any]:
    age = _age_s(e, now)
    return {
        "dlq_partition": e.dlq_partition,
        "dlq_offset": e.dlq_offset,
        "topic": e.topic,
        "partition": e.partition,
        "offset": e.offset,
        "stage": e.stage,
        "endpoint": e.endpoint,
        "error_class": e.error_class,
        "reason": e.reason,
        "http_status": e.http_status,
        "failed_at": format_time(e.failed_at),
        "age_s": None if age is None else round(age, 3),
    }


_HTTP_STATUS = re.compile(r"\bHTTP \d{3}\b")
_GOT = re.compile(r"\(got [^()]*(?:\([^()]*\)[^()]*)*\)")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b")
_TIMESTAMP = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_HEX_LITERAL = re.compile(r"\b0x[0-9a-fA-F]+\b")
_HEX_ID = re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{12,}\b")
_NUMBER = re.compile(r"(?<![A-Za-z0-9.\x00])\d+(?:\.\d+)?")
_REASON_GROUP_CHARS = 160


def normalize_reason(reason: str) -> str:
    """The reason with values, ids, times and numbers blanked out, so that similar failures group.

    HTTP status codes are kept: a 400 and a 413 are different problems.
    """
    text = " ".join(reason.replace("\x00", "").split())
    if not text:
        return "(no reason)"
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    text = _HTTP_STATUS.sub(keep, text)
    text = _GOT.sub("(got …)", text)
    for pattern, mark in (
        (_UUID, "<id>"),
        (_TIMESTAMP, "<time>"),
        (_HEX_LITERAL, "<hex>"),
        (_HEX_ID, "<id>"),
    ):
        text = pattern.sub(mark, text)
    text = _NUMBER.sub("<n>", text)
    text = re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)
    return one_line(text, _REASON_GROUP_CHARS)


@dataclass(frozen=True)
class Stats:
    total: int
    by_stage: dict[str, int]
    by_reason: dict[str, int]
    by_endpoint: dict[str, int]
    by_topic: dict[str, int]


def _ranked(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def compute_stats(entries: Iterable[DeadLetter]) -> Stats:
    stage: Counter[str] = Counter()
    reason: Counter[str] = Counter()
    endpoint: Counter[str] = Counter()
    topic: Counter[str] = Counter()
    total = 0
    for e in entries:
        total += 1
        stage[e.stage or NO_VALUE] += 1
        reason[normalize_reason(e.reason)] += 1
        endpoint[e.endpoint or NO_VALUE] += 1
        topic[e.topic or NO_VALUE] += 1
    return Stats(total, _ranked(stage), _ranked(reason), _ranked(endpoint), _ranked(topic))


def stats_lines(stats: Stats, dlq_topic: str) -> list[str]:
    lines = [f"{dlq_topic}: {stats.total} record{'' if stats.total == 1 else 's'}"]
    sections = (
        ("STAGE", stats.by_stage),
        ("REASON", stats.by_reason),
        ("ENDPOINT", stats.by_endpoint),
        ("TOPIC", stats.by_topic),
    )
    for title, counts in sections:
        if counts:
            lines.append("")
            lines += render_table([title, "COUNT"], ([k, str(v)] for k, v in counts.items()), right=[1])
    return lines


# ------------------------------------------------------------------------------------------ show
def _plain(value: Any) -> Any:
    """A JSON-safe copy of a decoded Avro value (times as ISO 8601, decimals as strings, bytes as hex)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return format_time(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # UUID, time of day


def _printable_text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(not ch.isprintable() and ch not in "\t\n\r" for ch in text):
        return None
    return text


@dataclass(frozen=True)
class Shown:
    """Bytes as a person should see them: `format` is utf-8/hex for keys and headers, and
    avro/json/text/hex/null for values."""

    format: str
    data: Any
    size: int | None = None
    schema_id: int | None = None
    truncated: bool = False
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format, "data": self.data, "size": self.size}
        if self.schema_id is not None:
            out["schema_id"] = self.schema_id
        if self.truncated:
            out["truncated"] = True
        if self.note is not None:
            out["note"] = self.note
        return out


def show_bytes(data: bytes | None) -> Shown:
    if data is None:
        return Shown("null", None)
    text = _printable_text(data)
    if text is not None:
        return Shown("utf-8", text, len(data))
    preview = data[:HEX_PREVIEW_BYTES]
    return Shown("hex", preview.hex(), len(data), truncated=len(data) > len(preview))


def show_value(value: bytes | None, registry: SchemaRegistryClient | None) -> Shown:
    """Avro through the registry when Confluent-framed, else JSON, else text, else hex."""
    from connector.avro import (
        MAGIC_BYTE,
        ConfluentAvroDecoder,
        DecodeError,
        RegistryError,
        RegistryUnavailable,
    )

    if value is None:
        return Shown("null", None)
    note = None
    if len(value) >= 5 and value[0] == MAGIC_BYTE:
        schema_id = int.from_bytes(value[1:5], "big")
        if registry is None:
            note = f"Confluent-framed (schema id {schema_id}); configure schema_registry to decode it"
        else:
            try:
                decoded = ConfluentAvroDecoder(registry).decode(value)
                return Shown("avro", _plain(decoded), len(value), schema_id=schema_id)
            except (DecodeError, RegistryUnavailable, RegistryError) as exc:
                note = f"not decoded with schema id {schema_id}: {exc}"
    text = _printable_text(value)
    if text is not None:
        try:
            return Shown("json", json.loads(text), len(value), note=note)
        except ValueError:
            return Shown("text", text, len(value), note=note)
    preview = value[:HEX_PREVIEW_BYTES]
    return Shown("hex", preview.hex(), len(value), truncated=len(value) > len(preview), note=note)


def show_json(record: Record, dlq_topic: str, registry: SchemaRegistryClient | None) -> dict[str, Any]:
    timestamp = (
        None if record.timestamp_ms is None else datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
    )
    return {
        "topic": dlq_topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": format_time(timestamp),
        "key": show_bytes(record.key).as_json(),
        "headers": [{"name": name, **show_bytes(value).as_json()} for name, value in record.headers],
        "value": show_value(record.value, registry).as_json(),
    }


_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})
_HEX_LINE_CHARS = 64


def _inline(shown: Mapping[str, Any]) -> str:
    """One line for a key or header value: line breaks escaped so the columns stay intact."""
    if shown["format"] == "null":
        return "(null)"
    if shown["format"] == "hex":
        more = f", first {HEX_PREVIEW_BYTES} bytes" if shown.get("truncated") else ""
        return f"(hex{more}) {shown['data']}"
    return str(shown["data"]).translate(_ESCAPES)


def show_lines(doc: Mapping[str, Any]) -> list[str]:
    lines = [
        f"record     {doc['topic']} {doc['partition']}:{doc['offset']}",
        f"timestamp  {doc['timestamp'] or NO_VALUE}",
        f"key        {_inline(doc['key'])}",
        "headers",
    ]
    rows = ([h["name"], _inline(h)] for h in doc["headers"])
    lines += ["  " + line for line in render_table(["NAME", "VALUE"], rows)[1:]]
    value = doc["value"]
    described = [value["format"]]
    if "schema_id" in value:
        described.append(f"schema id {value['schema_id']}")
    if value["size"] is not None:
        described.append(f"{value['size']} bytes")
    if value.get("truncated"):
        described.append(f"the first {HEX_PREVIEW_BYTES} shown")
    lines.append(f"value      {', '.join(described)}")
    if "note" in value:
        lines.append(f"           ({value['note']})")
    if value["format"] in ("avro", "json"):
        lines += json.dumps(value["data"], indent=2, ensure_ascii=False).splitlines()
    elif value["format"] == "hex":
        data = str(value["data"])
        lines += [data[i : i + _HEX_LINE_CHARS] for i in range(0, len(data), _HEX_LINE_CHARS)]
    elif value["format"] != "null":
        lines += str(value["data"]).splitlines()
    return lines


# ---------------------------------------------------------------------------------------- replay
def replay_headers(record: Record, dlq_topic: str) -> list[Header]:
    """The original headers, byte for byte and in order, then where this copy came from."""
    kept = [
        (name, value)
        for name, value in record.headers
        if name not in _STRIPPED_ON_REPLAY and not name.startswith(_CONNECT_ERRORS_PREFIX)
    ]
    kept.append((REPLAYED_FROM, f"{dlq_topic}:{record.partition}:{record.offset}".encode()))
    return kept


@dataclass(frozen=True)
class ReplayItem:
    record: Record
    topic: str
    partition: int | None  # None: the producer's partitioner (by key)
    headers: tuple[Header, ...]


def plan_replay(
    records: Iterable[Record], dlq_topic: str, to: str | None, partition_counts: Mapping[str, int]
) -> tuple[list[ReplayItem], list[Record]]:
    """(what to send, records that cannot be replayed because they do not say where they came from).

    Back to its original topic a record keeps its original partition, so it lands beside the other
    records of its key whatever partitioner first wrote them.
    """
    items: list[ReplayItem] = []
    skipped: list[Record] = []
    for record in records:
        entry = DeadLetter.from_record(record)
        target = to or entry.topic
        if not target:
            skipped.append(record)
            continue
        partition = entry.partition if target == entry.topic else None
        if partition is not None and not 0 <= partition < partition_counts.get(target, 0):
            partition = None
        items.append(ReplayItem(record, target, partition, tuple(replay_headers(record, dlq_topic))))
    return items, skipped


@dataclass
class ReplayReport:
    sent: int = 0
    delivered: int = 0
    failures: list[tuple[ReplayItem, str]] = field(default_factory=list)
    by_topic: Counter[str] = field(default_factory=Counter)


def replay(
    items: Sequence[ReplayItem],
    producer: ProducerPort,
    rate: float,
    *,
    delivery_timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayReport:
    """Send at most `rate` records per second and wait for every delivery report."""
    report = ReplayReport()
    due = clock()
    for item in items:
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        # Paced from the previous send, not from the start: falling behind never turns into a burst.
        due = max(due, clock()) + 1 / rate
        producer.poll(0)

        def delivered(error: DeliveryError | None, item: ReplayItem = item) -> None:
            if error is None:
                report.delivered += 1
                report.by_topic[item.topic] += 1
            else:
                report.failures.append((item, str(error)))

        r = item.record
        producer.produce(item.topic, r.key, r.value, item.headers, delivered, partition=item.partition)
        report.sent += 1
    deadline = clock() + delivery_timeout_s
    while producer.flush(max(0.0, min(1.0, deadline - clock()))) and clock() < deadline:
        pass
    return report


def _dry_run_json(items: Sequence[ReplayItem]) -> list[dict[str, Any]]:
    return [
        {
            "dlq_partition": item.record.partition,
            "dlq_offset": item.record.offset,
            "topic": item.topic,
            "partition": item.partition,
            "key": show_bytes(item.record.key).as_json(),
            "value_size": None if item.record.value is None else len(item.record.value),
            "headers": [name for name, _ in item.headers],
        }
        for item in items
    ]


def _dry_run_lines(items: Sequence[ReplayItem]) -> list[str]:
    rows = [
        [
            f"{item.record.partition}:{item.record.offset}",
            item.topic if item.partition is None else f"{item.topic}:{item.partition}",
            one_line(_inline(show_bytes(item.record.key).as_json()), 40),
            NO_VALUE if item.record.value is None else f"{len(item.record.value)} B",
            str(len(item.headers)),
        ]
        for item in items
    ]
    return render_table(["DLQ", "TARGET", "KEY", "VALUE", "HEADERS"], rows, right=[3, 4])


# -------------------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class DlqRequest:
    """One `dlq` command as the command line asked for it."""

    action: str  # list | show | stats | replay
    filters: Filters = Filters()
    as_json: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    position: str | None = None  # show
    to: str | None = None  # replay
    dry_run: bool = False
    rate: float = DEFAULT_RATE
    yes: bool = False


@dataclass
class _Io:
    out: IO[str]
    err: IO[str]

    def print(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out)

    def json(self, doc: object) -> None:
        print(json.dumps(doc, indent=2, ensure_ascii=False), file=self.out)

    def error(self, message: str) -> None:
        print(message, file=self.err)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def run_dlq(
    settings: Settings,
    request: DlqRequest,
    *,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    stdin: IO[str] | None = None,
    now: datetime | None = None,
    source_factory: Callable[[], PartitionSource] | None = None,
    producer_factory: Callable[[], ProducerPort] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run one `dlq` command; returns the exit code. ConfigError for a configuration problem."""
    io = _Io(out or sys.stdout, err or sys.stderr)
    stdin = stdin or sys.stdin
    if request.action == "replay" and not (request.yes or request.dry_run) and not _isatty(stdin):
        io.error(
            "error: stdin is not a terminal, so dlq replay cannot ask for confirmation: pass --yes "
            "(or --dry-run)"
        )
        return EXIT_USAGE
    assert settings.kafka is not None and settings.dead_letter is not None
    dlq_topic = settings.dead_letter.topic
    source = _open(settings, source_factory)
    try:
        try:
            topics = source.topics(request.timeout_s)
        except KafkaPortError as exc:
            io.error(
                f"error: cannot reach Kafka at {settings.kafka.bootstrap_servers} within "
                f"{request.timeout_s:g} s: {source.last_error or exc}"
            )
            return EXIT_FAILURE
        partitions = topics.get(dlq_topic, 0)
        if request.action == "show":
            return _show(settings, request, source, dlq_topic, partitions, io)
        if not partitions:
            io.error(
                f"note: the dead-letter topic {dlq_topic} does not exist (yet): nothing was dead-lettered"
            )
            result = ReadResult([])
        else:
            positions = {TopicPartition(dlq_topic, p): None for p in range(partitions)}
            try:
                result = read_partitions(source, positions, idle_timeout_s=request.timeout_s, clock=clock)
            except KafkaPortError as exc:
                io.error(f"error: reading {dlq_topic} failed: {exc}")
                return EXIT_FAILURE
    finally:
        source.close()
    if result.incomplete:
        names = ", ".join(str(tp.partition) for tp in result.incomplete)
        io.error(
            f"warning: partition(s) {names} of {dlq_topic} sent nothing for {request.timeout_s:g} s "
            "before their end was reached: the result is incomplete"
        )
    selected = select(result.records, request.filters)
    moment = now or datetime.now(UTC)
    if request.action == "list":
        code = _list(selected, dlq_topic, result, moment, request.as_json, io)
    elif request.action == "stats":
        code = _stats(selected, dlq_topic, result, request.as_json, io)
    elif request.action == "replay":
        code = _replay(
            settings, request, selected, dlq_topic, topics, io, stdin, producer_factory, clock, sleep
        )
    else:
        raise ValueError(f"unknown dlq action {request.action!r}")
    return EXIT_FAILURE if result.incomplete else code


def _open(settings: Settings, factory: Callable[[], PartitionSource] | None) -> PartitionSource:
    if factory is not None:
        return factory()
    from connector.kafka import PartitionReader, reader_config

    k = settings.kafka
    assert k is not None
    try:
        return PartitionReader(
            reader_config(k.bootstrap_servers, k.properties, client_id="optikpi-connector-dlq")
        )
    except KafkaPortError as exc:  # librdkafka refused a property: the user's configuration
        raise ConfigError([f"{settings.source}: kafka.properties: {exc}"]) from None


def _list(
    selected: Sequence[Record], dlq_topic: str, result: ReadResult, now: datetime, as_json: bool, io: _Io
) -> int:
    entries = [DeadLetter.from_record(r) for r in selected]
    if as_json:
        io.json(
            {
                "topic": dlq_topic,
                "complete": not result.incomplete,
                "count": len(entries),
                "records": [entry_json(e, now) for e in entries],
            }
        )
    elif entries:
        io.print(*list_lines(entries, now))
    else:
        io.print("no matching dead-letter records")
    return EXIT_OK


def _stats(selected: Sequence[Record], dlq_topic: str, result: ReadResult, as_json: bool, io: _Io) -> int:
    stats = compute_stats(DeadLetter.from_record(r) for r in selected)
    if as_json:
        io.json(
            {
                "topic": dlq_topic,
                "complete": not result.incomplete,
                "total": stats.total,
                "by_stage": stats.by_stage,
                "by_reason": stats.by_reason,
                "by_endpoint": stats.by_endpoint,
                "by_topic": stats.by_topic,
            }
        )
    else:
        io.print(*stats_lines(stats, dlq_topic))
    return EXIT_OK


def _show(
    settings: Settings,
    request: DlqRequest,
    source: PartitionSource,
    dlq_topic: str,
    partitions: int,
    io: _Io,
) -> int:
    assert request.position is not None
    try:
        partition, offset = parse_position(request.position)
    except ValueError as exc:
        io.error(f"error: {exc}")
        return EXIT_USAGE
    if partition is None:
        if partitions > 1:
            io.error(f"error: {dlq_topic} has {partitions} partitions: give PARTITION:OFFSET")
            return EXIT_USAGE
        partition = 0
    if partition >= partitions:
        what = "does not exist" if not partitions else f"has no partition {partition}"
        io.error(f"not found: {dlq_topic} {what}")
        return EXIT_FAILURE
    tp = TopicPartition(dlq_topic, partition)
    try:
        result = read_partitions(
            source, {tp: offset}, idle_timeout_s=request.timeout_s, stop=lambda r: r.offset >= offset
        )
    except KafkaPortError as exc:
        io.error(f"error: reading {dlq_topic} failed: {exc}")
        return EXIT_FAILURE
    record = next((r for r in result.records if r.offset == offset), None)
    if record is None:
        if result.incomplete:
            io.error(f"error: partition {partition} of {dlq_topic} sent nothing for {request.timeout_s:g} s")
        else:
            io.error(f"not found: {dlq_topic} has no record at {partition}:{offset}")
        return EXIT_FAILURE
    registry = _registry_if_needed(settings, record.value)
    try:
        doc = show_json(record, dlq_topic, registry)
    finally:
        if registry is not None:
            registry.close()
    if request.as_json:
        io.json(doc)
    else:
        io.print(*show_lines(doc))
    return EXIT_OK


def _registry_if_needed(settings: Settings, value: bytes | None) -> SchemaRegistryClient | None:
    if settings.schema_registry is None or not value or value[0] != 0:
        return None
    from connector.app import build_registry

    return build_registry(settings)


def _replay(
    settings: Settings,
    request: DlqRequest,
    selected: Sequence[Record],
    dlq_topic: str,
    topics: Mapping[str, int],
    io: _Io,
    stdin: IO[str],
    producer_factory: Callable[[], ProducerPort] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> int:
    items, skipped = plan_replay(selected, dlq_topic, request.to, topics)
    for record in skipped:
        io.error(f"skipped {record.partition}:{record.offset}: no {H_TOPIC} header; use --to TOPIC")
    targets = Counter(item.topic for item in items)
    missing = sorted(t for t in targets if t not in topics)
    if missing:
        io.error(f"error: target topic(s) {', '.join(missing)} do not exist; nothing replayed")
        return EXIT_FAILURE
    if request.dry_run:
        if request.as_json:
            io.json(
                {
                    "dry_run": True,
                    "topic": dlq_topic,
                    "selected": len(selected),
                    "skipped": len(skipped),
                    "records": _dry_run_json(items),
                }
            )
        else:
            io.print(f"dry run: {len(items)} record(s) would be replayed; nothing was sent")
            if items:
                io.print(*_dry_run_lines(items))
        return EXIT_FAILURE if skipped else EXIT_OK
    if not items:
        if request.as_json:
            io.json({"dry_run": False, "topic": dlq_topic, "selected": len(selected), "sent": 0})
        else:
            io.print("nothing to replay")
        return EXIT_FAILURE if skipped else EXIT_OK
    if not request.yes:
        summary = ", ".join(f"{topic} ({n})" for topic, n in sorted(targets.items()))
        io.err.write(f"replay {len(items)} record(s) to {summary}? [y/N] ")
        io.err.flush()
        if stdin.readline().strip().lower() not in ("y", "yes"):
            io.error("aborted: nothing replayed")
            return EXIT_FAILURE
    report = _send(settings, request, items, producer_factory, clock, sleep)
    if request.as_json:
        io.json(
            {
                "dry_run": False,
                "topic": dlq_topic,
                "selected": len(selected),
                "skipped": len(skipped),
                "sent": report.sent,
                "delivered": report.delivered,
                "failed": len(report.failures),
                "by_topic": dict(sorted(report.by_topic.items())),
                "failures": [
                    {
                        "dlq_partition": i.record.partition,
                        "dlq_offset": i.record.offset,
                        "topic": i.topic,
                        "error": e,
                    }
                    for i, e in report.failures
                ],
            }
        )
    else:
        failed = len(report.failures)
        io.print(f"replayed {report.sent} record(s): {report.delivered} delivered, {failed} failed")
        for topic, n in sorted(report.by_topic.items()):
            io.print(f"  {topic}: {n}")
        for item, error in report.failures[:_MAX_LISTED_FAILURES]:
            io.error(f"failed {item.record.partition}:{item.record.offset} → {item.topic}: {error}")
        if failed > _MAX_LISTED_FAILURES:
            io.error(f"… and {failed - _MAX_LISTED_FAILURES} more failures")
    ok = report.delivered == report.sent and not skipped
    return EXIT_OK if ok else EXIT_FAILURE


def _send(
    settings: Settings,
    request: DlqRequest,
    items: Sequence[ReplayItem],
    producer_factory: Callable[[], ProducerPort] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> ReplayReport:
    if producer_factory is not None:
        producer = producer_factory()
    else:
        from connector.app import kafka_producer_config
        from connector.kafka import KafkaProducer

        try:
            producer = KafkaProducer(kafka_producer_config(settings))
        except KafkaPortError as exc:
            raise ConfigError([f"{settings.source}: kafka.properties: {exc}"]) from None
    try:
        # A delivery report is due within librdkafka's message timeout; past a generous wait the
        # records still outstanding are counted as failed (closing reports them so).
        return replay(
            items,
            producer,
            request.rate,
            delivery_timeout_s=max(30.0, 3 * request.timeout_s),
            clock=clock,
            sleep=sleep,
        )
    finally:
        producer.close()
