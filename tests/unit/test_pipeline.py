"""The consumer loop against the in-memory broker: one or more tests per design invariant.

Every test drives the pipeline deterministically (fake clock, inline executor that can hold
uploads and release them in any order) and asserts on what the broker and the API saw.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from structlog.testing import capture_logs

import connector.pipeline.loop as pipeline_module
from connector import __version__
from connector.errors import CredentialsError, MappingError
from connector.ingest.backoff import Backoff
from connector.kafka.ports import Header, Record, TopicPartition
from connector.pipeline.deadletter import format_timestamp
from connector.pipeline.deadletter_path import DeadLetterBreaker
from connector.pipeline.loop import Pipeline
from connector.pipeline.offsets import OffsetTracker
from connector.pipeline.pauses import PauseBook
from connector.pipeline.retry import RetrySchedule
from connector.runtime.health import Health, Reason
from connector.runtime.metrics import Metrics
from tests.support.pipeline_kit import (
    DEPOSIT_MAPPING,
    EPOCH,
    ClockRanAway,
    Kit,
    RegistryDownFraming,
    deposit,
    make_kit,
)

pytestmark = pytest.mark.unit

GROUP = "g"
TP0 = TopicPartition("deposits", 0)
TP1 = TopicPartition("deposits", 1)
BOTH = {TP0, TP1}


# ------------------------------------------------------------------------------------ helpers
def produce(kit: Kit, values: Iterable[bytes], partition: int = 0, **kwargs: Any) -> list[Record]:
    return [kit.broker.produce("deposits", v, partition=partition, **kwargs) for v in values]


def deposits(ids: Iterable[int]) -> list[bytes]:
    return [deposit(i) for i in ids]


def received(kit: Kit) -> list[str]:
    return [record["event_id"] for _endpoint, record in kit.uploader.received]


def ids(numbers: Iterable[int]) -> list[str]:
    return [f"d{i}" for i in numbers]


def committed(kit: Kit, tp: TopicPartition = TP0) -> int | None:
    return kit.broker.committed(GROUP, tp)


def step_until(condition: Callable[[], bool], *pipelines: Pipeline, limit: int = 2000) -> None:
    """Step the pipelines (round robin) until `condition` holds; fail if it never does."""
    for _ in range(limit):
        if condition():
            return
        for p in pipelines:
            p.step()
    raise AssertionError("condition not reached")


def within(
    kit: Kit, condition: Callable[[Pipeline], bool], seconds: float = 60.0
) -> Callable[[Pipeline], bool]:
    """An `until` for run(): `condition`, or an error once the fake clock passes `seconds`, so that a
    broken pipeline fails the test instead of looping forever."""

    def until(p: Pipeline) -> bool:
        if kit.clock.now() > seconds:
            raise ClockRanAway(f"not done after {seconds} s of fake time")
        return condition(p)

    return until


def assert_backs_off(gaps: list[float], first: float, cap: float, slack: float) -> None:
    """Retry gaps of a jittered doubling schedule: each within [ceiling/2, ceiling] (give or take the
    loop's step), the ceiling doubling from `first` up to `cap`."""
    for attempt, gap in enumerate(gaps):
        ceiling = min(cap, first * 2**attempt)
        assert ceiling / 2 - slack <= gap <= ceiling + slack, (attempt, gap, gaps)


def steps(count: int, *pipelines: Pipeline) -> None:
    for _ in range(count):
        for p in pipelines:
            p.step()


def added_headers(record: Record) -> dict[str, bytes | None]:
    return {name: value for name, value in record.headers if name.startswith(("__connect.", "optikpi."))}


def dlq_origin(record: Record) -> tuple[int, int]:
    headers = added_headers(record)
    partition, offset = headers["__connect.errors.partition"], headers["__connect.errors.offset"]
    assert partition is not None and offset is not None
    return int(partition), int(offset)


def release_matching(kit: Kit, wanted: Callable[[list[str]], bool]) -> Callable[[], None]:
    """A sleep hook that finishes the held uploads whose event ids satisfy `wanted`."""

    def hook() -> None:
        for index in reversed(range(len(kit.executor.held))):
            if wanted(kit.executor.held_ids(index)):
                kit.executor.release(index)

    return hook


# ================================================================ 1. no loss: commit only after success
def test_held_uploads_block_the_commit_until_they_finish() -> None:
    kit = make_kit()
    produce(kit, deposits(range(7)))
    kit.executor.hold = True
    p = kit.started()

    p.step()
    assert kit.executor.held_ids(0) == ids(range(3))
    kit.clock.advance(5.0)  # ten commit intervals
    steps(5, p)
    assert (committed(kit) or 0) == 0
    assert all(offset == 0 for _g, _tp, offset, _m in kit.broker.commit_log)
    assert p.in_flight_records == 7

    kit.executor.release()  # first batch accepted: the second one goes out and is held
    step_until(lambda: committed(kit) == 3, p)
    assert kit.executor.held_ids(0) == ids(range(3, 6))
    kit.clock.advance(5.0)
    steps(5, p)
    assert committed(kit) == 3

    def release_and_check() -> bool:
        kit.executor.release()
        return committed(kit) == 7

    step_until(release_and_check, p)
    assert received(kit) == ids(range(7))
    assert p.in_flight_records == 0


def test_failed_upload_stops_with_exit_1_and_commits_nothing_of_that_batch() -> None:
    kit = make_kit()
    produce(kit, deposits(range(7)))
    kit.uploader.fail_with = [None, RuntimeError("connection reset in a way we do not handle")]
    p = kit.pipeline()

    assert p.run(until=within(kit, lambda p: False)) == 1
    assert received(kit) == ids(range(3))
    assert committed(kit) == 3
    assert max(offset for _g, _tp, offset, _m in kit.broker.commit_log) == 3
    assert kit.broker.members(GROUP) == []


@pytest.mark.parametrize("crash_point", ["finished-not-committed", "committed-while-in-flight"])
def test_crash_and_restart_lose_nothing_and_resend_at_most_the_uncommitted_window(crash_point: str) -> None:
    kit = make_kit(partitions=2)
    poison = {5, 12, 19, 104, 111}
    for partition, numbers in ((0, range(0, 25)), (1, range(100, 125))):
        produce(kit, [b"poison" if i in poison else deposit(i) for i in numbers], partition)
    kit.executor.hold = True
    first = kit.started(commit_interval_s=5.0)

    def one_batch_at_a_time() -> bool:
        kit.executor.release()
        kit.clock.advance(5.0)  # a commit on every turn
        return bool(committed(kit, TP0)) and bool(committed(kit, TP1))

    step_until(one_batch_at_a_time, first)  # both partitions partly committed
    # From here on the clock barely moves unless told: no commit without an advance.
    step_until(lambda: bool(kit.executor.held), first)
    if crash_point == "finished-not-committed":
        kit.executor.release()
        step_until(lambda: bool(kit.executor.held), first)
    else:  # a commit happens while an upload is in flight, and the crash comes before it answers
        kit.clock.advance(5.0)
        steps(2, first)
    assert kit.executor.held
    assert sum(1 for p, _o in map(_origin, received(kit)) if p == 1) < 20  # work is left for later

    kit.consumers["m1"].kill()  # kill -9: nothing more from this pipeline
    at_crash = {tp.partition: committed(kit, tp) or 0 for tp in BOTH}
    window = sum(kit.broker.end_offset(tp) - at_crash[tp.partition] for tp in BOTH)
    finished_before = [_origin(i) for i in received(kit)] + [dlq_origin(r) for r in kit.dlq()]
    kit.executor.hold = False

    second = kit.pipeline(member="m2")
    assert second.run(until=within(kit, lambda p: all(committed(kit, tp) == 25 for tp in BOTH), 600)) == 0

    good = {f"d{i}" for i in [*range(0, 25), *range(100, 125)] if i not in poison}
    got = Counter(received(kit))
    assert set(got) == good
    dead = Counter(dlq_origin(r) for r in kit.dlq())
    assert set(dead) == {_origin(f"d{i}") for i in poison}
    duplicates = sum(n - 1 for n in got.values()) + sum(n - 1 for n in dead.values())
    # Re-sent: exactly what was finished after the last commit, nothing older, and never more
    # than the uncommitted window.
    expected = sum(1 for partition, offset in finished_before if offset >= at_crash[partition])
    assert duplicates == expected <= window
    if crash_point == "finished-not-committed":
        assert duplicates > 0
    assert kit.broker.rejected_commits == []


def _origin(event_id: str) -> tuple[int, int]:
    number = int(event_id[1:])
    return divmod(number, 100)


# ================================================================ 2. out-of-order completion, partitions
def test_a_later_batch_finishing_first_commits_only_its_own_partition() -> None:
    kit = make_kit(partitions=2)
    produce(kit, deposits(range(3)), partition=0)
    produce(kit, deposits(range(100, 103)), partition=1)
    kit.executor.hold = True
    p = kit.started()
    p.step()
    assert [kit.executor.held_ids(i) for i in range(2)] == [ids(range(3)), ids(range(100, 103))]

    kit.executor.release(1)  # the later batch (partition 1) finishes first
    step_until(lambda: committed(kit, TP1) == 3, p)
    kit.clock.advance(2.0)
    steps(3, p)
    assert (committed(kit, TP0) or 0) == 0
    assert p.committed_positions()[TP0] == 0

    kit.executor.release()
    step_until(lambda: committed(kit, TP0) == 3, p)
    assert committed(kit, TP1) == 3


# ================================================================ 3. order within a partition
@pytest.mark.parametrize("partitions", [1, 2])
def test_records_of_a_partition_reach_the_endpoint_in_offset_order(partitions: int) -> None:
    kit = make_kit(partitions=partitions)
    numbers = {0: list(range(12)), 1: list(range(100, 112))}
    for partition in range(partitions):
        produce(kit, deposits(numbers[partition]), partition)
    kit.executor.hold = True
    p = kit.started(max_records=4)
    total = 12 * partitions
    most_held = 0

    def newest_first() -> bool:
        nonlocal most_held
        most_held = max(most_held, len(kit.executor.held))
        if kit.executor.held:
            kit.executor.release(len(kit.executor.held) - 1)
        return len(kit.uploader.received) == total

    step_until(newest_first, p)
    got = received(kit)
    for partition in range(partitions):
        assert [i for i in got if i in set(ids(numbers[partition]))] == ids(numbers[partition])
    assert most_held <= partitions  # never two batches of one partition in flight


def test_a_batch_parked_on_credentials_is_not_overtaken_by_the_next_one() -> None:
    kit = make_kit(partitions=2)
    produce(kit, deposits(range(3)), partition=0)
    produce(kit, deposits(range(100, 106)), partition=1)  # two batches
    refused = CredentialsError(401, "deposit", "bad token")
    kit.uploader.fail_with = [refused, refused]  # both first batches
    p = kit.started()

    p.step()
    assert kit.uploader.calls == 2
    step_until(lambda: committed(kit, TP0) == 3 and committed(kit, TP1) == 6, p)
    # Both parked batches probed together at the first wait (2.5-5 s), not one wait after the other.
    assert kit.uploader.call_times[2] == kit.uploader.call_times[3] <= 5.0
    got = received(kit)
    assert sorted(got) == sorted(ids([0, 1, 2, *range(100, 106)]))
    partition_1 = set(ids(range(100, 106)))
    assert [i for i in got if i in partition_1] == ids(range(100, 106))  # its second batch after its first


# ================================================================ 4. poison never blocks
MAP_MAPPING = DEPOSIT_MAPPING.model_copy(
    update={"fields": {"user_id": "player_id.x", "event_id": "deposit_id", "event_time": "created_at"}}
)
ORIGINAL_HEADERS: tuple[Header, ...] = (("trace-id", b"\x01\x02\xff"), ("empty", None), ("trace-id", b"2"))
POISON_KEY = b"\x00key\xff"


def good(i: int) -> bytes:
    return deposit(i, player_id={"x": f"p{i}"})


POISON_CASES = {
    "decode-garbage": (b"poison", "DECODE", "DecodeError", "not JSON"),
    "decode-empty": (b"", "DECODE", "DecodeError", "empty value"),
    "map": (deposit(1, player_id="p1"), "MAP", MappingError.__name__, "user_id"),
    "validate": (deposit(1, player_id={"x": "p1"}, amount=0), "VALIDATE", "ValidationError", "amount"),
    "upload": (deposit(1, player_id={"x": "p1"}, amount=999), "UPLOAD", "IngestRejected", "amount"),
}


@pytest.mark.parametrize("case", sorted(POISON_CASES))
def test_poison_goes_to_the_dead_letter_topic_intact_and_the_partition_moves_on(case: str) -> None:
    value, stage, error_class, message_names = POISON_CASES[case]
    kit = make_kit()
    kit.uploader.reject_if = lambda record: record.get("amount") == 999
    produce(kit, [good(0)])
    poison = kit.broker.produce("deposits", value, key=POISON_KEY, headers=ORIGINAL_HEADERS, partition=0)
    produce(kit, [good(2), good(3)])
    p = kit.pipeline(mappings=(MAP_MAPPING,))

    assert p.run(until=within(kit, lambda p: committed(kit) == 4)) == 0

    assert received(kit) == ["d0", "d2", "d3"]
    assert p.in_flight_records == 0
    [dead] = kit.dlq()
    assert (dead.key, dead.value) == (POISON_KEY, value)
    assert dead.headers[: len(ORIGINAL_HEADERS)] == ORIGINAL_HEADERS
    headers = added_headers(dead)
    failed_at = headers.pop("optikpi.failed_at")
    message = headers.pop("__connect.errors.exception.message")
    expected: dict[str, bytes | None] = {
        "__connect.errors.topic": b"deposits",
        "__connect.errors.partition": b"0",
        "__connect.errors.offset": str(poison.offset).encode(),
        "__connect.errors.stage": stage.encode(),
        "__connect.errors.exception.class.name": error_class.encode(),
        "optikpi.endpoint": b"deposit",
        "optikpi.connector.version": __version__.encode(),
    }
    if stage == "UPLOAD":
        expected["optikpi.http.status"] = b"400"
        expected["optikpi.http.response"] = b'{"error":"Bad Request"}'
        # The X-Trace-Id of the upload that was refused (tests/unit/test_tracing_pipeline.py).
        trace_id = headers.pop("optikpi.trace_id")
        assert trace_id is not None and trace_id.decode() in kit.uploader.trace_ids
    assert headers == expected
    assert message is not None and message_names in message.decode()
    assert failed_at is not None and re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", failed_at)
    stamp = datetime.fromisoformat(failed_at.decode().replace("Z", "+00:00"))
    assert EPOCH <= stamp <= kit.utc_now()  # the fake clock's wall time, in UTC
    assert p.dead_lettered_by_stage[stage] == 1
    assert p.stats["dead_lettered"] == 1


def test_dead_letter_timestamps_are_utc_with_milliseconds() -> None:
    assert format_timestamp(datetime(2024, 3, 1, 12, 0, 5, 250_999, tzinfo=UTC)) == "2024-03-01T12:00:05.250Z"
    assert format_timestamp(datetime(2024, 3, 1, 0, 0, 0, 7_000, tzinfo=UTC)) == "2024-03-01T00:00:00.007Z"
    two_hours_east = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2024, 3, 1, 1, 30, tzinfo=two_hours_east)) == "2024-02-29T23:30:00.000Z"


