"""Client-side token buckets, so the connector stays under the API's per-endpoint limits instead of
discovering them through 429s; the adaptive one also shares a limit with other replicas (AIMD)."""

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


class AdaptiveTokenBucket(TokenBucket):
    """A token bucket whose rate backs off on 429 and creeps back up (AIMD).

    The API's limits are per account, yet every replica keeps its own buckets, so N replicas sent
    at N times the configured rate would each be told so with 429s. A 429 halves this bucket's
    rate (down to `floor_ratio` of the configured one); after `quiet_s` without another, the rate
    climbs linearly back, at `recover_per_s` of the configured rate per second. Replicas that share
    a limit thus settle around their share of it, and a lone replica gets its full rate back.

    Only a request sent after the last decrease can lower the rate again: the 429s of requests
    that were in flight together report the same overshoot, and halving once per answer would
    collapse the rate to the floor in one burst."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] | None = None,
        *,
        decrease: float = 0.5,
        floor_ratio: float = 1 / 32,
        quiet_s: float = 5.0,
        recover_per_s: float = 0.05,
    ) -> None:
        super().__init__(rate, burst, clock)
        if not 0 < decrease < 1 or not 0 < floor_ratio <= 1:
            raise ValueError("decrease and floor_ratio must be fractions")
        self.configured = rate
        self._full_burst = self.burst
        self._decrease = decrease
        self._floor = rate * floor_ratio
        self._quiet_s = quiet_s
        self._step = rate * recover_per_s
        self._lowered_to: float | None = None  # the rate right after the last decrease
        self._lowered_at = float("-inf")

    def _refill(self) -> None:
        # The climb back is computed lazily here, on each take, rather than by a timer.
        if self._lowered_to is not None:
            climbing = self._clock() - self._lowered_at - self._quiet_s
            if climbing > 0:
                self._set_rate(min(self.configured, self._lowered_to + self._step * climbing))
                if self.rate >= self.configured:
                    self._lowered_to = None
        super()._refill()

    def _set_rate(self, rate: float) -> None:
        self.rate = rate
        # The burst shrinks with the rate: a full bucket must not undo the back-off after a pause.
        self.burst = max(1.0, self._full_burst * rate / self.configured)
        self._tokens = min(self._tokens, self.burst)

    def throttled(self, sent_at: float) -> bool:
        """The API answered 429 to a request sent at `sent_at` (this bucket's clock). Returns True
        when that lowered the rate."""
        with self._lock:
            if sent_at <= self._lowered_at:
                return False
            self._refill()
            self._set_rate(max(self._floor, self.rate * self._decrease))
            self._tokens = 0.0  # what the bucket had saved up was part of the overshoot
            self._lowered_to = self.rate
            self._lowered_at = self._last
            return True
