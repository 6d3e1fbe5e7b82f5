"""Rebalance storm: three connectors in one group; every 10-20 s one is killed, stopped with SIGTERM,
or one more is added (the embedded broker needs about 10 s per rebalance). Each process reaches the
shared sandbox under its own client tag, so that order is checked per process and per assignment,
while the idempotency cache is shared as the real API's is."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from tests.support.brokers import UniqueNames
from tests.support.chaos import PeakRss, Verdict, judge, keep, session_order_breaks, wait_s
from tests.support.e2e import (
    ENDPOINT,
    ConnectorProcess,
    Outcome,
    accepted_ids,
    bet_mapping,
    bet_topic_with_records,
    committed_offsets,
    connector_doc,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(1800)]

PARTITIONS = 6


def test_rebalance_storm_loses_nothing_and_keeps_order_per_assignment(
    size: str,
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    verdicts: dict[str, Verdict],
) -> None:
    full = size == "full"
    every_s = (10, 20) if full else (10, 12)
    max_events = 30 if full else 2
    started = time.monotonic()
    rng = random.Random(404)
    # Slow enough that the storm meets records still to send: each process sends about 1 batch at a time.
    sandbox = sandbox_factory(latency_ms=150 if full else 500)
    bets = bet_topic_with_records(
        broker.bootstrap_servers,
        registry,
        names,
        partitions=PARTITIONS,
        count=100_000 if full else 8000,
        rng=random.Random(10),
        poison_every=173,
    )
    by_id = bets.ledger.by_event_id()
    tps = sorted(bets.ledger.end_offsets())
    members: dict[str, ConnectorProcess] = {}
    everyone: dict[str, ConnectorProcess] = {}
    events: list[str] = []
    window = 0

    def add(rss: PeakRss) -> None:
        name = f"c{len(everyone) + 1}"
        doc = connector_doc(
            bootstrap=broker.bootstrap_servers,
            registry_url=registry.url,
            api_url=sandbox.base_url_for(name),
            group=bets.group,
            dlq_topic=bets.dlq,
            mappings=[bet_mapping(bets.topic)],
            max_concurrency=1 if not full else 2,
        )
        proc = ConnectorProcess(write_config(tmp_path, doc, f"{name}.yaml"), tmp_path / f"{name}.log")
        members[name] = everyone[name] = proc
        rss.watch(proc.process.pid)

    def uncommitted_accepted() -> int:
        read = committed_offsets(broker.bootstrap_servers, bets.group, tps)
        committed = {tp: c or 0 for tp, c in read.items()}
        return sum(
            n for event_id, n in accepted_ids(sandbox).items()
            if event_id in by_id and by_id[event_id].offset >= committed[by_id[event_id].tp]
        )  # fmt: skip

    def all_accepted() -> bool:
        return set(by_id) <= set(accepted_ids(sandbox))

    try:
        with PeakRss() as rss:
            for _ in range(3):
                add(rss)
            while len(events) < max_events and not all_accepted():
                wait_s(rng.uniform(*every_s), lambda: all(p.running for p in members.values()))
                if len(members) < 3:
                    action = "add"
                elif len(members) > 3:
                    action = rng.choice(["kill", "sigterm"])
                else:
                    action = rng.choice(["kill", "sigterm", "add"])
                # What is accepted but not committed now is what may legitimately go out again
                # (an added member takes partitions away from the others too).
                window += uncommitted_accepted()
                if action == "add":
                    add(rss)
                    events.append(f"+{len(everyone)}")
                    continue
                name = rng.choice(sorted(members))
                victim = members.pop(name)
                if action == "kill":
                    victim.kill()
                else:
                    code, _ = victim.terminate(120.0)
                    assert code == 0, f"{name} exited with {code} after SIGTERM"
                events.append(f"{action} {name}")
            wait_until(all_accepted, 900.0, "every good record accepted after the storm", 0.5)
            for proc in members.values():
                code, _ = proc.terminate(120.0)
                assert code == 0
    finally:
        for proc in everyone.values():
            proc.stop_quietly()
    assert len(events) == max_events or full, f"the short storm ended after {events}"
    outcome = Outcome.collect(sandbox, broker.bootstrap_servers, bets.dlq)
    records, clients = sandbox.records(ENDPOINT), sandbox.clients(ENDPOINT)
    sessions = [(name, [r for r, c in zip(records, clients, strict=True) if c == name]) for name in everyone]
    restarts = {name: {tp: n - 1 for tp, n in assignments(proc).items()} for name, proc in everyone.items()}
    verdict = judge(
        scenario="rebalance storm",
        size=size,
        ledger=bets.ledger,
        outcome=outcome,
        order=session_order_breaks(sessions, by_id, restarts),
        replayed_records=int(sandbox.stats()["replayed_records"]),
        peak_rss_bytes=rss.peak,
        duration_s=time.monotonic() - started,
        details={
            "partitions": PARTITIONS,
            "every_s": every_s,
            "events": events,
            "window": window,
            "event_list": " ".join(events),
        },
        dedup_duplicates_max=window,
    )
    keep(verdicts, verdict)


def assignments(proc: ConnectorProcess) -> Counter[str]:
    """How many times the process was given each partition ("topic[p]"), from its log."""
    given: Counter[str] = Counter()
    for event in proc.named("partitions assigned"):
        given.update(event.get("partitions", []))
    return given
