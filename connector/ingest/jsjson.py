"""A serializer whose output is byte-identical to JavaScript's ``JSON.stringify``.

The request body is signed, and some ingest servers re-parse and re-stringify the body before
checking the signature, so "valid JSON" is not enough: key order, number formatting and string
escaping must match what V8 produces for the same data (docs/ingest-api.md, "Body
serialization").

Where Python and JavaScript differ:

* Numbers: JavaScript has one number type (a double). Integral values print without ``.0``,
  exponent form starts at 1e21 and below 1e-6 (``1e+21``, ``1.5e-7``), ``-0`` prints ``0``, and
  integers beyond 2**53 print the shortest digits of the nearest double padded with zeros.
* Key order: own property keys that are array indices ("0", "17", not "01" or "-1") are
  enumerated first in ascending numeric order, then the other keys in insertion order.
* Strings: JavaScript strings are UTF-16. Two Python code points forming a surrogate pair are
  one character there; lone surrogates are written as ``\\udxxx`` escapes (ES2019 well-formed
  stringify), which also keeps the body valid UTF-8.
"""

from __future__ import annotations

import math
import re
from json.encoder import encode_basestring
from typing import Final

from connector.errors import NonFiniteNumberError

__all__ = ["NonFiniteNumberError", "dumps", "dumps_bytes", "format_number"]


# Integers up to this magnitude are exact doubles, so their decimal text is what JavaScript prints.
_MAX_SAFE: Final = 2**53
# ECMAScript array indices are 0 .. 2**32 - 2; "4294967295" is an ordinary string key.
_MAX_ARRAY_INDEX: Final = 2**32 - 2
_ARRAY_INDEX_RE: Final = re.compile(r"0|[1-9][0-9]{0,9}", re.ASCII)
_DIGITS: Final = frozenset("0123456789")
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
_SURROGATE_PAIR_RE: Final = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_IDENTIFIER_RE: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

# Records in a batch share their field names, so the encoded ',"name":' prefix is looked up
# instead of re-escaped; only keys that are not array indices are cached. The bound keeps
# free-form keys (custom_data and the like) from growing it without limit.
_KEY_CACHE: dict[object, str] = {}
_KEY_CACHE_MAX: Final = 4096


class _Unsupported(Exception):
    """Raised on the hot path without location; dumps() then walks the value to name the path."""


def dumps(value: object) -> str:
    """Return exactly what ``JSON.stringify(value)`` returns in JavaScript for the same data.

    Accepts dict (str keys), list, tuple, str, int, float, bool and None. Raises
    NonFiniteNumberError for NaN/±Infinity and TypeError for anything else; both name the path
    (``records[3].amount`` for a list, ``record.amount`` for a dict) and never the offending
    value, which may be personal data.
    """
    out: list[str] = []
    try:
        _encode(value, out)
    except _Unsupported:
        raise _locate_error(value) from None
    except RecursionError:
        raise ValueError("value is nested too deeply (or contains a reference cycle)") from None
    return "".join(out)


def dumps_bytes(value: object) -> bytes:
    """The UTF-8 body bytes: what is both signed and sent."""
    return dumps(value).encode("utf-8")


def format_number(x: int | float) -> str:
    """JavaScript's Number::toString for the double nearest to ``x``."""
    if type(x) is bool or not isinstance(x, int | float):
        raise TypeError(f"expected int or float, got {type(x).__name__}")
    text = _number_text(x)
    if text is None:
        raise NonFiniteNumberError("number is not finite (NaN or Infinity has no JSON form)")
    return text


def _format_int(x: int) -> str | None:
    if -_MAX_SAFE <= x <= _MAX_SAFE:
        return int.__repr__(x)
    try:
        return _format_float(float(x))
    except OverflowError:
        return None  # beyond the double range: Infinity in JavaScript


def _format_float(x: float) -> str | None:
    if not math.isfinite(x):
        return None
    # repr gives the shortest round-trip digits, as JavaScript does; only the placement of the
    # decimal point and the exponent style differ.
    r = float.__repr__(x)
    if "e" not in r:
        # Python uses plain notation for 1e-4 <= |x| < 1e16, which JavaScript does as well.
        if r.endswith(".0"):
            r = r[:-2]
            if r == "-0":
                return "0"
        return r
    return _format_exponent_repr(r)


def _format_exponent_repr(r: str) -> str:
    sign = ""
    if r[0] == "-":
        sign, r = "-", r[1:]
    mantissa, _, exp_text = r.partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).rstrip("0")
    stripped = digits.lstrip("0")
    # n: position of the decimal point relative to the first significant digit (ECMA-262
    # Number::toString), i.e. value = 0.<digits> * 10**n.
    n = len(int_part) + int(exp_text) - (len(digits) - len(stripped))
    digits = stripped
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exponent = f"e+{e}" if e >= 0 else f"e-{-e}"
    if k == 1:
        return sign + digits + exponent
    return sign + digits[0] + "." + digits[1:] + exponent


def _encode_str(s: str) -> str:
    # Pure-ASCII strings (the common case, an O(1) check) cannot contain surrogates.
    if s.isascii() or _SURROGATE_RE.search(s) is None:
        return encode_basestring(s)
    joined = _SURROGATE_PAIR_RE.sub(_join_pair, s)
    # Whatever surrogate is left is lone; escaping after encode_basestring keeps its backslash single.
    return _SURROGATE_RE.sub(_escape_lone, encode_basestring(joined))


