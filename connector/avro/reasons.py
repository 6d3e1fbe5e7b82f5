"""Short reasons: registry answers and fastavro's messages end up in logs and dead-letter headers."""

from __future__ import annotations

from typing import Final

_MAX_REASON: Final = 300


def shorten(text: object, limit: int = _MAX_REASON) -> str:
    """`text` cut to `limit` characters."""
    s = str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."
