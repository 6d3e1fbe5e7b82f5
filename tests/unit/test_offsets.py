from __future__ import annotations

import random

import pytest

from connector.kafka.ports import Record, TopicPartition
from connector.pipeline.offsets import OffsetTracker, PartitionOffsets

pytestmark = pytest.mark.unit
TP = TopicPartition("t", 0)


def test_position_is_lowest_offset_not_done() -> None:
    p = PartitionOffsets()
    assert p.position() is None
    for o in (10, 11, 12, 13):
        assert p.add(o, 1)
    assert p.position() == 10
    p.done(11)
    p.done(13)
    assert p.position() == 10  # 10 still in flight: never commit past it
    p.done(10)
    assert p.position() == 12
    p.done(12)
    assert p.position() == 14 and p.pending_count == 0


def test_gaps_in_offsets_compacted_topic() -> None:
    p = PartitionOffsets()
    for o in (3, 7, 20):
        p.add(o, 1)
    p.done(3)
    assert p.position() == 7
    p.done(20)
    p.done(7)
    assert p.position() == 21


def test_redelivery_and_double_done_are_harmless() -> None:
    p = PartitionOffsets()
    assert p.add(5, 10)
    assert not p.add(5, 10) and not p.add(4, 10)
    assert p.done(5) == 10
    assert p.done(5) is None and p.done(99) is None
    assert p.position() == 6


def test_random_completion_order_never_commits_an_unfinished_offset() -> None:
    rng = random.Random(4)
    for _ in range(50):
        p = PartitionOffsets()
        offsets = list(range(100, 100 + rng.randint(1, 60)))
        for o in offsets:
            p.add(o, 1)
        order = offsets[:]
        rng.shuffle(order)
        finished: set[int] = set()
        for o in order:
            p.done(o)
            finished.add(o)
            position = p.position()
            assert position is not None
            assert all(x in finished for x in offsets if x < position)
            assert position == offsets[-1] + 1 or position not in finished


def test_tracker_commits_only_moved_positions_of_owned_partitions() -> None:
    t = OffsetTracker()
    t.assign(TP)
    other = TopicPartition("t", 1)
    t.assign(other)
    t.add(TP, 0, 5)
    t.add(TP, 1, 5)
    t.add(other, 0, 5)
    assert t.to_commit() == {TP: 0, other: 0}
    t.committed({TP: 0, other: 0})
    assert t.to_commit() == {}
    t.done(TP, 0)
    assert t.to_commit() == {TP: 1}
    assert t.to_commit([other]) == {}
    assert t.drop(TP) == (1, 5)
    assert t.to_commit([TP]) == {} and not t.owns(TP)
    assert t.done(TP, 1) is None  # late completion of a revoked partition is ignored
    assert not t.add(TP, 2, 1)


def test_a_batch_done_at_once_counts_only_what_was_pending_and_moves_each_position() -> None:
    other = TopicPartition("t", 1)
    tracker = OffsetTracker()
    tracker.assign(TP)
    tracker.assign(other)
    for offset in range(4):
        tracker.add(TP, offset, 10)
        tracker.add(other, offset, 100)
    tracker.done(TP, 1)  # already done (a dead letter, say)
    gone = TopicPartition("t", 2)  # revoked meanwhile: not ours any more
    records = [Record("t", p, o, None, b"") for p, o in ((0, 0), (0, 1), (0, 2), (1, 0), (2, 0))]

    assert tracker.done_many(records) == (3, 10 + 10 + 100)
    assert tracker.to_commit() == {TP: 3, other: 1}
    assert not tracker.owns(gone) and tracker.pending_count(TP) == 1
