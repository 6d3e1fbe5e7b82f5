"""Record bytes through orjson where they are provably `JSON.stringify`'s, through jsjson elsewhere.

orjson is a compiled serializer, several times faster than `connector.ingest.jsjson`, and for
most JSON data it writes the same bytes as JavaScript: compact separators, UTF-8 left unescaped,
the same control-character escapes, and the shortest round-trip digits for doubles. It differs
only on these, which send a value to jsjson instead:

* integral floats (`500.0`, JavaScript `500`) and `-0.0` (JavaScript `0`); every double with
  |x| ≥ 2**52 is integral, so this also covers 1e16 ≤ |x| < 1e21, where orjson writes an exponent
  and JavaScript does not. In a record's top-level fields, integral floats up to 2**53 are
  written as ints instead, which is what JavaScript prints for them;
* 1e-6 ≤ |x| < 1e-5, where orjson writes `1e-6` and JavaScript `0.000001`;
* integers beyond 2**53, which JavaScript rounds to the nearest double;
* NaN and ±Infinity, which orjson writes as `null` and jsjson refuses;
* keys that start with a digit (JavaScript enumerates array-index keys such as `"17"` first);
* lone surrogates, which orjson refuses;
* anything but dict, list, str, int, float, bool and None (orjson writes UUIDs, enum members and
  datetimes, which jsjson refuses).

Deciding costs one pass over the value in Python, which for a flat record of 16 fields is a
fraction of what jsjson spends. `tests/unit/test_fastjson.py` checks on generated data that both
paths give the same bytes, or the same error.
"""

from __future__ import annotations

import math
from typing import Any, Final

import orjson

from connector.ingest import jsjson

__all__ = ["dumps_bytes"]

_MAX_SAFE: Final = 2**53
_NESTING_LIMIT: Final = 64  # deeper values go to jsjson, which names the path of any error
_DIGITS: Final = "0123456789"


def dumps_bytes(value: object) -> bytes:
    """Exactly `jsjson.dumps_bytes(value)`, and its errors, computed faster where that is safe."""
    if not _plain(value, 0):
        # Integral doubles are common (a win of 20.0, a balance of 0.0): JavaScript prints them as
        # integers, so the same record with those floats as ints is plain, and still far cheaper
        # through orjson than through jsjson.
        value_as_js = _integral_floats_as_ints(value)
        if value_as_js is None or not _plain(value_as_js, 0):
            return jsjson.dumps_bytes(value)
        value = value_as_js
    try:
        return orjson.dumps(value)
    except TypeError:
        return jsjson.dumps_bytes(value)  # a lone surrogate: jsjson escapes it as JavaScript does


def _integral_floats_as_ints(record: object) -> dict[str, Any] | None:
    """A flat record's copy with every integral float within 2**53 as an int (`-0.0` → 0, which
    JavaScript also prints as `0`); None for anything but a dict."""
    if type(record) is not dict:
        return None
    out: dict[str, Any] = {}
    for key, item in record.items():
        if type(item) is float and item.is_integer() and -_MAX_SAFE <= item <= _MAX_SAFE:
            item = int(item)
        out[key] = item
    return out


def _plain(value: Any, depth: int) -> bool:
    """True when orjson's bytes for `value` are JavaScript's. Scalars are tested inline because a
    call per field would cost more than the check."""
    if depth > _NESTING_LIMIT:
        return False
    kind = type(value)
    if kind is dict:
        items: Any = value.items()
    elif kind is list:
        items = enumerate(value)
    else:
        return _plain({"": value}, depth)
    for key, item in items:
        if kind is dict and (type(key) is not str or (key != "" and key[0] in _DIGITS)):
            return False
        t = type(item)
        if t is str or t is bool or item is None:
            continue
        if t is float:
            if not math.isfinite(item) or item.is_integer() or 1e-6 <= abs(item) < 1e-5:
                return False
        elif t is int:
            if not -_MAX_SAFE <= item <= _MAX_SAFE:
                return False
        elif t is dict or t is list:
            if not _plain(item, depth + 1):
                return False
        else:
            return False
    return True
