"""Every per-record failure is Poison with a stage and a readable reason, never an exception, a
stall or a crash: deep nesting, recursive schemas, negative union indexes, fastavro's raw errors.
The compiled and the reference transform agree on each case."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

from connector.avro.decoding import encode_raw
from connector.avro.schemas import parse
from connector.config.settings import MappingSettings
from connector.errors import Stage
from connector.mapping.compiled import MAX_NESTING, TopicMapping
from connector.transform.compiled import compile_transform
from connector.transform.reference import build_reference
from connector.transform.spec import Poison, Transform, TransformSpec
from tests.unit.transform_cases import DESTINATION

pytestmark = pytest.mark.unit

NODE: dict[str, Any] = {
    "type": "record",
    "name": "Node",
    "fields": [{"name": "v", "type": "int"}, {"name": "child", "type": ["null", "Node"]}],
}
RECURSIVE: dict[str, Any] = {
    "type": "record",
    "name": "profile",
    "fields": [
        {"name": "user_id", "type": "string"},
        {"name": "status", "type": ["null", {"type": "enum", "name": "S", "symbols": ["A", "B"]}]},
        {"name": "extra", "type": ["null", NODE]},
    ],
}


def spec_of(schema: dict[str, Any], reader: dict[str, Any] | None = None) -> TransformSpec:
    """Payloads of `schema` mapped to `customers` (user_id, extra), read as `reader` if given."""
    settings = MappingSettings.model_validate(
        {
            "topic": "t",
            "endpoint": "customers",
            "fields": {"user_id": "user_id", "extra": "extra"},
            "constants": {"creation_timestamp": "2024-01-01T00:00:00.000Z"},
        }
    )
    mapping = TopicMapping.from_settings(settings, DESTINATION)
    if reader is None:
        return TransformSpec(mapping, schema, "profile (writer)")
    return TransformSpec(mapping, schema, "profile (writer)", reader, "profile (reader)")


def both(spec: TransformSpec) -> list[Transform]:
    compiled = compile_transform(spec)
    assert hasattr(compiled, "__source__"), "the compiled path must be the one under test"
    return [compiled, build_reference(spec)]


def nested(depth: int) -> dict[str, Any] | None:
    node: dict[str, Any] | None = None
    for level in range(depth):
        node = {"v": level, "child": node}
    return node


def deep_payload(levels: int) -> bytes:
    """user_id "u", status null, then `levels` Node levels (v=0, child branch 1), then null."""
    return b"\x02u" + b"\x00" + b"\x02" + b"\x00\x02" * (levels - 1) + b"\x00\x00"


def test_a_record_nested_600_levels_is_map_poison_on_both_paths() -> None:
    payload = encode_raw(parse(RECURSIVE), {"user_id": "u", "status": None, "extra": nested(600)})
    for transform in both(spec_of(RECURSIVE)):
        result = transform(payload)
        reason = f"extra: objects and arrays are nested deeper than {MAX_NESTING} levels"
        assert result == Poison(Stage.MAP, "MappingError", reason)


def test_nesting_up_to_the_limit_is_sent_on_both_paths() -> None:
    payload = encode_raw(parse(RECURSIVE), {"user_id": "u", "status": None, "extra": nested(MAX_NESTING)})
    results = [transform(payload) for transform in both(spec_of(RECURSIVE))]
    assert isinstance(results[0], bytes) and results[0] == results[1]


def test_a_recursion_error_anywhere_after_decoding_is_map_poison(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever exhausts the stack or memory (here: the validator) costs one record, at MAP."""
    import connector.transform.reference as reference

    def exhausted(*_args: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(reference, "validate_record", exhausted)
    payload = encode_raw(parse(RECURSIVE), {"user_id": "u", "status": None, "extra": None})
    assert build_reference(spec_of(RECURSIVE))(payload) == Poison(
        Stage.MAP, "RecursionError", "the record is nested too deeply to map and serialize"
    )


def test_a_recursive_schemas_payload_that_would_crash_fastavros_c_reader_is_decode_poison() -> None:
    """6,000 levels in 12 KB segfaults fastavro's C reader (about 4,700 levels here): the process
    would die on every restart. In a subprocess, so that a regression fails this test only."""
    script = textwrap.dedent(
        """
        from connector.transform.build import build_transform
        from tests.unit.test_record_limits import RECURSIVE, deep_payload, spec_of
        result = build_transform(spec_of(RECURSIVE))(deep_payload(6000))
        print(result.stage, result.message)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == (
        "DECODE invalid Avro for profile (writer): the value is nested too deeply to decode (RecursionError)"
    )


def test_a_recursive_schemas_long_payload_of_modest_depth_is_still_sent() -> None:
    """The Python reader takes long payloads of recursive schemas: same record as the C reader."""
    payload = encode_raw(parse(RECURSIVE), {"user_id": "u" * 5000, "status": "B", "extra": nested(20)})
    results = [transform(payload) for transform in both(spec_of(RECURSIVE))]
    assert isinstance(results[0], bytes) and results[0] == results[1]
    assert b'"extra":{"v":19,' in results[0]


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        (b"\x02u" + b"\x01\x00" + b"\x00", "a negative union branch (the last branch, read from the end)"),
        (b"\x02u" + b"\x02\x01" + b"\x00", "a negative enum symbol"),
        (b"\x02u" + b"\x02\x03" + b"\x00", "-2, within the branch count"),
    ],
)
def test_negative_union_and_enum_indexes_are_decode_poison(payload: bytes, what: str) -> None:
    for transform in both(spec_of(RECURSIVE)):
        result = transform(payload)
        assert isinstance(result, Poison), what
        assert result.stage is Stage.DECODE
        assert "index" in result.message and "(IndexError)" in result.message


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x02", "the payload ends in the middle of a value"),
        (b"\x02u\x02", "the payload ends in the middle of a value"),
        (b"\x02u\x02\x0a\x00", "a union branch or enum symbol index is out of range"),
        (b"\x04\xff\xfe\x00\x00", "a string is not valid UTF-8"),
    ],
)
def test_fastavro_errors_read_as_sentences_without_addresses(payload: bytes, reason: str) -> None:
    for transform in both(spec_of(RECURSIVE)):
        result = transform(payload)
        assert isinstance(result, Poison) and result.stage is Stage.DECODE
        assert result.message.startswith(f"invalid Avro for profile (writer): {reason} (")
        assert "0x" not in result.message and "string index out of range" not in result.message
