"""How `dlq` commands show dead-letter records to a person: tables, JSON documents, decoded values
and reason statistics."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from connector.dlq.read import NO_VALUE, DeadLetter
from connector.kafka.ports import Record
from connector.pipeline.deadletter import format_timestamp, value_omitted
from connector.runtime.tables import render_table

if TYPE_CHECKING:
    from connector.avro.registry import SchemaRegistryClient
    from connector.dlq.replay import ReplayItem

HEX_PREVIEW_BYTES = 256
REASON_COLUMN_CHARS = 60


# ------------------------------------------------------------------------------------ rendering
def format_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def format_time(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def one_line(text: str, width: int) -> str:
    # Control characters from a header written by another tool must not reach the terminal.
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


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
        "http_response": e.http_response,
        "failed_at": format_time(e.failed_at),
        "age_s": None if age is None else round(age, 3),
        "trace_id": e.trace_id,
        "connector_version": e.connector_version,
        "value_omitted": e.value_omitted,
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
    from connector.avro.decoding import MAGIC_BYTE, ConfluentAvroDecoder
    from connector.errors import DecodeError, RegistryError, RegistryUnavailable

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
        **_omitted_json(record),
    }


def _omitted_json(record: Record) -> dict[str, Any]:
    """For a copy written without its value: the original's size and where the original still is."""
    size = value_omitted(record.headers)
    if size is None:
        return {}
    entry = DeadLetter.from_record(record)
    original = {"topic": entry.topic, "partition": entry.partition, "offset": entry.offset}
    return {"value_omitted": {"size": size, "original": original}}


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
    omitted = doc.get("value_omitted")
    if omitted:
        where = omitted["original"]
        lines.append(
            f"           (omitted: the original value of {omitted['size']} bytes was too large for the "
            f"dead-letter topic; it is still at {where['topic']} partition {where['partition']} offset "
            f"{where['offset']} for as long as that topic's retention keeps it)"
        )
    return lines


# ----------------------------------------------------------------------------------- replay plan
def dry_run_json(items: Sequence[ReplayItem]) -> list[dict[str, Any]]:
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


def dry_run_lines(items: Sequence[ReplayItem]) -> list[str]:
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
