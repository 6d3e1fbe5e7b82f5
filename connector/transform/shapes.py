"""What fastavro hands back for each field of a writer schema (read as the reader schema, if any).

The compiled transform chooses a converter, a check and a serializer per field from these shapes,
so a shape must never promise more than fastavro delivers: anything unusual is `Kind.OTHER`, which
the transform treats exactly as the general-purpose code does. The schemas are fastavro's parsed
form (`connector.avro.schemas.parse`): full names everywhere, named types defined once and then
referred to by name, definitions in `__named_schemas`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["Kind", "Shape", "TopShapes", "Walk"]


class Kind(enum.Enum):
    STRING = "string"  # str
    ENUM = "enum"  # str, one of `symbols`
    INT = "int"  # int, 32-bit
    LONG = "long"  # int, 64-bit
    BOOLEAN = "boolean"
    FLOAT = "float"  # float, maybe NaN or ±Infinity
    DECIMAL = "decimal"  # Decimal with at most `digits` digits before the point
    TIMESTAMP = "timestamp"  # datetime in UTC (tzinfo set)
    LOCAL_TIMESTAMP = "local-timestamp"  # naive datetime
    DATE = "date"
    UUID = "uuid"  # uuid.UUID
    RECORD = "record"  # dict with exactly the keys of `fields`
    MAP = "map"  # dict
    NULL = "null"  # always None
    OTHER = "other"  # anything: handled by the general-purpose code
    JSON_NUMBER = "json-number"  # a decimal already converted (connector.transform.rawdecimal)
    DATETIME_TEXT = "datetime-text"  # a timestamp already formatted (connector.transform.rawtime)
    DATE_TEXT = "date-text"  # a date already formatted (connector.transform.rawtime)


# fastavro converts these (base type, logicalType) pairs; other logical types on these bases
# are left to the general path rather than guessed at.
_LOGICAL: Final[dict[tuple[str, str], Kind]] = {
    ("long", "timestamp-millis"): Kind.TIMESTAMP,
    ("long", "timestamp-micros"): Kind.TIMESTAMP,
    ("long", "local-timestamp-millis"): Kind.LOCAL_TIMESTAMP,
    ("long", "local-timestamp-micros"): Kind.LOCAL_TIMESTAMP,
    ("int", "date"): Kind.DATE,
    ("string", "uuid"): Kind.UUID,
    ("bytes", "decimal"): Kind.DECIMAL,
    ("fixed", "decimal"): Kind.DECIMAL,
}
_PRIMITIVE: Final[dict[str, Kind]] = {
    "string": Kind.STRING,
    "int": Kind.INT,
    "long": Kind.LONG,
    "boolean": Kind.BOOLEAN,
    "float": Kind.FLOAT,
    "double": Kind.FLOAT,
    "null": Kind.NULL,
}
# Deeper (or recursive) types are compared and walked as OTHER.
_MAX_DEPTH: Final = 32


@dataclass(frozen=True)
class Shape:
    kind: Kind
    nullable: bool = False
    symbols: tuple[str, ...] = ()
    digits: int = 0
    # RECORD: field name → its type node (resolved lazily: types may be recursive).
    fields: Mapping[str, Any] = field(default_factory=dict)


_OTHER: Final = Shape(Kind.OTHER, nullable=True)


class _Types:
    """Type nodes of one parsed schema → shapes."""

    def __init__(self, parsed: Mapping[str, Any]) -> None:
        self.named: Mapping[str, Any] = parsed.get("__named_schemas", {})

    def shape(self, node: Any, depth: int = 0) -> Shape:
        if depth > _MAX_DEPTH:
            return _OTHER
        if isinstance(node, str):
            if node in _PRIMITIVE:
                return Shape(_PRIMITIVE[node])
            definition = self.named.get(node)
            return _OTHER if definition is None else self.shape(definition, depth + 1)
        if isinstance(node, list):
            branches = [self.shape(branch, depth + 1) for branch in node]
            others = [b for b in branches if b.kind is not Kind.NULL]
            if len(others) == len(branches) - 1 == 1:
                return Shape(others[0].kind, True, others[0].symbols, others[0].digits, others[0].fields)
            return Shape(Kind.NULL) if not others else _OTHER
        if not isinstance(node, dict):
            return _OTHER
        return self._complex(node)

    def _complex(self, node: Mapping[str, Any]) -> Shape:
        base = node.get("type")
        if "logicalType" in node:
            logical = node["logicalType"]
            kind = (
                _LOGICAL.get((base, logical)) if isinstance(base, str) and isinstance(logical, str) else None
            )
            if kind is Kind.DECIMAL:
                return _decimal(node)
            return _OTHER if kind is None else Shape(kind)
        if base in ("record", "error"):
            fields = {f["name"]: f["type"] for f in node.get("fields", ())}
            return Shape(Kind.RECORD, fields=fields)
        if base == "enum":
            symbols = node.get("symbols")
            if isinstance(symbols, list) and all(isinstance(s, str) for s in symbols):
                return Shape(Kind.ENUM, symbols=tuple(symbols))
            return _OTHER
        if base == "map":
            return Shape(Kind.MAP)
        if isinstance(base, str) and base in _PRIMITIVE:  # other attributes do not change the value
            return Shape(_PRIMITIVE[base])
        return _OTHER

    def expand(self, node: Any, depth: int = 0) -> Any:
        """`node` with named types replaced by their definitions, for comparing two schemas' types."""
        if depth > _MAX_DEPTH:
            raise RecursionError("type too deep to compare")
        if isinstance(node, str):
            definition = self.named.get(node)
            return node if definition is None else self.expand(definition, depth + 1)
        if isinstance(node, list):
            return [self.expand(branch, depth + 1) for branch in node]
        if isinstance(node, dict):
            return {key: self.expand(value, depth + 1) for key, value in node.items()}
        return node


