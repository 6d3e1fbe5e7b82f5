"""A mapping's source paths walked through an Avro schema (JSON form): what each path reads.

For the static check: the types a path can yield (through unions, nested records and map values),
whether it can be null or missing, and why a path does not exist. Name resolution follows
connector.avro.schemas, the same rules fastavro decodes with.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from connector.avro.schemas import NAMED_TYPES, PRIMITIVE_TYPES, definition_name, full_name
from connector.errors import SchemaError

__all__ = ["Found", "SourceSchema", "SourceType", "suggest"]

_COMPLEX: Final = NAMED_TYPES | {"array", "map"}

# (base type, logicalType) → category, for the logical types fastavro converts. A logical type
# on any other base is ignored by Avro readers, and so here.
_LOGICAL: Final[dict[tuple[str, str], str]] = {
    ("bytes", "decimal"): "decimal",
    ("fixed", "decimal"): "decimal",
    ("string", "uuid"): "uuid",
    ("int", "date"): "date",
    ("int", "time-millis"): "time",
    ("long", "time-micros"): "time",
    ("long", "timestamp-millis"): "timestamp",
    ("long", "timestamp-micros"): "timestamp",
    ("long", "local-timestamp-millis"): "timestamp",
    ("long", "local-timestamp-micros"): "timestamp",
}


@dataclass(frozen=True)
class SourceType:
    """One resolved Avro type that is not a union or a name reference."""

    node: Any  # a primitive name, or the defining JSON object
    # The namespace names inside this type resolve against (a record's own namespace for its fields).
    namespace: str

    @property
    def base(self) -> str:
        return self.node if isinstance(self.node, str) else str(self.node["type"])

    @property
    def category(self) -> str:
        """What fastavro turns it into, in the words the compatibility table uses."""
        if isinstance(self.node, str):
            return self.node
        base = self.base
        if base == "error":
            return "record"
        logical = self.node.get("logicalType")
        if isinstance(logical, str):
            return _LOGICAL.get((base, logical), base)
        return base

    @property
    def decimal_scale(self) -> int:
        scale = self.node.get("scale", 0) if isinstance(self.node, dict) else 0
        return scale if isinstance(scale, int) else 0

    def describe(self) -> str:
        if isinstance(self.node, str):
            return self.node
        base = self.base
        if base in NAMED_TYPES:
            name = f"{base} {self.node.get('name')}"
            logical = self.node.get("logicalType")
            return f"{name} ({logical})" if base == "fixed" and isinstance(logical, str) else name
        logical = self.node.get("logicalType")
        if isinstance(logical, str) and (base, logical) in _LOGICAL:
            return f"{base} ({logical})"
        return base


def _definition(node: Mapping[str, Any], enclosing: str) -> tuple[str, str]:
    """(full name, namespace for the names inside) of a named type definition."""
    name = node.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"a {node.get('type')} type has no name")
    full = definition_name(node, enclosing)
    return full, full.rpartition(".")[0]


def _record_fields(node: Mapping[str, Any]) -> dict[str, Any]:
    fields = node.get("fields")
    if not isinstance(fields, list):
        raise SchemaError(f"record {node.get('name')} has no field list")
    out: dict[str, Any] = {}
    for item in fields:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or "type" not in item:
            raise SchemaError(f"record {node.get('name')} has a field without a name or a type")
        out.setdefault(item["name"], item["type"])
    return out


@dataclass
class Found:
    leaves: list[SourceType]
    # A null (or an absent map key) somewhere on the way: the mapped field can be missing.
    nullable: bool = False
    via_map: bool = False
    notes: list[str] = field(default_factory=list)


class SourceSchema:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self._named: dict[str, SourceType] = {}
        self._by_short: dict[str, list[str]] = {}
        self._index(root, "")
        resolved = self.resolve(root, "")
        if resolved is None or resolved.category != "record":
            shown = "null" if resolved is None else resolved.describe()
            raise SchemaError(f"the top-level type must be a record (got {shown})")
        self.root = resolved
        self.top_fields = _record_fields(resolved.node)

    def _index(self, node: Any, enclosing: str) -> None:
        if isinstance(node, list):
            for branch in node:
                self._index(branch, enclosing)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind in NAMED_TYPES:
            full, namespace = _definition(node, enclosing)
            if full not in self._named:
                self._named[full] = SourceType(node, namespace)
                self._by_short.setdefault(full.rsplit(".", 1)[-1], []).append(full)
            if kind in ("record", "error"):
                for child in _record_fields(node).values():
                    self._index(child, namespace)
        elif kind == "array":
            self._index(node.get("items"), enclosing)
        elif kind == "map":
            self._index(node.get("values"), enclosing)
        elif isinstance(kind, dict | list):
            self._index(kind, enclosing)

    def _lookup(self, name: str, enclosing: str) -> SourceType:
        candidates = dict.fromkeys((full_name(name, enclosing), name))
        for candidate in candidates:
            if candidate in self._named:
                return self._named[candidate]
        # Lenient where a reader would be strict, so a namespace slip is not reported as a
        # missing type: the check is about the mapping, not about schema hygiene.
        short = self._by_short.get(name.rsplit(".", 1)[-1], [])
        if len(short) == 1:
            return self._named[short[0]]
        raise SchemaError(f"type {name!r} is used but not defined")

    def resolve(self, node: Any, enclosing: str) -> SourceType | None:
        """A non-union type node → its definition; None for null."""
        if isinstance(node, str):
            if node == "null":
                return None
            if node in PRIMITIVE_TYPES:
                return SourceType(node, enclosing)
            return self._lookup(node, enclosing)
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "null":
                return None
            if kind in NAMED_TYPES:
                return SourceType(node, _definition(node, enclosing)[1])
            if kind in _COMPLEX or kind in PRIMITIVE_TYPES:
                return SourceType(node, enclosing)
            if isinstance(kind, str | dict):
                return self.resolve(kind, enclosing)
        raise SchemaError(f"malformed type {str(node)[:80]}")

    def branches(self, node: Any, enclosing: str) -> tuple[list[SourceType], bool]:
        """The non-null types a value of `node` can have, and whether it can be null."""
        members = node if isinstance(node, list) else [node]
        types: list[SourceType] = []
        nullable = False
        for member in members:
            resolved = self.resolve(member, enclosing)
            if resolved is None:
                nullable = True
            else:
                types.append(resolved)
        return types, nullable

    def walk(self, path: tuple[str, ...]) -> Found | str:
        """The types at `path` (record fields, map values), or why the path does not exist."""
        found = Found([self.root])
        for depth, step in enumerate(path):
            here = ".".join(path[:depth])
            targets: list[tuple[Any, str]] = []
            names: list[str] = []
            others: list[str] = []
            for current in found.leaves:
                category = current.category
                if category == "record":
                    fields = _record_fields(current.node)
                    names.extend(fields)
                    if step in fields:
                        targets.append((fields[step], current.namespace))
                elif category == "map":
                    targets.append((current.node.get("values"), current.namespace))
                    found.via_map = True
                else:
                    others.append(current.describe())
            full = ".".join(path)
            if not targets:
                if names:
                    where = f"{here!r}" if here else "the record"
                    hint = suggest(step, names)
                    return f"source path {full!r} not found: {where} has no field {step!r}{hint}"
                return f"source path {full!r}: {here!r} is {_a(others[0])}, not a record"
            if others:
                found.notes.append(
                    f"source path {full!r}: {here!r} can also be {', '.join(others)}; "
                    "such records will be dead-lettered at MAP"
                )
            leaves: list[SourceType] = []
            for node, namespace in targets:
                types, nullable = self.branches(node, namespace)
                leaves.extend(types)
                found.nullable = found.nullable or nullable
            found.leaves = leaves
        return found


def _a(text: str) -> str:
    return f"an {text}" if text[:1] in "aeiou" else f"a {text}"


def suggest(name: str, names: Iterable[str]) -> str:
    unique = list(dict.fromkeys(names))
    close = difflib.get_close_matches(name, unique, n=3, cutoff=0.6)
    if close:
        return f" (did you mean {', '.join(close)}?)"
    if not unique:
        return ""
    shown = ", ".join(unique[:8]) + (", ..." if len(unique) > 8 else "")
    return f" (fields there: {shown})"
