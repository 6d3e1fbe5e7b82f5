"""Avro decoding: the Confluent wire format, one decoder per topic mapping, and the encoders.

fastavro does the byte-level work; here we only frame and plan, and translate its many exception
types into DecodeError (the record's problem). A registry that cannot answer surfaces as
RegistryUnavailable, unchanged: see connector.errors for why the two must never mix.
"""

from __future__ import annotations

import struct
import sys
import threading
from collections.abc import Mapping
from io import BytesIO
from typing import Any, Final, Protocol

import fastavro
from fastavro import _read_py
from fastavro.read import SchemaResolutionError

from connector.avro.blockcounts import BlockCountCheck
from connector.avro.reasons import read_error_reason, shorten
from connector.avro.registry import SchemaRegistryClient
from connector.avro.schemas import parse, schema_name
from connector.errors import DecodeError, InvalidSchemaError

__all__ = [
    "MAGIC_BYTE",
    "ConfluentAvroDecoder",
    "RawAvroDecoder",
    "ReadPlan",
    "RecordDecoder",
    "confluent_writer_label",
    "encode_confluent",
    "encode_raw",
    "raw_writer_label",
    "read_datum",
    "reader_label",
    "split_confluent_frame",
    "unusable_writer_schema",
]

MAGIC_BYTE: Final = 0
_HEADER_SIZE: Final = 5
_MAX_SCHEMA_ID: Final = 0xFFFFFFFF

# Everything fastavro has been seen to raise on garbage, truncated or hostile payloads. A bare
# `except Exception` would also turn our own bugs into dead letters, silently.
_READ_ERRORS: Final = (
    EOFError,
    StopIteration,
    ValueError,  # includes UnicodeDecodeError
    IndexError,
    KeyError,
    TypeError,
    ArithmeticError,  # OverflowError (timestamps, ints), decimal.InvalidOperation
    MemoryError,
    RecursionError,
    struct.error,
)

# fastavro's C reader recurses on the C stack and crashes the process (SIGSEGV, which nothing can
# catch) at about 4,700 levels of a recursive schema. Every level of a recursive type consumes at
# least one byte (a union branch or a block count), so a payload this short cannot get near that
# depth; longer payloads of recursive schemas go through fastavro's pure-Python reader, whose
# recursion ends in a RecursionError (a DECODE reason) instead.
C_READER_SAFE_BYTES: Final = 2000


# --------------------------------------------------------------------------------------------
# Framing and decoding


def split_confluent_frame(value: bytes | None) -> tuple[int, bytes]:
    """(schema id, Avro payload) of a Confluent wire-format value; DecodeError when it is not one."""
    if not value:
        raise DecodeError("empty value")
    if value[0] != MAGIC_BYTE:
        raise DecodeError(
            f"unknown magic byte 0x{value[0]:02x} (the Confluent wire format starts with 0x00): "
            "not written by a Schema Registry serializer"
        )
    if len(value) < _HEADER_SIZE:
        raise DecodeError(f"value of {len(value)} bytes is shorter than the 5-byte Confluent header")
    return int.from_bytes(value[1:_HEADER_SIZE], "big"), bytes(value[_HEADER_SIZE:])


class RecordDecoder(Protocol):
    def decode(self, value: bytes | None) -> dict[str, Any]: ...


class ReadPlan:
    """Everything needed to read records of one writer schema, prepared once.

    `writer` is the parsed schema as given (for code that reasons about its shape); the reads use
    `checked`, a copy whose unions and enums refuse a negative index (see `_IndexChecked`).
    `deep_bytes` is the payload size above which the pure-Python reader is used (recursive
    schemas only), or None. `block_counts` checks array block counts fastavro would follow without
    end (schemas with such an array only, see connector.avro.blockcounts), or is None.
    """

    __slots__ = (
        "block_counts",
        "checked",
        "deep_bytes",
        "reader",
        "reader_label",
        "slow_checked",
        "writer",
        "writer_label",
    )

    def __init__(self, writer: Any, writer_label: str, reader: Any, reader_label: str) -> None:
        self.writer = writer
        self.writer_label = writer_label
        # fastavro compares writer and reader on every call; None skips that and the resolution.
        self.reader = None if reader is None or reader == writer else reader
        self.reader_label = reader_label
        self.checked = _checked_copy(writer, _IndexChecked)
        recursive = is_recursive(writer)
        self.deep_bytes: int | None = C_READER_SAFE_BYTES if recursive else None
        self.slow_checked = _checked_copy(writer, _SlowIndexChecked) if recursive else writer
        self.block_counts = BlockCountCheck.needed(writer, skipping=self.reader is not None)


