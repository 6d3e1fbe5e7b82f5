"""The compiled transform: one straight-line function per (mapping, writer schema).

The reference transform (connector.transform.reference) walks the whole mapping plan, converts
each value by type dispatch, checks every model field and walks the record again to serialize
it, for every record. From the writer schema (or the reader schema's shape, when one is given)
we know what fastavro hands back for each field, so all of that is decided once: steps whose
source the schema lacks are dropped, each field gets the converter of its Avro type, checks that
cannot fail are left out, and orjson is called directly where its bytes are provably
JSON.stringify's. The result must be the reference's, byte for byte and reason for reason:
`tests/unit/test_transform_compiled.py` checks that on generated schemas, mappings and payloads.

Decoding is the reference's (`connector.avro.decoding.read_datum`), so DecodeError reasons are
too. A schema this module cannot reason about gets the reference transform itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from connector.avro.decoding import ReadPlan, read_datum
from connector.avro.schemas import parse
from connector.errors import DecodeError, RecordError, Stage
from connector.ingest.validation import format_errors
from connector.transform.checks import emit_checks
from connector.transform.fields import FIELD_NAMES, map_fields
from connector.transform.rawdecimal import decimal_number, raw_decimals
from connector.transform.rawread import strip_logical
from connector.transform.rawtime import raw_times
from connector.transform.reference import LIMIT_ERRORS, build_reference, limit_poison
from connector.transform.serialize import SERIALIZE_NAMES, emit_serialize
from connector.transform.shapes import Kind, TopShapes
from connector.transform.source import Source, literal
from connector.transform.spec import Poison, Transform, TransformSpec

__all__ = ["compile_transform", "transform_source"]

_NAMES: Final[dict[str, Any]] = {
    **FIELD_NAMES,
    **SERIALIZE_NAMES,
    "decimal_number": decimal_number,
    "ValueError": ValueError,
    "DecodeError": DecodeError,
    "OverflowError": OverflowError,
    "read_datum": read_datum,
    "format_errors": format_errors,
    "Poison": Poison,
    "RecordError": RecordError,
    "TypeError": TypeError,
    "LIMIT_ERRORS": LIMIT_ERRORS,
    "limit_poison": limit_poison,
    "MAP": Stage.MAP,
    "VALIDATE": Stage.VALIDATE,
}


def compile_transform(spec: TransformSpec) -> Transform:
    """The compiled transform of `spec`, or the reference transform when the schema is unusual.

    Raises what `build_reference` raises for a schema fastavro cannot parse.
    """
    writer = parse(spec.writer_schema)
    reader = parse(spec.reader_schema) if spec.reader_schema is not None else None
    plan = ReadPlan(writer, spec.writer_label, reader, spec.reader_label)
    try:
        shapes = TopShapes(writer, plan.reader)
    except (ValueError, KeyError, TypeError):  # not a record, or a shape we do not know
        return build_reference(spec)
    src = _generate(spec, plan, shapes)
    transform: Transform = src.function("transform", "payload")
    return transform


def transform_source(spec: TransformSpec) -> str:
    """The generated source of `spec`'s transform (for tests and for reading)."""
    writer = parse(spec.writer_schema)
    reader = parse(spec.reader_schema) if spec.reader_schema is not None else None
    plan = ReadPlan(writer, spec.writer_label, reader, spec.reader_label)
    src = _generate(spec, plan, TopShapes(writer, plan.reader))
    return "\n".join(src.lines)


def _generate(spec: TransformSpec, plan: ReadPlan, shapes: TopShapes) -> Source:
    src = Source(_NAMES)
    steps = spec.mapping.steps()
    decimals = raw_decimals(spec.writer_schema, steps, shapes) if plan.reader is None else {}
    times = raw_times(spec.writer_schema, steps, shapes) if plan.reader is None else {}
    raw = bool(decimals or times)
    if raw:
        _read_raw(spec, plan, decimals, times, shapes, src)
    src.add(1, "try:")
    if not raw:
        src.add(2, f"r = read_datum({src.bind('plan', plan)}, payload, 0)")
    src.add(2, "out = {}")
    fields = map_fields(steps, shapes, src, 2)
    start = len(src.lines)
    src.add(2, "errors = []")
    if emit_checks(spec.mapping.endpoint, fields, src, 2):
        src.add(2, "if errors:")
        src.add(3, "return Poison(VALIDATE, 'ValidationError', format_errors(errors))")
    else:
        del src.lines[start:]
    emit_serialize(fields, src, 2)
    src.add(1, "except RecordError as exc:")
    src.add(2, "return Poison(exc.stage, type(exc).__name__, str(exc))")
    src.add(1, "except TypeError as exc:  # a mapped value JSON has no form for")
    src.add(2, "return Poison(MAP, type(exc).__name__, str(exc))")
    src.add(1, "except LIMIT_ERRORS as exc:  # the stack or memory, exhausted by this one record")
    src.add(2, "return limit_poison(exc)")
    return src


def _read_raw(
    spec: TransformSpec,
    plan: ReadPlan,
    decimals: dict[str, tuple[int, int]],
    times: dict[str, tuple[Callable[[int], str], Kind]],
    shapes: TopShapes,
    src: Source,
) -> None:
    """Emit the read with decimals as bytes and timestamps as longs, converted at once; a value
    the conversion refuses, or anything unusual → the reference."""
    kinds = {
        **{name: Kind.JSON_NUMBER for name in decimals},
        **{name: kind for name, (_, kind) in times.items()},
    }
    nullable = {name: shapes.fields[name].nullable for name in kinds}
    stripped = parse(strip_logical(spec.writer_schema, kinds, shapes))
    raw_plan = ReadPlan(stripped, plan.writer_label, None, "")
    src.add(1, "try:")
    src.add(2, f"r = read_datum({src.bind('plan', raw_plan)}, payload, 0)")
    calls = {
        name: f"decimal_number({{v}}, {src.bind('limit', limit)}, {src.bind('unit', unit)})"
        for name, (limit, unit) in decimals.items()
    }
    calls.update({name: f"{src.bind('text', converter)}({{v}})" for name, (converter, _) in times.items()})
    for name, call in calls.items():
        key, value = literal(name), src.local()
        src.add(2, f"{value} = r[{key}]")
        if nullable[name]:
            src.add(2, f"if {value} is not None: r[{key}] = {call.format(v=value)}")
        else:
            src.add(2, f"r[{key}] = {call.format(v=value)}")
    # ValueError: a decimal fastavro would round; OverflowError: a date beyond the years 1 to 9999.
    src.add(1, "except (DecodeError, ValueError, OverflowError):")
    src.add(2, f"return {src.bind('reference', build_reference(spec))}(payload)")
