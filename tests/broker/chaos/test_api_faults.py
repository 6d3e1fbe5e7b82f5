"""The API misbehaves while one connector runs: an outage over a large backlog, and a slow tail
above the request timeout so that timeouts race successes."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from tests.support.brokers import UniqueNames
from tests.support.chaos import MIB, PeakRss, Verdict, Watch, judge, keep, session_order_breaks, wait_s
from tests.support.e2e import (
    ENDPOINT,
    ConnectorProcess,
    Outcome,
    accepted_ids,
    bet_mapping,
    bet_topic_with_records,
    committed_offsets,
    connector_doc,
    free_port,
    write_config,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(1800)]

IN_FLIGHT_BOUND = 2000
RSS_BOUND = 300 * MIB
DOWN = {"drop_rate": 0.3, "fail_rate": 1.0}  # every request fails: 30% dropped, the rest 500/503
PAUSED = "optikpi_paused_partitions"
IN_FLIGHT = "optikpi_in_flight_records"


def test_api_outage_over_a_backlog_pauses_stays_small_and_drains(
    size: str,
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    verdicts: dict[str, Verdict],
) -> None:
    full = size == "full"
    outage_s = 60.0 if full else 10.0
    started = time.monotonic()
    sandbox = sandbox_factory(seed=2024, **DOWN)
    bets = bet_topic_with_records(
        broker.bootstrap_servers,
        registry,
        names,
        partitions=3,
        count=200_000 if full else 5000,
        rng=random.Random(8),
        poison_every=101,
    )
    port = free_port()
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=bets.group,
        dlq_topic=bets.dlq,
        mappings=[bet_mapping(bets.topic)],
        max_records=200,
        max_in_flight_records=IN_FLIGHT_BOUND,
        max_backoff_ms=5000,
        server_port=port,
        workers="auto",
    )
    proc = ConnectorProcess(write_config(tmp_path, doc), tmp_path / "outage.log")
    wanted = set(bets.ledger.by_event_id())
    try:
        with PeakRss() as rss, Watch(port, (PAUSED, IN_FLIGHT)) as watch:
            rss.watch(proc.process.pid)
            wait_s(outage_s, lambda: proc.running)
            during = sandbox.stats()
            accepted_during = len(sandbox.records())
            paused_max, in_flight_max = watch.maxima[PAUSED], watch.maxima[IN_FLIGHT]
            sandbox.set_faults(fail_rate=0.0, drop_rate=0.0)
            healed = time.monotonic()
            proc.wait_for(lambda _p: wanted <= set(accepted_ids(sandbox)), 600.0, "the backlog drained", 0.5)
            recovery_s = time.monotonic() - healed
            code, drain_s = proc.terminate(60.0)
        assert code == 0
    finally:
        proc.stop_quietly()
    outcome = Outcome.collect(sandbox, broker.bootstrap_servers, bets.dlq)
    statuses = during["requests"][ENDPOINT]
    assert accepted_during == 0, "the API was down: nothing can have been accepted"
    assert paused_max > 0, "the partitions never paused during the outage"
    # Invariant 6: one poll (500 records) may land on top of the bound before the pause.
    assert in_flight_max <= IN_FLIGHT_BOUND + 500, in_flight_max
    assert rss.peak < RSS_BOUND, f"peak RSS {rss.peak / MIB:.0f} MiB"
    end = bets.ledger.end_offsets()
    assert committed_offsets(broker.bootstrap_servers, bets.group, end) == end
    verdict = judge(
        scenario="outage",
        size=size,
        ledger=bets.ledger,
        outcome=outcome,
        order=session_order_breaks([("run", sandbox.records(ENDPOINT))], bets.ledger.by_event_id()),
        replayed_records=int(sandbox.stats()["replayed_records"]),
        peak_rss_bytes=rss.peak,
        duration_s=time.monotonic() - started,
        details={
            "outage_s": outage_s,
            "faults": ", ".join(f"{k} {v}" for k, v in DOWN.items()),
            "requests_during": sum(statuses.values()) + during["dropped"],
            "statuses_during": dict(sorted(statuses.items())),
            "dropped_during": during["dropped"],
            "paused_max": paused_max,
            "in_flight_max": in_flight_max,
            "in_flight_bound": IN_FLIGHT_BOUND,
            "recovery_s": recovery_s,
            "drain_s": drain_s,
        },
        dedup_duplicates_max=0,  # retries of one batch carry one idempotency key
    )
    keep(verdicts, verdict)


def test_slow_api_whose_timeouts_race_successes_stores_no_duplicate(
    size: str,
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    verdicts: dict[str, Verdict],
) -> None:
    full = size == "full"
    timeout_s, slow_ms = 1.0, 2500
    slow_rate = 0.05 if full else 0.1  # either way the p99 latency is slow_ms, above the timeout
    started = time.monotonic()
    sandbox = sandbox_factory(seed=77, latency_ms=20, slow_rate=slow_rate, slow_ms=slow_ms)
    bets = bet_topic_with_records(
        broker.bootstrap_servers,
        registry,
        names,
        partitions=3,
        count=20_000 if full else 3000,
        rng=random.Random(9),
        poison_every=89,
    )
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=bets.group,
        dlq_topic=bets.dlq,
        mappings=[bet_mapping(bets.topic)],
        timeout_s=timeout_s,
        workers="auto",
    )
    proc = ConnectorProcess(write_config(tmp_path, doc), tmp_path / "slow.log")
    wanted = set(bets.ledger.by_event_id())
    try:
        with PeakRss() as rss:
            rss.watch(proc.process.pid)
            proc.wait_for(lambda _p: wanted <= set(accepted_ids(sandbox)), 600.0, "everything accepted", 0.5)
            code, _ = proc.terminate(60.0)
        assert code == 0
    finally:
        proc.stop_quietly()
    stats = sandbox.stats()
    # The race happened: a request the connector had given up on was stored, and its retry answered
    # from the idempotency cache (or the other way round).
    assert stats["duplicates"] > 0, stats
    outcome = Outcome.collect(sandbox, broker.bootstrap_servers, bets.dlq)
    verdict = judge(
        scenario="slow API",
        size=size,
        ledger=bets.ledger,
        outcome=outcome,
        order=session_order_breaks([("run", sandbox.records(ENDPOINT))], bets.ledger.by_event_id()),
        replayed_records=int(stats["replayed_records"]),
        peak_rss_bytes=rss.peak,
        duration_s=time.monotonic() - started,
        details={
            "slow_rate": slow_rate,
            "slow_ms": slow_ms,
            "timeout_s": timeout_s,
            "replayed_requests": stats["duplicates"],
            "statuses": dict(sorted(stats["requests"][ENDPOINT].items())),
        },
        dedup_duplicates_max=0,
    )
    keep(verdicts, verdict)
