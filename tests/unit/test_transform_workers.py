"""Transform worker processes: the pool on its own, and the pipeline with `processing.workers: 2`.

The pipeline tests use the in-memory broker and the fake clock like tests/unit/test_pipeline.py;
only the workers run in real time, so the loops here step until a condition holds (or fail after
a generous real-time limit) instead of counting steps.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import connector.pipeline.intake as intake_module
from connector.errors import Stage
from connector.kafka.ports import TopicPartition
from connector.mapping.compiled import TopicMapping
from connector.pipeline.loop import Pipeline
from connector.transform.factory import TransformFactory
from connector.transform.spec import Poison, TransformSpec
from connector.transform.workers import CRASH_CLASS, TIMEOUT_CLASS, ChunkResult, TransformPool
from tests.support.pipeline_kit import DEPOSIT_MAPPING, DEST, JsonFraming, Kit, deposit, make_kit
from tests.support.worker_kit import acting_transform, build_counting_transform
from tests.unit.test_pipeline import MAP_MAPPING

pytestmark = pytest.mark.unit

REAL_LIMIT_S = 60.0
TP0 = TopicPartition("deposits", 0)


@pytest.fixture
def pools() -> Iterator[Callable[..., TransformPool]]:
    """Started pools, closed after the test whatever happens."""
    started: list[TransformPool] = []

    def start(make: TransformFactory = acting_transform, size: int = 2, **options: Any) -> TransformPool:
        pool = TransformPool(size, make, **options).start()
        started.append(pool)
        return pool

    yield start
    for pool in started:
        pool.close(1.0)


def wait_for(condition: Callable[[], bool], *, tick: Callable[[], None] = lambda: None) -> None:
    deadline = time.monotonic() + REAL_LIMIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in real time")
        tick()
        time.sleep(0.002)


def spec(**options: Any) -> TransformSpec:
    return TransformSpec(TopicMapping.from_settings(DEPOSIT_MAPPING, DEST), options, "json")


def collect_all(pool: TransformPool, chunk_sizes: dict[int, int]) -> dict[int, list[Any]]:
    """Every chunk's results, placed by index; fails on a result that comes twice."""
    results: dict[int, list[Any]] = {cid: [None] * size for cid, size in chunk_sizes.items()}

    def take(items: list[ChunkResult]) -> None:
        for chunk_id, start, part in items:
            for index, result in enumerate(part, start):
                assert results[chunk_id][index] is None, "a result came twice"
                results[chunk_id][index] = result

    wait_for(
        lambda: all(r is not None for rs in results.values() for r in rs), tick=lambda: take(pool.completed())
    )
    assert pool.in_flight == 0
    return results


def wait_for_marker(marker: Path) -> int:
    wait_for(lambda: marker.exists() and marker.read_text().strip() != "")
    return int(marker.read_text().split()[0])


# ================================================================ the pool
def test_each_worker_gets_a_keys_spec_once_and_keeps_its_transform(
    pools: Callable[..., TransformPool],
) -> None:
    pool = pools(build_counting_transform)
    sizes = {pool.submit(("t", 1), spec(), [b"x"] * 3): 3 for _ in range(10)}
    sizes |= {pool.submit(("t", 2), spec(), [b"y"] * 2): 2 for _ in range(10)}

    results = collect_all(pool, sizes)

    answers = [r.decode().split(":") for rs in results.values() for r in rs]
    per_worker = Counter(pid for pid, _ in answers)
    assert set(per_worker) <= {str(pid) for pid in pool.pids()}
    # Two keys: no worker ever built more than two transforms, whatever chunks it got.
    assert {built for _, built in answers} <= {"1", "2"}


def test_the_pool_calls_back_as_each_result_is_ready(pools: Callable[..., TransformPool]) -> None:
    # The consumer loop waits for records in short slices and ends the wait on this call, so a
    # transform that finishes is applied at once rather than when the wait runs out.
    pool = pools()
    ready = threading.Event()
    pool.on_result(ready.set)
    pool.submit(("t", 1), spec(), [deposit(0)])

    assert ready.wait(REAL_LIMIT_S)
    assert len(pool.completed()) == 1


def test_a_worker_killed_mid_chunk_is_restarted_and_the_chunk_done_once(
    pools: Callable[..., TransformPool], tmp_path: Path
) -> None:
    marker = tmp_path / "slow"
    pool = pools()
    payloads = [deposit(0), deposit(1, act="slow"), deposit(2)]
    chunk = pool.submit(("deposits", 0), spec(marker=str(marker)), payloads)

    os.kill(wait_for_marker(marker), signal.SIGKILL)
    results = collect_all(pool, {chunk: 3})

    assert pool.restarts == 1
    assert all(isinstance(r, bytes) for r in results[chunk])
    assert [r.decode().count('"event_id":"d') for r in results[chunk]] == [1, 1, 1]


