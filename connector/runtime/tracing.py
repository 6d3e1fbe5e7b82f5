"""Trace ids: the W3C `traceparent` a producer put on a record, or a fresh one.

Every upload carries one as `X-Trace-Id`, so a batch can be followed from the producer's trace
through the connector's logs and dead letters to the API's logs.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

TRACEPARENT = "traceparent"
# version 00: 00-<trace id>-<parent id>-<flags>, lower-case hex (https://www.w3.org/TR/trace-context/).
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16


def trace_id_from(headers: Iterable[tuple[str, bytes | None]]) -> str | None:
    """The trace id of the first `traceparent` header, or None when there is none or it is invalid
    (all-zero ids are invalid in the standard)."""
    for name, value in headers:
        if name.lower() != TRACEPARENT:
            continue
        if value is None:
            return None
        match = _TRACEPARENT.fullmatch(value.decode("ascii", "replace").strip())
        if match is None or match[1] == _ZERO_TRACE or match[2] == _ZERO_PARENT:
            return None
        return match[1]
    return None


def new_trace_id() -> str:
    """32 random lower-case hex digits, as a W3C trace id."""
    return secrets.token_hex(16)
