"""TopicMapping: one decoded Avro record → one ingest record.

The rules are those of README.md, "Mapping rules"; which rule gives a field its value is
connector.mapping.precedence's.

A mapping is compiled once into a flat plan of steps in output order, so `map`, which runs once
per consumed record, only walks source paths and converts values. Validation against the model
is a later stage: the mapping leaves out what it cannot find and does not judge values, except
for what has no JSON form at all (bytes, NaN, ±Infinity), which it rejects with MappingError.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from connector.config.settings import DestinationSettings, MappingSettings
from connector.errors import MappingError
from connector.ingest.models import MODELS, FieldKind
from connector.mapping.precedence import Source, derived_values, field_source

__all__ = [
    "MappingError",
    "PlanStep",
    "TopicMapping",
    "decimal_to_json",
    "resolve_path",
    "split_path",
    "to_json_value",
]


class _ConversionError(Exception):
    """Raised deep inside a value; each enclosing container adds its key on the way out."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.location: list[str] = []


def split_path(target: str, path: str) -> tuple[str, ...]:
    """Split a dotted source path: "a.b" → ("a", "b"); raises MappingError for an empty part."""
    parts = tuple(path.split("."))
    if not all(parts):
        raise MappingError(target, f"source path {path!r} has an empty part", rule="path")
    return parts


# --------------------------------------------------------------------------------------------
# Value conversion: decoded Avro values → values JSON (and JavaScript) can represent.

# A Decimal this far above 1 has no finite double; converting it to int first would also
# allocate a huge integer for nothing.
_MAX_DECIMAL_ADJUSTED: Final = 308
_NOT_FINITE: Final = "not a finite number (NaN and Infinity have no JSON form)"
# Objects and arrays nested deeper than this are refused with a reason, well before Python's
# recursion limit (a RecursionError would depend on how deep the caller's stack already is, so
# two transforms could disagree) and before orjson's limit of 255.
MAX_NESTING: Final = 100
_TOO_DEEP: Final = f"objects and arrays are nested deeper than {MAX_NESTING} levels"


def _format_datetime(value: datetime) -> str:
    offset = value.utcoffset()
    if offset:
        try:
            value = value.replace(tzinfo=None) - offset
        except OverflowError:
            raise _ConversionError("range", "date-time is out of range once converted to UTC") from None
    # Formatted by hand: strftime does not zero-pad years below 1000 on every platform, and
    # the API wants exactly three fraction digits.
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond // 1000:03d}Z"
    )


