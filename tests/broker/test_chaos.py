"""Long fault-injection runs (`make chaos`): many kill -9 mid-stream, and a long API outage.

Both prove invariants 1 and 2 at a scale the short versions in test_pipeline_e2e.py do not reach:
nothing is lost, and what is re-sent stays within the uncommitted window. The outage run also
checks invariant 6 (the in-flight bound holds while the API is failing). The figures are written
to docs/reliability.md.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from tests.support.brokers import UniqueNames
from tests.support.e2e import (
    REPO_ROOT,
    ConnectorProcess,
    KillLoopReport,
    Outcome,
    accepted_ids,
    bet_mapping,
    bet_topic_with_records,
    committed_offsets,
    connector_doc,
    free_port,
    machine_description,
    run_kill_loop,
    today,
    write_config,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(1800)]

REPORT = REPO_ROOT / "docs" / "reliability.md"
KILL_RECORDS = 20_000
KILLS = 10
SIGTERM_EVERY = 4  # every 4th interruption is a SIGTERM, to measure the drain under load
OUTAGE_RECORDS = 10_000
OUTAGE_S = 60.0
OUTAGE_FAULTS = {"fail_rate": 0.5, "drop_rate": 0.2, "throttle_rate": 0.2}
MAX_IN_FLIGHT = 2000


@pytest.fixture(scope="module")
def findings() -> Iterator[dict[str, Any]]:
    """Each test leaves its figures here; the report is written once both have had their say."""
    found: dict[str, Any] = {}
    yield found
    # A partial run (-k, or a failure) must not replace the report with half of it.
    if {"kills", "outage"} <= set(found):
        write_report(found)


def test_kill_9_ten_times_mid_stream_loses_nothing(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    findings: dict[str, Any],
) -> None:
    sandbox = sandbox_factory(latency_ms=20)
    interruptions = KILLS + KILLS // (SIGTERM_EVERY - 1)  # so that KILLS of them are SIGKILL
    report = run_kill_loop(
        bootstrap=broker.bootstrap_servers,
        registry=registry,
        sandbox=sandbox,
        workdir=tmp_path,
        topic=names.topic("bets"),
        dlq_topic=names.topic("dlq"),
        group=names.group(),
        records=KILL_RECORDS,
        partitions=3,
        interruptions=interruptions,
        seed=1122,
        progress=(0.04, 0.12),
        sigterm_every=SIGTERM_EVERY,
        max_in_flight_records=MAX_IN_FLIGHT,
        timeout_s=300.0,
    )
    findings["kills"] = report
    print(f"\nchaos kill loop: {report.summary()}")
    report.assert_sound(kills=KILLS)


def test_a_minute_of_api_outage_loses_nothing_and_keeps_in_flight_bounded(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    findings: dict[str, Any],
) -> None:
    sandbox = sandbox_factory(seed=2024, **OUTAGE_FAULTS)
    bets = bet_topic_with_records(
        broker.bootstrap_servers,
        registry,
        names,
        partitions=3,
        count=OUTAGE_RECORDS,
        rng=random.Random(8),
        poison_every=101,
    )
    topic, dlq, group, ledger = bets.topic, bets.dlq, bets.group, bets.ledger
    port = free_port()
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=group,
        dlq_topic=dlq,
        mappings=[bet_mapping(topic)],
        max_records=200,
        max_in_flight_records=MAX_IN_FLIGHT,
        max_backoff_ms=5000,
        server_port=port,
    )
    proc = ConnectorProcess(write_config(tmp_path, doc), tmp_path / "outage.log")
    try:
        started = time.monotonic()
        in_flight_max = 0.0
        while time.monotonic() - started < OUTAGE_S:
            assert proc.running, f"the connector exited during the outage ({proc.process.returncode})"
            in_flight_max = max(in_flight_max, proc.metric(port, "optikpi_in_flight_records") or 0.0)
            time.sleep(0.25)
        during = sandbox.stats()
        accepted_during = sum(1 for _ in sandbox.records())
        sandbox.set_faults(fail_rate=0.0, drop_rate=0.0, throttle_rate=0.0)
        healed = time.monotonic()
        wanted = set(ledger.by_event_id())
        proc.wait_for(
            lambda _p: wanted <= set(accepted_ids(sandbox)),
            300.0,
            "everything accepted after the outage",
            0.5,
        )
        recovery_s = time.monotonic() - healed
        code, drain_s = proc.terminate(60.0)
        assert code == 0
    finally:
        proc.stop_quietly()
    outcome = Outcome.collect(sandbox, broker.bootstrap_servers, dlq)
    lost = outcome.lost(ledger)
    statuses = during["requests"]["gaming-activity"]
    findings["outage"] = {
        "records": len(ledger.records),
        "outage_s": OUTAGE_S,
        "faults": OUTAGE_FAULTS,
        "requests_during": sum(statuses.values()) + during["dropped"],
        "statuses_during": dict(sorted(statuses.items())),
        "dropped_during": during["dropped"],
        "accepted_during": accepted_during,
        "recovery_s": recovery_s,
        "lost": len(lost),
        "api_duplicates": outcome.api_duplicates,
        "dlq_duplicates": outcome.dlq_duplicates,
        "replays_answered": sandbox.stats()["duplicates"],
        "in_flight_max": in_flight_max,
        "drain_s": drain_s,
    }
    print(f"\nchaos outage: {findings['outage']}")
    assert lost == [], f"lost {len(lost)} records"
    # Retries of one batch carry one idempotency key: the API stores them once.
    assert outcome.api_duplicates == 0 and outcome.dlq_duplicates == 0
    # Invariant 6: one poll (500 records) may land on top of the bound before the pause.
    assert in_flight_max <= MAX_IN_FLIGHT + 500, in_flight_max
    end = ledger.end_offsets()
    assert committed_offsets(broker.bootstrap_servers, group, end) == end


def write_report(found: dict[str, Any]) -> None:
    lines = [
        "# Reliability under faults",
        "",
        "Generated by `tests/broker/test_chaos.py` (`make chaos`); run it again to refresh. The connector",
        "runs as a real process (`python -m connector run`) against the embedded Tansu broker, the",
        "registry stub and the sandbox API. *Lost* counts produced records that are neither accepted by",
        "the API nor in the dead-letter topic; *duplicates* counts extra acceptances of one event id",
        "(records re-sent after a crash in a batch cut differently, so with a different idempotency key).",
        "",
        "| | |",
        "|---|---|",
        f"| date | {today()} |",
        f"| machine | {machine_description()} |",
    ]
    kills: KillLoopReport | None = found.get("kills")
    if kills is not None:
        drains = kills.drain_times
        all_drains = ", ".join(f"{d:.2f}" for d in drains)
        lines += [
            "",
            "## kill -9 mid-stream, again and again",
            "",
            f"{kills.records:,} bets (every 97th undecodable) on {kills.partitions} partitions; the",
            "sandbox answers after 20 ms so uploads are in flight at every kill. The connector is",
            "stopped when the API has accepted a seeded random share of what is still missing, then",
            "restarted; committed positions are read back after each stop and checked: every good record",
            "below them was accepted, and they never move backwards. A record can only be sent again",
            "if it sits at or above the committed position of a stop, so the records accepted there,",
            "summed over the stops, bound the duplicates. After a kill, the dead member keeps its",
            "partitions until its session times out, so a stop soon after a restart can leave an",
            "earlier window untouched: that is why a SIGTERM row can show one.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| records | {kills.records:,} ({len(kills.interruptions)} interruptions) |",
            f"| kill -9 survived | {kills.kills} |",
            f"| SIGTERM stops under load | {len(kills.interruptions) - kills.kills} (+ the final stop) |",
            f"| **lost** | **{len(kills.lost)}** |",
            f"| API duplicates | {kills.outcome.api_duplicates:,} |",
            f"| bound: records accepted at or above the committed positions, summed over the stops "
            f"| {kills.api_window:,} |",
            f"| dead-letter duplicates (bound: poison at or above the committed positions) "
            f"| {kills.outcome.dlq_duplicates} ({kills.poison_window:,}) |",
            f"| drain time after SIGTERM, max | {max(drains):.2f} s (all: {all_drains}) |",
            f"| wall time | {kills.elapsed_s:.0f} s |",
            "",
            "| # | signal | API acceptances when stopped | committed positions after (sum) "
            "| accepted at or above them |",
            "|---|---|---|---|---|",
        ]
        for n, i in enumerate(kills.interruptions, 1):
            committed = sum(i.committed.values())
            lines.append(f"| {n} | {i.signal} | {i.accepted_before:,} | {committed:,} | {i.api_window} |")
    outage = found.get("outage")
    if outage is not None:
        faults = ", ".join(f"{k} {v}" for k, v in outage["faults"].items())
        lines += [
            "",
            "## A minute of API outage",
            "",
            f"{outage['records']:,} bets; for {outage['outage_s']:.0f} s the sandbox fails, drops and",
            f"throttles requests at random ({faults}), then heals. The connector retries with",
            "backoff (capped at 5 s here), keeps the in-flight bound, and catches up.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| outage duration | {outage['outage_s']:.0f} s |",
            f"| requests during the outage | {outage['requests_during']:,} "
            f"(by status: {outage['statuses_during']}, dropped: {outage['dropped_during']}) |",
            f"| records accepted during the outage | {outage['accepted_during']:,} |",
            f"| from healed to everything accepted | {outage['recovery_s']:.1f} s |",
            f"| **lost** | **{outage['lost']}** |",
            f"| API / dead-letter duplicates | {outage['api_duplicates']} / {outage['dlq_duplicates']} |",
            f"| retries answered from the idempotency cache | {outage['replays_answered']} |",
            f"| in-flight records, max (bound {MAX_IN_FLIGHT:,}) | {outage['in_flight_max']:.0f} |",
            f"| drain time after SIGTERM | {outage['drain_s']:.2f} s |",
        ]
    lines.append("")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines), encoding="utf-8")
