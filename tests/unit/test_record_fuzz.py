"""Fuzz the whole per-record path (framing, schema lookup, decode, map, validate, serialize):
nothing a record's bytes can do escapes it as an exception. Every input comes out as a body or
as Poison with a stage, and the compiled transform says exactly what the reference says.

The default run is bounded; the `slow` variant runs the same property ten times longer.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.avro.registry import SchemaRegistryClient
from connector.errors import SchemaError, UnknownSchemaError
from connector.kafka.ports import Record
from connector.pipeline.intake import Route, frame
from connector.transform.factory import make_transform
from connector.transform.framing import ConfluentFraming, RawAvroFraming
from connector.transform.reference import build_reference
from connector.transform.spec import Poison, TransformSpec
from tests.unit.test_record_limits import RECURSIVE, deep_payload, spec_of
from tests.unit.transform_cases import cases, comparable

pytestmark = pytest.mark.unit

SCHEMA_ID = 7
NOT_HEALTHY = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


class OneSchemaRegistry:
    """Knows one schema id; any other id is unknown (a DECODE reason, not an outage)."""

    def __init__(self, schema: Any) -> None:
        self._schema = schema

    def get_schema(self, schema_id: int) -> Any:
        if schema_id != SCHEMA_ID:
            raise UnknownSchemaError(schema_id)
        return self._schema


def mutations(payload: bytes) -> st.SearchStrategy[bytes]:
    """Truncated, bit-flipped, spliced with negative varints, extended with huge strings."""
    n = max(len(payload), 1)
    return st.one_of(
        st.integers(0, n).map(lambda cut: payload[:cut]),
        st.integers(0, n * 8 - 1).map(
            lambda bit: (
                payload and bytes(b ^ (1 << (bit % 8)) if i == bit // 8 else b for i, b in enumerate(payload))
            )
        ),
        st.tuples(st.integers(0, n), st.sampled_from([b"\x01", b"\x03", b"\x7f", b"\xff\xff\xff\x0f"])).map(
            lambda at: payload[: at[0]] + at[1] + payload[at[0] :]
        ),
        st.tuples(st.integers(0, n), st.integers(1, 2**20)).map(
            # a length prefix claiming up to 1 MB (or a huge map block count), then a little data
            lambda at: payload[: at[0]] + varint(at[1] * 2) + b"x" * min(at[1], 64 * 1024) + payload[at[0] :]
        ),
        st.binary(max_size=64),
    )


def varint(n: int) -> bytes:
    """`n` as an Avro varint, without the zigzag step."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def check_one(spec: TransformSpec, payload: bytes) -> None:
    """Both framings, the pipeline's transform and the reference: no exception, same verdict."""
    try:
        build_reference(spec)
    except SchemaError:  # a schema no transform can be built for: a start-up error, not a record's
        return
    raw_route = Route(spec.mapping, RawAvroFraming(spec.writer_schema))
    registry = cast(SchemaRegistryClient, OneSchemaRegistry(spec.writer_schema))
    confluent_route = Route(spec.mapping, ConfluentFraming(registry, spec.reader_schema))
    for route, value in (
        (raw_route, payload),
        (confluent_route, b"\x00" + SCHEMA_ID.to_bytes(4, "big") + payload),
        (confluent_route, b"\x00\x00\x00\x00\x08" + payload),  # an id the registry does not know
        (confluent_route, payload),  # not framed at all
    ):
        framed = frame(route, Record("t", 0, 0, None, value))
        if isinstance(framed, Poison):
            assert framed.stage.value == "DECODE"
            continue
        key, framed_spec, avro = framed
        transform = route.transforms.get(key) or route.transforms.setdefault(key, make_transform(framed_spec))
        result = transform(avro)
        assert isinstance(result, bytes | Poison)
        assert comparable(result) == comparable(build_reference(framed_spec)(avro)), avro
        if isinstance(result, Poison):
            assert "0x7f" not in result.message
            assert "string index out of range" not in result.message


def fuzz(data: st.DataObject, with_reader: bool) -> None:
    spec, payloads = data.draw(cases(with_reader=with_reader))
    for payload in payloads:
        check_one(spec, payload)
        check_one(spec, data.draw(mutations(payload)))


@settings(max_examples=50, deadline=None, suppress_health_check=NOT_HEALTHY)
@given(st.data(), st.booleans())
def test_generated_records_and_their_mutations_never_escape(data: st.DataObject, with_reader: bool) -> None:
    fuzz(data, with_reader)


@settings(max_examples=20, deadline=None, suppress_health_check=NOT_HEALTHY)
@given(st.integers(1, 1500), st.data())
def test_deep_recursive_records_and_their_mutations_never_escape(levels: int, data: st.DataObject) -> None:
    payload = deep_payload(levels)
    check_one(spec_of(RECURSIVE), payload)
    check_one(spec_of(RECURSIVE), data.draw(mutations(payload)))


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=NOT_HEALTHY)
@given(st.data(), st.booleans())
def test_many_generated_records_and_mutations_never_escape(data: st.DataObject, with_reader: bool) -> None:
    fuzz(data, with_reader)
