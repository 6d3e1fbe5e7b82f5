"""The in-memory clients: `ConsumerPort`, `ProducerPort` and `AdminPort` on an `InMemoryBroker`.

A consumer keeps what librdkafka keeps client-side (owned partitions, positions, paused partitions,
the end offsets seen in fetches) and learns of rebalances from the broker inside `consume()`.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

from connector.errors import DeliveryError, FatalKafkaError
from connector.kafka.ports import (
    AdminPort,
    ConsumerPort,
    DeliveryCallback,
    Header,
    ProducerPort,
    RebalanceListener,
    Record,
    TopicPartition,
)

if TYPE_CHECKING:
    from connector.kafka.memory.broker import InMemoryBroker


class InMemoryConsumer:
    """`ConsumerPort` of one group member; single-threaded like a librdkafka consumer."""

    def __init__(self, broker: InMemoryBroker, group_id: str, auto_offset_reset: str, member_id: str) -> None:
        self._broker = broker
        self.group_id = group_id
        self.member_id = member_id
        self._reset = auto_offset_reset
        self._listener: RebalanceListener | None = None
        self._owned: set[TopicPartition] = set()
        self._incoming: set[TopicPartition] = set()  # granted, on_assign not finished yet
        self._owned_lock = threading.Lock()
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._seen_high: dict[TopicPartition, int] = {}
        self._topics: frozenset[str] = frozenset()
        self._joined = False
        self._lost = False
        self._lost_partitions: list[TopicPartition] = []
        self._closed = False
        self._killed = False
        self._rotation = 0

    # --- helpers for the broker -------------------------------------------------------------
    def _owned_snapshot(self) -> set[TopicPartition]:
        with self._owned_lock:
            return set(self._owned)

    def _held(self) -> set[TopicPartition]:
        """Owned, or being handed over to this member right now."""
        with self._owned_lock:
            return self._owned | self._incoming

    def _mark_incoming(self, partitions: Iterable[TopicPartition]) -> None:
        with self._owned_lock:
            self._incoming = set(partitions)

    def _take_incoming(self) -> None:
        with self._owned_lock:
            self._owned |= self._incoming
            self._incoming = set()

    def _drop_owned(self, partitions: Iterable[TopicPartition]) -> None:
        with self._owned_lock:
            self._owned -= set(partitions)

    def _clear_owned(self) -> None:
        with self._owned_lock:
            self._owned = set()
            self._incoming = set()

    def _lose_membership(self) -> None:
        # Ownership ends now (a commit from here on is refused); the member learns it later.
        with self._owned_lock:
            self._lost_partitions = sorted(self._owned)
            self._owned = set()
            self._incoming = set()
        self._lost = True
        self._joined = False

    def _check_usable(self) -> None:
        if self._killed:
            raise FatalKafkaError(f"consumer {self.member_id} was killed")
        if self._closed:
            raise RuntimeError(f"consumer {self.member_id} is closed")

    # --- ConsumerPort -----------------------------------------------------------------------
    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None:
        self._check_usable()
        self._listener = listener
        self._topics = frozenset(topics)
        self._joined = True
        self._broker._join(self.group_id, self, self._topics)

    def consume(
        self, max_records: int, timeout_s: float, wake: threading.Event | None = None
    ) -> list[Record]:
        self._check_usable()
        if self._lost:
            self._deliver_lost()
        if self._joined:
            self._deliver_rebalance()
        records = self._fetch(max_records)
        if not records and not (wake is not None and wake.is_set()):
            self._broker._wait(timeout_s)
        return records

    def _deliver_lost(self) -> None:
        lost, self._lost_partitions = self._lost_partitions, []
        self._lost = False
        for tp in lost:
            self._forget(tp)
        try:
            if lost and self._listener is not None:
                self._listener.on_lost(lost)
        finally:
            # librdkafka rejoins by itself after losing its assignment.
            self._joined = True
            self._broker._join(self.group_id, self, self._topics)

    def _deliver_rebalance(self) -> None:
        revoke = self._broker._revocations(self.group_id, self.member_id, self._owned_snapshot())
        if revoke:
            try:
                if self._listener is not None:
                    self._listener.on_revoke(revoke)
            finally:
                # As with librdkafka, the unassign completes even when the callback raised.
                self._drop_owned(revoke)
                for tp in revoke:
                    self._forget(tp)
        gain = self._broker._claim(self.group_id, self)
        if gain:
            try:
                if self._listener is not None:
                    self._listener.on_assign(gain)
            finally:
                for tp in gain:
                    self._positions[tp] = self._start_position(tp)
                self._take_incoming()

    def _forget(self, tp: TopicPartition) -> None:
        # The pause stays: librdkafka keeps a partition's pause through a revoke or a lost
        # membership, and a re-assigned partition comes back still paused until resumed.
        self._positions.pop(tp, None)
        self._seen_high.pop(tp, None)

    def _start_position(self, tp: TopicPartition) -> int:
        committed = self._broker.committed(self.group_id, tp)
        if committed is not None:
            return committed
        return 0 if self._reset == "earliest" else self._broker.end_offset(tp)

    def _fetch(self, max_records: int) -> list[Record]:
        readable = sorted(tp for tp in self._owned_snapshot() if tp not in self._paused)
        if not readable:
            return []
        # Start from a different partition each call so a busy partition cannot starve the others.
        start = self._rotation % len(readable)
        self._rotation += 1
        records: list[Record] = []
        for tp in readable[start:] + readable[:start]:
            log = self._broker.records(tp.topic, tp.partition)
            self._seen_high[tp] = len(log)
            room = max_records - len(records)
            if room <= 0:
                continue
            position = self._positions.get(tp, 0)
            batch = log[position : position + room]
            records.extend(batch)
            self._positions[tp] = position + len(batch)
        return records

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self._killed:
            raise FatalKafkaError(f"consumer {self.member_id} was killed")
        if not offsets:
            return
        owned = set() if self._closed else self._owned_snapshot()
        self._broker._commit(self.group_id, self.member_id, owned, offsets)

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        owned = self._owned_snapshot()
        # librdkafka ignores partitions that are not assigned (yet): so does the fake.
        self._paused.update(tp for tp in partitions if tp in owned)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._paused.difference_update(partitions)

    def paused(self) -> set[TopicPartition]:
        """The owned partitions that are paused (the pause of one not owned waits for its return)."""
        return self._paused & self._owned_snapshot()

    def position(self, tp: TopicPartition) -> int | None:
        return self._positions.get(tp)

    def assignment(self) -> set[TopicPartition]:
        return self._owned_snapshot()

    def committed(
        self, partitions: Iterable[TopicPartition], timeout_s: float
    ) -> dict[TopicPartition, int | None]:
        return {tp: self._broker.committed(self.group_id, tp) for tp in partitions}

    def high_watermarks(self) -> dict[TopicPartition, int]:
        owned = self._owned_snapshot()
        return {tp: high for tp, high in self._seen_high.items() if tp in owned}

    def close(self, timeout_s: float = 0.0) -> None:
        if self._closed or self._killed:
            return
        self._closed = True
        self._leave()

    def kill(self) -> None:
        """Crash: gone from the group at once, no callbacks, nothing committed; further calls fail."""
        if self._killed:
            return
        self._killed = True
        self._leave()

    def _leave(self) -> None:
        self._joined = False
        self._clear_owned()
        self._positions.clear()
        self._paused.clear()
        self._seen_high.clear()
        self._broker._leave(self.group_id, self.member_id)


class InMemoryProducer:
    """`ProducerPort`: the record is written at produce() time, its report waits for poll/flush."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker
        self._pending: list[tuple[DeliveryCallback, DeliveryError | None]] = []
        self._lock = threading.Lock()
        self._closed = False
        self.produced = 0

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header],
        on_delivery: DeliveryCallback,
        partition: int | None = None,
    ) -> None:
        if self._closed:
            raise RuntimeError("producer is closed")
        outcome = self._broker._deliver(topic, key, value, headers, partition)
        with self._lock:
            self._pending.append((on_delivery, outcome))
            self.produced += 1

    def outstanding(self) -> int:
        with self._lock:
            return len(self._pending)

    def _run_callbacks(self) -> int:
        if self._broker.holding_deliveries:
            return 0
        with self._lock:
            ready, self._pending = self._pending, []
        for callback, outcome in ready:
            callback(outcome)
        return len(ready)

    def poll(self, timeout_s: float) -> int:
        ran = self._run_callbacks()
        if ran == 0:
            self._broker._wait(timeout_s)
        return ran

    def flush(self, timeout_s: float) -> int:
        if self._run_callbacks() == 0 and self.outstanding():
            self._broker._wait(timeout_s)
        return self.outstanding()

    def close(self) -> None:
        self._closed = True


class InMemoryAdmin:
    """`AdminPort` on the in-memory broker."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker

    def create_topics(self, names: Sequence[str], partitions: int, timeout_s: float) -> None:
        for name in names:
            self._broker.create_topic(name, partitions)

    def list_topics(self, timeout_s: float) -> dict[str, int]:
        return self._broker.topics()

    def query_end_offsets(
        self, partitions: Collection[TopicPartition], timeout_s: float
    ) -> Future[dict[TopicPartition, int]]:
        return self._broker._query_end_offsets(partitions)


if TYPE_CHECKING:  # mypy proves the fakes implement the ports

    def _implements_ports(
        consumer: InMemoryConsumer, producer: InMemoryProducer, admin: InMemoryAdmin
    ) -> tuple[ConsumerPort, ProducerPort, AdminPort]:
        return consumer, producer, admin
