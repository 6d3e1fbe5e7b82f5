"""OffsetTracker: turns per-record "done" marks into a safe commit position per partition.

A record is done when the API accepted it or the broker confirmed its dead-letter copy. The
commit position of a partition is the lowest offset that is not done yet (or one past the last
offset seen): committing it can never skip a record that is in flight or in retry.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from connector.kafka.ports import Record, TopicPartition


class PartitionOffsets:
    __slots__ = ("_order", "_pending", "committed", "first_seen", "last_seen")

    def __init__(self, committed: int | None = None) -> None:
        self._order: deque[int] = deque()  # offsets seen, oldest first, until done at the head
        self._pending: dict[int, int] = {}  # offset → size in bytes, for records not done
        self.first_seen: int | None = None
        self.last_seen: int | None = None
        self.committed = committed  # last position stored in Kafka by us

    def add(self, offset: int, size: int) -> bool:
        """Track a consumed record; False for a re-delivery of an offset already tracked."""
        if self.last_seen is not None and offset <= self.last_seen:
            return False
        self._order.append(offset)
        self._pending[offset] = size
        if self.first_seen is None:
            self.first_seen = offset
        self.last_seen = offset
        return True

    def done(self, offset: int) -> int | None:
        """Mark done; returns the record's size, or None if it was not pending (already done or unknown)."""
        size = self._pending.pop(offset, None)
        if size is not None:
            self._trim()
        return size

    def done_many(self, offsets: Iterable[int]) -> tuple[int, int]:
        """Mark each done; returns how many were pending and their bytes."""
        pending = self._pending
        count = size = 0
        for offset in offsets:
            one = pending.pop(offset, None)
            if one is not None:
                count += 1
                size += one
        if count:
            self._trim()
        return count, size

    def _trim(self) -> None:
        order = self._order
        while order and order[0] not in self._pending:
            order.popleft()

    def is_pending(self, offset: int) -> bool:
        return offset in self._pending

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return sum(self._pending.values())

    def position(self) -> int | None:
        """The offset to commit (next to read), or None when nothing was seen."""
        if self._order:
            return self._order[0]
        if self.last_seen is None:
            return None
        return self.last_seen + 1


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}

    def assign(self, tp: TopicPartition, committed: int | None = None) -> None:
        self._partitions[tp] = PartitionOffsets(committed)

    def drop(self, tp: TopicPartition) -> tuple[int, int]:
        """Forget a partition (revoked or lost); returns (records, bytes) that were still pending."""
        part = self._partitions.pop(tp, None)
        if part is None:
            return 0, 0
        return part.pending_count, part.pending_bytes

    def owns(self, tp: TopicPartition) -> bool:
        return tp in self._partitions

    def partitions(self) -> list[TopicPartition]:
        return list(self._partitions)

    def add(self, tp: TopicPartition, offset: int, size: int) -> bool:
        part = self._partitions.get(tp)
        return part is not None and part.add(offset, size)

    def done(self, tp: TopicPartition, offset: int) -> int | None:
        part = self._partitions.get(tp)
        return None if part is None else part.done(offset)

    def done_many(self, records: Iterable[Record]) -> tuple[int, int]:
        """Mark these records done (an accepted batch, at once); returns how many were pending
        and their bytes. Records of partitions no longer owned are skipped."""
        by_partition: dict[TopicPartition, list[int]] = {}
        for record in records:
            offsets = by_partition.get(record.tp)
            if offsets is None:
                offsets = by_partition[record.tp] = []
            offsets.append(record.offset)
        count = size = 0
        for tp, offsets in by_partition.items():
            part = self._partitions.get(tp)
            if part is not None:
                done, done_bytes = part.done_many(offsets)
                count += done
                size += done_bytes
        return count, size

    def is_pending(self, tp: TopicPartition, offset: int) -> bool:
        part = self._partitions.get(tp)
        return part is not None and part.is_pending(offset)

    def pending_count(self, tp: TopicPartition) -> int:
        part = self._partitions.get(tp)
        return 0 if part is None else part.pending_count

    def to_commit(self, only: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Positions that moved past what we last committed, for owned partitions only."""
        wanted = self._partitions.keys() if only is None else [tp for tp in only if tp in self._partitions]
        out: dict[TopicPartition, int] = {}
        for tp in wanted:
            part = self._partitions[tp]
            position = part.position()
            if position is not None and (part.committed is None or position > part.committed):
                out[tp] = position
        return out

    def any_done(self, positions: dict[TopicPartition, int]) -> bool:
        """Whether any of these positions passes a record done here; False for positions that only
        restate where fetching started (worth committing once, but no progress)."""
        for tp, position in positions.items():
            part = self._partitions.get(tp)
            if part is not None and part.first_seen is not None and position > part.first_seen:
                return True
        return False

    def committed(self, positions: dict[TopicPartition, int]) -> None:
        for tp, position in positions.items():
            part = self._partitions.get(tp)
            if part is not None:
                part.committed = position

    def position(self, tp: TopicPartition) -> int | None:
        part = self._partitions.get(tp)
        return None if part is None else part.position()
