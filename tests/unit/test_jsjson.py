"""connector.ingest.jsjson must emit exactly what JavaScript's JSON.stringify emits.

Two layers: literal vectors (each also cross-checked against Node when it is installed, so the
expectations themselves are JavaScript's), and a property test that feeds generated records to a
long-lived Node process and compares outputs byte for byte.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.errors import NonFiniteNumberError
from connector.ingest import jsjson
from connector.ingest.jsjson import dumps, dumps_bytes, format_number

pytestmark = pytest.mark.unit

NODE_STRINGIFY = Path(__file__).resolve().parents[1] / "support" / "node_stringify.js"


# --- Node oracle -----------------------------------------------------------------------------


class NodeStringify:
    """One `node node_stringify.js` process; one JSON line in, one JSON.stringify line out."""

    def __init__(self, node: str) -> None:
        self._proc = subprocess.Popen(
            [node, str(NODE_STRINGIFY)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def __call__(self, value: object) -> str:
        # ensure_ascii keeps lone surrogates and every non-ASCII character as \u escapes, and
        # float repr is the shortest round-trip text, so JSON.parse rebuilds the same value.
        line = json.dumps(value, ensure_ascii=True, allow_nan=False) + "\n"
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(line.encode("ascii"))
        self._proc.stdin.flush()
        reply = self._proc.stdout.readline()
        if not reply:
            raise RuntimeError("node_stringify.js exited")
        # Split on b"\n" only: JSON.stringify leaves U+2028/U+2029 raw, which str.splitlines breaks on.
        text = reply.decode("utf-8")[:-1]
        if text.startswith("!"):
            raise RuntimeError(f"node could not parse the input: {text[1:]}")
        return text

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@pytest.fixture(scope="session")
def node_stringify() -> Iterator[NodeStringify]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the JSON.stringify cross-check needs it")
    oracle = NodeStringify(node)
    try:
        yield oracle
    finally:
        oracle.close()


# --- vectors ---------------------------------------------------------------------------------

VECTORS: list[tuple[str, object, str]] = [
    ("non-ascii raw", "héllo ☃ 😀 日本", '"héllo ☃ 😀 日本"'),
    (
        "control chars",
        "\x00\x01\x07\x08\x09\x0a\x0b\x0c\x0d\x1a\x1f",
        '"\\u0000\\u0001\\u0007\\b\\t\\n\\u000b\\f\\r\\u001a\\u001f"',
    ),
    ("line/paragraph separators and DEL unescaped", "a\u2028b\u2029c\x7fd", '"a\u2028b\u2029c\x7fd"'),
    ("quotes and backslashes", 'say "hi" \\ \\" /', '"say \\"hi\\" \\\\ \\\\\\" /"'),
    ("empty string", "", '""'),
    ("integral float", 500.0, "500"),
    ("negative integral float", -42.0, "-42"),
    ("fraction", 0.5, "0.5"),
    ("1e21", 1e21, "1e+21"),
    ("-1e21", -1e21, "-1e+21"),
    ("1e20", 1e20, "100000000000000000000"),
    ("1e16", 1e16, "10000000000000000"),
    ("1e-6", 1e-6, "0.000001"),
    ("1e-7", 1e-7, "1e-7"),
    ("1.5e-7", 1.5e-7, "1.5e-7"),
    ("-1.5e-7", -1.5e-7, "-1.5e-7"),
    ("123e-20", 123e-20, "1.23e-18"),
    ("0.0001", 0.0001, "0.0001"),
    ("0.00001", 0.00001, "0.00001"),
    ("minus zero", -0.0, "0"),
    ("zero", 0.0, "0"),
    ("smallest subnormal", 5e-324, "5e-324"),
    ("largest double", 1.7976931348623157e308, "1.7976931348623157e+308"),
    ("0.1+0.2", 0.1 + 0.2, "0.30000000000000004"),
    ("big float plain", 1.2345678901234567e20, "123456789012345670000"),
    ("big float exponent", 1.2345678901234568e21, "1.2345678901234568e+21"),
    ("2**53 as float", float(2**53), "9007199254740992"),
    ("2**64 as float", float(2**64), "18446744073709552000"),
    ("int zero", 0, "0"),
    ("negative int", -17, "-17"),
    ("2**53", 2**53, "9007199254740992"),
    ("-(2**53)", -(2**53), "-9007199254740992"),
    ("2**53+1 rounds to even", 2**53 + 1, "9007199254740992"),
    ("2**53+3 rounds to even", 2**53 + 3, "9007199254740996"),
    ("2**64", 2**64, "18446744073709552000"),
    ("-(2**64)", -(2**64), "-18446744073709552000"),
    ("10**21 int", 10**21, "1e+21"),
    ("10**30 int", 10**30, "1e+30"),
    ("true", True, "true"),
    ("false", False, "false"),
    ("null", None, "null"),
    ("bools are not ints", [True, False, 1, 0], "[true,false,1,0]"),
    ("empty containers", [[], {}, [[]], {"a": {}}], '[[],{},[[]],{"a":{}}]'),
    ("tuple is an array", (1, "a", (2.5,)), '[1,"a",[2.5]]'),
    (
        "nested",
        {"a": [1, {"b": [], "c": None}, {}], "d": {"e": {"f": [0.25, "x"]}}},
        '{"a":[1,{"b":[],"c":null},{}],"d":{"e":{"f":[0.25,"x"]}}}',
    ),
    (
        "integer-like keys first, ascending",
        {
            "b": 1,
            "10": 2,
            "a": 3,
            "2": 4,
            "01": 5,
            "-1": 6,
            "4294967294": 7,
            "4294967295": 8,
            "1.0": 9,
            "": 10,
            "\u0661": 11,
            "0": 12,
            " 1": 13,
            "99999999999": 14,
        },
        '{"0":12,"2":4,"10":2,"4294967294":7,"b":1,"a":3,"01":5,"-1":6,"4294967295":8,"1.0":9,'
        '"":10,"\u0661":11," 1":13,"99999999999":14}',
    ),
    (
        "index key after cached keys in a later record",
        [{"a": 1, "b": 2}, {"a": 1, "b": 2, "7": 3}, {"a": 1}],
        '[{"a":1,"b":2},{"7":3,"a":1,"b":2},{"a":1}]',
    ),
    ("escaped keys", {'q"k': 1, "n\nk": 2, "é": 3}, '{"q\\"k":1,"n\\nk":2,"é":3}'),
    ("lone high surrogate", "a\ud800b", '"a\\ud800b"'),
    ("lone low surrogate", "\udfffz", '"\\udfffz"'),
    ("pair as two code points is one character", "\ud83d\ude00", '"😀"'),
    ("reversed pair stays two escapes", "\ude00\ud83d", '"\\ude00\\ud83d"'),
    ("high, high+low", "\ud800\ud83d\ude00", '"\\ud800😀"'),
    ("pair, then lone low", "\ud83d\ude00\ude00", '"😀\\ude00"'),
    ("surrogates next to escapes", '\ud800"\n\udc00', '"\\ud800\\"\\n\\udc00"'),
    ("surrogate in a key", {"k\udc01": "\ud83d\ude00"}, '{"k\\udc01":"😀"}'),
    (
        "record",
        [{"user_id": "u1", "amount": 500.0, "ok": True, "meta": {"tags": ["x", "y"], "n": None}}],
        '[{"user_id":"u1","amount":500,"ok":true,"meta":{"tags":["x","y"],"n":null}}]',
    ),
]


@pytest.mark.parametrize(("value", "expected"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_vectors(value: object, expected: str) -> None:
    assert dumps(value) == expected


@pytest.mark.parametrize("value", [v[1] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_vectors_match_node(value: object, node_stringify: NodeStringify) -> None:
    assert dumps(value) == node_stringify(value)


def test_ingest_api_doc_body() -> None:
    record = {
        "account_id": "68911b7ad58ad825ec00c5ef",
        "workspace_id": "68911b7ad825ec00c5ef",
        "user_id": "u1",
        "event_category": "Deposit",
        "event_name": "Successful Deposit",
        "event_id": "evt_1",
        "event_time": "2024-01-15T10:30:00Z",
        "amount": 500.0,
        "payment_method": "bank",
        "transaction_id": "txn_1",
    }
    assert dumps([record]) == (
        '[{"account_id":"68911b7ad58ad825ec00c5ef","workspace_id":"68911b7ad825ec00c5ef","user_id":"u1",'
        '"event_category":"Deposit","event_name":"Successful Deposit","event_id":"evt_1",'
        '"event_time":"2024-01-15T10:30:00Z","amount":500,"payment_method":"bank","transaction_id":"txn_1"}]'
    )


def test_dumps_bytes_is_utf8_of_dumps() -> None:
    assert dumps_bytes({"n": "é😀\u2028"}) == '{"n":"é😀\u2028"}'.encode()
    # Lone surrogates are escaped, so the body is always valid UTF-8.
    assert dumps_bytes(["\ud800"]) == b'["\\ud800"]'


def test_repeated_records_give_identical_output() -> None:
    record = {"a": 1, "b": "x", "c": [1.5]}
    first = dumps([record] * 3)
    assert first == '[{"a":1,"b":"x","c":[1.5]},{"a":1,"b":"x","c":[1.5]},{"a":1,"b":"x","c":[1.5]}]'
    assert dumps([record] * 3) == first


def test_key_cache_stays_bounded_and_correct() -> None:
    many = {f"k{i}": i for i in range(jsjson._KEY_CACHE_MAX * 2 + 7)}
    expected = "{" + ",".join(f'"k{i}":{i}' for i in range(len(many))) + "}"
    assert dumps(many) == expected
    assert len(jsjson._KEY_CACHE) <= jsjson._KEY_CACHE_MAX
    assert dumps(many) == expected


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def test_subclasses_encode_as_their_base_type() -> None:
    value = collections.OrderedDict([("c", Colour.RED), (Colour.RED, Level.HIGH)])
    assert dumps(value) == '{"c":"red","red":3}'


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ([{}, {}, {}, {"amount": float("nan")}], "records[3].amount"),
        ([{"x": [1, 2, float("inf")]}], "records[0].x[2]"),
        ([{"a b": -float("inf")}], 'records[0]["a b"]'),
        (float("nan"), "value"),
        ([{"big": 10**400}], "records[0].big"),
        ({"user_id": "u1", "amount": float("nan")}, "record.amount"),
        ({"n": {"9": [float("-inf")]}}, 'record.n["9"][0]'),
    ],
)
def test_non_finite_numbers_raise_with_path(value: object, path: str) -> None:
    with pytest.raises(NonFiniteNumberError) as info:
        dumps(value)
    assert str(info.value).endswith(f"at {path}")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("value", "type_name", "path"),
    [
        ([{"when": datetime.date(2024, 1, 1)}], "date", "records[0].when"),
        ([{"amount": decimal.Decimal("1.5")}], "Decimal", "records[0].amount"),
        ([b"raw"], "bytes", "records[0]"),
        ({"s": {1, 2}}, "set", "record.s"),
        ([{1: "a"}], "int", "records[0]"),
        ([{"ok": 1, "n": {None: 1}}], "NoneType", "records[0].n"),
        ([{("t",): 1}], "tuple", "records[0]"),
    ],
)
def test_unsupported_types_raise_type_error_naming_type_and_path(
    value: object, type_name: str, path: str
) -> None:
    with pytest.raises(TypeError) as info:
        dumps(value)
    message = str(info.value)
    assert type_name in message
    assert message.endswith(f"{path})") or message.endswith(f"at {path}")


def test_error_messages_do_not_echo_values() -> None:
    with pytest.raises(TypeError) as info:
        dumps([{"secret": b"hunter2"}])
    assert "hunter2" not in str(info.value)


def test_integer_key_error_even_after_index_key() -> None:
    # The reordering path must reject non-str keys too.
    with pytest.raises(TypeError, match="int"):
        dumps({"1": "a", 2: "b"})


def test_deep_nesting_is_a_value_error() -> None:
    value: list[object] = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(ValueError, match="nested too deeply"):
        dumps(value)


# --- format_number ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (500.0, "500"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (2**64, "18446744073709552000"),
        (2**53 + 1, "9007199254740992"),
        (123, "123"),
        (0.1, "0.1"),
    ],
)
def test_format_number(number: int | float, expected: str) -> None:
    assert format_number(number) == expected


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf"), 10**400])
def test_format_number_rejects_non_finite(number: int | float) -> None:
    with pytest.raises(NonFiniteNumberError):
        format_number(number)


@pytest.mark.parametrize("value", [True, "1", None])
def test_format_number_rejects_non_numbers(value: object) -> None:
    with pytest.raises(TypeError):
        format_number(value)  # type: ignore[arg-type]


# --- property test against Node --------------------------------------------------------------

# Full code-point range including lone surrogates (the wire encoding carries them as \u escapes).
_chars = st.characters(exclude_categories=())
_special_chars = st.sampled_from(["\u2028", "\u2029", "\x7f", "\x00", "\x1f", '"', "\\", "\ud800", "\udc00"])
_text = st.text(alphabet=st.one_of(_chars, _special_chars), max_size=12)

_keys = st.one_of(
    st.text(alphabet=st.one_of(_chars, _special_chars), max_size=6),
    st.integers(min_value=0, max_value=2**32 + 2).map(str),
    st.integers(min_value=0, max_value=30).map(str),
    st.sampled_from(
        ["0", "00", "01", "-0", "-1", "1.0", "1e3", " 1", "4294967294", "4294967295", "__proto__"]
    ),
)

# Decimal mantissa/exponent pairs land on the notation thresholds (1e-7, 1e21) far more often
# than uniformly drawn doubles do.
_decimal_floats = st.builds(
    lambda mantissa, exponent, negative: (-1.0 if negative else 1.0) * float(f"{mantissa}e{exponent}"),
    st.integers(min_value=1, max_value=10**17),
    st.integers(min_value=-40, max_value=40),
    st.booleans(),
)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    _decimal_floats,
    _text,
)

_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=4),
    max_leaves=8,
)

_records = st.lists(st.dictionaries(_keys, _values, max_size=6), max_size=3)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(records=_records)
def test_matches_node_json_stringify(records: list[dict[str, object]], node_stringify: NodeStringify) -> None:
    assert dumps(records) == node_stringify(records)
