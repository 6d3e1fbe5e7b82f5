from __future__ import annotations

import pytest

from connector.kafka.ports import Record, TopicPartition
from connector.pipeline.batching import BatchAccumulator, BatchItem, DispatchQueue

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def item(partition: int, offset: int, body: bytes = b'{"a":1}') -> BatchItem:
    return BatchItem(Record("t", partition, offset, None, b"v"), body)


def test_seals_at_max_records() -> None:
    acc = BatchAccumulator(("d", "deposit", 0), 3, 10_000, 1.0, Clock())
    assert acc.add(item(0, 0)) is None and acc.add(item(0, 1)) is None
    sealed = acc.add(item(0, 2))
    assert sealed is not None and [i.record.offset for i in sealed.items] == [0, 1, 2]
    assert acc.flush() is None


def test_seals_before_exceeding_max_bytes() -> None:
    body = b"x" * 40
    acc = BatchAccumulator(("d", "deposit", 0), 500, 2 + 2 * 41, 1.0, Clock())
    assert acc.add(item(0, 0, body)) is None
    assert acc.add(item(0, 1, body)) is None
    sealed = acc.add(item(0, 2, body))  # a third would make the body 125 bytes > 84
    assert sealed is not None and len(sealed) == 2
    assert sealed.body_bytes == len(b"[" + b",".join([body, body]) + b"]")
    rest = acc.flush()
    assert rest is not None and [i.record.offset for i in rest.items] == [2]


def test_due_after_max_wait_from_first_record() -> None:
    clock = Clock()
    acc = BatchAccumulator(("d", "deposit", 0), 500, 10_000, 1.0, clock)
    assert acc.due_at() is None
    acc.add(item(0, 0))
    clock.t += 0.6
    acc.add(item(0, 1))
    assert acc.take_if_due(clock()) is None
    clock.t += 0.4
    batch = acc.take_if_due(clock())
    assert batch is not None and len(batch) == 2 and acc.due_at() is None


def test_drop_partitions_from_open_batch() -> None:
    acc = BatchAccumulator(("d", "deposit", 0), 500, 10_000, 1.0, Clock())
    for p, o in ((0, 0), (1, 0), (0, 1)):
        acc.add(item(p, o))
    dropped = acc.drop_partitions([TopicPartition("t", 0)])
    assert [(i.record.partition, i.record.offset) for i in dropped] == [(0, 0), (0, 1)]
    batch = acc.flush()
    assert batch is not None and [i.record.partition for i in batch.items] == [1]


def test_dispatch_queue_keeps_partition_order_and_parallelism() -> None:
    acc = BatchAccumulator(("d", "deposit", 0), 2, 10_000, 1.0, Clock())
    q = DispatchQueue()
    for p, o in ((0, 0), (1, 0), (2, 0), (2, 1), (0, 1), (3, 0)):
        sealed = acc.add(item(p, o))
        if sealed:
            q.push(sealed)
    # batches: [p0,p1] [p2,p2] [p0,p3]
    first = q.ready()
    assert [sorted(tp.partition for tp in b.partitions) for b in first] == [[0, 1], [2]]
    assert q.ready() == []  # the third holds p0, whose earlier batch is still in flight
    q.finished(first[1])
    assert q.ready() == []
    q.finished(first[0])
    third = q.ready()
    assert [sorted(tp.partition for tp in b.partitions) for b in third] == [[0, 3]]


def test_dispatch_queue_drop_partitions() -> None:
    acc = BatchAccumulator(("d", "deposit", 0), 2, 10_000, 1.0, Clock())
    q = DispatchQueue()
    for p, o in ((0, 0), (1, 0), (0, 1), (0, 2)):
        sealed = acc.add(item(p, o))
        if sealed:
            q.push(sealed)
    dropped = q.drop_partitions([TopicPartition("t", 0)])
    assert len(dropped) == 3 and len(q) == 1
    (batch,) = q.ready()
    assert [i.record.partition for i in batch.items] == [1]
