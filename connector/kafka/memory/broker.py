"""The in-memory broker: topics and their records, committed offsets, consumer groups and their
members, and the failures tests inject. The clients it hands out are in `connector.kafka.memory.clients`.

It models what the pipeline's correctness depends on, the way librdkafka shows it:
- consumer groups with cooperative rebalancing: a member is told only about the partitions it
  loses (`on_revoke`) or gains (`on_assign`), inside its own `consume()` call; a partition
  reaches its new owner only after the old owner's `consume()` has delivered the revoke (during
  `on_revoke` the partition is still owned and can be committed; during `on_assign` it is not yet);
- positions start at the committed offset, else at `auto_offset_reset`;
- commits are synchronous and refused for partitions the member does not own (recorded in
  `InMemoryBroker.rejected_commits`, so tests can prove that never happened);
- producer delivery reports run only from `poll()`/`flush()`; failures can be injected
  (`fail_deliveries`, `fail_commits`) and acks held back (`hold_deliveries`);
- end offsets are known only for partitions fetched at least once, as with librdkafka's cache;
  the admin's `query_end_offsets` (ListOffsets) answers the true end, at once unless held back
  (`hold_end_offsets`) or failed (`fail_end_offsets`), and every query is recorded
  (`end_offset_queries`).

`close()` leaves the group without listener callbacks (the caller commits first), `kill()` is a
crash, and `evict()` models a member thrown out of the group (it gets `on_lost`).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from connector.errors import CommitError, DeliveryError, KafkaPortError
from connector.kafka.memory.clients import InMemoryAdmin, InMemoryConsumer, InMemoryProducer
from connector.kafka.ports import Header, Record, TopicPartition
from connector.runtime.clock import FakeClock

_OFFSET_RESETS = {"earliest": "earliest", "smallest": "earliest", "latest": "latest", "largest": "latest"}

CommitEntry = tuple[str, TopicPartition, int, str]  # (group, partition, offset, member)


@dataclass
class _Member:
    member_id: str
    consumer: InMemoryConsumer
    topics: frozenset[str]


@dataclass
class _Group:
    members: list[_Member] = field(default_factory=list)  # join order decides the round robin
    target: dict[TopicPartition, str] = field(default_factory=dict)  # partition → member meant to own it


class InMemoryBroker:
    """Topics, offsets and groups, shared by every client it hands out; thread-safe."""

    def __init__(self, clock: Callable[[], float] | FakeClock | None = None) -> None:
        self.fake_clock: FakeClock | None
        if clock is None:
            clock = FakeClock()
        self.fake_clock = clock if isinstance(clock, FakeClock) else None
        self._clock: Callable[[], float] = clock.now if isinstance(clock, FakeClock) else clock
        # Re-entrant: listener callbacks (run without it) may call back into the broker anyway.
        self._lock = threading.RLock()
        self._logs: dict[str, list[list[Record]]] = {}
        self._committed: dict[tuple[str, TopicPartition], int] = {}
        self._groups: dict[str, _Group] = {}
        self._round_robin: dict[str, int] = {}
        self._failing_deliveries: dict[str, list[str]] = {}
        self._failing_commits = 0
        self._member_count = 0
        self.holding_deliveries = False
        self.end_offset_queries: list[list[TopicPartition]] = []
        self._holding_end_offsets = False
        self._held_end_offsets: list[tuple[list[TopicPartition], Future[dict[TopicPartition, int]]]] = []
        self._failing_end_offsets = 0
        self.commit_log: list[CommitEntry] = []
        self.rejected_commits: list[CommitEntry] = []

    # --- time -------------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock()

    def _wait(self, seconds: float) -> None:
        """Nothing to return: a real client would block; the fake moves a fake clock instead."""
        if self.fake_clock is not None and seconds > 0:
            self.fake_clock.advance(seconds)

    # --- topics and records -----------------------------------------------------------------
    def create_topic(self, name: str, partitions: int = 1) -> None:
        if partitions < 1:
            raise ValueError("a topic needs at least one partition")
        with self._lock:
            if name in self._logs:
                return
            self._logs[name] = [[] for _ in range(partitions)]
            for group_id, group in self._groups.items():
                if any(name in member.topics for member in group.members):
                    self._rebalance_locked(group_id)

    def topics(self) -> dict[str, int]:
        with self._lock:
            return {name: len(parts) for name, parts in self._logs.items()}

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[Header] = (),
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> Record:
        """Append a record (no delivery report involved: this is how tests feed the consumer)."""
        with self._lock:
            index = self._choose_partition(topic, key, partition)
            log = self._partition_log(topic, index)
            record = Record(
                topic=topic,
                partition=index,
                offset=len(log),
                key=key,
                value=value,
                headers=tuple(headers),
                timestamp_ms=timestamp_ms if timestamp_ms is not None else int(self.now() * 1000),
            )
            log.append(record)
            return record

    def _choose_partition(self, topic: str, key: bytes | None, partition: int | None) -> int:
        partitions = self._logs.get(topic)
        if partitions is None:
            raise KafkaPortError(f"unknown topic {topic}")
        if partition is None:
            if key is not None:
                partition = zlib.crc32(key) % len(partitions)
            else:
                partition = self._round_robin.get(topic, 0) % len(partitions)
                self._round_robin[topic] = partition + 1
        return partition

    def _partition_log(self, topic: str, partition: int) -> list[Record]:
        partitions = self._logs.get(topic)
        if partitions is None:
            raise KafkaPortError(f"unknown topic {topic}")
        if not 0 <= partition < len(partitions):
            raise KafkaPortError(f"unknown partition {topic}[{partition}]")
        return partitions[partition]

    def records(self, topic: str, partition: int | None = None) -> list[Record]:
        with self._lock:
            partitions = self._logs.get(topic)
            if partitions is None:
                raise KafkaPortError(f"unknown topic {topic}")
            if partition is not None:
                return list(self._partition_log(topic, partition))
            return [record for log in partitions for record in log]

    def end_offset(self, tp: TopicPartition) -> int:
        with self._lock:
            return len(self._partition_log(tp.topic, tp.partition))

    # --- end offsets (ListOffsets) -----------------------------------------------------------
    def hold_end_offsets(self, hold: bool = True) -> None:
        """While held, end-offset queries get no answer (a slow or frozen broker); releasing answers
        the waiting ones with the end offsets of that moment."""
        with self._lock:
            self._holding_end_offsets = hold
            waiting = [] if hold else self._held_end_offsets
            if not hold:
                self._held_end_offsets = []
        for partitions, answer in waiting:
            self._answer_end_offsets(partitions, answer)

    def fail_end_offsets(self, count: int) -> None:
        """The next `count` end-offset queries fail."""
        with self._lock:
            self._failing_end_offsets += count

    def _query_end_offsets(self, partitions: Collection[TopicPartition]) -> Future[dict[TopicPartition, int]]:
        answer: Future[dict[TopicPartition, int]] = Future()
        asked = sorted(partitions)
        with self._lock:
            self.end_offset_queries.append(asked)
            if self._failing_end_offsets > 0:
                self._failing_end_offsets -= 1
                answer.set_exception(KafkaPortError("injected end-offset query failure"))
                return answer
            if self._holding_end_offsets:
                self._held_end_offsets.append((asked, answer))
                return answer
        self._answer_end_offsets(asked, answer)
        return answer

    def _answer_end_offsets(
        self, partitions: list[TopicPartition], answer: Future[dict[TopicPartition, int]]
    ) -> None:
        with self._lock:
            known = self.topics()
            ends = {
                tp: self.end_offset(tp) for tp in partitions if 0 <= tp.partition < known.get(tp.topic, 0)
            }
        if ends or not partitions:
            answer.set_result(ends)
        else:
            answer.set_exception(KafkaPortError(f"unknown partitions {', '.join(map(str, partitions))}"))

    # --- offsets ----------------------------------------------------------------------------
    def committed(self, group: str, tp: TopicPartition) -> int | None:
        with self._lock:
            return self._committed.get((group, tp))

    def fail_commits(self, count: int) -> None:
        """The next `count` commits (from any member) raise CommitError and store nothing."""
        with self._lock:
            self._failing_commits += count

    def _commit(
        self, group: str, member: str, owned: set[TopicPartition], offsets: Mapping[TopicPartition, int]
    ) -> None:
        with self._lock:
            not_owned = sorted(tp for tp in offsets if tp not in owned)
            if not_owned:
                self.rejected_commits.extend((group, tp, offsets[tp], member) for tp in not_owned)
                names = ", ".join(str(tp) for tp in not_owned)
                raise CommitError(f"{member} does not own {names}")
            if self._failing_commits > 0:
                self._failing_commits -= 1
                raise CommitError("injected commit failure")
            for tp, offset in sorted(offsets.items()):
                if offset < 0:
                    raise ValueError(f"cannot commit offset {offset} for {tp}")
            for tp, offset in sorted(offsets.items()):
                self._committed[(group, tp)] = offset
                self.commit_log.append((group, tp, offset, member))

    # --- deliveries -------------------------------------------------------------------------
    def fail_deliveries(self, topic: str, count: int, error: str = "injected delivery failure") -> None:
        """The next `count` produce() calls to `topic` are not written and report a DeliveryError."""
        with self._lock:
            self._failing_deliveries.setdefault(topic, []).extend([error] * count)

    def hold_deliveries(self, hold: bool = True) -> None:
        """While held, producers' poll()/flush() run no delivery callbacks (a slow broker ack)."""
        with self._lock:
            self.holding_deliveries = hold

    def _deliver(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header],
        partition: int | None,
    ) -> DeliveryError | None:
        with self._lock:
            failures = self._failing_deliveries.get(topic)
            if failures:
                return DeliveryError(failures.pop(0))
            if topic not in self._logs:
                return DeliveryError(f"unknown topic {topic}")
            try:
                self.produce(topic, value, key=key, headers=headers, partition=partition)
            except KafkaPortError as exc:
                return DeliveryError(str(exc))
            return None

    # --- clients ----------------------------------------------------------------------------
    def consumer(
        self, group_id: str, auto_offset_reset: str = "earliest", member_id: str | None = None
    ) -> InMemoryConsumer:
        if auto_offset_reset not in _OFFSET_RESETS:
            raise ValueError(f"auto_offset_reset must be one of {sorted(_OFFSET_RESETS)}")
        with self._lock:
            self._member_count += 1
            name = member_id or f"{group_id}-member-{self._member_count}"
        return InMemoryConsumer(self, group_id, _OFFSET_RESETS[auto_offset_reset], name)

    def producer(self) -> InMemoryProducer:
        return InMemoryProducer(self)

    def admin(self) -> InMemoryAdmin:
        return InMemoryAdmin(self)

    # --- groups -----------------------------------------------------------------------------
    def members(self, group_id: str) -> list[str]:
        with self._lock:
            group = self._groups.get(group_id)
            return [] if group is None else [member.member_id for member in group.members]

    def owners(self, group_id: str) -> dict[TopicPartition, str]:
        """Who owns what right now (callbacks delivered), for assertions."""
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                return {}
            return {tp: m.member_id for m in group.members for tp in m.consumer.assignment()}

    def rebalance(self, group_id: str) -> None:
        """Re-spread the subscribed partitions among the group's live members, round robin."""
        with self._lock:
            self._rebalance_locked(group_id)

    def evict(self, group_id: str, member_id: str) -> None:
        """The coordinator drops a member (session or poll interval expired): its partitions go
        to the others at once; the member hears `on_lost` on its next consume() and rejoins."""
        with self._lock:
            group = self._groups.get(group_id)
            member = next((m for m in group.members if m.member_id == member_id), None) if group else None
            if group is None or member is None:
                raise KeyError(f"{member_id} is not a member of {group_id}")
            group.members.remove(member)
            member.consumer._lose_membership()
            self._rebalance_locked(group_id)

    def _join(self, group_id: str, consumer: InMemoryConsumer, topics: frozenset[str]) -> None:
        member = _Member(consumer.member_id, consumer, topics)
        with self._lock:
            group = self._groups.setdefault(group_id, _Group())
            existing = next((m for m in group.members if m.member_id == member.member_id), None)
            if existing is not None:
                existing.topics = member.topics
            else:
                group.members.append(member)
            self._rebalance_locked(group_id)

    def _leave(self, group_id: str, member_id: str) -> None:
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                return
            group.members = [m for m in group.members if m.member_id != member_id]
            self._rebalance_locked(group_id)

    def _rebalance_locked(self, group_id: str) -> None:
        group = self._groups.get(group_id)
        if group is None:
            return
        subscribed = sorted({topic for member in group.members for topic in member.topics})
        partitions = [
            TopicPartition(topic, index)
            for topic in subscribed
            for index in range(len(self._logs.get(topic, [])))
        ]
        target: dict[TopicPartition, str] = {}
        for turn, tp in enumerate(partitions):
            eligible = [m.member_id for m in group.members if tp.topic in m.topics]
            target[tp] = eligible[turn % len(eligible)]
        group.target = target

    def _revocations(self, group_id: str, member_id: str, owned: set[TopicPartition]) -> list[TopicPartition]:
        """What this member owns but is no longer meant to."""
        with self._lock:
            group = self._groups.get(group_id)
            target = {} if group is None else group.target
            return sorted(tp for tp in owned if target.get(tp) != member_id)

    def _claim(self, group_id: str, consumer: InMemoryConsumer) -> list[TopicPartition]:
        """The partitions meant for this member that nobody else holds any more, marked incoming
        at once (under the lock) so that no other member can claim them as well."""
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                return []
            held = {tp for m in group.members for tp in m.consumer._held()}
            gain = sorted(
                tp for tp, owner in group.target.items() if owner == consumer.member_id and tp not in held
            )
            consumer._mark_incoming(gain)
            return gain
