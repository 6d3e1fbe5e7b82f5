"""The reference transform: decode, map, validate and serialize with the general-purpose code.

It is the behaviour every faster transform must reproduce byte for byte, and reason for reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connector.avro.decoding import ReadPlan, read_datum
from connector.avro.schemas import parse
from connector.errors import RecordError, Stage
from connector.ingest.fastjson import dumps_bytes
from connector.ingest.validation import format_errors, validate_record
from connector.mapping.compiled import TopicMapping
from connector.transform.spec import Poison, Transform, TransformSpec

__all__ = ["LIMIT_ERRORS", "build_reference", "limit_poison", "reference_steps"]

# What one record can exhaust: the stack (a value nested past every explicit limit) or memory.
# Either is that record's problem, not the pipeline's: it goes to the dead-letter topic at MAP
# (decode failures are DecodeError by then), and the partition moves on.
LIMIT_ERRORS = (RecursionError, MemoryError)
_LIMIT_REASONS = {
    "RecursionError": "the record is nested too deeply to map and serialize",
    "MemoryError": "the record needs more memory than there is to map and serialize",
}


def limit_poison(exc: BaseException) -> Poison:
    """The Poison of a record that exhausted the stack or memory after it was decoded."""
    name = type(exc).__name__
    return Poison(Stage.MAP, name, _LIMIT_REASONS.get(name, name))


def build_reference(spec: TransformSpec) -> Transform:
    reader = parse(spec.reader_schema) if spec.reader_schema is not None else None
    plan = ReadPlan(parse(spec.writer_schema), spec.writer_label, reader, spec.reader_label)
    return reference_steps(spec.mapping, lambda payload: read_datum(plan, payload, 0))


def reference_steps(mapping: TopicMapping, decode: Callable[[bytes], Mapping[str, Any]]) -> Transform:
    """Map, validate and serialize what `decode` makes of a payload; every record error becomes
    Poison at its stage. `decode` raises DecodeError for a payload it cannot read."""
    endpoint = mapping.endpoint

    def transform(payload: bytes) -> bytes | Poison:
        try:
            record = mapping.map(decode(payload))
            errors = validate_record(endpoint, record)
            if errors:
                return Poison(Stage.VALIDATE, "ValidationError", format_errors(errors))
            return dumps_bytes(record)
        except RecordError as exc:
            return Poison(exc.stage, type(exc).__name__, str(exc))
        except TypeError as exc:  # a mapped value JSON has no form for
            return Poison(Stage.MAP, type(exc).__name__, str(exc))
        except LIMIT_ERRORS as exc:
            return limit_poison(exc)

    return transform
