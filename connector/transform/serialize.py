"""The serialization part of a compiled transform: orjson straight away where that is provably safe.

`connector.ingest.fastjson.dumps_bytes` walks every record to decide whether orjson's bytes are
JSON.stringify's. Here most of that is decided once from the fields' `Value`s: strings, booleans
and 32-bit ints are always safe, fixed values are compared once, and only numbers that may be
integral, tiny or beyond 2**53 are tested per record. Anything else (nested values, keys starting
with a digit) sends the record through `dumps_bytes`, as does a lone surrogate (orjson refuses it).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from connector.ingest.fastjson import dumps_bytes
from connector.transform.fields import FieldCode, Value
from connector.transform.source import Source

__all__ = ["SERIALIZE_NAMES", "emit_serialize", "float_is_plain", "number_is_plain"]

_MAX_SAFE: Final = 2**53
_DIGITS: Final = "0123456789"


def float_is_plain(value: float) -> bool:
    """Whether orjson writes finite `value` as JSON.stringify does (see connector.ingest.fastjson)."""
    return not value.is_integer() and not 1e-6 <= abs(value) < 1e-5


def number_is_plain(value: int | float) -> bool:
    if type(value) is int:
        return -_MAX_SAFE <= value <= _MAX_SAFE
    return float_is_plain(value)


SERIALIZE_NAMES: Final[dict[str, Any]] = {
    "orjson_dumps": orjson.dumps,
    "dumps_bytes": dumps_bytes,
    "float_is_plain": float_is_plain,
    "number_is_plain": number_is_plain,
    "MAX_SAFE": _MAX_SAFE,
}

_ALWAYS_PLAIN: Final = frozenset(
    {Value.STR, Value.NONBLANK_STR, Value.ISO_DATETIME, Value.ISO_DATE, Value.BOOL, Value.SMALL_INT}
)


def _fixed_is_plain(value: Any) -> bool:
    try:
        return bool(orjson.dumps(value) == dumps_bytes(value))
    except (TypeError, ValueError):
        return False


def _condition(field: FieldCode) -> str | None:
    """A test that the field's value is safe for orjson; "" when it always is; None: never."""
    if not field.var:
        return "" if _fixed_is_plain(field.fixed) else None
    var = field.var
    if field.value in _ALWAYS_PLAIN:
        return ""
    if field.value is Value.INT:
        test = f"-MAX_SAFE <= {var} <= MAX_SAFE"
    elif field.value is Value.FLOAT:
        test = f"float_is_plain({var})"
    elif field.value in (Value.NUMBER, Value.BIG_NUMBER):
        test = f"number_is_plain({var})"
    else:
        test = ""
    if not test:  # a nested or unknown value: safe only when it is left out
        return f"{var} is None" if field.maybe_absent else None
    return f"({var} is None or {test})" if field.maybe_absent else test


def emit_serialize(fields: list[FieldCode], src: Source, indent: int) -> None:
    """Emit the code that returns the body of `out`."""
    conditions: list[str] = []
    for field in fields:
        if field.name[:1] in _DIGITS:  # JavaScript puts array-index keys first
            conditions = ["False"]
            break
        condition = _condition(field)
        if condition is None:
            conditions = ["False"]
            break
        if condition:
            conditions.append(condition)
    if conditions != ["False"]:
        if conditions:
            src.add(indent, f"if {' and '.join(conditions)}:")
            indent += 1
        src.add(indent, "try:")
        src.add(indent + 1, "return orjson_dumps(out)")
        src.add(indent, "except TypeError:  # a lone surrogate: jsjson escapes it")
        src.add(indent + 1, "pass")
        indent -= 1 if conditions else 0
    src.add(indent, "return dumps_bytes(out)")
