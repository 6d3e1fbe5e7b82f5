"""Broker unreachable: the embedded broker keeps its data only in memory, so it is frozen (SIGSTOP)
mid-stream instead of restarted, then thawed (SIGCONT). While it is frozen /readyz says `kafka`;
afterwards the connector resumes and nothing is lost.

The scenario has a broker of its own: freezing the session's broker would stall every other test."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from tests.support import frozen_broker
from tests.support.brokers import UniqueNames
from tests.support.chaos import PeakRss, Verdict, Watch, judge, keep, session_order_breaks, wait_s
from tests.support.e2e import (
    ENDPOINT,
    ConnectorProcess,
    Outcome,
    accepted_count,
    accepted_ids,
    bet_mapping,
    bet_topic_with_records,
    connector_doc,
    free_port,
    write_config,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(1800)]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with frozen_broker.own_broker(tmp_path / "tansu.log") as embedded:
        yield embedded


def assignments(proc: ConnectorProcess) -> Counter[str]:
    """How many times each partition was given to the process (a lost membership gives it again)."""
    return Counter(p for e in proc.named("partitions assigned") for p in e.get("partitions", []))


def test_a_frozen_broker_turns_the_connector_unready_with_kafka_and_nothing_is_lost(
    size: str,
    own_broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    verdicts: dict[str, Verdict],
) -> None:
    broker = own_broker
    full = size == "full"
    frozen_s = 30.0 if full else 8.0
    started = time.monotonic()
    # A slow API and a small in-flight bound keep most records in the broker when it freezes.
    sandbox = sandbox_factory(latency_ms=100)
    bets = bet_topic_with_records(
        broker.bootstrap_servers,
        registry,
        names,
        partitions=3,
        count=30_000 if full else 3000,
        rng=random.Random(19),
        poison_every=97,
    )
    port = free_port()
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=bets.group,
        dlq_topic=bets.dlq,
        mappings=[bet_mapping(bets.topic)],
        server_port=port,
        workers="auto",
        max_concurrency=2,
        max_in_flight_records=300,
    )
    proc = ConnectorProcess(write_config(tmp_path, doc), tmp_path / "frozen.log")
    wanted = set(bets.ledger.by_event_id())
    try:
        with PeakRss() as rss, Watch(port, ()) as watch:
            rss.watch(proc.process.pid)
            # Mid-stream: a third of the good records accepted, the rest still to come.
            third = len(wanted) // 3
            proc.wait_for(lambda _p: accepted_count(sandbox) >= third, 300.0, "a third accepted", 0.1)
            frozen_broker.freeze(broker)
            frozen_at = time.monotonic()
            watch.reset()
            try:
                wait_s(frozen_s, lambda: proc.running)
                watch.sample()
                reasons = set(watch.reasons)
            finally:
                frozen_broker.thaw(broker)
            accepted_at_thaw = accepted_count(sandbox)
            thawed = time.monotonic()
            proc.wait_for(lambda _p: wanted <= set(accepted_ids(sandbox)), 600.0, "everything accepted", 0.2)
            recovery_s = time.monotonic() - thawed
            code, _ = proc.terminate(60.0)
        assert code == 0
    finally:
        proc.stop_quietly()
    assert accepted_at_thaw < len(wanted), "everything was accepted before the broker thawed: not mid-stream"
    assert "kafka" in reasons, f"readiness while the broker was frozen for {frozen_s:.0f} s: {reasons}"
    outcome = Outcome.collect(sandbox, broker.bootstrap_servers, bets.dlq)
    # The group coordinator froze too: the membership may have expired meanwhile, and a partition
    # given back then legitimately starts over from its committed position.
    restarts = {"run": {tp: n - 1 for tp, n in assignments(proc).items()}}
    verdict = judge(
        scenario="broker frozen",
        size=size,
        ledger=bets.ledger,
        outcome=outcome,
        order=session_order_breaks([("run", sandbox.records(ENDPOINT))], bets.ledger.by_event_id(), restarts),
        replayed_records=int(sandbox.stats()["replayed_records"]),
        peak_rss_bytes=rss.peak,
        duration_s=time.monotonic() - started,
        details={
            "frozen_s": frozen_s,
            "reasons": reasons,
            "accepted_at_thaw": accepted_at_thaw,
            "good_records": len(wanted),
            "reassignments": sum(restarts["run"].values()),
            "recovery_s": recovery_s,
            "frozen_to_thawed_s": thawed - frozen_at,
        },
    )
    keep(verdicts, verdict)
