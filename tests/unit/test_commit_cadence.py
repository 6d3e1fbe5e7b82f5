"""When done work is committed: the commit interval bounds how often the loop commits, never how
long finished work waits after an idle spell, and a long drain commits on the same interval.

Every uncommitted record the API accepted is a duplicate after a crash, so these bound the window
of invariant 2 (bounded duplicates) without touching invariant 1 (only what is done is committed).
"""

from __future__ import annotations

import pytest

from connector.kafka.ports import TopicPartition
from connector.pipeline.loop import Pipeline
from tests.support.pipeline_kit import Kit, deposit, make_kit

pytestmark = pytest.mark.unit

INTERVAL_S = 1.0
TP0 = TopicPartition("deposits", 0)


def produce(kit: Kit, numbers: range) -> None:
    for i in numbers:
        kit.broker.produce("deposits", deposit(i), partition=0)


def committed(kit: Kit) -> int:
    return kit.broker.committed("g", TP0) or 0


def idle(kit: Kit, p: Pipeline, seconds: float) -> None:
    """Turns of the loop with nothing to fetch (each empty poll moves the fake clock)."""
    deadline = kit.clock.now() + seconds
    while kit.clock.now() < deadline:
        p.step()


@pytest.mark.parametrize("idle_s", [1.3, 1.7, 2.9, 10.1])
def test_the_first_work_done_after_an_idle_spell_is_committed_in_the_same_turn(idle_s: float) -> None:
    """Start-up (the group join), a pause or a quiet topic leaves the loop idle; the first records
    accepted after it are committed at once, not up to an interval later: a process killed right
    after its first uploads (the chaos kill loop) would send them all again."""
    kit = make_kit()
    p = kit.started(commit_interval_s=INTERVAL_S)
    idle(kit, p, idle_s)
    produce(kit, range(3))  # one full batch

    p.step()  # fetch, upload (inline), settle

    assert p.stats["accepted"] == 3
    assert committed(kit) == 3


def test_committing_where_fetching_started_does_not_delay_the_first_done_work() -> None:
    """The first fetch commits its start position (nothing done yet); that commit is no progress
    and must not push the commit of the first accepted upload an interval away (on Tansu it came
    about 80 ms before the first upload was accepted, and the kill loop's kills ~0.5 s later)."""
    kit = make_kit()
    p = kit.started(commit_interval_s=INTERVAL_S)
    idle(kit, p, 2.0)
    produce(kit, range(3))
    kit.executor.hold = True
    p.step()  # fetched, the upload is out
    assert [offset for _g, _tp, offset, _m in kit.broker.commit_log] == [0]

    kit.executor.release()
    p.step()

    assert p.stats["accepted"] == 3
    assert committed(kit) == 3


def test_done_work_is_committed_at_most_once_an_interval_and_within_one() -> None:
    """The interval still rate-limits the commits while work keeps finishing."""
    kit = make_kit()
    p = kit.started(commit_interval_s=INTERVAL_S)
    idle(kit, p, 2.0)
    produce(kit, range(3))
    p.step()
    assert committed(kit) == 3
    commits = len(kit.broker.commit_log)
    first = kit.clock.now()

    produce(kit, range(3, 6))
    p.step()
    assert p.stats["accepted"] == 6
    assert committed(kit) == 3  # within the interval of the last commit: not yet

    while kit.clock.now() - first < INTERVAL_S:
        assert committed(kit) == 3
        p.step()
    assert committed(kit) == 6  # the first turn one interval after the last commit
    assert len(kit.broker.commit_log) == commits + 1


def test_a_failing_commit_is_retried_once_an_interval_not_on_every_turn() -> None:
    kit = make_kit()
    p = kit.started(commit_interval_s=INTERVAL_S)
    idle(kit, p, 2.0)
    produce(kit, range(3))
    kit.executor.hold = True  # nothing done: only the start position is there to commit
    kit.broker.fail_commits(100)
    p.step()
    started = kit.clock.now()
    while kit.clock.now() - started < 3.5:
        p.step()

    failed = p.metrics.registry.get_sample_value("optikpi_offset_commits_total", {"result": "failed"})
    assert failed == 4  # at the first turn, then once a second: 1, 2, 3 s later
    assert kit.broker.committed("g", TP0) is None
    assert p.commits == 0  # only successful commits count


def test_a_long_shutdown_drain_commits_what_it_finished_on_the_interval() -> None:
    """Uploads that finish during a drain are committed as they finish (on the interval), not only
    at its end: a drain cut short (a kill after the grace period) re-sends only the rest."""
    kit = make_kit()
    produce(kit, range(9))  # three batches of one partition: they go out one after the other
    kit.executor.hold = True
    released_at: list[float] = []
    committed_at_release: list[int] = []

    def api_answers_every_1_5_s() -> None:
        now = kit.clock.now()
        if kit.executor.held and (not released_at or now - released_at[-1] >= 1.5):
            committed_at_release.append(committed(kit))
            released_at.append(now)
            kit.executor.release()

    kit.sleep_hooks.append(api_answers_every_1_5_s)
    p = kit.pipeline(shutdown_timeout_s=20.0, commit_interval_s=INTERVAL_S)

    def stop_once_in_flight(p: Pipeline) -> bool:
        if kit.executor.held:
            p.request_stop()
        return False

    assert p.run(until=stop_once_in_flight) == 0
    assert p.stats["accepted"] == 9
    assert committed(kit) == 9
    # When the last batch is answered, the two before it are committed already.
    assert committed_at_release == [0, 3, 6]
