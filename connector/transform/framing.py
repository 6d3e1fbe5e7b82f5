"""How a topic's values name their writer schema, and the `TransformSpec` for each one.

This runs in the consumer process: framing is a few byte comparisons, and the schema registry
client (its cache, its outage handling) stays in one place. A framing problem or an unknown
schema id is the record's problem (DecodeError, same reasons as `connector.avro.decoding`); an
unreachable registry is not (RegistryUnavailable propagates).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from connector.avro.decoding import (
    confluent_writer_label,
    raw_writer_label,
    reader_label,
    split_confluent_frame,
    unusable_writer_schema,
)
from connector.avro.registry import SchemaRegistryClient
from connector.avro.schemas import parse
from connector.errors import DecodeError, InvalidSchemaError
from connector.mapping.compiled import TopicMapping
from connector.transform.spec import TransformSpec

__all__ = ["ConfluentFraming", "RawAvroFraming", "ValueFraming"]


class ValueFraming(Protocol):
    def frame(self, value: bytes | None) -> tuple[int, bytes]:
        """(schema key, Avro payload) of a value; DecodeError when it is not framed right."""
        ...

    def spec(self, schema_key: int, mapping: TopicMapping) -> TransformSpec:
        """What a transform for this schema key is built from. DecodeError: the key's records are
        poison (unknown schema id, unusable schema); RegistryUnavailable: ask again later."""
        ...


class ConfluentFraming:
    """Confluent wire format: magic byte, 4-byte schema id (the key), Avro payload."""

    def __init__(
        self, registry: SchemaRegistryClient, reader_schema: Mapping[str, Any] | None = None
    ) -> None:
        self._registry = registry
        self._reader = reader_schema
        self._reader_label = reader_label(reader_schema)

    def frame(self, value: bytes | None) -> tuple[int, bytes]:
        return split_confluent_frame(value)

    def spec(self, schema_key: int, mapping: TopicMapping) -> TransformSpec:
        writer = self._registry.get_schema(schema_key)  # UnknownSchemaError, RegistryUnavailable
        label = confluent_writer_label(writer, schema_key)
        _check_usable(writer, label)
        return TransformSpec(mapping, writer, label, self._reader, self._reader_label)


class RawAvroFraming:
    """Plain Avro binary written with the mapping's schema file: the whole value is the payload."""

    def __init__(self, writer_schema: Mapping[str, Any]) -> None:
        parse(writer_schema)  # InvalidSchemaError: the user's file, reported at startup
        self._writer = writer_schema
        self._label = raw_writer_label(writer_schema)

    def frame(self, value: bytes | None) -> tuple[int, bytes]:
        if not value:
            raise DecodeError("empty value")
        return 0, value

    def spec(self, schema_key: int, mapping: TopicMapping) -> TransformSpec:
        return TransformSpec(mapping, self._writer, self._label)


def _check_usable(writer: Mapping[str, Any], label: str) -> None:
    try:
        parse(writer)
    except InvalidSchemaError as exc:  # the registry's copy never changes, so neither will this
        raise unusable_writer_schema(label, exc) from None
