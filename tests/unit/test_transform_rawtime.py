"""Timestamps and dates read as raw longs by the compiled transform: the reference's text for
every value, in any order (the per-second cache), and its dead-letter reason beyond the years
1 to 9999."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from io import BytesIO
from typing import Any

import fastavro
import pytest

from connector.config.settings import MappingSettings
from connector.errors import Stage
from connector.ingest.models import MODELS
from connector.mapping.compiled import TopicMapping
from connector.transform import rawtime
from connector.transform.compiled import compile_transform
from connector.transform.reference import build_reference
from connector.transform.spec import Poison, TransformSpec
from tests.unit.transform_cases import DESTINATION, EDGE_DAYS, EDGE_SECONDS, VALID, comparable

pytestmark = pytest.mark.unit

_TYPES: dict[str, Any] = {
    "ts": {"type": "long", "logicalType": "timestamp-millis"},
    "tsu": {"type": "long", "logicalType": "timestamp-micros"},
    "lts": {"type": "long", "logicalType": "local-timestamp-millis"},
    "ltsu": {"type": "long", "logicalType": "local-timestamp-micros"},
    "dt": {"type": "int", "logicalType": "date"},
}
_SCALE = {"ts": 1, "tsu": 1000, "lts": 1, "ltsu": 1000}


def _spec() -> TransformSpec:
    fields = []
    for name, node in _TYPES.items():
        fields += [{"name": name, "type": node}, {"name": f"{name}_n", "type": ["null", node]}]
    writer = {"type": "record", "name": "Times", "fields": fields}
    constants = {n: VALID[f.kind] for n, f in MODELS["gaming-activity"].fields.items() if f.required}
    for derived in ("account_id", "workspace_id", "event_category", "event_time"):
        del constants[derived]
    # event_time is a model date-time (checked, then proved); the others reach the body as text.
    mapped = {"event_time": "ts", **{f"x_{f['name']}": f["name"] for f in fields}}
    settings = MappingSettings.model_validate(
        {"topic": "t", "endpoint": "gaming-activity", "fields": mapped, "constants": constants}
    )
    return TransformSpec(TopicMapping.from_settings(settings, DESTINATION), writer, "Times (writer)")


_RAW_SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Times",
        "fields": [
            field
            for name, node in _TYPES.items()
            for field in (
                {"name": name, "type": node["type"]},
                {"name": f"{name}_n", "type": ["null", node["type"]]},
            )
        ],
    }
)


def _payload(instant: int, day: int, scale_micros: bool = True) -> bytes:
    """Every timestamp field at `instant` milliseconds (the micros ones at the same instant, or
    at `instant` microseconds when not `scale_micros`), every date at `day`."""
    datum: dict[str, Any] = {}
    for name, scale in _SCALE.items():
        value = instant * scale if scale_micros else instant
        datum[name] = datum[f"{name}_n"] = value
    datum["dt"] = datum["dt_n"] = day
    out = BytesIO()
    fastavro.schemaless_writer(out, _RAW_SCHEMA, datum)
    return out.getvalue()


def _instants() -> list[int]:
    """Millisecond instants in an order that makes a wrong cache key show: each edge second with
    several fractions in a row, and its mirror image (same digits, other sign) right after."""
    out = []
    for second in EDGE_SECONDS:
        for fraction in (0, 1, 500, 999):
            out += [second * 1000 + fraction, -(second * 1000 + fraction)]
        out += [second * 1000 - 1, second * 1000]
    return out


def test_every_edge_instant_and_day_gives_the_reference_text_in_any_cache_state() -> None:
    spec = _spec()
    compiled, reference = compile_transform(spec), build_reference(spec)
    assert hasattr(compiled, "__source__"), "the compiled path must be the one under test"
    assert "isoformat" not in compiled.__source__  # the raw read is what is being tested
    instants = _instants()
    days = [d for day in EDGE_DAYS for d in (day, -day, day + 1, day - 1) if -719162 <= d <= 2932896]
    payloads = [_payload(t, days[i % len(days)]) for i, t in enumerate(instants)]
    payloads += [_payload(t, 0, scale_micros=False) for t in instants]  # micros: sub-millisecond
    bodies = 0
    for _ in range(2):  # the second round reads every prefix from the cache
        for payload in payloads:
            got = compiled(payload)
            assert comparable(got) == comparable(reference(payload)), payload
            bodies += isinstance(got, bytes)
    assert bodies > len(payloads)  # most are in range: their bodies were compared


def _expected(millis: int) -> str:
    """How the reference formats the datetime fastavro reads."""
    t = datetime(1970, 1, 1) + timedelta(milliseconds=millis)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T"
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond // 1000:03d}Z"
    )


def test_text_is_the_datetime_formatting_for_every_fraction_of_mirrored_seconds() -> None:
    for second in (0, 1, -1, 1767225600, -1767225600):
        for milli in range(0, 1000, 7):
            for value in (second * 1000 + milli, -(second * 1000 + milli)):
                assert rawtime.millis_text(value) == _expected(value), value
                assert rawtime.micros_text(value * 1000 + 999) == _expected(value), value


@pytest.mark.parametrize(
    ("instant", "day"),
    [
        (253402300800000, 0),  # 10000-01-01T00:00:00.000Z
        (-62135596800001, 0),  # one millisecond before the year 1
        (2**63 - 1, 0),
        (-(2**63), 0),
        (0, 2932897),  # 10000-01-01
        (0, -719163),
        (0, 2**31 - 1),
        (0, -(2**31)),
    ],
)
def test_a_value_beyond_the_years_1_to_9999_is_the_reference_dead_letter(instant: int, day: int) -> None:
    spec = _spec()
    compiled, reference = compile_transform(spec), build_reference(spec)
    payload = _payload(instant, day, scale_micros=False)
    rawtime.millis_text(0)  # a warm cache must not make an out-of-range value look valid
    got = compiled(payload)
    assert isinstance(got, Poison) and got.stage is Stage.DECODE
    assert comparable(got) == comparable(reference(payload))


def test_the_caches_stay_bounded_and_right_past_their_limit() -> None:
    seconds = range(-rawtime.CACHE_LIMIT, rawtime.CACHE_LIMIT + 10)
    for second in seconds:
        rawtime.millis_text(second * 1000 + 1)
        rawtime.date_text(second)
        assert len(rawtime._seconds) <= rawtime.CACHE_LIMIT
        assert len(rawtime._days) <= rawtime.CACHE_LIMIT
    for second in seconds[::97]:
        assert rawtime.millis_text(second * 1000 + 1) == _expected(second * 1000 + 1)
        assert rawtime.date_text(second) == (date(1970, 1, 1) + timedelta(days=second)).isoformat()
