"""The serialization part of a compiled transform: orjson straight away where that is provably safe.

`connector.ingest.fastjson.dumps_bytes` walks every record to decide whether orjson's bytes are
JSON.stringify's. Here most of that is decided once from the fields' `Value`s: strings, booleans
and 32-bit ints are always safe, fixed values are compared once, and only numbers that may be
integral, tiny or beyond 2**53 are tested per record. Anything else (nested values, keys starting
with a digit) sends the record through `dumps_bytes`, as does a lone surrogate (orjson refuses it).

Integral doubles are common (a win of 20.0, a balance of 0.0) and orjson writes `20.0` where
JavaScript writes `20`. Rather than sending every such record through `dumps_bytes`, a record that
fails the test has its integral doubles within 2**53 replaced by ints (JavaScript prints them the
same way, and so does jsjson) and is tested again.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from connector.ingest.fastjson import dumps_bytes
from connector.transform.fields import FieldCode, Value
from connector.transform.source import Source, literal

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


_DOUBLES: Final = frozenset({Value.FLOAT, Value.NUMBER, Value.BIG_NUMBER})


def _condition(field: FieldCode, ints_too: bool = False) -> str | None:
    """A test that the field's value is safe for orjson; "" when it always is; None: never.
    `ints_too`: a FLOAT field may hold an int (an integral double replaced)."""
    if not field.var:
        return "" if _fixed_is_plain(field.fixed) else None
    var = field.var
    if field.value in _ALWAYS_PLAIN:
        return ""
    if field.value is Value.INT:
        test = f"-MAX_SAFE <= {var} <= MAX_SAFE"
    elif field.value is Value.FLOAT and not ints_too:
        test = f"float_is_plain({var})"
    elif field.value in _DOUBLES:
        test = f"number_is_plain({var})"
    else:
        test = ""
    if not test:  # a nested or unknown value: safe only when it is left out
        return f"{var} is None" if field.maybe_absent else None
    return f"({var} is None or {test})" if field.maybe_absent else test


def emit_serialize(fields: list[FieldCode], src: Source, indent: int) -> None:
    """Emit the code that returns the body of `out`."""
    conditions = _conditions(fields)
    if conditions is not None:
        _emit_orjson(conditions, src, indent)
        doubles = [f for f in fields if f.var and f.value in _DOUBLES]
        if conditions and doubles:
            for field in doubles:
                var = field.var
                src.add(
                    indent,
                    f"if type({var}) is float and {var}.is_integer() and -MAX_SAFE <= {var} <= MAX_SAFE: "
                    f"out[{literal(field.name)}] = {var} = int({var})",
                )
            retry = _conditions(fields, ints_too=True)
            assert retry is not None  # the same fields, only FLOAT tested more widely
            _emit_orjson(retry, src, indent)
    src.add(indent, "return dumps_bytes(out)")


def _conditions(fields: list[FieldCode], ints_too: bool = False) -> list[str] | None:
    """The per-record tests under which orjson's bytes are JavaScript's; None: never."""
    conditions: list[str] = []
    for field in fields:
        if field.name[:1] in _DIGITS:  # JavaScript puts array-index keys first
            return None
        condition = _condition(field, ints_too)
        if condition is None:
            return None
        if condition:
            conditions.append(condition)
    return conditions


def _emit_orjson(conditions: list[str], src: Source, indent: int) -> None:
    if conditions:
        src.add(indent, f"if {' and '.join(conditions)}:")
        indent += 1
    src.add(indent, "try:")
    src.add(indent + 1, "return orjson_dumps(out)")
    src.add(indent, "except TypeError:  # a lone surrogate: jsjson escapes it")
    src.add(indent + 1, "pass")
