"""BatchAccumulator and the per-lane dispatch queue.

Records are grouped per (destination, endpoint, lane) into batches bounded by record count,
body bytes and the age of their first record. A lane is a fixed subset of the partitions, so a
batch mixes partitions when there are more partitions than lanes. A sealed batch may only be
sent while no earlier batch of its lane holding records of the same partition is in flight:
that keeps each partition's records in offset order at the endpoint (invariant 3), while
lanes, partitions and endpoints upload in parallel.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from connector.kafka.ports import Record, TopicPartition

BatchKey = tuple[str, str, int]  # (destination, endpoint, lane)
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class BatchItem:
    record: Record
    body: bytes  # this record's JSON, serialized once


@dataclass
class Batch:
    key: BatchKey
    items: list[BatchItem] = field(default_factory=list)
    body_bytes: int = 1  # "[" now; each record then adds its length plus one "," or "]"
    opened_at: float = 0.0
    id: int = field(default_factory=lambda: next(_ids))
    trace_id: str | None = None  # X-Trace-Id of its upload; kept for the probes of a parked batch

    @property
    def partitions(self) -> set[TopicPartition]:
        return {item.record.tp for item in self.items}

    def __len__(self) -> int:
        return len(self.items)


class BatchAccumulator:
    def __init__(
        self, key: BatchKey, max_records: int, max_bytes: int, max_wait_s: float, clock: Callable[[], float]
    ) -> None:
        self.key = key
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._open: Batch | None = None

    def add(self, item: BatchItem) -> Batch | None:
        """Add a record; returns the batch it sealed, if adding it made one full."""
        sealed = None
        extra = len(item.body) + 1
        batch = self._open
        if batch is not None and batch.items and batch.body_bytes + extra > self._max_bytes:
            sealed, batch = batch, None
        if batch is None:
            batch = Batch(self.key, opened_at=self._clock())
        batch.items.append(item)
        batch.body_bytes += extra
        self._open = batch
        if len(batch) >= self._max_records:
            if sealed is not None:  # cannot happen with max_records >= 1, but never lose a batch
                raise AssertionError("two batches sealed at once")
            sealed, self._open = batch, None
        return sealed

    def due_at(self) -> float | None:
        return None if self._open is None else self._open.opened_at + self._max_wait_s

    def take_if_due(self, now: float) -> Batch | None:
        due = self.due_at()
        if due is not None and now >= due:
            return self.flush()
        return None

    def flush(self) -> Batch | None:
        batch, self._open = self._open, None
        return batch if batch and batch.items else None

    def drop_partitions(self, tps: Iterable[TopicPartition]) -> list[BatchItem]:
        """Remove the records of these partitions from the open batch; returns them."""
        gone = set(tps)
        batch = self._open
        if batch is None:
            return []
        dropped = [i for i in batch.items if i.record.tp in gone]
        if dropped:
            batch.items = [i for i in batch.items if i.record.tp not in gone]
            batch.body_bytes = 1 + sum(len(i.body) + 1 for i in batch.items)
            if not batch.items:
                self._open = None
        return dropped


class DispatchQueue:
    """Sealed batches of one (destination, endpoint), sent in order, never two at once for a partition."""

    def __init__(self) -> None:
        self._waiting: deque[Batch] = deque()
        self._busy: dict[TopicPartition, int] = {}  # partition → in-flight batches holding it

    def push(self, batch: Batch) -> None:
        self._waiting.append(batch)

    def __len__(self) -> int:
        return len(self._waiting)

    def ready(self) -> list[Batch]:
        """Batches that may be sent now, marked in flight. The head blocks the rest: a later batch
        could hold records of the head's partitions that must not overtake it."""
        out = []
        while self._waiting and not any(tp in self._busy for tp in self._waiting[0].partitions):
            batch = self._waiting.popleft()
            for tp in batch.partitions:
                self._busy[tp] = self._busy.get(tp, 0) + 1
            out.append(batch)
        return out

    def finished(self, batch: Batch) -> None:
        self.release(batch.partitions)

    def release(self, partitions: Iterable[TopicPartition]) -> None:
        """An in-flight batch no longer holds these partitions."""
        for tp in partitions:
            count = self._busy.get(tp, 0) - 1
            if count > 0:
                self._busy[tp] = count
            else:
                self._busy.pop(tp, None)

    def drop_partitions(self, tps: Iterable[TopicPartition]) -> list[BatchItem]:
        gone = set(tps)
        dropped: list[BatchItem] = []
        kept: deque[Batch] = deque()
        for batch in self._waiting:
            dropped.extend(i for i in batch.items if i.record.tp in gone)
            batch.items = [i for i in batch.items if i.record.tp not in gone]
            batch.body_bytes = 1 + sum(len(i.body) + 1 for i in batch.items)
            if batch.items:
                kept.append(batch)
        self._waiting = kept
        return dropped
