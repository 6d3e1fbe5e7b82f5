"""Registry stalls: the records of a partition held back while the schema registry is unreachable.

Such a record is not poison (its schema exists, we just cannot fetch it), so it is not
dead-lettered; nor may the records behind it overtake it. Its partition is paused and its
records wait, in offset order, to be decoded again after a growing, jittered wait, while the
other partitions keep flowing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from connector.ingest.backoff import Backoff
from connector.kafka.ports import Record, TopicPartition
from connector.pipeline.pauses import PauseBook
from connector.runtime.health import Health, Reason


@dataclass
class _Stall:
    records: deque[Record] = field(default_factory=deque)  # in offset order
    retry_at: float = 0.0
    attempt: int = 0


class RegistryStalls:
    def __init__(
        self, backoff: Backoff, clock: Callable[[], float], pauses: PauseBook, health: Health
    ) -> None:
        self._backoff = backoff
        self._clock = clock
        self._pauses = pauses
        self._health = health
        self._stalls: dict[TopicPartition, _Stall] = {}

    def hold_back(self, record: Record) -> bool:
        """Queue `record` behind its partition's stalled records, if that partition is stalled."""
        stall = self._stalls.get(record.tp)
        if stall is None:
            return False
        stall.records.append(record)
        return True

    def stall(self, record: Record, reason: str) -> None:
        """`record` could not be decoded for want of the registry: it goes first in line."""
        stall = self._stalls.setdefault(record.tp, _Stall())
        stall.records.appendleft(record)
        stall.retry_at = self._clock() + self._backoff.equal_jitter(stall.attempt)
        stall.attempt += 1
        self._pauses.pause([record.tp], Reason.REGISTRY)
        self._health.set(Reason.REGISTRY, f"schema registry unreachable: {reason}")

    def retry(self, now: float, process: Callable[[Record], bool]) -> None:
        """Feed the records of each stall that is due to `process`, in order, until one fails again
        (False) or none is left, which ends the stall."""
        for tp, stall in list(self._stalls.items()):
            if stall.retry_at > now:
                continue
            pending = stall.records
            while pending:
                record = pending.popleft()
                if not process(record):
                    # process() stalled it again: back at the head of this same stall, ahead of
                    # the rest and with the next (longer) wait. The attempt count survives.
                    break
            else:
                del self._stalls[tp]
                self._pauses.resume(Reason.REGISTRY, [tp])
        if not self._stalls:
            self._health.clear(Reason.REGISTRY)

    def held(self, tp: TopicPartition | None = None) -> int:
        """Records held back, on one partition or on all."""
        if tp is None:
            return sum(len(stall.records) for stall in self._stalls.values())
        stall = self._stalls.get(tp)
        return len(stall.records) if stall else 0

    def drop(self, tp: TopicPartition) -> None:
        self._stalls.pop(tp, None)
