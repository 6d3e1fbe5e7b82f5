"""Intake: one Kafka record to the JSON body the ingest API takes (decode, map, validate,
serialize), or the reason it is poison. No side effects: the loop decides what follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.avro.decoding import RecordDecoder
from connector.avro.errors import DecodeError
from connector.ingest.jsjson import NonFiniteNumberError, dumps_bytes
from connector.ingest.validation import format_errors, validate_record
from connector.kafka.ports import Record
from connector.mapping.compiled import MappingError, TopicMapping
from connector.pipeline.deadletter import Stage


@dataclass(frozen=True)
class Route:
    """Everything the pipeline needs to process one topic."""

    mapping: TopicMapping
    decoder: RecordDecoder


@dataclass(frozen=True)
class Poison:
    """Why a record can never be sent: for its dead-letter headers."""

    stage: Stage
    error: BaseException
    error_class: str | None = None  # None: the error's own class name


def prepare(route: Route, record: Record) -> bytes | Poison:
    """The record's body for `route.mapping.endpoint`, or why it is poison. Raises
    RegistryUnavailable when its schema cannot be fetched: not poison, just not yet."""
    mapping = route.mapping
    try:
        decoded = route.decoder.decode(record.value)
    except DecodeError as exc:
        return Poison(Stage.DECODE, exc)
    try:
        mapped = mapping.map(decoded)
    except MappingError as exc:
        return Poison(Stage.MAP, exc)
    errors = validate_record(mapping.endpoint, mapped)
    if errors:
        return Poison(Stage.VALIDATE, ValueError(format_errors(errors)), "ValidationError")
    try:
        return dumps_bytes(mapped)
    except (NonFiniteNumberError, TypeError) as exc:
        return Poison(Stage.MAP, exc)
