"""`FakeClock`: simulated monotonic time for tests and fakes (the in-memory broker, the sandbox).

Everything that waits takes a `clock` (a `() -> float`) and often a `sleep`; a FakeClock is both,
so time moves only when a test says so, or when code under test sleeps on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class FakeClock:
    """Monotonic seconds that move only when told to (`advance`) or when something `sleep`s on it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []  # every wait asked for, in order
        # Called after every sleep, e.g. to cancel an upload from "another thread" mid-wait.
        self.on_sleep: Callable[[float], None] | None = None

    def now(self) -> float:
        with self._lock:
            return self._now

    def __call__(self) -> float:
        return self.now()

    @property
    def t(self) -> float:
        """The current time, read as an attribute."""
        return self.now()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Like `time.sleep`, a negative wait is an error; the clock moves instead of blocking."""
        if seconds < 0:
            raise ValueError(f"negative sleep {seconds}")
        self.sleeps.append(seconds)
        self.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)
