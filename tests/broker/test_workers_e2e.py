"""The connector with transform worker processes (`processing: {workers: 2}`) on a real broker.

A kill -9 of the consumer process takes its workers down with it (they see their pipe close); the
restart must lose nothing and keep each partition's records in offset order within each session.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from tests.support.brokers import UniqueNames
from tests.support.e2e import log_events, run_kill_loop

pytestmark = pytest.mark.broker


def test_workers_survive_a_kill_9_of_the_consumer_process_and_a_restart_loses_nothing(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
) -> None:
    sandbox = sandbox_factory(latency_ms=20)  # uploads in flight when the kill lands
    report = run_kill_loop(
        bootstrap=broker.bootstrap_servers,
        registry=registry,
        sandbox=sandbox,
        workdir=tmp_path,
        topic=names.topic("bets"),
        dlq_topic=names.topic("dlq"),
        group=names.group(),
        records=3000,
        partitions=3,
        interruptions=1,
        seed=7,
        progress=(0.3, 0.4),
        timeout_s=180.0,
        workers=2,
    )
    print(f"\nworkers kill -9: {report.summary()}")
    # Lost nothing, duplicates within the uncommitted window, everything committed, and each
    # partition in offset order within each of the two sessions.
    report.assert_sound(kills=1)
    started = [e for e in log_events(tmp_path / "run-1.log") if e.get("event") == "transform workers started"]
    assert [e["workers"] for e in started] == [2]