def test_a_record_that_always_kills_its_worker_is_bisected_out_as_decode_poison(
    pools: Callable[..., TransformPool],
) -> None:
    pool = pools()
    payloads = [deposit(i, act="kill") if i == 5 else deposit(i) for i in range(8)]
    chunk = pool.submit(("deposits", 0), spec(), payloads)

    [results] = collect_all(pool, {chunk: 8}).values()

    poison = results[5]
    assert isinstance(poison, Poison)
    assert (poison.stage, poison.error_class) == (Stage.DECODE, CRASH_CLASS)
    assert "crashed the transform worker process (killed by SIGKILL)" in poison.message
    assert all(isinstance(r, bytes) for i, r in enumerate(results) if i != 5)


def test_a_record_whose_transform_never_returns_is_bisected_out_as_decode_poison(
    pools: Callable[..., TransformPool],
) -> None:
    """The worker is killed at the deadline, as if it had crashed: the others are sent."""
    pool = pools(chunk_deadline_s=1.0)
    payloads = [deposit(0), deposit(1, act="hang"), deposit(2)]
    chunk = pool.submit(("deposits", 0), spec(), payloads)

    [results] = collect_all(pool, {chunk: 3}).values()

    poison = results[1]
    assert isinstance(poison, Poison)
    assert (poison.stage, poison.error_class) == (Stage.DECODE, TIMEOUT_CLASS)
    assert poison.message == "the record's transform did not finish within 1 s, each time it was tried"
    assert isinstance(results[0], bytes) and isinstance(results[2], bytes)
    assert pool.restarts >= 3  # the whole chunk twice, then the half and the record alone


def test_a_pool_that_cannot_start_says_so() -> None:
    from connector.errors import WorkerPoolError

    with pytest.raises(WorkerPoolError, match="cannot start the transform worker processes"):
        TransformPool(2, acting_transform).start(timeout_s=0.0)


# ================================================================ the pipeline with workers
def pipeline_with_pool(
    kit: Kit, pool: TransformPool, framing: JsonFraming | None = None, **kwargs: Any
) -> Pipeline:
    p = kit.pipeline(pool=pool, make=acting_transform, framing=framing, **kwargs)
    kit.consumers[kwargs.get("member", "m1")].subscribe(["deposits"], p)
    return p


def step_until(p: Pipeline, condition: Callable[[], bool]) -> None:
    wait_for(condition, tick=p.step)


def received_ids(kit: Kit) -> list[str]:
    return [record["event_id"] for _endpoint, record in kit.uploader.received]


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake_module, "CHUNK_RECORDS", 2)


@pytest.mark.usefixtures("small_chunks")
def test_results_are_applied_in_offset_order_when_a_later_chunk_finishes_first(
    pools: Callable[..., TransformPool],
) -> None:
    kit = make_kit()
    values = [deposit(i, act="slow") if i < 2 else deposit(i) for i in range(10)]
    for value in values:
        kit.broker.produce("deposits", value, partition=0)
    p = pipeline_with_pool(kit, pools(), JsonFraming({"slow_s": 0.5}))

    step_until(p, lambda: kit.broker.committed("g", TP0) == 10)

    assert received_ids(kit) == [f"d{i}" for i in range(10)]
    assert p.shutdown() == 0


POISON_VALUES = [
    b"poison",
    b"",
    deposit(1, player_id="p1"),  # MAP
    deposit(1, player_id={"x": "p1"}, amount=0),  # VALIDATE
    deposit(1, player_id={"x": "p1"}, amount=999),  # UPLOAD
]


VARYING_HEADERS = frozenset({"optikpi.failed_at", "optikpi.trace_id"})


def _run_poison_mix(pool: TransformPool | None) -> tuple[list[str], list[tuple[Any, ...]]]:
    kit = make_kit()
    kit.uploader.reject_if = lambda record: record.get("amount") == 999
    for i, value in enumerate(POISON_VALUES):
        kit.broker.produce("deposits", deposit(10 + i, player_id={"x": "p"}), partition=0)
        kit.broker.produce("deposits", value, key=b"k", headers=(("h", b"\x00"),), partition=0)
    p = kit.pipeline(pool=pool, make=acting_transform, mappings=(MAP_MAPPING,))
    kit.consumers["m1"].subscribe(["deposits"], p)
    step_until(p, lambda: kit.broker.committed("g", TP0) == 2 * len(POISON_VALUES))
    assert p.shutdown() == 0
    dead = [
        # The failure time and an upload's new trace id differ between any two runs.
        (r.key, r.value, tuple((n, v) for n, v in r.headers if n not in VARYING_HEADERS))
        for r in kit.dlq()
    ]
    return received_ids(kit), dead


def test_poison_is_dead_lettered_with_the_same_stages_and_reasons_as_inline(
    pools: Callable[..., TransformPool],
) -> None:
    inline = _run_poison_mix(None)
    pooled = _run_poison_mix(pools())

    assert pooled == inline
    stages = [dict(headers)["__connect.errors.stage"] for _key, _value, headers in inline[1]]
    assert stages == [b"DECODE", b"DECODE", b"MAP", b"VALIDATE", b"UPLOAD"]


