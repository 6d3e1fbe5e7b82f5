"""Crash: kill -9 at random moments, again and again, while the API fails 10% of requests with
5xx, throttles 5% and drops 3% of connections; with transform workers, a worker process is killed
in every run as well as the main one."""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from tests.support.brokers import UniqueNames
from tests.support.chaos import PeakRss, Verdict, judge, keep, transform_workers
from tests.support.e2e import ConnectorProcess, run_kill_loop, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.timeout(1800)]

API_FAULTS = {"fail_rate": 0.10, "throttle_rate": 0.05, "drop_rate": 0.03}
SIGTERM_EVERY = 4  # full size: every 4th interruption is a SIGTERM, to measure the drain under load


@pytest.mark.parametrize("workers", [1, "auto"])
def test_crash_loop_with_a_flaky_api_loses_nothing(
    size: str,
    workers: int | str,
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    verdicts: dict[str, Verdict],
) -> None:
    if size == "short" and workers == 1:
        pytest.skip("the short run covers workers: auto only (main and worker kills); make chaos runs both")
    full = size == "full"
    kills = 20 if full else 3
    sigterm_every = SIGTERM_EVERY if full else 0
    interruptions = kills + (kills // (SIGTERM_EVERY - 1) if full else 0)  # so that `kills` are SIGKILL
    sandbox = sandbox_factory(latency_ms=20, seed=31, **API_FAULTS)
    rng = random.Random(5)
    killed_workers: list[int] = []

    def kill_a_worker(proc: ConnectorProcess) -> None:
        # The pool is up before the first upload, but a run can reach its halfway mark at once.
        wait_until(lambda: bool(transform_workers(proc.process.pid)), 30.0, "transform worker processes")
        pids = transform_workers(proc.process.pid)
        pid = rng.choice(pids)
        os.kill(pid, signal.SIGKILL)
        killed_workers.append(pid)

    with PeakRss() as rss:
        report = run_kill_loop(
            bootstrap=broker.bootstrap_servers,
            registry=registry,
            sandbox=sandbox,
            workdir=tmp_path,
            topic=names.topic("bets"),
            dlq_topic=names.topic("dlq"),
            group=names.group(),
            records=20_000 if full else 3000,
            partitions=3,
            interruptions=interruptions,
            seed=1122 if workers == 1 else 2211,
            progress=(0.04, 0.12) if full else (0.2, 0.35),
            sigterm_every=sigterm_every,
            max_in_flight_records=2000,
            timeout_s=300.0,
            workers=workers,
            on_start=lambda p: rss.watch(p.process.pid),
            mid_run=None if workers == 1 else kill_a_worker,
        )
    report.assert_sound(kills=kills)
    assert report.ledger is not None
    if workers != 1:
        assert len(killed_workers) == interruptions
    verdict = judge(
        scenario=f"crash, workers: {workers}",
        size=size,
        ledger=report.ledger,
        outcome=report.outcome,
        order=report.order_breaks,
        replayed_records=int(sandbox.stats()["replayed_records"]),
        peak_rss_bytes=rss.peak,
        duration_s=report.elapsed_s,
        details={"kill_loop": report, "worker_kills": len(killed_workers), "faults": API_FAULTS},
        dedup_duplicates_max=report.api_window,
    )
    keep(verdicts, verdict)
