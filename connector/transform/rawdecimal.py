"""Decimal fields read as their raw bytes, and turned into JSON numbers without a Decimal.

fastavro builds a Decimal for each decimal field (a context change, `create_decimal`, `scaleb`),
which costs more than reading several other fields, and the mapping then turns it into an int or
a float. For a top-level decimal the transform reads directly, we have fastavro read the bytes
instead (connector.transform.rawread) and compute the same number from the unscaled integer.
That is exact only while the unscaled value fits the declared precision (then fastavro rounds
nothing); otherwise `decimal_number` raises ValueError and the transform
hands the payload to the reference, as it does for any payload the raw read refuses: the
reference then gives the record's real result (a DecodeError reason names the first problem in
reading order, which the raw read may not have reached).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from connector.mapping.compiled import PlanStep
from connector.transform.rawread import direct_fields, logical_branch
from connector.transform.shapes import Kind, TopShapes

__all__ = ["decimal_number", "raw_decimals"]

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


def raw_decimals(
    writer: Mapping[str, Any], steps: tuple[PlanStep, ...], shapes: TopShapes
) -> dict[str, tuple[int, int]]:
    """Top-level decimal fields that only direct reads use → (10**precision, 10**scale)."""
    direct = direct_fields(steps)
    out: dict[str, tuple[int, int]] = {}
    for field in writer.get("fields", ()):
        name = field.get("name")
        shape = shapes.fields.get(name)
        if name not in direct or shape is None:
            continue
        node = logical_branch(field.get("type"), ("decimal",))
        if node is None or node.get("type") != "bytes":  # fixed decimals stay with fastavro
            continue
        if shape.kind is Kind.DECIMAL and shape.digits <= _MAX_DIGITS:
            out[name] = (10 ** node["precision"], 10 ** node.get("scale", 0))
    return out
