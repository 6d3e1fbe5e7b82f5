"""The static `check` of one mapping against its Avro schema and the endpoint's record model.

It answers, before any record flows, the questions whose runtime answer would be "every record
goes to the dead-letter topic": is every required field fed from somewhere, do the source paths
exist, and can the source types become what the model wants. Errors are mappings that cannot
work; warnings are mappings that work for some records only, or do something surprising.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from connector.config.settings import MappingSettings
from connector.ingest.models import MODELS, FieldKind, Model
from connector.ingest.validation import validate_record
from connector.mapping.compiled import MappingError, split_path, to_json_value

__all__ = ["CheckIssue", "CheckResult", "check_mapping"]

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class CheckIssue:
    level: Level
    # The target field the issue is about; "" for the mapping as a whole.
    field: str
    message: str


@dataclass(frozen=True)
class CheckResult:
    topic: str
    endpoint: str
    schema_source: str
    issues: tuple[CheckIssue, ...]

    @property
    def ok(self) -> bool:
        return not any(issue.level == "error" for issue in self.issues)

    @property
    def errors(self) -> tuple[CheckIssue, ...]:
        return tuple(issue for issue in self.issues if issue.level == "error")

    @property
    def warnings(self) -> tuple[CheckIssue, ...]:
        return tuple(issue for issue in self.issues if issue.level == "warning")


# --------------------------------------------------------------------------------------------
# Reading Avro schemas (the JSON form): named types, unions, logical types.

_PRIMITIVES: Final = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED: Final = frozenset({"record", "error", "enum", "fixed"})
_COMPLEX: Final = _NAMED | {"array", "map"}

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


class _SchemaError(Exception):
    """The schema itself is malformed, or uses a type name it does not define."""


@dataclass(frozen=True)
class _Type:
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
        if base in _NAMED:
            name = f"{base} {self.node.get('name')}"
            logical = self.node.get("logicalType")
            return f"{name} ({logical})" if base == "fixed" and isinstance(logical, str) else name
        logical = self.node.get("logicalType")
        if isinstance(logical, str) and (base, logical) in _LOGICAL:
            return f"{base} ({logical})"
        return base


def _full_name(node: Mapping[str, Any], enclosing: str) -> tuple[str, str]:
    """(full name, namespace) of a named type definition, as the Avro specification resolves them."""
    name = node.get("name")
    if not isinstance(name, str) or not name:
        raise _SchemaError(f"a {node.get('type')} type has no name")
    if "." in name:
        return name, name.rsplit(".", 1)[0]
    namespace = node.get("namespace", enclosing)
    namespace = namespace if isinstance(namespace, str) else enclosing
    return (f"{namespace}.{name}" if namespace else name), namespace


def _record_fields(node: Mapping[str, Any]) -> dict[str, Any]:
    fields = node.get("fields")
    if not isinstance(fields, list):
        raise _SchemaError(f"record {node.get('name')} has no field list")
    out: dict[str, Any] = {}
    for item in fields:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or "type" not in item:
            raise _SchemaError(f"record {node.get('name')} has a field without a name or a type")
        out.setdefault(item["name"], item["type"])
    return out


@dataclass
class _Found:
    leaves: list[_Type]
    # A null (or an absent map key) somewhere on the way: the mapped field can be missing.
    nullable: bool = False
    via_map: bool = False
    notes: list[str] = field(default_factory=list)


class _Schema:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self._named: dict[str, _Type] = {}
        self._by_short: dict[str, list[str]] = {}
        self._index(root, "")
        resolved = self.resolve(root, "")
        if resolved is None or resolved.category != "record":
            shown = "null" if resolved is None else resolved.describe()
            raise _SchemaError(f"the top-level type must be a record (got {shown})")
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
        if kind in _NAMED:
            full, namespace = _full_name(node, enclosing)
            if full not in self._named:
                self._named[full] = _Type(node, namespace)
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

    def _lookup(self, name: str, enclosing: str) -> _Type:
        candidates = [name] if "." in name else ([f"{enclosing}.{name}"] if enclosing else []) + [name]
        for candidate in candidates:
            if candidate in self._named:
                return self._named[candidate]
        # Lenient where a reader would be strict, so a namespace slip is not reported as a
        # missing type: the check is about the mapping, not about schema hygiene.
        short = self._by_short.get(name.rsplit(".", 1)[-1], [])
        if len(short) == 1:
            return self._named[short[0]]
        raise _SchemaError(f"type {name!r} is used but not defined")

    def resolve(self, node: Any, enclosing: str) -> _Type | None:
        """A non-union type node → its definition; None for null."""
        if isinstance(node, str):
            if node == "null":
                return None
            if node in _PRIMITIVES:
                return _Type(node, enclosing)
            return self._lookup(node, enclosing)
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "null":
                return None
            if kind in _NAMED:
                return _Type(node, _full_name(node, enclosing)[1])
            if kind in _COMPLEX or kind in _PRIMITIVES:
                return _Type(node, enclosing)
            if isinstance(kind, str | dict):
                return self.resolve(kind, enclosing)
        raise _SchemaError(f"malformed type {str(node)[:80]}")

    def branches(self, node: Any, enclosing: str) -> tuple[list[_Type], bool]:
        """The non-null types a value of `node` can have, and whether it can be null."""
        members = node if isinstance(node, list) else [node]
        types: list[_Type] = []
        nullable = False
        for member in members:
            resolved = self.resolve(member, enclosing)
            if resolved is None:
                nullable = True
            else:
                types.append(resolved)
        return types, nullable

    def walk(self, path: tuple[str, ...]) -> _Found | str:
        """The types at `path` (record fields, map values), or why the path does not exist."""
        found = _Found([self.root])
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
                    hint = _suggest(step, names)
                    return f"source path {full!r} not found: {where} has no field {step!r}{hint}"
                return f"source path {full!r}: {here!r} is {_a(others[0])}, not a record"
            if others:
                found.notes.append(
                    f"source path {full!r}: {here!r} can also be {', '.join(others)}; "
                    "such records will be dead-lettered at MAP"
                )
            leaves: list[_Type] = []
            for node, namespace in targets:
                types, nullable = self.branches(node, namespace)
                leaves.extend(types)
                found.nullable = found.nullable or nullable
            found.leaves = leaves
        return found


def _a(text: str) -> str:
    return f"an {text}" if text[:1] in "aeiou" else f"a {text}"


def _suggest(name: str, names: Iterable[str]) -> str:
    unique = list(dict.fromkeys(names))
    close = difflib.get_close_matches(name, unique, n=3, cutoff=0.6)
    if close:
        return f" (did you mean {', '.join(close)}?)"
    if not unique:
        return ""
    shown = ", ".join(unique[:8]) + (", ..." if len(unique) > 8 else "")
    return f" (fields there: {shown})"


# --------------------------------------------------------------------------------------------
# Source type → target kind

_STRING_OK: Final = frozenset({"string", "enum", "uuid", "int", "long"})
_ACCEPTS: Final[dict[FieldKind, frozenset[str]]] = {
    FieldKind.STRING: _STRING_OK,
    FieldKind.NUMBER: frozenset({"int", "long", "float", "double", "decimal"}),
    FieldKind.INTEGER: frozenset({"int", "long"}),
    FieldKind.BOOLEAN: frozenset({"boolean"}),
    FieldKind.DATETIME: frozenset({"timestamp"}),
    FieldKind.DATE: frozenset({"date"}),
    FieldKind.OBJECT: frozenset({"record", "map", "string"}),
}
_STRING_FORMAT: Final = "format checked at run time"


def _judge(source: str, leaf: _Type, kind: FieldKind | None) -> tuple[Level, str] | None:
    """None when values of `leaf` become valid `kind` values; else how bad it is and why."""
    category = leaf.category
    described = leaf.describe()
    if category in ("bytes", "fixed"):
        return "error", f"source {source} has type {described}: bytes cannot be sent as JSON"
    if kind is None or category in _ACCEPTS[kind]:
        return None
    if kind is FieldKind.INTEGER and category == "decimal" and leaf.decimal_scale == 0:
        return None
    if kind is FieldKind.STRING and category in ("date", "time", "timestamp"):
        return "warning", f"source {source} has type {described}; it is sent as ISO-8601 text"
    if kind in (FieldKind.DATETIME, FieldKind.DATE) and category == "string":
        what = "date-time (2024-01-15T10:30:00Z)" if kind is FieldKind.DATETIME else "date (YYYY-MM-DD)"
        return "warning", f"source {source} is a string: it must be an ISO-8601 UTC {what}; {_STRING_FORMAT}"
    if kind is FieldKind.OBJECT and category == "array":
        # The API wants a JSON object: an array fails validation for every record.
        return "error", f"source {source} has type array, which is not compatible with object (a JSON object)"
    return "error", f"source {source} has type {described}, which is not compatible with {kind.value}"


def _judge_all(source: str, leaves: list[_Type], kind: FieldKind | None) -> list[tuple[Level, str]]:
    verdicts = [_judge(source, leaf, kind) for leaf in leaves]
    problems = [v for v in verdicts if v is not None]
    errors = [message for level, message in problems if level == "error"]
    if errors and len(errors) < len(leaves):
        # A union with some good branches: only records holding a bad branch fail.
        out: list[tuple[Level, str]] = [
            ("warning", f"{message} (a union branch; such records will be dead-lettered)")
            for message in errors
        ]
        return out + [(level, message) for level, message in problems if level == "warning"]
    return list(dict.fromkeys(problems))


# --------------------------------------------------------------------------------------------
# The check


class _Issues:
    def __init__(self) -> None:
        self.items: list[CheckIssue] = []

    def error(self, field_name: str, message: str) -> None:
        self.items.append(CheckIssue("error", field_name, message))

    def warning(self, field_name: str, message: str) -> None:
        self.items.append(CheckIssue("warning", field_name, message))

    def add(self, level: Level, field_name: str, message: str) -> None:
        self.items.append(CheckIssue(level, field_name, message))


def _not_in_model(name: str, model: Model) -> str:
    return f"not a model field; passed through as is{_suggest_field(name, model)}"


def _suggest_field(name: str, model: Model) -> str:
    close = difflib.get_close_matches(name, list(model.fields), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_fields(m: MappingSettings, model: Model, schema: _Schema | None, issues: _Issues) -> None:
    for target, source in m.fields.items():
        spec = model.fields.get(target)
        if spec is None:
            issues.warning(target, _not_in_model(target, model))
        if target == "event_category" and model.category is not None:
            issues.warning(
                target,
                f"{m.endpoint} records must have event_category {model.category!r}; "
                "other values will be dead-lettered at VALIDATE",
            )
        try:
            path = split_path(target, source)
        except MappingError as exc:
            issues.error(target, exc.message)
            continue
        if schema is None:
            continue
        found = schema.walk(path)
        if isinstance(found, str):
            issues.error(target, found)
            continue
        for note in found.notes:
            issues.warning(target, note)
        if not found.leaves:
            level: Level = "error" if spec is not None and spec.required else "warning"
            issues.add(level, target, f"source {source} is always null")
            continue
        for level, message in _judge_all(source, found.leaves, spec.kind if spec else None):
            issues.add(level, target, message)
        if spec is not None and spec.required and (found.nullable or found.via_map):
            why = "is nullable" if found.nullable else "reads a map key that may be missing"
            issues.warning(target, f"source {source} {why}: null values will be dead-lettered at VALIDATE")


def _check_constants(m: MappingSettings, model: Model, issues: _Issues) -> None:
    for target, value in m.constants.items():
        spec = model.fields.get(target)
        if spec is None:
            issues.warning(target, _not_in_model(target, model))
        if value is None:
            issues.warning(target, "the constant is null: the field is left out of every record")
            continue
        try:
            converted = to_json_value(value, spec.kind if spec else None, target)
        except MappingError as exc:
            issues.error(target, f"constant: {exc.message}")
            continue
        if spec is None:
            continue
        for problem in validate_record(m.endpoint, {target: converted}):
            if problem.field == target:
                issues.error(target, f"constant: {problem.message}")


def _derived_from(name: str, model: Model) -> str | None:
    if name in ("account_id", "workspace_id"):
        return "the destination"
    if name == "event_category" and model.category is not None:
        return f"the endpoint ({model.category!r})"
    return None


def _check_sources(m: MappingSettings, model: Model, schema: _Schema | None, issues: _Issues) -> None:
    """Required fields must come from somewhere; copied fields must fit."""
    for name, spec in model.fields.items():
        if name in m.fields:
            continue
        if name in m.constants:
            if m.constants[name] is None and spec.required:
                issues.error(name, f"required field {name} is left out: its constant is null")
            continue
        derived = _derived_from(name, model)
        if derived is not None:
            if m.copy_matching and schema is not None and name in schema.top_fields:
                issues.warning(
                    name,
                    f"source field {name} is not copied: {name} comes from {derived}; "
                    "map it in `fields` to send the source value",
                )
            continue
        if m.copy_matching and schema is None:
            if spec.required:
                issues.warning(
                    name,
                    f"required field {name} is expected from the source field of the same name "
                    "(copy_matching); unchecked without a schema",
                )
            continue
        if m.copy_matching and schema is not None and name in schema.top_fields:
            _check_copied(name, spec.required, spec.kind, schema, issues)
            continue
        if spec.required:
            issues.error(name, _missing(name, m, model, schema))


def _check_copied(name: str, required: bool, kind: FieldKind, schema: _Schema, issues: _Issues) -> None:
    # Not asked for explicitly, so a mismatch is a warning: the user may not even know it is copied.
    leaves, nullable = schema.branches(schema.top_fields[name], schema.root.namespace)
    if not leaves:
        issues.warning(name, f"copied from source field {name}, which is always null")
        return
    for _, message in _judge_all(name, leaves, kind):
        issues.warning(name, f"copied (copy_matching): {message}")
    if required and nullable:
        issues.warning(
            name,
            f"copied from source field {name}, which is nullable: "
            "null values will be dead-lettered at VALIDATE",
        )


def _missing(name: str, m: MappingSettings, model: Model, schema: _Schema | None) -> str:
    if name == "event_category":
        return (
            f"required field event_category is not mapped: {m.endpoint} has no fixed category; "
            "map it in `fields` or set it in `constants`"
        )
    message = f"required field {name} is not mapped: add it to `fields` (a source path) or `constants`"
    if m.copy_matching and schema is not None:
        message += f"; the schema has no top-level field {name!r}{_suggest(name, schema.top_fields)}"
    return message


def check_mapping(m: MappingSettings, schema: Mapping[str, Any] | None, schema_source: str) -> CheckResult:
    """Check `m` against the Avro `schema` (JSON form; None when none is available offline)."""
    model = MODELS[m.endpoint]
    issues = _Issues()
    parsed: _Schema | None = None
    if schema is None:
        issues.warning("", "no schema available: source paths and types are not checked")
    else:
        try:
            parsed = _Schema(schema)
        except _SchemaError as exc:
            issues.error("", f"schema: {exc}")
    _check_constants(m, model, issues)
    try:
        _check_fields(m, model, parsed, issues)
        _check_sources(m, model, parsed, issues)
    except _SchemaError as exc:
        # A broken part of the schema that only a path walk reaches (an undefined type name).
        issues.error("", f"schema: {exc}")
    return CheckResult(m.topic, m.endpoint, schema_source, tuple(issues.items))