def _join_pair(m: re.Match[str]) -> str:
    pair = m.group()
    return chr(0x10000 + ((ord(pair[0]) - 0xD800) << 10) + (ord(pair[1]) - 0xDC00))


def _escape_lone(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def _is_array_index(key: str) -> bool:
    return key[:1] in _DIGITS and _ARRAY_INDEX_RE.fullmatch(key) is not None and int(key) <= _MAX_ARRAY_INDEX


def _key_prefix(key: str) -> str:
    """',"key":' for a key that is not an array index, remembered for the next record."""
    prefix = "," + _encode_str(key) + ":"
    if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
        _KEY_CACHE.clear()
    _KEY_CACHE[key] = prefix
    return prefix


def _encode(value: object, out: list[str]) -> None:
    # Exact-type dispatch: cheaper than isinstance chains and keeps bool apart from int. mypy does
    # not narrow through `t`, hence the ignores.
    t = type(value)
    if t is str:
        out.append(_encode_str(value))  # type: ignore[arg-type]
    elif t is dict:
        _encode_dict(value, out)  # type: ignore[arg-type]
    elif t is list or t is tuple:
        _encode_list(value, out)  # type: ignore[arg-type]
    elif t is float:
        text = _format_float(value)  # type: ignore[arg-type]
        if text is None:
            raise _Unsupported
        out.append(text)
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif t is int:
        text = _format_int(value)  # type: ignore[arg-type]
        if text is None:
            raise _Unsupported
        out.append(text)
    else:
        _encode_subclass(value, out)


def _encode_subclass(value: object, out: list[str]) -> None:
    # Subclasses (StrEnum, IntEnum, OrderedDict, ...) are encoded as their base type, as
    # json.dumps does; bool is final, so `isinstance(value, int)` here is never a bool.
    if isinstance(value, str):
        _encode(str.__str__(value), out)
    elif isinstance(value, dict):
        _encode_dict(value, out)
    elif isinstance(value, list | tuple):
        _encode_list(value, out)
    elif isinstance(value, float):
        _encode(float(value), out)
    elif isinstance(value, int):
        _encode(int(value), out)
    else:
        raise _Unsupported


def _encode_list(items: list[object] | tuple[object, ...], out: list[str]) -> None:
    if not items:
        out.append("[]")
        return
    out.append("[")
    encode = _encode
    for v in items:
        encode(v, out)
        out.append(",")
    out[-1] = "]"


def _encode_dict(d: dict[object, object], out: list[str]) -> None:
    if not d:
        out.append("{}")
        return
    start = len(out)
    out.append("{")
    cache_get = _KEY_CACHE.get
    encode = _encode
    for k, v in d.items():
        prefix = cache_get(k)
        if prefix is None or type(k) is not str:
            if not isinstance(k, str):
                raise _Unsupported
            if _is_array_index(k):
                del out[start:]
                _encode_dict_reordered(d, out)
                return
            prefix = _key_prefix(k)
        out.append(prefix)
        # Inline the commonest scalar so a flat record costs one call per field, not two.
        if type(v) is str:
            out.append(_encode_str(v))
        else:
            encode(v, out)
    out[start + 1] = out[start + 1][1:]  # the first key carries no leading comma
    out.append("}")


def _encode_dict_reordered(d: dict[object, object], out: list[str]) -> None:
    indexed: list[tuple[int, str, object]] = []
    named: list[tuple[str, object]] = []
    for k, v in d.items():
        if not isinstance(k, str):
            raise _Unsupported
        if _is_array_index(k):
            indexed.append((int(k), "," + encode_basestring(k) + ":", v))
        else:
            named.append((_key_prefix(k), v))
    indexed.sort(key=lambda item: item[0])
    start = len(out)
    out.append("{")
    for _, prefix, v in indexed:
        out.append(prefix)
        _encode(v, out)
    for prefix, v in named:
        out.append(prefix)
        _encode(v, out)
    out[start + 1] = out[start + 1][1:]
    out.append("}")


# --- locating the problem -------------------------------------------------------------------
# Only reached after the fast encoder gave up, so clarity beats speed here.


def _locate_error(value: object) -> Exception:
    # Callers serialize either a batch (a list) or one record (a dict) at a time.
    root = "records" if isinstance(value, list | tuple) else "record" if isinstance(value, dict) else "value"
    error = _find_problem(value, root)
    # The walk accepts exactly what the encoder accepts; the fallback only guards against drift.
    return error if error is not None else TypeError("value is not JSON-serializable")


def _find_problem(value: object, path: str) -> Exception | None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int | float):
        if _number_text(value) is None:
            return NonFiniteNumberError(f"non-finite number (NaN or Infinity) at {path}")
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            error = _find_problem(item, f"{path}[{i}]")
            if error is not None:
                return error
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return TypeError(f"object keys must be str, got {type(k).__name__} at {path}")
            error = _find_problem(v, _child_path(path, k))
            if error is not None:
                return error
        return None
    return TypeError(f"{type(value).__name__} is not JSON-serializable (at {path})")


def _number_text(x: int | float) -> str | None:
    return _format_int(x) if isinstance(x, int) else _format_float(x)


def _child_path(path: str, key: str) -> str:
    if _IDENTIFIER_RE.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{_encode_str(key)}]"
