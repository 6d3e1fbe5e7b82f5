"""What one turn of the loop gets done: the timing of uploads against the turns (fake clock)."""

from __future__ import annotations

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