def test_failed_dead_letter_write_holds_the_commit_and_is_retried() -> None:
    kit = make_kit()
    produce(kit, [deposit(0), b"poison", deposit(2), deposit(3)])
    kit.broker.fail_deliveries("dlq", 2)
    p = kit.started()

    step_until(lambda: "dead_letter" in p.health.reasons(), p)
    step_until(lambda: committed(kit) == 1, p)  # the good records around it are done
    assert received(kit) == ["d0", "d2", "d3"]
    assert p.in_flight_records == 1
    assert not p.health.ready

    def never_past_an_unwritten_poison() -> bool:
        assert (committed(kit) or 0) <= 1 or len(kit.dlq()) == 1
        return committed(kit) == 4

    step_until(never_past_an_unwritten_poison, p)  # fails again after 0.5-1 s, written 1-2 s later
    assert kit.clock.now() >= 1.5
    assert "dead_letter" not in p.health.reasons()
    assert [dlq_origin(r) for r in kit.dlq()] == [(0, 1)]
    assert p.in_flight_records == 0


def test_dead_letter_is_done_only_when_the_broker_acknowledges_it() -> None:
    kit = make_kit()
    produce(kit, [deposit(0), b"poison", deposit(2), deposit(3)])
    kit.broker.hold_deliveries(True)
    p = kit.started()

    step_until(lambda: received(kit) == ["d0", "d2", "d3"], p)
    kit.clock.advance(3.0)
    steps(5, p)
    assert len(kit.dlq()) == 1  # written, but not acknowledged
    assert committed(kit) == 1
    assert p.in_flight_records == 1

    kit.broker.hold_deliveries(False)
    step_until(lambda: committed(kit) == 4, p)
    assert p.in_flight_records == 0