def _format_time(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond // 1000:03d}"


def _convert_decimal(value: Decimal) -> int | float:
    if not value.is_finite() or value.adjusted() > _MAX_DECIMAL_ADJUSTED:
        raise _ConversionError("finite", _NOT_FINITE)
    if value == value.to_integral_value():
        return int(value)
    result = float(value)
    if not math.isfinite(result):
        raise _ConversionError("finite", _NOT_FINITE)
    return result


def _convert_dict(value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    if depth >= MAX_NESTING:
        raise _ConversionError("depth", _TOO_DEEP)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str:
            if not isinstance(key, str):
                got = type(key).__name__
                raise _ConversionError("type", f"object keys must be strings (got a {got} key)")
            key = str.__str__(key)
        try:
            out[key] = _convert(item, depth + 1)
        except _ConversionError as exc:
            exc.location.append(f".{key}")
            raise
    return out


def _convert_list(value: list[Any] | tuple[Any, ...], depth: int) -> list[Any]:
    if depth >= MAX_NESTING:
        raise _ConversionError("depth", _TOO_DEEP)
    out: list[Any] = []
    for index, item in enumerate(value):
        try:
            out.append(_convert(item, depth + 1))
        except _ConversionError as exc:
            exc.location.append(f"[{index}]")
            raise
    return out


def _convert(value: Any, depth: int = 0) -> Any:
    t = type(value)
    # Exact types first: they are what fastavro returns almost always.
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        if math.isfinite(value):
            return value
        raise _ConversionError("finite", _NOT_FINITE)
    if t is dict:
        return _convert_dict(value, depth)
    if t is list or t is tuple:
        return _convert_list(value, depth)
    # datetime is a subclass of date: test it first.
    if isinstance(value, datetime):
        return _format_datetime(value)
    if isinstance(value, date):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if isinstance(value, time):
        return _format_time(value)
    if isinstance(value, Decimal):
        return _convert_decimal(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise _ConversionError("bytes", "bytes cannot be sent as JSON")
    # Subclasses (StrEnum, IntEnum, OrderedDict ...) become their plain base type.
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _convert(float(value))
    if isinstance(value, Mapping):
        return _convert_dict(value, depth)
    if isinstance(value, list | tuple):
        return _convert_list(value, depth)
    raise _ConversionError("type", f"a value of type {type(value).__name__} cannot be sent as JSON")


def to_json_value(value: Any, kind: FieldKind | None, field: str) -> Any:
    """Convert one field value for the target `kind` (None: a field the model does not know).

    Raises MappingError naming `field` (and the place inside it) for what JSON cannot carry.
    """
    # Numeric player ids are common in Avro; the API wants them as strings.
    if kind is FieldKind.STRING and isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    try:
        return _convert(value)
    except _ConversionError as exc:
        raise _mapping_error(exc, field) from None


def decimal_to_json(value: Decimal, field: str) -> int | float:
    """`to_json_value` for a Decimal, without its type dispatch (for callers that know the type)."""
    try:
        return _convert_decimal(value)
    except _ConversionError as exc:
        raise _mapping_error(exc, field) from None


def _mapping_error(exc: _ConversionError, field: str) -> MappingError:
    # Past MAX_NESTING levels the path would be a hundred keys long: the field says enough.
    where = "" if exc.rule == "depth" else "".join(reversed(exc.location))
    message = f"{exc.message} (at {field}{where})" if where else exc.message
    return MappingError(field, message, rule=exc.rule)


# --------------------------------------------------------------------------------------------
# The compiled plan

# Step operations, in the order they are most frequent in real mappings.
_TOP: Final = 0  # a top-level source field (copy_matching, or a one-part path)
_PATH: Final = 1  # a nested source path
_CONST: Final = 2  # a fixed value: constant, destination id, fixed category
_CONST_COPY: Final = 3  # a fixed dict/list value, copied per record so no two records share it

# (target field, operation, argument, target kind): argument is the top-level key, the path
# tuple or the (already converted) fixed value.
_Step = tuple[str, int, Any, FieldKind | None]


def _path_error(target: str, path: tuple[str, ...], depth: int, found: object) -> MappingError:
    return MappingError(
        target,
        f"source path {'.'.join(path)}: {'.'.join(path[:depth])} is a {type(found).__name__}, not a record",
        rule="path",
    )


def resolve_path(record: Mapping[str, Any], path: tuple[str, ...], target: str) -> Any:
    """The value at `path` in `record`; None when something on the way is null or missing."""
    current: Any = record
    for depth, part in enumerate(path):
        if type(current) is not dict:
            if current is None:
                return None
            if not isinstance(current, Mapping):
                raise _path_error(target, path, depth, current)
        current = current.get(part)
    return current


def _fixed_step(name: str, value: Any, kind: FieldKind | None) -> _Step:
    converted = to_json_value(value, kind, name)
    op = _CONST_COPY if isinstance(converted, dict | list) else _CONST
    return (name, op, converted, kind)


def _source_step(name: str, path: tuple[str, ...], kind: FieldKind | None) -> _Step:
    if len(path) == 1:
        return (name, _TOP, path[0], kind)
    return (name, _PATH, path, kind)


def _compile(m: MappingSettings, destination: DestinationSettings) -> tuple[_Step, ...]:
    model = MODELS[m.endpoint]
    paths = {target: split_path(target, source) for target, source in m.fields.items()}
    derived = derived_values(model, destination)

    steps: list[_Step] = []
    for name, spec in model.fields.items():
        source = field_source(
            name, fields=paths, constants=m.constants, derived=derived, copy_matching=m.copy_matching
        )
        if source is Source.FIELD:
            steps.append(_source_step(name, paths[name], spec.kind))
        elif source is Source.CONSTANT:
            steps.append(_fixed_step(name, m.constants[name], spec.kind))
        elif source is Source.DERIVED:
            steps.append(_fixed_step(name, derived[name], spec.kind))
        elif source is Source.COPY:
            steps.append((name, _TOP, name, spec.kind))
    # Fields the model does not know appear only when named explicitly, in mapping order.
    for name, path in paths.items():
        if name not in model.fields:
            steps.append(_source_step(name, path, None))
    for name, value in m.constants.items():
        if name not in model.fields and value is not None:
            steps.append(_fixed_step(name, value, None))
    return tuple(steps)


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One step of a compiled mapping, for code that compiles it further (connector.transform).

    `path` is the source path, or None for a fixed `value` (already converted; `copy` says it is
    a dict or list that each record gets its own deep copy of). `kind` is the target field's.
    """

    name: str
    kind: FieldKind | None
    path: tuple[str, ...] | None
    value: Any = None
    copy: bool = False


@dataclass(frozen=True)
class TopicMapping:
    """The compiled mapping of one topic. Build it with `from_settings`."""

    topic: str
    endpoint: str
    destination: str
    plan: tuple[_Step, ...] = field(repr=False, compare=False, kw_only=True)

    @classmethod
    def from_settings(cls, m: MappingSettings, destination: DestinationSettings) -> TopicMapping:
        """Compile `m` for `destination` (the settings of `m.destination`).

        Raises MappingError for a mapping that could never produce a record: a source path
        with an empty part, or a constant JSON cannot carry (bytes, NaN).
        """
        return cls(m.topic, m.endpoint, m.destination, plan=_compile(m, destination))

    def steps(self) -> tuple[PlanStep, ...]:
        """The plan, in output order."""
        return tuple(
            PlanStep(name, kind, (arg,) if op == _TOP else arg)
            if op in (_TOP, _PATH)
            else PlanStep(name, kind, None, arg, copy=op == _CONST_COPY)
            for name, op, arg, kind in self.plan
        )

    def map(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The ingest record for one decoded record; raises MappingError."""
        if type(record) is not dict and not isinstance(record, Mapping):
            got = type(record).__name__
            raise MappingError("", f"the decoded value is a {got}, not a record", rule="path")
        out: dict[str, Any] = {}
        for name, op, arg, kind in self.plan:
            if op == _TOP:
                value = record.get(arg)
            elif op == _PATH:
                value = resolve_path(record, arg, name)
            elif op == _CONST:
                out[name] = arg
                continue
            else:
                out[name] = copy.deepcopy(arg)
                continue
            if value is None:
                continue
            out[name] = value if type(value) is str else to_json_value(value, kind, name)
        return out
