"""Client-side token bucket, so the connector stays under the API's per-endpoint limits instead of
discovering them through 429s."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock or time.monotonic
        self._tokens = self.burst
        self._last = self._clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._last = now

    def try_acquire(self, tokens: float = 1.0) -> float:
        """Take `tokens` if available and return 0, else return the seconds until they will be."""
        with self._lock:
            self._refill()
            # The tolerance keeps float rounding (0.9999999 tokens) from asking for a wait too
            # short to move a clock forward, which would spin forever.
            if self._tokens >= tokens - 1e-9:
                self._tokens = max(0.0, self._tokens - tokens)
                return 0.0
            return (tokens - self._tokens) / self.rate

    def acquire(self, sleep: Callable[[float], None], tokens: float = 1.0) -> float:
        """Block (through `sleep`) until `tokens` are taken; returns the total time waited."""
        waited = 0.0
        while True:
            wait = self.try_acquire(tokens)
            if wait <= 0:
                return waited
            sleep(wait)
            waited += wait