def test_a_worker_killed_mid_chunk_in_the_pipeline_loses_and_duplicates_nothing(
    pools: Callable[..., TransformPool], tmp_path: Path
) -> None:
    kit = make_kit()
    for i in range(40):
        kit.broker.produce("deposits", deposit(i, act="slow") if i == 20 else deposit(i), partition=0)
    marker = tmp_path / "slow"
    p = pipeline_with_pool(kit, pools(), JsonFraming({"marker": str(marker)}))

    wait_for(lambda: marker.exists(), tick=p.step)
    os.kill(wait_for_marker(marker), signal.SIGKILL)
    step_until(p, lambda: kit.broker.committed("g", TP0) == 40)

    assert received_ids(kit) == [f"d{i}" for i in range(40)]
    assert kit.dlq() == []
    assert p.shutdown() == 0


@pytest.mark.usefixtures("small_chunks")
def test_a_record_that_kills_every_worker_goes_to_the_dead_letter_topic_at_decode(
    pools: Callable[..., TransformPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake_module, "CHUNK_RECORDS", 8)
    kit = make_kit()
    killer = deposit(5, act="kill")
    for i in range(20):
        kit.broker.produce("deposits", killer if i == 5 else deposit(i), partition=0)
    p = pipeline_with_pool(kit, pools())

    step_until(p, lambda: kit.broker.committed("g", TP0) == 20)

    assert received_ids(kit) == [f"d{i}" for i in range(20) if i != 5]
    [dead] = kit.dlq()
    headers = dict(dead.headers)
    assert dead.value == killer
    assert headers["__connect.errors.stage"] == b"DECODE"
    assert headers["__connect.errors.exception.class.name"] == CRASH_CLASS.encode()
    assert b"crashed the transform worker" in (headers["__connect.errors.exception.message"] or b"")
    assert p.shutdown() == 0


def real_time_sleeps(kit: Kit) -> None:
    """Each fake-clock sleep of the pipeline also waits a little real time, for the workers."""
    kit.sleep_hooks.append(lambda: time.sleep(0.01))


def test_stop_drains_the_pool_and_commits_what_came_back(pools: Callable[..., TransformPool]) -> None:
    kit = make_kit()
    real_time_sleeps(kit)
    for i in range(6):
        kit.broker.produce("deposits", deposit(i, act="slow"), partition=0)
    p = pipeline_with_pool(kit, pools(), JsonFraming({"slow_s": 0.05}), shutdown_timeout_s=30.0)
    p.step()
    assert p.in_flight_records == 6  # in the pool: counted by backpressure

    p.request_stop()
    assert p.run() == 0

    assert received_ids(kit) == [f"d{i}" for i in range(6)]
    assert kit.broker.committed("g", TP0) == 6


def test_stop_deadline_leaves_records_still_in_the_pool_uncommitted(
    pools: Callable[..., TransformPool],
) -> None:
    kit = make_kit()
    real_time_sleeps(kit)
    for i in range(4):
        kit.broker.produce("deposits", deposit(i) if i < 2 else deposit(i, act="slow"), partition=0)
    p = pipeline_with_pool(kit, pools(), JsonFraming({"slow_s": 5.0}), shutdown_timeout_s=0.2)
    p.step()

    p.request_stop()
    assert p.run() == 0

    assert (kit.broker.committed("g", TP0) or 0) <= 2
    assert "d2" not in received_ids(kit)
    kit.uploader.cancelled = False  # the stop cancelled the uploader; a restart has a fresh one
    again = kit.pipeline(member="m2")  # inline, after a restart: the rest is read again
    again.run(until=lambda q: kit.broker.committed("g", TP0) == 4)
    assert received_ids(kit)[-2:] == ["d2", "d3"]


# ================================================================ wiring and readiness
def _settings(tmp_path: Path, workers: int) -> Any:
    from tests.support.e2e import offline_settings

    return offline_settings(tmp_path / "connector.yaml", workers)


def test_processing_workers_picks_inline_or_a_pool_of_that_size(tmp_path: Path) -> None:
    from connector.pipeline.wiring import start_pool

    assert start_pool(_settings(tmp_path, 1)) is None
    pool = start_pool(_settings(tmp_path, 2))
    assert pool is not None
    try:
        assert pool.size == 2 and all(pool.pids())
    finally:
        pool.close(1.0)


def test_a_pool_that_cannot_start_stops_the_connector_with_one_log_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from structlog.testing import capture_logs

    import connector.commands.run as run_module
    from connector.errors import WorkerPoolError

    def fail(_settings: Any) -> Any:
        raise WorkerPoolError("cannot start the transform worker processes: exit code 1")

    monkeypatch.setattr(run_module, "build_connector", fail)
    with capture_logs() as logs:
        assert run_module.run_connector(_settings(tmp_path, 2)) == 1
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert [entry["event"] for entry in errors] == ["the transform worker processes did not start"]
    assert "exit code 1" in errors[0]["error"]
