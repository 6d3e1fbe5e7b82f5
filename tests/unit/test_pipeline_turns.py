"""What one turn of the loop gets done: the timing of uploads against the turns (fake clock)."""

from __future__ import annotations

import threading

import pytest

from connector.kafka.ports import Record
from connector.pipeline.loop import Pipeline
from tests.support.pipeline_kit import Kit, deposit, make_kit

pytestmark = pytest.mark.unit


def second_batch_waiting() -> tuple[Kit, Pipeline]:
    """Two batches of one partition consumed: the first uploading (held), the second waiting for it."""
    kit = make_kit()
    for i in range(6):
        kit.broker.produce("deposits", deposit(i), partition=0)
    kit.executor.hold = True
    p = kit.started(max_records=3)
    p.step()
    assert [kit.executor.held_ids(0), len(kit.executor.held)] == [["d0", "d1", "d2"], 1]
    return kit, p


def test_a_finished_upload_frees_its_partition_for_the_next_batch_in_the_same_turn() -> None:
    # A partition has one batch in flight at a time, so each turn that passes between an upload's
    # end and its successor's start is idle time for the partition (with 50 ms of API latency a
    # turn of 10 ms cost a sixth of the throughput).
    kit, p = second_batch_waiting()

    kit.executor.release()  # the upload ends between two turns
    p.step()

    assert [kit.executor.held_ids(0), len(kit.executor.held)] == [["d3", "d4", "d5"], 1]


def test_an_upload_that_ends_while_the_loop_waits_for_records_ends_the_wait() -> None:
    # librdkafka cannot be woken, so the loop polls in short slices while work is out; before the
    # wake-up, an upload ending at the start of a wait was seen only when the whole wait ran out,
    # and its partition sat idle for that time.
    kit, p = second_batch_waiting()
    consumer = kit.consumers["m1"]
    real_consume = consumer.consume

    def upload_ends_as_the_wait_begins(
        max_records: int, timeout_s: float, wake: threading.Event | None = None
    ) -> list[Record]:
        kit.executor.release()
        return real_consume(max_records, timeout_s, wake)

    consumer.consume = upload_ends_as_the_wait_begins  # type: ignore[method-assign]
    waited_from = kit.clock.now()
    p.step()

    assert kit.clock.now() == waited_from  # the in-memory consumer waits on the fake clock
    assert [kit.executor.held_ids(0), len(kit.executor.held)] == [["d3", "d4", "d5"], 1]