# ================================================================ 5. credentials are not data problems
def test_refused_credentials_pause_everything_then_a_probe_resumes() -> None:
    kit = make_kit(partitions=2)
    produce(kit, deposits(range(3)), partition=0)
    kit.uploader.fail_with = [CredentialsError(401, "deposit", "bad token")]
    p = kit.started()

    step_until(lambda: "credentials" in p.health.reasons(), p)
    assert kit.uploader.calls == 1
    assert kit.paused() == BOTH
    reasons = p.health.reasons()
    assert Reason.CREDENTIALS in reasons and "401" in reasons[Reason.CREDENTIALS]
    assert not p.health.ready
    step_until(lambda: kit.clock.now() >= 2.4, p)
    assert kit.uploader.calls == 1  # nothing sent while we wait
    assert kit.dlq() == []
    assert (committed(kit, TP0) or 0) == 0

    step_until(lambda: kit.uploader.calls == 2, p)  # the probe, after the first retry wait (2.5-5 s)
    assert_backs_off([kit.uploader.call_times[1] - kit.uploader.call_times[0]], 5.0, 60.0, slack=0.25)
    step_until(lambda: committed(kit, TP0) == 3, p)
    assert kit.paused() == set()
    assert p.health.ready
    assert received(kit) == ids(range(3))
    assert kit.dlq() == []


