"""Intake: one Kafka record to the JSON body the ingest API takes (decode, map, validate,
serialize), or the reason it is poison. No side effects: the loop decides what follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.avro.decoding import RecordDecoder
from connector.errors import RecordError, Stage
from connector.ingest.fastjson import dumps_bytes
from connector.ingest.validation import format_errors, validate_record
from connector.kafka.ports import Record
from connector.mapping.compiled import TopicMapping


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
        mapped = mapping.map(route.decoder.decode(record.value))
        errors = validate_record(mapping.endpoint, mapped)
        if errors:
            return Poison(Stage.VALIDATE, ValueError(format_errors(errors)), "ValidationError")
        return dumps_bytes(mapped)
    except RecordError as exc:  # DecodeError, MappingError, NonFiniteNumberError: each knows its stage
        return Poison(exc.stage, exc)
    except TypeError as exc:  # a mapped value JSON has no form for
        return Poison(Stage.MAP, exc)
