"""Token rotation: the API starts refusing the connector's token (401) mid-stream, and only later is
the new token written to `optikpi.auth_token_file`. Meanwhile nothing is dead-lettered, nothing is
committed past what the API accepted, /readyz says `credentials`; once the file holds the new
token the connector resumes on its own."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import DEMO_TOKEN, SandboxServer
from connector.kafka.ports import TopicPartition
from tests.support.brokers import UniqueNames
from tests.support.chaos import PeakRss, Verdict, Watch, judge, keep, session_order_breaks
from tests.support.e2e import (
    ENDPOINT,
    ConnectorProcess,
    Ledger,
    Outcome,
    accepted_ids,
    bet_mapping,
    committed_offsets,
    connector_doc,
    create_topics,
    free_port,
    produce_bets,
    register_bet_schema,
    write_config,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(1800)]

ROTATED = "rotated-sandbox-token"


def write_token(path: Path, token: str) -> None:
    """As a secret mount rotates: a new file swapped in, never a half-written one."""
    staged = path.with_suffix(".new")
    staged.write_text(token + "\n", encoding="utf-8")
    os.replace(staged, path)


def test_a_refused_token_pauses_without_committing_and_a_rotated_file_resumes_it(
    size: str,
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    verdicts: dict[str, Verdict],
) -> None:
    full = size == "full"
    half = 10_000 if full else 1500
    refused_s = 30.0 if full else 5.0
    started = time.monotonic()
    sandbox = sandbox_factory(latency_ms=5)
    topic, dlq, group = names.topic("bets"), names.topic("dlq"), names.group()
    create_topics(broker.bootstrap_servers, {topic: 3, dlq: 1})
    schema_id = register_bet_schema(registry, topic)
    ledger = Ledger(broker.bootstrap_servers)
    rng = random.Random(41)
    token_file = tmp_path / "token"
    write_token(token_file, DEMO_TOKEN)
    port = free_port()
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=group,
        dlq_topic=dlq,
        mappings=[bet_mapping(topic)],
        server_port=port,
        workers="auto",
    )
    del doc["optikpi"]["auth_token"]
    doc["optikpi"]["auth_token_file"] = str(token_file)
    proc = ConnectorProcess(write_config(tmp_path, doc), tmp_path / "credentials.log")
    tps = [TopicPartition(topic, p) for p in range(3)]
    samples: list[dict[TopicPartition, int]] = []
    try:
        with PeakRss() as rss, Watch(port, ()) as watch:
            rss.watch(proc.process.pid)
            produce_bets(ledger, topic, schema_id, half, 3, rng)
            first = {r.event_id for r in ledger.good()}
            proc.wait_for(lambda _p: first <= set(accepted_ids(sandbox)), 300.0, "the first half", 0.2)
            sandbox.rotate_token(ROTATED)
            refused_at = time.monotonic()
            watch.reset()
            produce_bets(ledger, topic, schema_id, half, 3, rng, first_index=half)
            # While refused, read the committed positions again and again: none may pass what the
            # API accepted (the first half; the second half's first batch is the refused one).
            while time.monotonic() - refused_at < refused_s:
                assert proc.running, "the connector exited while its token was refused"
                committed = committed_offsets(broker.bootstrap_servers, group, tps)
                samples.append({tp: c or 0 for tp, c in committed.items()})
                time.sleep(0.5)
            watch.sample()
            reasons = set(watch.reasons)
            accepted_while_refused = len(sandbox.records(ENDPOINT))
            refusals = int(sandbox.stats()["requests"][ENDPOINT].get("401", 0))
            # Checked before the rotation, so that a breach fails here and says so.
            first_ends = {tp: half // 3 + (1 if tp.partition < half % 3 else 0) for tp in tps}
            past = [(tp, c) for sample in samples for tp, c in sample.items() if c > first_ends[tp]]
            assert samples, "no committed positions were read while the token was refused"
            assert past == [], f"committed past the refused batch while refused: {past[:5]}"
            assert accepted_while_refused == half, "a record went through with the refused token"
            assert refusals > 0, "the API never refused the token"
            assert "credentials" in reasons, reasons
            write_token(token_file, ROTATED)
            rotated = time.monotonic()
            wanted = set(ledger.by_event_id())
            proc.wait_for(lambda _p: wanted <= set(accepted_ids(sandbox)), 300.0, "everything accepted", 0.2)
            recovery_s = time.monotonic() - rotated
            code, _ = proc.terminate(60.0)
        assert code == 0
    finally:
        proc.stop_quietly()
        ledger.close()
    outcome = Outcome.collect(sandbox, broker.bootstrap_servers, dlq)
    assert not outcome.dead, f"dead-lettered while the token was refused: {list(outcome.dead)[:5]}"
    verdict = judge(
        scenario="credentials",
        size=size,
        ledger=ledger,
        outcome=outcome,
        order=session_order_breaks([("run", sandbox.records(ENDPOINT))], ledger.by_event_id()),
        replayed_records=int(sandbox.stats()["replayed_records"]),
        peak_rss_bytes=rss.peak,
        duration_s=time.monotonic() - started,
        details={
            "refused_s": refused_s,
            "reasons": reasons,
            "refusals": refusals,
            "commit_reads": len(samples),
            "recovery_s": recovery_s,
        },
        dedup_duplicates_max=0,
    )
    keep(verdicts, verdict)