def test_while_credentials_are_refused_only_the_probe_is_sent() -> None:
    kit = make_kit(partitions=2)
    produce(kit, deposits(range(3)), partition=0)  # a full batch, sent at once and refused
    produce(kit, deposits(range(100, 102)), partition=1)  # a partial batch, due after max_wait
    kit.uploader.fail_with = [CredentialsError(403, "deposit", "forbidden")]
    p = kit.started()

    p.step()
    assert kit.uploader.calls == 1
    step_until(lambda: kit.clock.now() >= 2.4, p)  # partition 1's batch fell due at 1 s
    assert kit.uploader.calls == 1  # ...but is not sent while the API refuses us
    assert kit.dlq() == []
    assert (committed(kit, TP0) or 0) == 0 and (committed(kit, TP1) or 0) == 0

    step_until(lambda: committed(kit, TP0) == 3 and committed(kit, TP1) == 2, p)
    assert kit.uploader.calls == 3  # the probe, then the batch that waited
    assert kit.uploader.call_times[1] >= 2.5
    assert received(kit) == ids([0, 1, 2, 100, 101])


def _probe_gaps(seed: int) -> tuple[Kit, Pipeline, list[float]]:
    """Seven refusals in a row: the gaps between the eight calls to the API."""
    kit = make_kit()
    produce(kit, deposits(range(3)))
    kit.uploader.fail_with = [CredentialsError(401, "deposit", "bad token") for _ in range(7)]
    p = kit.started(seed=seed)

    def tick() -> bool:
        kit.clock.advance(0.1)
        return kit.uploader.calls == 8

    step_until(tick, p, limit=10_000)
    times = kit.uploader.call_times
    return kit, p, [b - a for a, b in itertools.pairwise(times)]


def test_repeated_credential_failures_back_off_up_to_the_cap() -> None:
    kit, p, gaps = _probe_gaps(seed=1)
    assert_backs_off(gaps, 5.0, 60.0, slack=0.4)  # ceilings 5, 10, 20, 40, 60, 60, 60
    assert min(gaps[4:]) >= 30.0 - 0.4  # at the cap
    assert kit.dlq() == []
    step_until(lambda: committed(kit) == 3, p)
    assert received(kit) == ids(range(3))


def test_credential_probes_of_two_pods_do_not_run_in_lockstep() -> None:
    _, _, one = _probe_gaps(seed=1)
    _, _, other = _probe_gaps(seed=2)
    assert_backs_off(other, 5.0, 60.0, slack=0.4)
    assert sum(abs(a - b) for a, b in zip(one, other, strict=True)) > 5.0


def test_refusals_log_the_real_wait_until_the_next_probe() -> None:
    kit = make_kit(partitions=3)
    for partition in range(3):
        produce(kit, deposits(range(100 * partition, 100 * partition + 3)), partition=partition)
    refused = CredentialsError(401, "deposit", "bad token")
    kit.uploader.fail_with = [refused] * 3  # three lanes' batches refused together
    kit.executor.hold = True
    p = kit.started()
    p.step()
    assert len(kit.executor.held) == 3

    with capture_logs() as logs:
        for index in (0, 0, 0):
            kit.executor.release(index)
            p.step()
            kit.clock.advance(0.5)  # each refusal answers half a second after the previous one
    kit.executor.hold = False
    waits = [e["retry_in_s"] for e in logs if "retry_in_s" in e]
    assert len(waits) == 3
    # One wait for all three (2.5-5 s, not up to the cap), each logging what is left of it.
    assert 2.5 <= waits[0] <= 5.0
    assert waits[1] == pytest.approx(waits[0] - 0.5, abs=1e-3)
    assert waits[2] == pytest.approx(waits[0] - 1.0, abs=1e-3)
    step_until(lambda: all(committed(kit, TopicPartition("deposits", n)) == 3 for n in range(3)), p)
    probes = kit.uploader.call_times[3:6]
    assert probes == [pytest.approx(waits[0], abs=1e-3)] * 3  # the probes went when the log said


def test_when_a_probe_is_accepted_every_parked_batch_resumes_at_once() -> None:
    kit = make_kit(partitions=2)
    produce(kit, deposits(range(3)), partition=0)
    produce(kit, deposits(range(100, 103)), partition=1)
    refused = CredentialsError(401, "deposit", "bad token")
    kit.uploader.fail_with = [refused]
    kit.executor.hold = True
    p = kit.started()
    p.step()
    kit.executor.release(0)  # partition 0's batch: refused
    p.step()
    step_until(lambda: len(kit.executor.held) == 2, p)  # its probe went out after the first wait
    probe_sent = kit.clock.now()
    # Partition 1's batch, sent before the refusal, is refused only now, after the probe left: it
    # waits for a wait of its own (5-10 s)...
    kit.uploader.fail_with = [refused]
    kit.executor.release(0)
    p.step()
    assert "credentials" in p.health.reasons()
    kit.executor.release(0)  # ...but the probe is accepted: the API takes our credentials again
    p.step()
    p.step()
    assert p.health.ready
    assert [kit.executor.held_ids(i) for i in range(len(kit.executor.held))] == [ids(range(100, 103))]
    assert kit.clock.now() < probe_sent + 1.0  # partition 1's batch went at once, without its wait
    kit.executor.hold = False
    kit.executor.release()
    step_until(lambda: committed(kit, TP0) == 3 and committed(kit, TP1) == 3, p)
    assert sorted(received(kit)) == sorted(ids([0, 1, 2, 100, 101, 102]))


