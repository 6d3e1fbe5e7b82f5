"""Avro schemas in their JSON form: loading from files, parsing, names, inlining references.

Everything here works on the schema JSON; fastavro's parsed form only comes out of `parse`.
Avro's name rules (a full name is namespace + name; a definition without a namespace takes the
enclosing one) are written once, in `full_name` and `definition_name`: the decoders, the registry
client and the mapping check must agree on which type a name means.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import fastavro
from fastavro.schema import SchemaParseException

from connector.avro.reasons import shorten
from connector.errors import InvalidSchemaError, SchemaFileError

__all__ = [
    "BUNDLED_SCHEMAS_DIR",
    "NAMED_TYPES",
    "PRIMITIVE_TYPES",
    "InvalidSchemaError",
    "SchemaFileError",
    "definition_name",
    "full_name",
    "inline_references",
    "load_schema",
    "parse",
    "schema_name",
]

BUNDLED_SCHEMAS_DIR: Final = Path(__file__).resolve().parents[1] / "schemas"

PRIMITIVE_TYPES: Final = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_TYPES: Final = frozenset({"record", "error", "enum", "fixed"})


# --------------------------------------------------------------------------------------------
# Names


def full_name(name: str, namespace: str | None) -> str:
    """The full name `name` stands for in `namespace`: a dotted name is full already (Avro spec)."""
    return name if "." in name or not namespace else f"{namespace}.{name}"


def definition_name(node: Mapping[str, Any], enclosing: str = "") -> str:
    """The full name a named type definition (with a string `name`) defines inside `enclosing`.

    Its own `namespace` wins, even an empty one (the null namespace, as fastavro reads it);
    without one, the enclosing namespace applies. The namespace names inside the definition
    resolve against is the full name's prefix: `full.rpartition(".")[0]`.
    """
    namespace = node.get("namespace", enclosing)
    return full_name(node["name"], namespace if isinstance(namespace, str) else enclosing)


def schema_name(schema: Mapping[str, Any]) -> str:
    """The full name of a named schema ("com.operator.events.Bet"), else its type."""
    if not isinstance(schema.get("name"), str):
        return str(schema.get("type", "?"))
    return definition_name(schema)


# --------------------------------------------------------------------------------------------
# Parsing and loading


def _check_structure(node: Any, where: str) -> None:
    """What fastavro lets through but every other Avro implementation rejects."""
    if isinstance(node, list):
        for i, branch in enumerate(node):
            _check_structure(branch, f"{where}[{i}]")
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "error"):
            fields = node.get("fields")
            if not isinstance(fields, list):
                raise InvalidSchemaError(f"{where}: record {node.get('name')!r} needs a `fields` list")
            for field in fields:
                if not isinstance(field, dict) or not isinstance(field.get("name"), str):
                    raise InvalidSchemaError(f"{where}: every field of {node.get('name')!r} needs a name")
                if "type" not in field:
                    raise InvalidSchemaError(f"{where}.{field['name']}: field has no `type`")
                _check_structure(field["type"], f"{where}.{field['name']}")
        elif kind == "array":
            _check_structure(node.get("items"), f"{where}[]")
        elif kind == "map":
            _check_structure(node.get("values"), f"{where}{{}}")
        elif isinstance(kind, dict | list):
            _check_structure(kind, where)


def parse(schema: Mapping[str, Any]) -> Any:
    """fastavro.parse_schema, with every failure as InvalidSchemaError (a ValueError)."""
    plain = dict(schema)
    _check_structure(plain, "schema")
    try:
        return fastavro.parse_schema(plain)
    except (SchemaParseException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidSchemaError(shorten(exc) or type(exc).__name__) from None


def _schema_candidates(ref: str, base_dirs: Sequence[Path]) -> list[Path]:
    path = Path(ref).expanduser()
    if path.is_absolute():
        return [path]
    roots = [*base_dirs, Path.cwd()]
    candidates = [root / path for root in roots]
    if len(path.parts) == 1:  # a bare name: "bet" or "bet.avsc"
        file_name = path.name if path.suffix == ".avsc" else f"{path.name}.avsc"
        candidates += [root / "schemas" / file_name for root in roots]
        candidates.append(BUNDLED_SCHEMAS_DIR / file_name)
    return candidates


def load_schema(ref: str, base_dirs: Sequence[Path] = ()) -> dict[str, Any]:
    """Find, read and check an Avro schema file; returns the JSON (not parsed).

    Lookup: `ref` as a path (absolute, or relative to each of `base_dirs`, then the working
    directory); for a bare name ("bet", "bet.avsc"), `schemas/<name>.avsc` under the same roots,
    then the copy bundled with the package.
    """
    if not ref or not ref.strip():
        raise SchemaFileError("schema reference is empty")
    candidates = _schema_candidates(ref, base_dirs)
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        tried = ", ".join(dict.fromkeys(str(p) for p in candidates))
        raise SchemaFileError(f"schema {ref!r}: file not found (looked at {tried})")
    try:
        text = found.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SchemaFileError(f"schema {ref!r}: cannot read {found} ({reason})") from None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaFileError(
            f"schema {ref!r}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
        raise SchemaFileError(
            f"schema {ref!r}: must be an Avro record schema (a JSON object with type record)"
        )
    try:
        parse(schema)
    except InvalidSchemaError as exc:
        raise SchemaFileError(f"schema {ref!r}: invalid Avro schema: {exc}") from None
    return schema


# --------------------------------------------------------------------------------------------
# Schema references (Confluent 5.5+): inline the referenced named types so every schema handed
# out is self-contained, which is what fastavro and the mapping checks need.


def inline_references(schema: Any, definitions: Mapping[str, Any]) -> Any:
    """`schema` with each name of `definitions` (full or short) replaced by its definition, once."""
    defined: set[str] = set()

    def walk(node: Any, namespace: str) -> Any:
        if isinstance(node, str):
            if node in PRIMITIVE_TYPES:
                return node
            full = full_name(node, namespace)
            if full in defined or node in defined:
                return node
            definition = definitions.get(full, definitions.get(node))
            if definition is None or not isinstance(definition, dict):
                return node
            # Pin its namespace: inlined into another namespace, a short name would change meaning.
            pinned = dict(definition)
            own = schema_name(pinned)
            pinned["namespace"] = own.rpartition(".")[0]
            pinned["name"] = own.rpartition(".")[2]
            return walk(pinned, namespace)
        if isinstance(node, list):
            return [walk(branch, namespace) for branch in node]
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        out = dict(node)
        if kind in NAMED_TYPES and isinstance(node.get("name"), str):
            full = definition_name(node, namespace)
            if full in defined:  # a shared type reached twice through different references
                return full
            defined.add(full)
            inner_ns = full.rpartition(".")[0]
            if kind in ("record", "error") and isinstance(node.get("fields"), list):
                out["fields"] = [
                    {**f, "type": walk(f.get("type"), inner_ns)} if isinstance(f, dict) else f
                    for f in node["fields"]
                ]
            return out
        if kind == "array":
            out["items"] = walk(node.get("items"), namespace)
        elif kind == "map":
            out["values"] = walk(node.get("values"), namespace)
        elif isinstance(kind, dict | list):
            out["type"] = walk(kind, namespace)
        return out

    return walk(schema, "")
