"""An array's block count that fastavro would follow without end is DECODE poison at once.

Two cases spin fastavro: items that take no bytes (it reads 2**62 nulls one by one), and
fixed-width items of a field the reader schema drops (it skips them by moving its position,
which it never checks against the payload's end). Without `connector.avro.blockcounts` such a
payload either spins for ever or grows a list until the machine runs out of memory, so those
cases run in a subprocess with a memory limit and a timeout: a regression fails the test, not the
test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from connector.avro.blockcounts import MAX_FREE_ITEMS, BlockCountCheck
from connector.avro.decoding import RawAvroDecoder, encode_raw
from connector.avro.schemas import load_schema, parse
from connector.errors import DecodeError
from connector.transform.spec import TransformSpec
from tests.unit.test_record_fuzz import varint
from tests.unit.test_record_limits import both, spec_of

pytestmark = pytest.mark.unit

ITEMS: dict[str, Any] = {
    "null": "null",
    "empty record": {"type": "record", "name": "Empty", "fields": []},
    "fixed of size 0": {"type": "fixed", "name": "Nothing", "size": 0},
    "boolean": "boolean",
    "double": "double",
    "fixed of size 4": {"type": "fixed", "name": "Four", "size": 4},
    "record of a boolean and a null": {
        "type": "record",
        "name": "Pair",
        "fields": [{"name": "on", "type": "boolean"}, {"name": "nothing", "type": "null"}],
    },
}
ZERO_BYTES = {"null", "empty record", "fixed of size 0"}


def profile(items: Any, with_flags: bool = True) -> dict[str, Any]:
    flags = [{"name": "flags", "type": {"type": "array", "items": items}}] if with_flags else []
    return {
        "type": "record",
        "name": "profile",
        "fields": [{"name": "user_id", "type": "string"}, *flags, {"name": "extra", "type": "string"}],
    }


def spec(items: Any, dropped: bool) -> TransformSpec:
    """`flags` read whole (no reader schema), or dropped by the reader schema (skipped)."""
    return spec_of(profile(items), profile(items, with_flags=False) if dropped else None)


def long_bytes(n: int) -> bytes:
    """`n` as Avro writes a long (zigzag, then varint)."""
    return varint((n << 1) ^ (n >> 63))


def claiming(count: int) -> bytes:
    """user_id "u", a `flags` block claiming `count` items with nothing after it, then 0 and "x"."""
    block = long_bytes(count) + (long_bytes(4) if count < 0 else b"")
    return b"\x02u" + block + b"\x00" + b"\x02x"


COUNTS = {"2**62": 2**62, "-2**62 with a size": -(2**62), "2**63-1": 2**63 - 1}
# Run in the child: every count, read and skipped, on both paths; one JSON line per result.
CHILD = textwrap.dedent(
    """
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    from tests.unit.test_block_counts import COUNTS, ITEMS, both, claiming, spec
    name = sys.argv[1]
    for dropped in (False, True):
        for label, count in COUNTS.items():
            for path, transform in zip(("compiled", "reference"), both(spec(ITEMS[name], dropped))):
                result = transform(claiming(count))
                print(json.dumps([dropped, label, path, repr(result)]), flush=True)
    """
)


@pytest.mark.parametrize("name", list(ITEMS))
def test_a_block_count_far_beyond_the_payload_is_decode_poison_at_once(name: str) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD, name], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == 2 * len(COUNTS) * 2
    for dropped, label, path, result in results:
        case = f"{name}, {'skipped' if dropped else 'read'}, {label}, {path}"
        assert result.startswith("Poison(stage=<Stage.DECODE"), case
        if name in ZERO_BYTES:
            assert "arrays of items that take no bytes (null or empty) claim" in result, case
            assert f"at most {MAX_FREE_ITEMS:,} are read (ValueError)" in result, case
        else:
            assert "the payload ends in the middle of a value (EOFError)" in result, case


@pytest.mark.parametrize("dropped", [False, True], ids=["read", "skipped"])
@pytest.mark.parametrize("name", list(ITEMS))
def test_real_arrays_of_such_items_are_still_sent(name: str, dropped: bool) -> None:
    samples = {
        "null": None,
        "empty record": {},
        "fixed of size 0": b"",
        "boolean": True,
        "double": 0.5,
        "fixed of size 4": b"abcd",
        "record of a boolean and a null": {"on": False, "nothing": None},
    }
    payload = encode_raw(
        parse(profile(ITEMS[name])), {"user_id": "u", "flags": [samples[name]] * 1000, "extra": "x"}
    )
    results = [transform(payload) for transform in both(spec(ITEMS[name], dropped))]
    assert results[0] == results[1]
    assert isinstance(results[0], bytes) and b'"user_id":"u"' in results[0]


def test_free_items_are_counted_over_the_whole_record() -> None:
    """Two arrays of nulls: MAX_FREE_ITEMS between them are read, one more is refused."""
    writer = {
        "type": "record",
        "name": "twice",
        "fields": [
            {"name": "a", "type": {"type": "array", "items": "null"}},
            {"name": "b", "type": {"type": "array", "items": "null"}},
        ],
    }
    decoder = RawAvroDecoder(writer)
    half = MAX_FREE_ITEMS // 2
    at_the_bound = long_bytes(half) + b"\x00" + long_bytes(MAX_FREE_ITEMS - half) + b"\x00"
    assert len(decoder.decode(at_the_bound)["b"]) == MAX_FREE_ITEMS - half
    with pytest.raises(DecodeError, match=f"claim {MAX_FREE_ITEMS + 1:,} of them"):
        decoder.decode(long_bytes(half) + b"\x00" + long_bytes(MAX_FREE_ITEMS - half + 1) + b"\x00")


def test_nested_arrays_of_nulls_are_bounded_too() -> None:
    """The outer items take bytes (each inner array's count); each inner one claims the bound."""
    writer = {
        "type": "record",
        "name": "nested",
        "fields": [{"name": "a", "type": {"type": "array", "items": {"type": "array", "items": "null"}}}],
    }
    inner = long_bytes(MAX_FREE_ITEMS) + b"\x00"
    with pytest.raises(DecodeError, match="claim 200,000 of them"):
        RawAvroDecoder(writer).decode(long_bytes(3) + inner * 3 + b"\x00")


def test_schemas_without_such_arrays_pay_nothing() -> None:
    """The bundled schemas have no such array; fixed-width items matter only with a reader."""
    for name in ("bet", "deposit", "withdrawal", "account_event", "wallet_balance", "customer_profile"):
        schema = parse(load_schema(name))
        assert BlockCountCheck.needed(schema, skipping=True) is None, name
    doubles = parse(profile("double"))
    assert BlockCountCheck.needed(doubles, skipping=False) is None
    assert BlockCountCheck.needed(doubles, skipping=True) is not None
    assert BlockCountCheck.needed(parse(profile("null")), skipping=False) is not None
    assert BlockCountCheck.needed(parse(profile("string")), skipping=True) is None
