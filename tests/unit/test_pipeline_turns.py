"""What one turn of the loop gets done: the timing of uploads against the turns (fake clock)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.pipeline_kit import deposit, make_kit

pytestmark = pytest.mark.unit


def test_a_finished_upload_frees_its_partition_for_the_next_batch_in_the_same_turn() -> None:
    # A partition has one batch in flight at a time, so each turn that passes between an upload's
    # end and its successor's start is idle time for the partition (with 50 ms of API latency a
    # turn of 10 ms cost a sixth of the throughput).
    kit = make_kit()
    for i in range(6):
        kit.broker.produce("deposits", deposit(i), partition=0)
    kit.executor.hold = True
    p = kit.started(max_records=3)
    p.step()  # consumes both batches; the second waits for the first
    assert [kit.executor.held_ids(0), len(kit.executor.held)] == [["d0", "d1", "d2"], 1]

    kit.executor.release()  # the upload ends between two turns
    p.step()

    assert [kit.executor.held_ids(0), len(kit.executor.held)] == [["d3", "d4", "d5"], 1]


def test_an_upload_that_ends_while_the_loop_waits_for_records_ends_the_wait() -> None:
    # librdkafka cannot be woken, so the loop polls in short slices while work is out; before the
    # wake-up, an upload ending at the start of a wait was seen only when the whole wait ran out,
    # and its partition sat idle for that time.
    kit = make_kit()
    for i in range(6):
        kit.broker.produce("deposits", deposit(i), partition=0)
    kit.executor.hold = True
    p = kit.started(max_records=3)
    p.step()  # both batches consumed, the first one uploading
    consumer = kit.consumers["m1"]
    real_consume = consumer.consume

    def upload_ends_as_the_wait_begins(max_records: int, timeout_s: float, wake: Any = None) -> Any:
        kit.executor.release()
        return real_consume(max_records, timeout_s, wake)

    consumer.consume = upload_ends_as_the_wait_begins  # type: ignore[method-assign]
    waited_from = kit.clock.now()
    p.step()

    assert kit.clock.now() == waited_from  # the in-memory consumer waits on the fake clock
    assert [kit.executor.held_ids(0), len(kit.executor.held)] == [["d3", "d4", "d5"], 1]