def test_a_parked_batch_of_revoked_partitions_is_dropped_not_probed() -> None:
    kit = make_kit(partitions=2)
    produce(kit, deposits(range(3)), partition=0)
    produce(kit, deposits(range(100, 103)), partition=1)
    refused = CredentialsError(401, "deposit", "bad token")
    kit.uploader.fail_with = [refused] * 4  # both batches, then both again at the probe in the drain
    m1 = kit.started()
    m1.step()
    assert "credentials" in m1.health.reasons()
    m2 = kit.started(member="m2")
    m2.step()
    m1.step()  # on_revoke: partition 1's batch cannot finish (still refused); m1 lets it go
    assert kit.broker.owners(GROUP) == {TP0: "m1"}
    assert kit.uploader.calls == 4 and kit.uploader.fail_with == []

    _finish(kit, m1, m2, expect={TP0: 3, TP1: 3})
    got = Counter(received(kit))
    assert set(got) == set(ids([0, 1, 2, 100, 101, 102]))
    assert set(got.values()) == {1}  # partition 1 sent once, by its new owner
    assert {o for _g, tp, o, m in kit.broker.commit_log if tp == TP1 and m == "m1"} <= {0}


def test_a_batch_refused_after_its_partitions_were_revoked_parks_without_them() -> None:
    kit = make_kit(partitions=2)
    m1, m2 = _two_members_with_held_batches(kit)  # one batch per partition, held in flight
    refused = CredentialsError(401, "deposit", "bad token")
    m1.step()  # on_revoke: partition 1's upload does not answer within the drain deadline
    assert kit.broker.owners(GROUP) == {TP0: "m1"}
    kit.uploader.fail_with = [refused]
    [late] = [i for i in range(len(kit.executor.held)) if kit.executor.held_ids(i) == ids(range(100, 103))]
    kit.executor.release(late)  # ...and then comes back refused: nothing of it is kept to probe
    m1.step()
    assert "credentials" in m1.health.reasons()
    kit.executor.hold = False
    kit.executor.release()

    def a_minute_later() -> bool:  # long past every probe m1 could still make
        kit.clock.advance(1.0)
        return kit.clock.now() > 60.0

    step_until(a_minute_later, m1, m2)
    assert committed(kit, TP0) == 3 and committed(kit, TP1) == 3
    got = Counter(received(kit))
    assert set(got) == set(ids([0, 1, 2, 100, 101, 102]))
    assert set(got.values()) == {1}


# ================================================================ 6. bounded memory
def test_a_partition_over_its_share_pauses_alone_while_the_others_keep_flowing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # max_in_flight 40 over 2 partitions: a share of 20 each (at least 2 batches of 5).
    monkeypatch.setattr(pipeline_module, "POLL_RECORDS", 4)
    kit = make_kit(partitions=2)
    produce(kit, deposits(range(60)), partition=0)
    kit.executor.hold = True
    p = kit.started(max_records=5, max_in_flight=40)

    step_until(lambda: kit.paused() == {TP0}, p)
    assert 20 <= p.in_flight_records < 40  # its share, not the whole bound

    produce(kit, deposits(range(100, 130)), partition=1)
    held_by_partition_0 = p.in_flight_records
    step_until(lambda: p.in_flight_records >= held_by_partition_0 + 20, p)  # partition 1 fills its share
    assert TP0 in kit.paused()

    def drained() -> bool:
        kit.executor.release()
        return committed(kit, TP0) == 60 and committed(kit, TP1) == 30

    step_until(drained, p)
    assert kit.paused() == set()


def test_in_flight_records_stay_bounded_by_pausing(monkeypatch: pytest.MonkeyPatch) -> None:
    poll = 8
    monkeypatch.setattr(pipeline_module, "POLL_RECORDS", poll)
    kit = make_kit(partitions=2)
    produce(kit, deposits(range(50)), partition=0)
    produce(kit, deposits(range(100, 150)), partition=1)
    kit.executor.hold = True
    p = kit.started(max_in_flight=10)
    seen: list[int] = []

    for _ in range(30):
        p.step()
        seen.append(p.in_flight_records)
        if p.in_flight_records >= 10:
            assert kit.paused() == BOTH
    assert 10 <= max(seen) <= 10 + poll
    assert p.stats["consumed"] < 100
    assert "backpressure" not in p.health.reasons()  # slow is not unready

    resumed = False

    def drain_step() -> bool:
        nonlocal resumed
        kit.executor.release()
        seen.append(p.in_flight_records)
        resumed = resumed or (kit.paused() == set() and p.stats["consumed"] < 100)
        return committed(kit, TP0) == 50 and committed(kit, TP1) == 50

    step_until(drain_step, p)
    assert max(seen) <= 10 + poll
    assert resumed
    assert sorted(received(kit)) == sorted(ids([*range(50), *range(100, 150)]))


def test_in_flight_bytes_stay_bounded_by_pausing(monkeypatch: pytest.MonkeyPatch) -> None:
    poll = 4
    monkeypatch.setattr(pipeline_module, "POLL_RECORDS", poll)
    kit = make_kit()
    values = [deposit(i, note="x" * 400) for i in range(20)]
    produce(kit, values)
    kit.executor.hold = True
    p = kit.started(max_in_flight_bytes=1024)
    biggest = max(len(v) for v in values) + 64

    steps(10, p)
    assert p.in_flight_bytes >= 1024
    assert p.in_flight_bytes <= 1024 + poll * biggest
    assert kit.paused() == {TP0}

    def release() -> bool:
        kit.executor.release()
        assert p.in_flight_bytes <= 1024 + poll * biggest
        return committed(kit) == 20

    step_until(release, p)
    assert kit.paused() == set()


