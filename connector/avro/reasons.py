"""Short reasons: registry answers and fastavro's messages end up in logs and dead-letter headers.

fastavro's raw exceptions (`IndexError: string index out of range`, `EOFError: cannot read long
from <_io.BytesIO object at 0x7f...>`) say little to an operator and, with memory addresses in
them, differ from run to run; `read_error_reason` turns them into stable, readable reasons.
"""

from __future__ import annotations

import re
from typing import Final

_MAX_REASON: Final = 300
_OBJECT_AT: Final = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")
_ADDRESS: Final = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_END_OF_DATA: Final = "the payload ends in the middle of a value"
# (exception class, message) → readable reason; None matches any message of that class.
_KNOWN: Final[dict[tuple[type[BaseException], str | None], str]] = {
    (IndexError, "list index out of range"): "a union branch or enum symbol index is out of range",
    (IndexError, "negative index"): "a union branch or enum symbol index is negative",
    (IndexError, None): _END_OF_DATA,
    (StopIteration, None): _END_OF_DATA,
    (EOFError, None): _END_OF_DATA,
    (UnicodeDecodeError, None): "a string is not valid UTF-8",
    (RecursionError, None): "the value is nested too deeply to decode",
    (MemoryError, None): "a length in the payload is too large to allocate",
}


def shorten(text: object, limit: int = _MAX_REASON) -> str:
    """`text` cut to `limit` characters."""
    s = str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def without_addresses(text: str) -> str:
    """`text` with object reprs and memory addresses taken out, so equal failures read alike."""
    return _ADDRESS.sub("0x…", _OBJECT_AT.sub("the payload", text))


def read_error_reason(exc: BaseException, limit: int = 200) -> str:
    """A readable, stable reason for an exception fastavro raised reading a payload, ending with
    the exception's class so the raw cause stays findable."""
    name = type(exc).__name__
    for kind in type(exc).__mro__:
        known = _KNOWN.get((kind, str(exc))) or _KNOWN.get((kind, None))
        if known is not None:
            return f"{known} ({name})"
    message = without_addresses(str(exc)) or "no detail"
    return f"{shorten(message, limit)} ({name})"