def _decimal(node: Mapping[str, Any]) -> Shape:
    precision, scale = node.get("precision"), node.get("scale", 0)
    if type(precision) is not int or type(scale) is not int or not 0 <= scale <= precision:
        return _OTHER
    return Shape(Kind.DECIMAL, digits=precision - scale)


@dataclass(frozen=True)
class Walk:
    """How to reach a source path: `keys` looked up one by one; `nullable_at` lists the depths
    whose value may be None (the walk then stops with None). `generic` means: use
    `connector.mapping.compiled.resolve_path`; `absent` means the value is always None."""

    keys: tuple[str, ...]
    leaf: Shape
    nullable_at: tuple[int, ...] = ()
    generic: bool = False
    absent: bool = False


class TopShapes:
    """The shapes of a record schema's fields as decoded: the reader's fields when there is one."""

    def __init__(self, writer: Mapping[str, Any], reader: Mapping[str, Any] | None) -> None:
        self._writer = _Types(writer)
        top = self._writer.shape(writer)
        if top.kind is not Kind.RECORD or top.nullable:
            raise ValueError("the writer schema is not a record")
        self.fields: dict[str, Shape] = {}
        if reader is None:
            self.fields = {name: self._writer.shape(node) for name, node in top.fields.items()}
            return
        reader_types = _Types(reader)
        if reader_types.shape(reader).kind is not Kind.RECORD:
            raise ValueError("the reader schema is not a record")
        for item in reader.get("fields", ()):
            name, node = item["name"], item["type"]
            writer_node = top.fields.get(name)
            same = (
                writer_node is not None
                and not item.get("aliases")
                and self._same(writer_node, reader_types, node)
            )
            # A type the two schemas disagree on goes through resolution: its value is whatever
            # fastavro makes of it (a default, a promotion), so only the general path may take it.
            self.fields[name] = self._writer.shape(writer_node) if same else _OTHER

    def _same(self, writer_node: Any, reader_types: _Types, reader_node: Any) -> bool:
        try:
            return bool(self._writer.expand(writer_node) == reader_types.expand(reader_node))
        except RecursionError:
            return False

    def walk(self, path: tuple[str, ...]) -> Walk:
        if path[0] not in self.fields:
            return Walk(path, Shape(Kind.NULL), absent=True)
        shape = self.fields[path[0]]
        nullable_at: list[int] = []
        for depth, key in enumerate(path[1:], start=1):
            if shape.kind is Kind.NULL:
                return Walk(path, shape, absent=True)
            if shape.kind is not Kind.RECORD:
                return Walk(path, _OTHER, generic=True)
            if shape.nullable:
                nullable_at.append(depth)
            if key not in shape.fields:
                return Walk(path, Shape(Kind.NULL), absent=True)
            shape = self._writer.shape(shape.fields[key])
        if shape.kind is Kind.NULL:
            return Walk(path, shape, absent=True)
        return Walk(path, shape, tuple(nullable_at))
