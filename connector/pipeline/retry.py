"""The retry schedule: work waiting for another try after a failure, at growing, jittered waits.

One attempt count per failing condition (the API refusing our credentials, the dead-letter topic
refusing writes), not per item: everything that failed for the same reason waits longer each
time, and the first success resets the count. The waits come from `Backoff.equal_jitter`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from connector.ingest.backoff import Backoff

T = TypeVar("T")


class RetrySchedule(Generic[T]):
    def __init__(self, backoff: Backoff, clock: Callable[[], float]) -> None:
        self._backoff = backoff
        self._clock = clock
        self._waiting: list[tuple[float, T]] = []
        self._attempt = 0

    def schedule(self, item: T) -> float:
        """Try `item` again after the next wait of the schedule; returns that wait."""
        delay = self._backoff.equal_jitter(self._attempt)
        self._attempt += 1
        self._waiting.append((self._clock() + delay, item))
        return delay

    def due(self, now: float) -> list[T]:
        """Take the items whose wait is over, in the order they were scheduled."""
        due = [item for at, item in self._waiting if at <= now]
        if due:
            self._waiting = [(at, item) for at, item in self._waiting if at > now]
        return due

    def succeeded(self) -> None:
        self._attempt = 0

    def __len__(self) -> int:
        return len(self._waiting)
