"""Top-level fields read without their logical type: the writer schema the raw read uses.

fastavro's logical-type conversions (a Decimal, a datetime) cost more than reading several plain
fields, and the mapping then turns their result into a JSON number or string anyway. For a
top-level field the transform reads directly, the compiled transform has fastavro read the
underlying bytes or long instead (the field's logicalType removed from the writer schema) and
computes the mapped value itself (connector.transform.rawdecimal, connector.transform.rawtime).
A payload whose value the raw conversion refuses goes to the reference transform whole, so the
record gets the reference's result, dead-letter reason included.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import Any

from connector.mapping.compiled import PlanStep
from connector.transform.shapes import Kind, Shape, TopShapes

__all__ = ["direct_fields", "logical_branch", "strip_logical"]


def direct_fields(steps: tuple[PlanStep, ...]) -> set[str]:
    """Top-level fields that steps read whole, and that no step reads into."""
    used_directly = {s.path[0] for s in steps if s.path is not None and len(s.path) == 1}
    used_deeper = {s.path[0] for s in steps if s.path is not None and len(s.path) > 1}
    return used_directly - used_deeper


def logical_branch(node: Any, logical_types: Collection[str]) -> dict[str, Any] | None:
    """The type of a field (or its one branch besides null) when it has one of `logical_types`."""
    branches = node if isinstance(node, list) else [node]
    found = [b for b in branches if isinstance(b, dict) and b.get("logicalType") in logical_types]
    return found[0] if len(found) == 1 else None


def strip_logical(writer: Mapping[str, Any], kinds: Mapping[str, Kind], shapes: TopShapes) -> dict[str, Any]:
    """A copy of the writer schema whose fields named in `kinds` read without their logical type;
    their shapes in `shapes` become those kinds (what the transform computes from the raw value)."""
    stripped = copy.deepcopy(dict(writer))
    for field in stripped["fields"]:
        kind = kinds.get(field["name"])
        if kind is not None:
            # Rebuilt, not edited: a schema built in Python may share one type dict between fields.
            field["type"] = _without_logical(field["type"])
            nullable = shapes.fields[field["name"]].nullable
            shapes.fields[field["name"]] = Shape(kind, nullable=nullable)
    return stripped


def _without_logical(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_logical(branch) for branch in node]
    if isinstance(node, dict) and "logicalType" in node:
        return {key: value for key, value in node.items() if key != "logicalType"}
    return node
