"""connector.ingest.fastjson must give jsjson's bytes (and errors) for every value.

jsjson is the reference: its own tests compare it with a live Node process. Here the fast path
is compared with jsjson, on the values where orjson and JavaScript are known to differ and on
generated values that mix them with ordinary ones.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.ingest import fastjson, jsjson

pytestmark = pytest.mark.unit


def nested(depth: int) -> Any:
    value: Any = 1.5
    for _ in range(depth):
        value = [value]
    return {"deep": value}


def same_as_reference(value: Any) -> None:
    try:
        expected: bytes | type[BaseException] = jsjson.dumps_bytes(value)
    except (TypeError, ValueError) as exc:
        expected = type(exc)
    try:
        got: bytes | type[BaseException] = fastjson.dumps_bytes(value)
    except (TypeError, ValueError) as exc:
        got = type(exc)
    assert got == expected


@pytest.mark.parametrize(
    "value",
    [
        500.0,
        -0.0,
        0.0,
        1e16,
        123456789012345680.0,
        1e20,
        1e21,
        1e22,
        1e-5,
        1.5e-6,
        1e-6,
        9.99e-7,
        1e-7,
        5e-324,
        0.1 + 0.2,
        2**53,
        2**53 + 1,
        -(2**53) - 1,
        2**64,
        10**400,
        math.nan,
        math.inf,
        -math.inf,
        '\x00\x01\x1f\x7f\u2028\u2029é😀"\\/',
        "\ud800",
        "a\udc00b",
        "\ud83d\ude00",
        {"0": 1, "b": 2, "1": 3},
        {"b": 1, "01": 2, "4294967294": 3, "4294967295": 4, "-1": 5},
        {"٣": 1},
        {1: "not a str key"},
        (1, 2.5),
        [1, [2, [3.5, {"x": None}]]],
        nested(70),
        True,
        None,
        b"bytes",
    ],
)
def test_the_known_differences_between_orjson_and_javascript(value: Any) -> None:
    same_as_reference(value)


def test_a_record_of_plain_values_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(value: object) -> bytes:
        raise AssertionError("fell back to jsjson")

    monkeypatch.setattr(jsjson, "dumps_bytes", refuse)
    record = {"user_id": "u1", "amount": 12.5, "count": 3, "live": True, "note": None, "tags": ["a"]}
    assert fastjson.dumps_bytes(record) == (
        b'{"user_id":"u1","amount":12.5,"count":3,"live":true,"note":null,"tags":["a"]}'
    )


def test_integral_floats_of_a_record_take_the_fast_path_as_javascript_prints_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = {"win": 20.0, "loss": -0.0, "big": 9007199254740992.0, "odds": 2.5}
    expected = jsjson.dumps_bytes(record)

    def refuse(value: object) -> bytes:
        raise AssertionError("fell back to jsjson")

    monkeypatch.setattr(jsjson, "dumps_bytes", refuse)
    assert (
        fastjson.dumps_bytes(record) == expected == b'{"win":20,"loss":0,"big":9007199254740992,"odds":2.5}'
    )


edge_floats = st.sampled_from(
    [0.0, -0.0, 500.0, 1e16, 2.5e17, 1e21, 1e-6, 3.3e-6, 9.9e-6, 1e-5, 1e-7, math.nan, math.inf]
)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), edge_floats)
ints = st.one_of(st.integers(), st.integers(min_value=2**53 - 3, max_value=2**53 + 3))
texts = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
keys = st.one_of(texts, st.sampled_from(["0", "1", "17", "01", "-1", "4294967294", "4294967295"]))
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=600, deadline=None)
@given(values)
def test_generated_values_give_the_reference_bytes(value: Any) -> None:
    same_as_reference(value)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, scalars, max_size=20))
def test_generated_flat_records_give_the_reference_bytes(record: dict[str, Any]) -> None:
    same_as_reference(record)
