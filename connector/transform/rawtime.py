"""Timestamps and dates read as their raw long or int, and formatted without a datetime.

fastavro builds a datetime for each timestamp (epoch + timedelta) and the mapping then formats
it field by field, `YYYY-MM-DDTHH:MM:SS.mmmZ` (fraction truncated to milliseconds, naive local
timestamps formatted alike) or `YYYY-MM-DD` for a date. For a top-level field the transform reads
directly, fastavro reads the long instead (connector.transform.rawread) and the text is built from
the whole second since the epoch, whose prefix `YYYY-MM-DDTHH:MM:SS.` is cached, and the
millisecond. Seconds and fractions are split by floor division, as the datetime fastavro builds
counts them: -1 ms is 23:59:59.999 on the day before the epoch.

A value beyond the years 1 to 9999 raises OverflowError here (and something in fastavro); the
transform then hands the payload to the reference, which gives the record's real reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Final

from connector.mapping.compiled import PlanStep
from connector.transform.rawread import direct_fields, logical_branch
from connector.transform.shapes import Kind, TopShapes

__all__ = ["CACHE_LIMIT", "date_text", "micros_text", "millis_text", "raw_times"]

# Distinct seconds (and days) kept: far more than one batch of live records spans, and small.
CACHE_LIMIT: Final = 4096

_EPOCH: Final = datetime(1970, 1, 1)
_EPOCH_DATE: Final = date(1970, 1, 1)
_MILLIS: Final = tuple(f"{milli:03d}Z" for milli in range(1000))
_seconds: dict[int, str] = {}  # second since the epoch → "YYYY-MM-DDTHH:MM:SS."
_days: dict[int, str] = {}  # day since the epoch → "YYYY-MM-DD"


def _keep(cache: dict[int, str], key: int, text: str) -> str:
    if len(cache) >= CACHE_LIMIT:
        cache.clear()  # a miss costs a few µs; far fewer misses than hits
    cache[key] = text
    return text


def _second_prefix(second: int) -> str:
    t = _EPOCH + timedelta(seconds=second)  # OverflowError beyond the years 1 to 9999
    prefix = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}."
    return _keep(_seconds, second, prefix)


def millis_text(value: int) -> str:
    """The API's text of the timestamp `value` milliseconds after the epoch."""
    second, milli = divmod(value, 1000)
    prefix = _seconds.get(second)
    if prefix is None:
        prefix = _second_prefix(second)
    return prefix + _MILLIS[milli]


def micros_text(value: int) -> str:
    """The API's text of the timestamp `value` microseconds after the epoch (the millisecond it
    falls in: floor division, as the truncated fraction of a datetime before 1970 counts)."""
    return millis_text(value // 1000)


def date_text(value: int) -> str:
    """The API's text of the date `value` days after the epoch."""
    text = _days.get(value)
    if text is None:
        d = _EPOCH_DATE + timedelta(days=value)  # OverflowError beyond the years 1 to 9999
        text = _keep(_days, value, f"{d.year:04d}-{d.month:02d}-{d.day:02d}")
    return text


# logicalType → (its converter, the kind of what it returns, the kind fastavro's value has).
_CONVERTERS: Final[dict[str, tuple[Callable[[int], str], Kind, Kind]]] = {
    "timestamp-millis": (millis_text, Kind.DATETIME_TEXT, Kind.TIMESTAMP),
    "timestamp-micros": (micros_text, Kind.DATETIME_TEXT, Kind.TIMESTAMP),
    "local-timestamp-millis": (millis_text, Kind.DATETIME_TEXT, Kind.LOCAL_TIMESTAMP),
    "local-timestamp-micros": (micros_text, Kind.DATETIME_TEXT, Kind.LOCAL_TIMESTAMP),
    "date": (date_text, Kind.DATE_TEXT, Kind.DATE),
}


def raw_times(
    writer: Mapping[str, Any], steps: tuple[PlanStep, ...], shapes: TopShapes
) -> dict[str, tuple[Callable[[int], str], Kind]]:
    """Top-level timestamp and date fields that only direct reads use → (converter, new kind)."""
    direct = direct_fields(steps)
    out: dict[str, tuple[Callable[[int], str], Kind]] = {}
    for field in writer.get("fields", ()):
        name = field.get("name")
        shape = shapes.fields.get(name)
        node = logical_branch(field.get("type"), _CONVERTERS)
        if name not in direct or shape is None or node is None:
            continue
        converter, kind, decoded = _CONVERTERS[node["logicalType"]]
        # The shape confirms fastavro would convert it (the right base type, nothing unusual).
        if shape.kind is decoded:
            out[name] = (converter, kind)
    return out