# ================================================================ 7. rebalance
def _two_members_with_held_batches(kit: Kit) -> tuple[Pipeline, Pipeline]:
    produce(kit, deposits(range(3)), partition=0)
    produce(kit, deposits(range(100, 103)), partition=1)
    kit.executor.hold = True
    m1 = kit.started()
    m1.step()
    assert [kit.executor.held_ids(i) for i in range(2)] == [ids(range(3)), ids(range(100, 103))]
    m2 = kit.started(member="m2")  # joins mid-batch: partition 1 is meant for it now
    m2.step()
    assert kit.broker.owners(GROUP) == {TP0: "m1", TP1: "m1"}  # not before m1 lets it go
    return m1, m2


def _finish(kit: Kit, *pipelines: Pipeline, expect: dict[TopicPartition, int]) -> None:
    kit.executor.hold = False

    def done() -> bool:
        kit.executor.release()
        return all(committed(kit, tp) == n for tp, n in expect.items()) and all(
            p.in_flight_records == 0 for p in pipelines
        )

    step_until(done, *pipelines)
    for p in pipelines:
        assert p.shutdown() == 0


def test_revoke_finishes_the_revoked_work_commits_it_and_hands_over_exactly_once() -> None:
    kit = make_kit(partitions=2)
    m1, m2 = _two_members_with_held_batches(kit)
    kit.sleep_hooks.append(release_matching(kit, lambda batch: batch == ids(range(100, 103))))

    m1.step()  # on_revoke: waits for partition 1's batch, commits it, lets go
    assert kit.broker.owners(GROUP) == {TP0: "m1"}
    assert ("g", TP1, 3, "m1") in kit.broker.commit_log
    assert kit.executor.held_ids(0) == ids(range(3))  # partition 0's batch was not waited for
    kit.sleep_hooks.clear()

    m2.step()
    assert kit.broker.owners(GROUP) == {TP0: "m1", TP1: "m2"}
    produce(kit, deposits(range(103, 106)), partition=1)
    _finish(kit, m1, m2, expect={TP0: 3, TP1: 6})

    got = Counter(received(kit))
    assert set(got) == set(ids([*range(3), *range(100, 106)]))
    assert set(got.values()) == {1}  # exactly once
    assert kit.broker.rejected_commits == []
    assert {m for _g, tp, _o, m in kit.broker.commit_log if tp == TP1 and _o > 3} == {"m2"}


def test_revoke_abandons_unfinished_work_and_ignores_its_late_completion() -> None:
    kit = make_kit(partitions=2)
    kit.uploader.reject_if = lambda record: record["event_id"] == "d101"
    m1, m2 = _two_members_with_held_batches(kit)

    m1.step()  # on_revoke: partition 1's upload never finishes within the drain deadline
    assert kit.broker.owners(GROUP) == {TP0: "m1"}
    assert [o for _g, tp, o, m in kit.broker.commit_log if tp == TP1 and m == "m1"] in ([], [0])
    assert m1.in_flight_records == 3  # partition 1's records were forgotten, partition 0's remain
    [late] = [i for i in range(len(kit.executor.held)) if kit.executor.held_ids(i) == ids(range(100, 103))]

    kit.executor.hold = False
    step_until(lambda: committed(kit, TP1) == 3, m2)  # the new owner re-reads and finishes it
    assert [dlq_origin(r) for r in kit.dlq()] == [(1, 1)]
    commits_before = list(kit.broker.commit_log)

    kit.executor.release(late)  # the old owner's upload finally answers
    steps(5, m1)
    assert [e for e in kit.broker.commit_log if e not in commits_before and e[1] == TP1] == []
    assert [dlq_origin(r) for r in kit.dlq()] == [(1, 1)]  # no second copy from the old owner

    _finish(kit, m1, m2, expect={TP0: 3, TP1: 3})
    assert kit.broker.rejected_commits == []
    got = Counter(received(kit))
    assert set(got) == set(ids([0, 1, 2, 100, 102]))
    assert sum(n - 1 for n in got.values()) <= 3  # at most the abandoned window, twice


def test_lost_partitions_are_forgotten_without_a_commit() -> None:
    kit = make_kit(partitions=2)
    produce(kit, deposits(range(6)), partition=0)
    produce(kit, deposits(range(100, 106)), partition=1)
    m1 = kit.started()
    m2 = kit.started(member="m2")
    kit.executor.hold = True
    m1.step()  # m1 takes partition 0
    m2.step()  # m2 takes partition 1
    assert kit.broker.owners(GROUP) == {TP0: "m1", TP1: "m2"}
    kit.executor.release()
    m1.step()  # m1: first batch accepted (not committed yet), second one held
    assert m1.committed_positions()[TP0] == 3
    window = kit.broker.end_offset(TP0) - (committed(kit, TP0) or 0)

    kit.broker.evict(GROUP, "m1")  # session expired: partition 0 belongs to someone else now
    kit.executor.hold = False
    m2.step()
    assert TP0 in kit.consumers["m2"].assignment()
    m1.step()  # hears on_lost
    assert kit.broker.rejected_commits == []
    assert not any(m == "m1" for _g, tp, _o, m in kit.broker.commit_log if tp == TP0)

    _finish(kit, m1, m2, expect={TP0: 6, TP1: 6})
    assert kit.broker.rejected_commits == []
    got = Counter(received(kit))
    assert set(got) == set(ids([*range(6), *range(100, 106)]))
    assert sum(n - 1 for n in got.values()) <= window


