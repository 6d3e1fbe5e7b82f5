"""Retry timing: exponential backoff with jitter, and the server's Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from connector.config.settings import RetrySettings


class Backoff:
    """Waits that double from a first one up to a cap, jittered so that many workers (threads,
    pods) that failed together do not retry together and hit a recovering service in a wave.

    `settings` is the HTTP retry settings, or `(first, cap)` in seconds. Pass a seeded `rng` for
    reproducible waits (tests with a fake clock)."""

    def __init__(
        self, settings: RetrySettings | tuple[float, float], rng: random.Random | None = None
    ) -> None:
        if isinstance(settings, tuple):
            self._base, self._cap = settings
        else:
            self._base = settings.initial_backoff_ms / 1000.0
            self._cap = settings.max_backoff_ms / 1000.0
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        # min() before the power would overflow for large attempts.
        return float(min(self._cap, self._base * (2 ** min(attempt, 62))))

    def delay(self, attempt: int) -> float:
        """Full jitter, uniform(0, ceiling): the widest spread, for a request retried at once."""
        return self._rng.uniform(0.0, self.ceiling(attempt))

    def equal_jitter(self, attempt: int) -> float:
        """Half the ceiling plus a random half, so within [first/2, cap]: a probe of something
        known to be down (credentials, registry, dead-letter topic) never comes back at once, yet
        pods that failed in lockstep drift apart."""
        half = self.ceiling(attempt) / 2
        return half + self._rng.uniform(0.0, half)


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
