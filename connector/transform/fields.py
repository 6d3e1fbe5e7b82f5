"""The mapping part of a compiled transform: one straight block of code per output field.

Each step of the mapping's plan becomes code that reads its source from the decoded record `r`,
converts it with the converter its Avro shape calls for, and stores it in `out`; a local keeps
the value (None when the field is left out) for the checks and the serializer. What the value
can be afterwards is recorded as a `Value`, which is what validation and serialization reason on.

Every converter gives what `connector.mapping.compiled.to_json_value` gives for the values its
shape admits, and raises the same MappingError; shapes it does not know go to that function.
Steps whose source the schema does not have are dropped: the reference maps them to nothing.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass
from typing import Any, Final

from connector.ingest.models import FieldKind
from connector.mapping.compiled import PlanStep, decimal_to_json, resolve_path, to_json_value
from connector.transform.shapes import Kind, TopShapes, Walk
from connector.transform.source import Source, literal

__all__ = ["FIELD_NAMES", "FieldCode", "Value", "map_fields"]

# Decimals with more digits than this before the point may be beyond the largest double.
_FINITE_DIGITS: Final = 300


class Value(enum.Enum):
    """What a mapped field's value is, when present."""

    STR = "any str"
    NONBLANK_STR = "a str with a non-blank character"
    ISO_DATETIME = "YYYY-MM-DDTHH:MM:SS.mmmZ, year 0001 to 9999"
    ISO_DATE = "YYYY-MM-DD, year 0001 to 9999"
    BOOL = "bool"
    SMALL_INT = "int within ±2**31"
    INT = "int within ±2**63"
    FLOAT = "finite float"
    NUMBER = "int or finite float, below 1e300 in magnitude"
    BIG_NUMBER = "int or finite float"
    DICT = "dict"
    ANY = "any JSON value"


@dataclass(frozen=True)
class FieldCode:
    """One output field. `var` holds the value (None when left out); a fixed field has no `var`
    but its `fixed` value."""

    name: str
    kind: FieldKind | None
    value: Value
    var: str = ""
    maybe_absent: bool = False
    symbols: tuple[str, ...] | None = None  # every value it can take, when finitely many
    fixed: Any = None


# Values that become strings by one expression of `v`. fastavro's timestamps are in UTC already,
# so isoformat ends in "+00:00"; like the reference, isoformat truncates to milliseconds and pads
# the year to four digits.
_FORMATS: Final[dict[Kind, tuple[str, Value]]] = {
    Kind.TIMESTAMP: ("{v}.isoformat(timespec='milliseconds')[:-6] + 'Z'", Value.ISO_DATETIME),
    Kind.LOCAL_TIMESTAMP: ("{v}.isoformat(timespec='milliseconds') + 'Z'", Value.ISO_DATETIME),
    Kind.DATE: ("{v}.isoformat()", Value.ISO_DATE),
    Kind.UUID: ("str({v})", Value.NONBLANK_STR),
}

# The objects generated mapping code refers to by these names.
FIELD_NAMES: Final[dict[str, Any]] = {
    "to_json_value": to_json_value,
    "decimal_to_json": decimal_to_json,
    "resolve_path": resolve_path,
    "deepcopy": copy.deepcopy,
    "INF": float("inf"),
}


def map_fields(steps: tuple[PlanStep, ...], shapes: TopShapes, src: Source, indent: int) -> list[FieldCode]:
    """Emit the code that fills `out` from `r`; returns the fields it can fill, in output order."""
    fields: list[FieldCode] = []
    for step in steps:
        name = literal(step.name)
        if step.path is None:
            fixed = src.bind("fixed", step.value)
            src.add(indent, f"out[{name}] = deepcopy({fixed})" if step.copy else f"out[{name}] = {fixed}")
            fields.append(FieldCode(step.name, step.kind, Value.ANY, fixed=step.value))
            continue
        walk = shapes.walk(step.path)
        if walk.absent:
            continue
        var = src.local()
        guarded = _read(walk, step.name, var, src, indent)
        maybe_absent = guarded or walk.leaf.nullable or walk.generic
        inner = indent + 1 if maybe_absent else indent
        if maybe_absent:
            src.add(indent, f"if {var} is not None:")
        value = _convert(walk, step, var, src, inner)
        src.add(inner, f"out[{name}] = {var}")
        symbols = walk.leaf.symbols if walk.leaf.kind is Kind.ENUM else None
        fields.append(FieldCode(step.name, step.kind, value, var, maybe_absent, symbols))
    return fields


def _read(walk: Walk, target: str, var: str, src: Source, indent: int) -> bool:
    """Emit `var = <the value at the path>`; True when it may be None on the way."""
    if walk.generic:
        path = src.bind("path", walk.keys)
        src.add(indent, f"{var} = resolve_path(r, {path}, {literal(target)})")
        return True
    # Lookups up to the first container that may be null chain in one expression.
    first_null = min(walk.nullable_at, default=len(walk.keys))
    chain = "".join(f"[{literal(key)}]" for key in walk.keys[:first_null])
    src.add(indent, f"{var} = r{chain}")
    for key in walk.keys[first_null:]:
        src.add(indent, f"if {var} is not None: {var} = {var}[{literal(key)}]")
    return first_null < len(walk.keys)


def _convert(walk: Walk, step: PlanStep, var: str, src: Source, indent: int) -> Value:
    """Emit the conversion of a present value; returns what it then is."""
    kind, name = walk.leaf.kind, literal(step.name)
    if walk.generic or kind is Kind.OTHER:
        target = src.bind("kind", step.kind)
        src.add(indent, f"if type({var}) is not str: {var} = to_json_value({var}, {target}, {name})")
        return Value.ANY
    if kind is Kind.STRING or kind is Kind.ENUM:
        return Value.STR
    if kind is Kind.INT or kind is Kind.LONG:
        if step.kind is FieldKind.STRING:  # numeric ids: the API wants strings
            src.add(indent, f"{var} = str({var})")
            return Value.NONBLANK_STR
        return Value.SMALL_INT if kind is Kind.INT else Value.INT
    if kind is Kind.BOOLEAN:
        return Value.BOOL
    if kind is Kind.FLOAT:
        # NaN and ±Infinity fail the comparison; to_json_value raises the reference's error for them.
        target = src.bind("kind", step.kind)
        src.add(indent, f"if not -INF < {var} < INF: {var} = to_json_value({var}, {target}, {name})")
        return Value.FLOAT
    if kind is Kind.JSON_NUMBER:
        return Value.NUMBER
    if kind is Kind.DATETIME_TEXT:
        return Value.ISO_DATETIME
    if kind is Kind.DATE_TEXT:
        return Value.ISO_DATE
    if kind is Kind.DECIMAL:
        src.add(indent, f"{var} = decimal_to_json({var}, {name})")
        return Value.NUMBER if walk.leaf.digits <= _FINITE_DIGITS else Value.BIG_NUMBER
    if kind in _FORMATS:
        template, value = _FORMATS[kind]
        src.add(indent, f"{var} = {template.format(v=var)}")
        return value
    # RECORD and MAP: dicts, converted (and checked for what JSON cannot carry) the general way.
    target = src.bind("kind", step.kind)
    src.add(indent, f"{var} = to_json_value({var}, {target}, {name})")
    return Value.DICT
