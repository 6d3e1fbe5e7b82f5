"""Decimal fields read as their raw bytes, and turned into JSON numbers without a Decimal.

fastavro builds a Decimal for each decimal field (a context change, `create_decimal`, `scaleb`),
which costs more than reading several other fields, and the mapping then turns it into an int or
a float. For a top-level decimal the transform reads directly, we have fastavro read the bytes
instead (the field's logicalType removed from the writer schema) and compute the same number from
the unscaled integer. That is exact only while the unscaled value fits the declared precision
(then fastavro rounds nothing); otherwise `decimal_number` raises ValueError and the transform
hands the payload to the reference, as it does for any payload the raw read refuses: the
reference then gives the record's real result (a DecodeError reason names the first problem in
reading order, which the raw read may not have reached).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from connector.mapping.compiled import PlanStep
from connector.transform.shapes import Kind, Shape, TopShapes

__all__ = ["decimal_number", "raw_decimals", "strip_decimals"]

# Beyond this many digits before the point a decimal may exceed the largest double, which the
# reference reports as a MappingError; those stay with fastavro and the general conversion.
_MAX_DIGITS: Final = 300


def decimal_number(raw: bytes, limit: int, unit: int) -> int | float:
    """`to_json_value` of the Decimal fastavro reads from `raw`, for `limit` = 10**precision and
    `unit` = 10**scale. Both int / int and float(Decimal) round correctly, so they agree."""
    unscaled = int.from_bytes(raw, "big", signed=True)
    if not -limit < unscaled < limit:
        raise ValueError("more digits than the precision: fastavro would round them")
    if unscaled % unit == 0:
        return unscaled // unit
    return unscaled / unit


def _decimal_node(node: Any) -> dict[str, Any] | None:
    """The bytes-decimal type of a top-level field (or of its one non-null branch), else None."""
    branches = node if isinstance(node, list) else [node]
    found = [b for b in branches if isinstance(b, dict) and b.get("logicalType") == "decimal"]
    if len(found) == 1 and found[0].get("type") == "bytes":
        return found[0]
    return None


def raw_decimals(
    writer: Mapping[str, Any], steps: tuple[PlanStep, ...], shapes: TopShapes
) -> dict[str, tuple[int, int]]:
    """Top-level decimal fields that only direct reads use → (10**precision, 10**scale)."""
    used_directly = {s.path[0] for s in steps if s.path is not None and len(s.path) == 1}
    used_deeper = {s.path[0] for s in steps if s.path is not None and len(s.path) > 1}
    out: dict[str, tuple[int, int]] = {}
    for field in writer.get("fields", ()):
        name = field.get("name")
        shape = shapes.fields.get(name)
        if name not in used_directly or name in used_deeper or shape is None:
            continue
        node = _decimal_node(field.get("type"))
        if shape.kind is Kind.DECIMAL and shape.digits <= _MAX_DIGITS and node is not None:
            out[name] = (10 ** node["precision"], 10 ** node.get("scale", 0))
    return out


def strip_decimals(
    writer: Mapping[str, Any], names: Mapping[str, object], shapes: TopShapes
) -> dict[str, Any]:
    """A copy of the writer schema whose fields `names` read as plain bytes; their shapes in
    `shapes` become the JSON numbers the transform computes from them."""
    stripped = copy.deepcopy(dict(writer))
    for field in stripped["fields"]:
        if field["name"] in names:
            # Rebuilt, not edited: a schema built in Python may share one type dict between fields.
            field["type"] = _without_decimal(field["type"])
            nullable = shapes.fields[field["name"]].nullable
            shapes.fields[field["name"]] = Shape(Kind.JSON_NUMBER, nullable=nullable)
    return stripped


def _without_decimal(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_decimal(branch) for branch in node]
    if isinstance(node, dict) and node.get("logicalType") == "decimal":
        return {key: value for key, value in node.items() if key != "logicalType"}
    return node
