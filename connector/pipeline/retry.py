"""The retry schedule: work waiting on one failing condition (the API refusing our credentials, the
dead-letter topic refusing writes), tried again together at growing, jittered waits.

The condition is what is retried, not each item: an item that fails while a wait is running joins
that wait instead of starting a longer one of its own, so twenty batches refused at once are all
tried again at the first wait, not spread up to the cap (one round, one step up the schedule).
The first success ends the condition: the count resets and everything still waiting is due at
once, so nothing sits out a wait for a condition that is over. The waits come from
`Backoff.equal_jitter`.
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
        self._waiting: list[T] = []
        self._attempt = 0
        self._due_at: float | None = None  # when the waiting items are tried again

    def schedule(self, item: T) -> float:
        """Try `item` again at the end of the running wait, or of the next one when none runs;
        returns the seconds until then (what the caller waits, to log)."""
        now = self._clock()
        if self._due_at is None:
            self._due_at = now + self._backoff.equal_jitter(self._attempt)
            self._attempt += 1
        self._waiting.append(item)
        return max(0.0, self._due_at - now)

    def due(self, now: float) -> list[T]:
        """Take every waiting item once the wait is over, in the order they were scheduled."""
        if self._due_at is None or now < self._due_at:
            return []
        due, self._waiting, self._due_at = self._waiting, [], None
        return due

    def due_at(self) -> float | None:
        """When the waiting items are due (None: nothing waits)."""
        return self._due_at

    def succeeded(self) -> None:
        """The condition is over: the next failure starts from the first wait, and whatever waits
        now is due at once."""
        self._attempt = 0
        if self._waiting:
            self._due_at = float("-inf")

    def remove(self, item: T) -> None:
        """Stop waiting for `item` (it no longer needs a retry)."""
        self._waiting.remove(item)
        if not self._waiting:
            self._due_at = None

    def waiting(self) -> list[T]:
        return list(self._waiting)

    def __len__(self) -> int:
        return len(self._waiting)
