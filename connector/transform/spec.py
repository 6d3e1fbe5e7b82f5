"""What a transform is built from, and what it returns for a record that can never be sent."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from connector.errors import Stage
from connector.mapping.compiled import TopicMapping

__all__ = ["Poison", "Transform", "TransformSpec"]


@dataclass(frozen=True, slots=True)
class TransformSpec:
    """Everything needed to turn payloads of one writer schema into bodies for one mapping.

    `writer_schema` and `reader_schema` are the schemas' JSON (dicts), as the registry or the
    schema file gives them; labels name them in dead-letter reasons (`bet (schema id 7)`).
    """

    mapping: TopicMapping
    writer_schema: Mapping[str, Any]
    writer_label: str
    reader_schema: Mapping[str, Any] | None = None
    reader_label: str = ""


@dataclass(frozen=True, slots=True)
class Poison:
    """Why a record can never be sent: its dead-letter stage, error class name and reason."""

    stage: Stage
    error_class: str
    message: str


# One Avro payload (the bytes after the Confluent header, or the whole raw value) → the record's
# JSON body, or why it is poison. A transform never raises for a bad record.
Transform: TypeAlias = Callable[[bytes], bytes | Poison]
