"""The in-memory broker must behave like the real one where the pipeline's correctness depends on it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from connector.errors import CommitError, DeliveryError, FatalKafkaError, KafkaPortError
from connector.kafka.memory.broker import InMemoryBroker
from connector.kafka.memory.clients import InMemoryConsumer
from connector.kafka.ports import TopicPartition
from connector.runtime.clock import FakeClock

pytestmark = pytest.mark.unit

TOPIC = "events"


def tp(partition: int, topic: str = TOPIC) -> TopicPartition:
    return TopicPartition(topic, partition)


class Recorder:
    """A RebalanceListener that writes every callback into a (possibly shared) event list."""

    def __init__(self, name: str, events: list[tuple[str, str, list[TopicPartition]]] | None = None) -> None:
        self.name = name
        self.events: list[tuple[str, str, list[TopicPartition]]] = events if events is not None else []
        self.on_revoke_hook: Callable[[Sequence[TopicPartition]], None] | None = None

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        self.events.append((self.name, "assign", list(partitions)))

    def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        self.events.append((self.name, "revoke", list(partitions)))
        if self.on_revoke_hook is not None:
            self.on_revoke_hook(partitions)

    def on_lost(self, partitions: Sequence[TopicPartition]) -> None:
        self.events.append((self.name, "lost", list(partitions)))

    def mine(self, kind: str) -> list[list[TopicPartition]]:
        return [parts for name, what, parts in self.events if name == self.name and what == kind]


@pytest.fixture
def broker() -> InMemoryBroker:
    return InMemoryBroker()


def joined(broker: InMemoryBroker, group: str, name: str, **kwargs: str) -> tuple[InMemoryConsumer, Recorder]:
    consumer = broker.consumer(group, member_id=name, **kwargs)
    listener = Recorder(name)
    consumer.subscribe([TOPIC], listener)
    return consumer, listener


def settle(*consumers: InMemoryConsumer, rounds: int = 4) -> None:
    """Let every member run its callbacks (a real group needs a few polls too)."""
    for _ in range(rounds):
        for consumer in consumers:
            consumer.consume(0, 0.0)


# --- FakeClock ---------------------------------------------------------------------------------


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=10.0)
    assert clock.now() == 10.0
    clock.advance(1.5)
    clock.sleep(0.5)
    assert clock() == 12.0
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_empty_consume_advances_the_fake_clock_instead_of_sleeping(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 1)
    consumer, _ = joined(broker, "g", "a")
    assert broker.fake_clock is not None
    before = broker.now()
    assert consumer.consume(10, 0.5) == []
    assert broker.now() == before + 0.5

    broker.produce(TOPIC, b"v")
    consumer.consume(10, 0.5)
    assert broker.now() == before + 0.5  # records were returned: no waiting


def test_an_ordinary_clock_callable_is_read_but_never_moved() -> None:
    ticks = iter([100.0, 100.0, 100.0])
    broker = InMemoryBroker(clock=lambda: next(ticks))
    broker.create_topic(TOPIC)
    assert broker.fake_clock is None
    record = broker.produce(TOPIC, b"v")
    assert record.timestamp_ms == 100_000


# --- records and consuming -----------------------------------------------------------------------


def test_records_keep_their_key_headers_position_and_timestamp(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 2)
    assert broker.fake_clock is not None
    broker.fake_clock.advance(3.0)
    broker.produce(TOPIC, b"one", key=b"k", headers=[("h", b"x"), ("empty", None)], partition=1)
    broker.produce(TOPIC, b"two", partition=1)
    consumer, _ = joined(broker, "g", "a")

    records = consumer.consume(10, 0.0)

    assert [(r.topic, r.partition, r.offset, r.value) for r in records] == [
        (TOPIC, 1, 0, b"one"),
        (TOPIC, 1, 1, b"two"),
    ]
    assert records[0].key == b"k"
    assert records[0].headers == (("h", b"x"), ("empty", None))
    assert records[0].timestamp_ms == 3000
    assert broker.records(TOPIC, 1) == records


def test_keyed_records_always_land_on_the_same_partition(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 4)
    partitions = {broker.produce(TOPIC, b"v", key=b"customer-7").partition for _ in range(5)}
    assert len(partitions) == 1
    with pytest.raises(KafkaPortError):
        broker.produce("no-such-topic", b"v")


def test_consume_respects_max_records_and_serves_every_partition(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 2)
    for i in range(10):
        broker.produce(TOPIC, b"%d" % i, partition=i % 2)
    consumer, _ = joined(broker, "g", "a")

    first = consumer.consume(3, 0.0)
    second = consumer.consume(3, 0.0)

    assert len(first) == 3
    assert len(second) == 3
    assert {r.partition for r in first + second} == {0, 1}
    rest = consumer.consume(100, 0.0)
    seen = [(r.partition, r.offset) for r in first + second + rest]
    assert sorted(seen) == [(p, o) for p in (0, 1) for o in range(5)]
    for partition in (0, 1):  # order within a partition is offset order
        offsets = [o for p, o in seen if p == partition]
        assert offsets == sorted(offsets)


def test_new_topic_is_assigned_to_members_already_subscribed(broker: InMemoryBroker) -> None:
    consumer, listener = joined(broker, "g", "a")
    assert consumer.consume(10, 0.0) == []
    broker.create_topic(TOPIC, 2)
    broker.produce(TOPIC, b"v", partition=1)

    records = consumer.consume(10, 0.0)

    assert listener.mine("assign") == [[tp(0), tp(1)]]
    assert [r.value for r in records] == [b"v"]


# --- offsets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("reset", "expected"), [("earliest", [b"old", b"new"]), ("latest", [b"new"])])
def test_without_a_committed_offset_the_reset_policy_decides(
    broker: InMemoryBroker, reset: str, expected: list[bytes]
) -> None:
    broker.create_topic(TOPIC, 1)
    broker.produce(TOPIC, b"old")
    consumer, _ = joined(broker, "g", "a", auto_offset_reset=reset)
    settle(consumer, rounds=1)
    broker.produce(TOPIC, b"new")

    assert [r.value for r in consumer.consume(10, 0.0)] == expected


def test_a_new_member_resumes_from_the_committed_offset(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 1)
    for i in range(5):
        broker.produce(TOPIC, b"%d" % i)
    first, _ = joined(broker, "g", "a")
    assert [r.offset for r in first.consume(2, 0.0)] == [0, 1]
    first.commit({tp(0): 2})
    first.close()

    # The committed offset wins over the reset policy.
    second, _ = joined(broker, "g", "b", auto_offset_reset="latest")

    assert [r.offset for r in second.consume(10, 0.0)] == [2, 3, 4]
    assert broker.committed("g", tp(0)) == 2
    assert second.committed([tp(0)], 1.0) == {tp(0): 2}
    assert broker.commit_log == [("g", tp(0), 2, "a")]


def test_injected_commit_failures_store_nothing(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 1)
    consumer, _ = joined(broker, "g", "a")
    settle(consumer, rounds=1)
    broker.fail_commits(1)

    with pytest.raises(CommitError):
        consumer.commit({tp(0): 1})
    assert broker.committed("g", tp(0)) is None

    consumer.commit({tp(0): 1})
    assert broker.committed("g", tp(0)) == 1
    assert broker.rejected_commits == []


# --- rebalancing -----------------------------------------------------------------------------


def test_partitions_are_spread_round_robin_over_the_members(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 6)
    members = [joined(broker, "g", name)[0] for name in ("a", "b", "c")]
    settle(*members)

    assignments = [m.assignment() for m in members]

    assert [len(a) for a in assignments] == [2, 2, 2]
    assert set().union(*assignments) == {tp(p) for p in range(6)}
    assert broker.owners("g") == {t: m.member_id for m in members for t in m.assignment()}


def test_revoke_is_delivered_before_the_partition_reaches_its_new_owner(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 4)
    events: list[tuple[str, str, list[TopicPartition]]] = []
    old = broker.consumer("g", member_id="old")
    old.subscribe([TOPIC], Recorder("old", events))
    settle(old, rounds=1)
    new = broker.consumer("g", member_id="new")
    new.subscribe([TOPIC], Recorder("new", events))

    new.consume(10, 0.0)  # the old owner has not given anything up yet
    assert new.assignment() == set()
    assert old.assignment() == {tp(p) for p in range(4)}

    old.consume(10, 0.0)
    new.consume(10, 0.0)

    moved = sorted(new.assignment())
    assert len(moved) == 2
    assert events == [
        ("old", "assign", [tp(0), tp(1), tp(2), tp(3)]),
        ("old", "revoke", moved),  # only the partitions that move: cooperative
        ("new", "assign", moved),
    ]
    assert old.assignment() == {tp(p) for p in range(4)} - set(moved)


def test_revoked_partitions_can_be_committed_during_on_revoke_but_not_after(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 2)
    for i in range(4):
        broker.produce(TOPIC, b"%d" % i, partition=i % 2)
    old, old_listener = joined(broker, "g", "old")
    old.consume(10, 0.0)

    def commit_what_is_done(partitions: Sequence[TopicPartition]) -> None:
        assert set(partitions) <= old.assignment()  # still owned while the callback runs
        old.commit({p: 2 for p in partitions})

    old_listener.on_revoke_hook = commit_what_is_done
    new, _ = joined(broker, "g", "new")
    old.consume(10, 0.0)
    from_new_owner = new.consume(10, 0.0)
    (moved,) = new.assignment()

    assert broker.committed("g", moved) == 2
    assert from_new_owner == []  # it starts at the committed offset: nothing left to read
    with pytest.raises(CommitError):
        old.commit({moved: 2})
    assert broker.rejected_commits == [("g", moved, 2, "old")]


def test_commit_of_a_partition_owned_by_another_member_is_refused(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 2)
    a, _ = joined(broker, "g", "a")
    b, _ = joined(broker, "g", "b")
    settle(a, b)
    (theirs,) = b.assignment()
    (mine,) = a.assignment()

    with pytest.raises(CommitError):
        a.commit({mine: 1, theirs: 5})

    assert broker.committed("g", theirs) is None
    assert broker.committed("g", mine) is None  # all or nothing
    assert broker.rejected_commits == [("g", theirs, 5, "a")]


def test_a_callback_that_raises_still_completes_the_revoke(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 2)
    old, old_listener = joined(broker, "g", "old")
    settle(old, rounds=1)

    def explode(_partitions: Sequence[TopicPartition]) -> None:
        raise RuntimeError("pipeline bug")

    old_listener.on_revoke_hook = explode
    new, _ = joined(broker, "g", "new")

    with pytest.raises(RuntimeError, match="pipeline bug"):
        old.consume(10, 0.0)
    settle(old, new)

    assert len(old.assignment()) == 1
    assert len(new.assignment()) == 1


def test_close_leaves_without_callbacks_and_the_others_take_over(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 4)
    a, _ = joined(broker, "g", "a")
    b, b_listener = joined(broker, "g", "b")
    settle(a, b)
    assert len(b.assignment()) == 2

    b.close()
    settle(a)

    assert a.assignment() == {tp(p) for p in range(4)}
    assert b_listener.mine("revoke") == []
    assert b.assignment() == set()
    assert broker.members("g") == ["a"]
    with pytest.raises(RuntimeError):
        b.consume(10, 0.0)


def test_a_killed_member_commits_nothing_and_its_partitions_restart_from_the_last_commit(
    broker: InMemoryBroker,
) -> None:
    broker.create_topic(TOPIC, 1)
    for i in range(10):
        broker.produce(TOPIC, b"%d" % i)
    victim, victim_listener = joined(broker, "g", "victim")
    survivor, _ = joined(broker, "g", "survivor")
    settle(victim, survivor)
    assert victim.assignment() == {tp(0)}
    victim.consume(5, 0.0)
    victim.commit({tp(0): 3})
    victim.consume(5, 0.0)

    victim.kill()

    assert [r.offset for r in survivor.consume(100, 0.0)] == list(range(3, 10))
    assert victim_listener.mine("revoke") == []
    with pytest.raises(FatalKafkaError):
        victim.consume(10, 0.0)
    with pytest.raises(FatalKafkaError):
        victim.commit({tp(0): 10})
    assert broker.committed("g", tp(0)) == 3
    assert broker.commit_log == [("g", tp(0), 3, "victim")]


def test_an_evicted_member_hears_on_lost_cannot_commit_and_rejoins(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 2)
    a, a_listener = joined(broker, "g", "a")
    b, _ = joined(broker, "g", "b")
    settle(a, b)
    (lost,) = a.assignment()

    broker.evict("g", "a")
    b.consume(0, 0.0)
    assert b.assignment() == {tp(0), tp(1)}  # handed over at once: the coordinator gave up on "a"
    with pytest.raises(CommitError):
        a.commit({lost: 1})

    a.consume(0, 0.0)
    settle(a, b)

    assert a_listener.mine("lost") == [[lost]]
    assert a_listener.mine("revoke") == []
    assert len(a.assignment()) == 1
    assert len(b.assignment()) == 1
    assert broker.rejected_commits == [("g", lost, 1, "a")]


# --- pause and resume ------------------------------------------------------------------------


def test_paused_partitions_return_nothing_until_resumed(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 2)
    consumer, _ = joined(broker, "g", "a")
    settle(consumer, rounds=1)
    for i in range(4):
        broker.produce(TOPIC, b"%d" % i, partition=i % 2)

    consumer.pause([tp(0)])
    first = consumer.consume(100, 0.0)
    assert {r.partition for r in first} == {1}
    broker.produce(TOPIC, b"late", partition=0)
    assert consumer.consume(100, 0.0) == []
    assert consumer.paused() == {tp(0)}

    consumer.resume([tp(0)])
    resumed = consumer.consume(100, 0.0)

    assert [(r.partition, r.offset) for r in resumed] == [(0, 0), (0, 1), (0, 2)]


def test_pausing_a_partition_not_owned_is_ignored(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 1)
    consumer = broker.consumer("g")
    consumer.pause([tp(0)])
    consumer.subscribe([TOPIC], Recorder("a"))
    broker.produce(TOPIC, b"v")

    assert [r.value for r in consumer.consume(10, 0.0)] == [b"v"]


def test_high_watermarks_come_only_from_fetched_partitions(broker: InMemoryBroker) -> None:
    broker.create_topic(TOPIC, 2)
    for i in range(3):
        broker.produce(TOPIC, b"%d" % i, partition=0)
    consumer, _ = joined(broker, "g", "a")
    assert consumer.high_watermarks() == {}  # nothing fetched yet

    consumer.consume(1, 0.0)
    assert consumer.high_watermarks() == {tp(0): 3, tp(1): 0}

    consumer.pause([tp(1)])
    broker.produce(TOPIC, b"more", partition=0)
    broker.produce(TOPIC, b"more", partition=1)
    consumer.consume(1, 0.0)
    # A paused partition is not fetched, so its end offset is as last seen.
    assert consumer.high_watermarks() == {tp(0): 4, tp(1): 0}


# --- producing -------------------------------------------------------------------------------


def test_delivery_reports_run_only_from_poll_or_flush(broker: InMemoryBroker) -> None:
    broker.create_topic("dlq", 1)
    producer = broker.producer()
    reports: list[DeliveryError | None] = []

    producer.produce("dlq", b"k", b"v", [("reason", b"bad")], reports.append)
    assert reports == []
    assert producer.outstanding() == 1

    assert producer.poll(0.0) == 1
    assert reports == [None]
    (written,) = broker.records("dlq")
    assert (written.key, written.value, written.headers) == (b"k", b"v", (("reason", b"bad"),))


def test_failing_deliveries_write_nothing_and_report_an_error(broker: InMemoryBroker) -> None:
    broker.create_topic("dlq", 1)
    broker.fail_deliveries("dlq", 2, error="broker said no")
    producer = broker.producer()
    reports: list[DeliveryError | None] = []

    for i in range(3):
        producer.produce("dlq", None, b"%d" % i, [], reports.append)
    assert producer.flush(1.0) == 0

    assert [str(r) if r else None for r in reports] == ["broker said no", "broker said no", None]
    assert [r.value for r in broker.records("dlq")] == [b"2"]


def test_unknown_topic_is_a_delivery_error(broker: InMemoryBroker) -> None:
    producer = broker.producer()
    reports: list[DeliveryError | None] = []
    producer.produce("missing", None, b"v", [], reports.append)
    producer.flush(1.0)
    assert len(reports) == 1
    assert isinstance(reports[0], DeliveryError)


def test_held_deliveries_stay_outstanding_and_flush_waits_on_the_fake_clock(broker: InMemoryBroker) -> None:
    broker.create_topic("dlq", 1)
    producer = broker.producer()
    reports: list[DeliveryError | None] = []
    broker.hold_deliveries()
    producer.produce("dlq", None, b"v", [], reports.append)
    start = broker.now()

    assert producer.flush(2.0) == 1
    assert producer.poll(0.5) == 0
    assert reports == []
    assert broker.now() == start + 2.5

    broker.hold_deliveries(False)
    assert producer.flush(2.0) == 0
    assert reports == [None]


def test_in_memory_admin_creates_and_lists_topics(broker: InMemoryBroker) -> None:
    admin = broker.admin()
    admin.create_topics(["a", "b"], 3, 1.0)
    admin.create_topics(["a"], 5, 1.0)  # existing topics are left as they are
    assert admin.list_topics(1.0) == {"a": 3, "b": 3}