class _IndexChecked(list[Any]):
    """A union's branches (or an enum's symbols) as fastavro's C reader indexes them: it adds
    `len()` to a negative index read from the payload, and only then, so a huge length makes a
    negative index an IndexError instead of a branch counted from the end (which would turn
    garbage into a plausible record). Non-negative indexes take list's own C path: free.

    The sum wraps back into range only for the few indexes next to -2**63 (10-byte varints that
    are all ones); those still decode as fastavro would (README, "Limits of one record")."""

    __slots__ = ()

    def __len__(self) -> int:
        return sys.maxsize


class _SlowIndexChecked(list[Any]):
    """The same refusal for fastavro's pure-Python reader, which indexes with Python's rules."""

    __slots__ = ()

    def __getitem__(self, index: Any) -> Any:
        if type(index) is int and index < 0:
            raise IndexError("negative index")
        return list.__getitem__(self, index)


def _checked_copy(node: Any, kind: type[list[Any]]) -> Any:
    """A copy of a parsed writer schema with every union and enum symbol list made `kind`."""
    if isinstance(node, list):
        return kind(_checked_copy(branch, kind) for branch in node)
    if isinstance(node, dict):
        copied = {key: _checked_copy(item, kind) for key, item in node.items()}
        if node.get("type") == "enum" and isinstance(node.get("symbols"), list):
            copied["symbols"] = kind(node["symbols"])
        return copied
    return node


