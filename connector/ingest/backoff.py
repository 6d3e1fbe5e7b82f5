"""Retry timing: exponential backoff with full jitter, and the server's Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from connector.config.settings import RetrySettings


class Backoff:
    """Full jitter (sleep = uniform(0, min(cap, base * 2**attempt))): spreads retries of many
    workers so that a recovering API is not hit by a synchronized wave."""

    def __init__(self, settings: RetrySettings, rng: random.Random | None = None) -> None:
        self._base = settings.initial_backoff_ms / 1000.0
        self._cap = settings.max_backoff_ms / 1000.0
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        # min() before the power would overflow for large attempts.
        return float(min(self._cap, self._base * (2 ** min(attempt, 62))))

    def delay(self, attempt: int) -> float:
        return self._rng.uniform(0.0, self.ceiling(attempt))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when absent/invalid."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())