def test_an_upload_failing_during_a_revoke_never_commits_the_revoked_partition() -> None:
    kit = make_kit(partitions=2)
    produce(kit, deposits(range(2)), partition=0)
    produce(kit, deposits(range(100, 102)), partition=1)
    kit.uploader.fail_with = [RuntimeError("unexpected")]
    joined: list[Pipeline] = []

    def join_once(p: Pipeline) -> bool:
        if not joined:
            joined.append(kit.started(member="m2"))
        return False

    code = kit.pipeline(max_records=10).run(until=within(kit, join_once))  # nothing sealed before the revoke

    assert code == 1
    assert kit.uploader.calls == 1  # the batch flushed by on_revoke, failing inside the drain
    assert kit.broker.rejected_commits == []
    assert all(tp == TP0 for _g, tp, _o, _m in kit.broker.commit_log)


# ================================================================ 8. graceful stop
def test_stop_drains_in_flight_uploads_commits_and_leaves_the_group() -> None:
    kit = make_kit()
    produce(kit, deposits(range(7)))
    kit.executor.hold = True
    # The API answers 1.5 s after the stop: well inside the 5 s drain deadline.
    kit.sleep_hooks.append(lambda: kit.executor.release() if kit.clock.now() >= 1.5 else None)
    p = kit.pipeline(shutdown_timeout_s=5.0)

    def stop_once_in_flight(p: Pipeline) -> bool:
        if kit.executor.held:
            p.request_stop()
        return False

    assert p.run(until=within(kit, stop_once_in_flight)) == 0
    assert p.stopping
    assert received(kit) == ids(range(7))
    assert committed(kit) == 7
    assert kit.broker.members(GROUP) == []
    assert "stopping" in p.health.reasons()
    assert kit.clock.now() < 5.0


def test_stop_deadline_leaves_unfinished_records_uncommitted() -> None:
    kit = make_kit()
    produce(kit, deposits(range(7)))
    kit.executor.hold = True
    p = kit.pipeline(shutdown_timeout_s=5.0)
    released: list[bool] = []

    def stop_after_first_batch(p: Pipeline) -> bool:
        if kit.executor.held and not released:
            kit.executor.release(0)  # the first upload answers; every later one never does
            released.append(True)
        if p.stats["accepted"] == 3:
            p.request_stop()
        return False

    with capture_logs() as logs:
        assert p.run(until=within(kit, stop_after_first_batch)) == 0

    assert committed(kit) == 3
    assert received(kit) == ids(range(3))
    assert kit.executor.held and kit.uploader.cancelled
    assert kit.broker.members(GROUP) == []
    assert kit.clock.now() >= 5.0
    [late] = [e for e in logs if e["event"].startswith("drain deadline passed")]
    assert late["in_flight"] == 4
    [stopped] = [e for e in logs if e["event"] == "connector stopped"]
    assert stopped["uncommitted"] == 4


def test_a_dead_consumer_ends_the_run_with_exit_1() -> None:
    kit = make_kit()
    produce(kit, deposits(range(7)))
    p = kit.pipeline()

    def crash_the_client(p: Pipeline) -> bool:
        kit.consumers["m1"].kill()  # the next consume() raises FatalKafkaError, and so does commit()
        return False

    with capture_logs() as logs:
        assert p.run(until=within(kit, crash_the_client)) == 1
    assert any(e["event"] == "connector stopped on a fatal error" for e in logs)
    assert kit.broker.commit_log == []


# ================================================================ dead-letter circuit breaker
def _breaker_run(poison: Callable[[int], bool], count: int = 200) -> tuple[Kit, Pipeline]:
    kit = make_kit(partitions=2)
    produce(kit, [b"poison" if poison(i) else deposit(i) for i in range(count)], partition=0)
    p = kit.started(window=count, max_ratio=0.5)
    step_until(lambda: p.stats["consumed"] == count and committed(kit, TP0) == count, p)
    return kit, p


def test_breaker_trips_when_most_records_are_dead_lettered() -> None:
    kit, p = _breaker_run(lambda i: i < 150)
    assert p.breaker_tripped
    assert "breaker" in p.health.reasons() and "topic deposits" in p.health.reasons()[Reason.BREAKER]
    assert kit.paused() == BOTH
    assert len(kit.dlq()) == 150  # what was already fetched is still finished and committed

    produce(kit, deposits(range(1000, 1005)), partition=1)
    produce(kit, deposits(range(200, 205)), partition=0)
    kit.clock.advance(10.0)
    steps(10, p)
    assert p.stats["consumed"] == 200  # consumption stopped


def test_breaker_holds_below_the_ratio() -> None:
    kit, p = _breaker_run(lambda i: i % 5 in (1, 3))  # 40 %
    assert len(kit.dlq()) == 80
    assert not p.breaker_tripped
    assert kit.paused() == set()
    assert p.health.ready


def test_partitions_assigned_while_paused_are_paused_too() -> None:
    kit = make_kit(partitions=2)
    produce(kit, [b"poison"] * 100, partition=0)
    m1 = kit.started(window=4, max_ratio=0.5)
    m2 = kit.started(member="m2")
    step_until(lambda: m1.breaker_tripped, m1, m2)
    assert m1.breaker_tripped
    assert kit.broker.owners(GROUP) == {TP0: "m1", TP1: "m2"}

    assert m2.shutdown() == 0  # m1 inherits partition 1 while its breaker is open
    m1.step()
    assert kit.broker.owners(GROUP) == {TP0: "m1", TP1: "m1"}
    produce(kit, deposits(range(100, 103)), partition=1)
    steps(5, m1)
    assert kit.paused() == BOTH
    assert m1.stats["consumed"] == 100


# ================================================================ schema registry unavailable
NEW_SCHEMA = b'"schema":"v2"'


def _registry_outage(failures: int) -> tuple[Kit, Pipeline, RegistryDownFraming]:
    kit = make_kit(partitions=2)
    framing = RegistryDownFraming(failures, kit.clock.now, needs_registry=lambda v: NEW_SCHEMA in (v or b""))
    produce(kit, [deposit(i, schema="v2") for i in range(5)], partition=0)
    produce(kit, deposits(range(100, 105)), partition=1)
    p = kit.started(framing=framing)
    return kit, p, framing


