"""The static `check` of one mapping against its Avro schema and the endpoint's record model.

It answers, before any record flows, the questions whose runtime answer would be "every record
goes to the dead-letter topic": is every required field fed from somewhere, do the source paths
exist, and can the source types become what the model wants. Errors are mappings that cannot
work; warnings are mappings that work for some records only, or do something surprising.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from connector.config.settings import MappingSettings
from connector.errors import MappingError, SchemaError
from connector.ingest.models import MODELS, FieldKind, Model
from connector.ingest.validation import validate_record
from connector.mapping.compiled import split_path, to_json_value
from connector.mapping.precedence import Source, derived_fields, field_source
from connector.mapping.schema_paths import SourceSchema, SourceType, suggest

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

    def headline(self, *, with_field: bool = True) -> str:
        """The first error (`field: message`), and how many more: one line for a log or an exit."""
        errors = self.errors
        if not errors:
            return "ok"
        first = errors[0]
        more = f" (and {len(errors) - 1} more error(s); `check` lists them)" if len(errors) > 1 else ""
        return (f"{first.field}: " if first.field and with_field else "") + first.message + more


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


def _judge(source: str, leaf: SourceType, kind: FieldKind | None) -> tuple[Level, str] | None:
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


def _judge_all(source: str, leaves: list[SourceType], kind: FieldKind | None) -> list[tuple[Level, str]]:
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


def _check_fields(m: MappingSettings, model: Model, schema: SourceSchema | None, issues: _Issues) -> None:
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


def _derived_from(name: str, model: Model) -> str:
    if name == "event_category":
        return f"the endpoint ({model.category!r})"
    return "the destination"


def _check_sources(m: MappingSettings, model: Model, schema: SourceSchema | None, issues: _Issues) -> None:
    """Required fields must come from somewhere; copied fields must fit."""
    derived = derived_fields(model)
    for name, spec in model.fields.items():
        source = field_source(
            name, fields=m.fields, constants=m.constants, derived=derived, copy_matching=m.copy_matching
        )
        if source is Source.LEFT_OUT and spec.required:
            issues.error(name, f"required field {name} is left out: its constant is null")
        elif source is Source.DERIVED:
            if m.copy_matching and schema is not None and name in schema.top_fields:
                issues.warning(
                    name,
                    f"source field {name} is not copied: {name} comes from {_derived_from(name, model)}; "
                    "map it in `fields` to send the source value",
                )
        elif source is Source.COPY and schema is None:
            if spec.required:
                issues.warning(
                    name,
                    f"required field {name} is expected from the source field of the same name "
                    "(copy_matching); unchecked without a schema",
                )
        elif source is Source.COPY and schema is not None and name in schema.top_fields:
            _check_copied(name, spec.required, spec.kind, schema, issues)
        elif source in (Source.COPY, Source.NONE) and spec.required:
            issues.error(name, _missing(name, m, model, schema))


def _check_copied(name: str, required: bool, kind: FieldKind, schema: SourceSchema, issues: _Issues) -> None:
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


def _missing(name: str, m: MappingSettings, model: Model, schema: SourceSchema | None) -> str:
    if name == "event_category":
        return (
            f"required field event_category is not mapped: {m.endpoint} has no fixed category; "
            "map it in `fields` or set it in `constants`"
        )
    message = f"required field {name} is not mapped: add it to `fields` (a source path) or `constants`"
    if m.copy_matching and schema is not None:
        message += f"; the schema has no top-level field {name!r}{suggest(name, schema.top_fields)}"
    return message


def check_mapping(m: MappingSettings, schema: Mapping[str, Any] | None, schema_source: str) -> CheckResult:
    """Check `m` against the Avro `schema` (JSON form; None when none is available offline)."""
    model = MODELS[m.endpoint]
    issues = _Issues()
    parsed: SourceSchema | None = None
    if schema is None:
        issues.warning("", "no schema available: source paths and types are not checked")
    else:
        try:
            parsed = SourceSchema(schema)
        except SchemaError as exc:
            issues.error("", f"schema: {exc}")
    _check_constants(m, model, issues)
    try:
        _check_fields(m, model, parsed, issues)
        _check_sources(m, model, parsed, issues)
    except SchemaError as exc:
        # A broken part of the schema that only a path walk reaches (an undefined type name).
        issues.error("", f"schema: {exc}")
    return CheckResult(m.topic, m.endpoint, schema_source, tuple(issues.items))
