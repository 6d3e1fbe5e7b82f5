"""structlog set-up: JSON lines when not on a terminal (what log shippers want), readable on a terminal.

Secrets never reach the output: values of secret-looking keys are masked, and every registered
secret value (tokens, passwords) is scrubbed from every string that is logged.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|authorization|api[_-]?key|user\.info|credential)", re.I
)
_MASK = "***"


def is_secret_key(name: str) -> bool:
    """Whether a field or setting with this name holds a secret (its value is never logged)."""
    return _SECRET_KEY.search(name) is not None


_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Scrub this value from all log output from now on (tokens read from files included)."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, _MASK)
        return value
    if isinstance(value, dict):
        return {
            k: (_MASK if isinstance(k, str) and _SECRET_KEY.search(k) else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, tuple):
        # Not type(value)(...): a namedtuple's constructor takes fields, and a log call must never raise.
        return tuple(_scrub(v) for v in value)
    if value is None or isinstance(value, bool | int | float) or not _secrets:
        return value
    # Anything else (an exception, a set, any object) is rendered through repr() by both renderers,
    # which would carry a secret past the checks above.
    rendered = repr(value)
    if any(secret in rendered for secret in _secrets):
        return _scrub(rendered)
    return value


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if _SECRET_KEY.search(key) and key != "event":
            event[key] = _MASK
        else:
            event[key] = _scrub(event[key])
    return event


def configure(level: str = "info", json: bool | None = None, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


class RateLimiter:
    """Lets each distinct key through once per `window_s`; counts what it held back meanwhile.

    `admit(key)` returns None when the key was let through less than `window_s` ago (drop the line),
    else how many lines of that key were dropped since it was last let through. Keys not seen for a
    window are forgotten once there are many of them, so distinct messages cannot grow it forever.
    """

    _PRUNE_ABOVE = 1024

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[object, tuple[float, int]] = {}  # key → (last let through at, dropped since)
        self._lock = threading.Lock()

    def admit(self, key: object) -> int | None:
        now = self._clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self._window_s:
                self._seen[key] = (entry[0], entry[1] + 1)
                return None
            if len(self._seen) > self._PRUNE_ABOVE:
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self._window_s}
            self._seen[key] = (now, 0)
            return entry[1] if entry is not None else 0