def test_registry_outage_stalls_only_its_partition_in_order_without_dead_letters() -> None:
    kit, p, framing = _registry_outage(failures=3)

    p.step()
    assert kit.paused() == {TP0}
    assert "registry" in p.health.reasons()
    step_until(lambda: committed(kit, TP1) == 5, p)  # the other partition keeps flowing
    assert received(kit) == ids(range(100, 105))
    assert (committed(kit, TP0) or 0) == 0
    assert kit.dlq() == []

    step_until(lambda: committed(kit, TP0) == 5, p)
    assert framing.failures == 0
    assert received(kit)[5:] == ids(range(5))  # in offset order behind the stalled record
    assert kit.paused() == set()
    assert "registry" not in p.health.reasons()
    assert kit.dlq() == []


def test_registry_retries_back_off() -> None:
    kit, p, framing = _registry_outage(failures=4)
    step_until(lambda: committed(kit, TP0) == 5, p)
    gaps = [b - a for a, b in zip(framing.failed_at, framing.failed_at[1:], strict=False)]
    assert len(gaps) == 3
    assert_backs_off(gaps, 1.0, 30.0, slack=0.25)  # ceilings 1, 2, 4


# ================================================================ readiness reasons
def test_reasons_keep_the_strings_readyz_and_metrics_report() -> None:
    assert {r.value for r in Reason} == {
        "starting",
        "stopping",
        "credentials",
        "breaker",
        "registry",
        "dead_letter",
        "backpressure",
        "partition_share",
        "topic",
        "kafka",
        "api",
        "mapping",
    }
    health = Health(clock=lambda: 0.0)
    health.set(Reason.CREDENTIALS, "401 bad token")
    assert health.has("credentials")  # type: ignore[arg-type]  # what callers passing plain strings do
    assert json.dumps(health.reasons()) == (
        '{"starting": "the consumer has not joined its group yet", "credentials": "401 bad token"}'
    )
    metrics = Metrics()
    metrics.unready_reason.labels(Reason.DEAD_LETTER).set(1)
    assert metrics.registry.get_sample_value("optikpi_unready", {"reason": "dead_letter"}) == 1


# ================================================================ the parts, alone
class PauseRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[TopicPartition]]] = []

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("pause", list(partitions)))

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("resume", list(partitions)))


def test_a_partition_paused_for_two_reasons_resumes_when_both_cleared() -> None:
    consumer, tracker, metrics = PauseRecorder(), OffsetTracker(), Metrics()
    for tp in BOTH:
        tracker.assign(tp)
    book = PauseBook(consumer, tracker, metrics)  # type: ignore[arg-type]  # only pause/resume used
    book.pause([TP0], Reason.REGISTRY)
    book.pause_all(Reason.CREDENTIALS)
    assert consumer.calls == [("pause", [TP0]), ("pause", [TP1])]  # TP0 was paused already
    assert metrics.registry.get_sample_value("optikpi_paused_partitions") == 2

    book.resume(Reason.CREDENTIALS)
    assert consumer.calls[-1] == ("resume", [TP1])  # TP0 still waits for the registry
    assert book.holds(Reason.REGISTRY) and not book.holds(Reason.CREDENTIALS)
    book.resume(Reason.REGISTRY, [TP0])
    assert consumer.calls[-1] == ("resume", [TP0])
    assert metrics.registry.get_sample_value("optikpi_paused_partitions") == 0


def test_retry_schedule_items_failing_together_share_one_wait_and_rounds_wait_longer() -> None:
    now = [0.0]
    schedule: RetrySchedule[str] = RetrySchedule(Backoff((1.0, 30.0)), lambda: now[0])
    first = schedule.schedule("a")
    assert 0.5 <= first <= 1.0
    now[0] = 0.25
    assert schedule.schedule("b") == pytest.approx(first - 0.25)  # joins the running wait: the real wait
    assert schedule.due(first - 0.01) == [] and len(schedule) == 2
    assert schedule.due(first) == ["a", "b"] and len(schedule) == 0
    now[0] = first
    second = schedule.schedule("a")  # failed again: the next round waits longer
    assert 1.0 <= second <= 2.0


def test_retry_schedule_success_makes_everything_waiting_due_at_once() -> None:
    now = [0.0]
    schedule: RetrySchedule[str] = RetrySchedule(Backoff((1.0, 30.0)), lambda: now[0])
    for _ in range(3):  # three failed rounds: the next wait would be 4-8 s
        schedule.schedule("a")
        now[0] += 10.0
        assert schedule.due(now[0]) == ["a"]
    schedule.schedule("late")
    schedule.succeeded()
    assert schedule.due(now[0]) == ["late"]
    assert 0.5 <= schedule.schedule("d") <= 1.0  # the count starts over


def test_breaker_waits_for_100_records_then_judges_its_window() -> None:
    breaker = DeadLetterBreaker(window=50, max_ratio=0.5)
    assert not any(breaker.record(True) for _ in range(99))  # all poison, but too few seen
    assert breaker.record(True) and breaker.tripped  # the 100th: 50 of the last 50
    assert not breaker.record(True)  # trips once


def test_breaker_ratio_is_over_the_records_seen_in_its_window() -> None:
    breaker = DeadLetterBreaker(window=1000, max_ratio=0.5)
    for i in range(100):
        assert not breaker.record(i % 2 == 0)  # exactly half of what it has seen: not more
    assert breaker.record(True)  # 51 of 101 (not 51 of 1000)


def test_breaker_forgets_what_left_its_window() -> None:
    breaker = DeadLetterBreaker(window=100, max_ratio=0.5)
    for _ in range(50):
        breaker.record(True)
    for _ in range(100):
        assert not breaker.record(False)  # the 50 poison records slid out
    assert not any(breaker.record(i % 2 == 0) for i in range(100))
