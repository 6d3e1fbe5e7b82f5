"""How a topic's values name their writer schema, and the `TransformSpec` for each one.

This runs in the consumer process: framing is a few byte comparisons, and the schema registry
client (its cache, its outage handling) stays in one place. A framing problem or an unknown
schema id is the record's problem (DecodeError, same reasons as `connector.avro.decoding`); an
unreachable registry is not (RegistryUnavailable propagates).

A Confluent writer schema is also checked against the mapping when first seen, with the static
check `check` runs. When the mapping cannot apply, the schema id's subjects decide whose problem
it is: registered under the topic's own subject, it is the configuration's (UnusableMappingError:
the topic pauses); otherwise the record was written for another topic, and is poison at DECODE.
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
from connector.config.settings import MappingSettings
from connector.errors import DecodeError, InvalidSchemaError, UnusableMappingError
from connector.mapping.check import check_mapping
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
        self,
        registry: SchemaRegistryClient,
        reader_schema: Mapping[str, Any] | None = None,
        checked: MappingSettings | None = None,
    ) -> None:
        """`checked`: the mapping to check each writer schema against (with a reader schema the
        mapping reads that one, which is checked once at start instead)."""
        self._registry = registry
        self._reader = reader_schema
        self._reader_label = reader_label(reader_schema)
        self._checked = checked if reader_schema is None else None

    def frame(self, value: bytes | None) -> tuple[int, bytes]:
        return split_confluent_frame(value)

    def spec(self, schema_key: int, mapping: TopicMapping) -> TransformSpec:
        """Also raises UnusableMappingError: the mapping cannot apply to the topic's own schema."""
        writer = self._registry.get_schema(schema_key)  # UnknownSchemaError, RegistryUnavailable
        label = confluent_writer_label(writer, schema_key)
        _check_usable(writer, label)
        if self._checked is not None:
            self._check_fit(self._checked, schema_key, writer, label)
        return TransformSpec(mapping, writer, label, self._reader, self._reader_label)

    def _check_fit(self, m: MappingSettings, schema_id: int, writer: Mapping[str, Any], label: str) -> None:
        result = check_mapping(m, writer, label)
        if result.ok:
            return
        subject = m.value_subject
        if self._registry.registered_under(schema_id, subject):  # RegistryUnavailable: ask again later
            raise UnusableMappingError(
                m.topic, schema_id, result.errors[0].field, result.headline(with_field=False)
            )
        raise DecodeError(
            f"{label} is not registered under subject {subject!r} and topic {m.topic}'s mapping "
            f"cannot apply to it ({result.headline()}): a record written for another topic?"
        )


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