def is_recursive(parsed: Any) -> bool:
    """Whether a parsed schema has a named type that contains itself (a tree, a linked list)."""
    named: dict[str, Any] = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}

    def references(node: Any, found: set[str]) -> set[str]:
        if isinstance(node, str):
            if node in named:
                found.add(node)
        elif isinstance(node, list):
            for item in node:
                references(item, found)
        elif isinstance(node, dict):
            for key in ("type", "items", "values", "fields"):
                if key in node:
                    references(node[key], found)
            if node is not parsed and isinstance(node.get("name"), str) and node["name"] in named:
                found.add(node["name"])
        return found

    edges = {
        name: references({k: v for k, v in schema.items() if k != "name"}, set())
        for name, schema in named.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def cyclic(name: str) -> bool:
        state[name] = 1
        for target in edges.get(name, ()):
            mark = state.get(target)
            if mark == 1 or (mark is None and cyclic(target)):
                return True
        state[name] = 2
        return False

    return any(state.get(name) is None and cyclic(name) for name in edges)


def read_datum(plan: ReadPlan, value: bytes, offset: int) -> dict[str, Any]:
    stream = BytesIO(value)  # shares the bytes object's buffer: no copy
    stream.seek(offset)
    try:
        if plan.block_counts is not None:
            plan.block_counts.check(value, offset)
        if plan.deep_bytes is not None and len(value) - offset > plan.deep_bytes:
            datum = _read_py.schemaless_reader(stream, plan.slow_checked, plan.reader)
        else:
            datum = fastavro.schemaless_reader(stream, plan.checked, plan.reader)
    except SchemaResolutionError as exc:
        raise DecodeError(
            f"writer schema {plan.writer_label} cannot be read as reader schema {plan.reader_label}: "
            f"{shorten(exc, 160)}"
        ) from None
    except _READ_ERRORS as exc:
        raise DecodeError(f"invalid Avro for {plan.writer_label}: {read_error_reason(exc)}") from None
    left = len(value) - stream.tell()
    if left:
        raise DecodeError(f"{left} trailing bytes after the {plan.writer_label} record")
    if type(datum) is not dict:
        raise DecodeError(f"{plan.writer_label} does not describe a record")
    return datum


# How dead-letter reasons name schemas, e.g. `bet (schema id 7)`.
def confluent_writer_label(writer_schema: Mapping[str, Any], schema_id: int) -> str:
    return f"{schema_name(writer_schema)} (schema id {schema_id})"


def raw_writer_label(writer_schema: Mapping[str, Any]) -> str:
    return f"{schema_name(writer_schema)} (writer)"


def reader_label(reader_schema: Mapping[str, Any] | None) -> str:
    return "" if reader_schema is None else f"{schema_name(reader_schema)} (reader)"


def unusable_writer_schema(label: str, error: InvalidSchemaError) -> DecodeError:
    """The verdict on records whose registered writer schema fastavro cannot parse."""
    return DecodeError(f"writer schema {label} is not usable: {error}")


def _parse_reader(reader_schema: Mapping[str, Any] | None) -> tuple[Any, str]:
    if reader_schema is None:
        return None, ""
    return parse(reader_schema), reader_label(reader_schema)


class ConfluentAvroDecoder:
    """Decodes Confluent wire-format values; the writer schema comes from the registry by id.

    Several writer versions on one topic are fine: each id gets its own prepared plan, built once.
    With a reader schema, every record comes out in the reader's shape (Avro schema resolution).
    """

    def __init__(
        self, registry: SchemaRegistryClient, reader_schema: Mapping[str, Any] | None = None
    ) -> None:
        self._registry = registry
        self._reader, self._reader_label = _parse_reader(reader_schema)
        self._plans: dict[int, ReadPlan | DecodeError] = {}
        self._lock = threading.Lock()

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value or len(value) < _HEADER_SIZE or value[0] != MAGIC_BYTE:
            split_confluent_frame(value)  # raises the precise framing error
        assert value is not None
        schema_id = int.from_bytes(value[1:_HEADER_SIZE], "big")
        plan = self._plans.get(schema_id)
        if plan is None:
            plan = self._plan(schema_id)
        if isinstance(plan, DecodeError):
            raise DecodeError(str(plan))
        return read_datum(plan, value, _HEADER_SIZE)

    def _plan(self, schema_id: int) -> ReadPlan | DecodeError:
        with self._lock:
            plan = self._plans.get(schema_id)
            if plan is not None:
                return plan
            # UnknownSchemaError and RegistryUnavailable propagate uncached: the registry client
            # decides when to ask again.
            writer_schema = self._registry.get_schema(schema_id)
            label = confluent_writer_label(writer_schema, schema_id)
            built: ReadPlan | DecodeError
            try:
                built = ReadPlan(parse(writer_schema), label, self._reader, self._reader_label)
            except InvalidSchemaError as exc:
                # The registry's copy never changes, so neither will this verdict.
                built = unusable_writer_schema(label, exc)
            self._plans[schema_id] = built
            return built


class RawAvroDecoder:
    """Decodes plain Avro binary values written with a known writer schema (format `avro`)."""

    def __init__(
        self, writer_schema: Mapping[str, Any], reader_schema: Mapping[str, Any] | None = None
    ) -> None:
        reader, label = _parse_reader(reader_schema)
        self._plan = ReadPlan(parse(writer_schema), raw_writer_label(writer_schema), reader, label)

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value:
            raise DecodeError("empty value")
        return read_datum(self._plan, value, 0)


# --------------------------------------------------------------------------------------------
# Encoding (samples, demo, tests)


def encode_raw(parsed_schema: Any, record: Mapping[str, Any]) -> bytes:
    out = BytesIO()
    fastavro.schemaless_writer(out, parsed_schema, record)
    return out.getvalue()


def encode_confluent(schema_id: int, parsed_schema: Any, record: Mapping[str, Any]) -> bytes:
    if not 0 <= schema_id <= _MAX_SCHEMA_ID:
        raise ValueError(f"schema id {schema_id} does not fit the 4-byte header")
    out = BytesIO()
    out.write(bytes((MAGIC_BYTE,)) + schema_id.to_bytes(4, "big"))
    fastavro.schemaless_writer(out, parsed_schema, record)
    return out.getvalue()
