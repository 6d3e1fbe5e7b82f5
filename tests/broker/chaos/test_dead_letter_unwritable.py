"""Dead-letter topic unwritable: mid-stream, the broker refuses every write of the dead-letter
producer for a while (a proxy in front of a broker of the scenario's own drops its Produce
requests; the embedded broker itself writes to any topic, even a deleted one). Meanwhile /readyz
says `dead_letter` and no committed position passes a poison record whose copy is not written;
once the writes go through again, the connector recovers by itself and nothing is lost."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from connector.kafka.ports import TopicPartition
from tests.support.brokers import UniqueNames
from tests.support.chaos import PeakRss, Verdict, Watch, judge, keep, readiness, session_order_breaks
from tests.support.e2e import (
    ENDPOINT,
    ConnectorProcess,
    Outcome,
    Position,
    accepted_count,
    accepted_ids,
    bet_mapping,
    bet_topic_with_records,
    committed_offsets,
    connector_doc,
    dlq_origin,
    free_port,
    read_topic,
    write_config,
)
from tests.support.kafka_proxy import KafkaProxy, proxied_broker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(1800)]

PARTITIONS = 3
# A dead-letter write the broker never answers fails after this long (librdkafka's default is
# 5 minutes), and is then tried again on the connector's retry schedule.
MESSAGE_TIMEOUT_MS = 3000
# The dead-letter producer's client.id (connector/pipeline/wiring.py): the proxy refuses its writes
# only, so the test's own producer and the consumer go through untouched.
DEAD_LETTER_CLIENT_ID = "optikpi-connector-dlq"


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[KafkaProxy]:
    with proxied_broker(tmp_path / "tansu.log") as (_broker, fronted):
        yield fronted


def written(bootstrap: str, dlq: str) -> set[Position]:
    return {dlq_origin(r) for r in read_topic(bootstrap, dlq)}


def test_an_unwritable_dead_letter_topic_holds_commits_at_the_poison_and_recovers_by_itself(
    size: str,
    proxy: KafkaProxy,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    verdicts: dict[str, Verdict],
) -> None:
    full = size == "full"
    refused_s = 30.0 if full else 8.0
    started = time.monotonic()
    bootstrap = proxy.bootstrap_servers
    # A slow API and a small in-flight bound keep most records in the broker when the refusal starts.
    sandbox = sandbox_factory(latency_ms=100)
    bets = bet_topic_with_records(
        bootstrap,
        registry,
        names,
        partitions=PARTITIONS,
        count=20_000 if full else 3000,
        rng=random.Random(23),
        poison_every=97,
    )
    port = free_port()
    doc = connector_doc(
        bootstrap=bootstrap,
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
    doc["kafka"]["properties"]["message.timeout.ms"] = MESSAGE_TIMEOUT_MS
    proc = ConnectorProcess(write_config(tmp_path, doc), tmp_path / "dead-letter.log")
    wanted = set(bets.ledger.by_event_id())
    poison = {r.position for r in bets.ledger.poison()}
    tps = [TopicPartition(bets.topic, p) for p in range(PARTITIONS)]
    poison_by_tp = {tp: sorted(o for t, p, o in poison if p == tp.partition) for tp in tps}
    samples: list[dict[TopicPartition, int]] = []
    try:
        with PeakRss() as rss, Watch(port, ()) as watch:
            rss.watch(proc.process.pid)
            third = len(wanted) // 3
            proc.wait_for(lambda _p: accepted_count(sandbox) >= third, 300.0, "a third accepted", 0.1)
            proxy.refuse_produce(DEAD_LETTER_CLIENT_ID)
            refused_at = time.monotonic()
            watch.reset()
            try:
                while time.monotonic() - refused_at < refused_s:
                    assert proc.running, "the connector exited while the dead-letter topic was unwritable"
                    committed = committed_offsets(bootstrap, bets.group, tps)
                    samples.append({tp: c or 0 for tp, c in committed.items()})
                    time.sleep(0.5)
                watch.sample()
                reasons = set(watch.reasons)
                # Nothing reaches the dead-letter topic now: what it holds was written before.
                copies_when_refused = written(bootstrap, bets.dlq)
                accepted_when_refused = accepted_count(sandbox)
            finally:
                proxy.allow_produce()
            allowed = time.monotonic()
            refused_requests = proxy.refused

            def drained(_p: ConnectorProcess) -> bool:
                if not wanted <= set(accepted_ids(sandbox)):
                    return False
                ends = bets.ledger.end_offsets(bets.topic)
                return committed_offsets(bootstrap, bets.group, tps) == ends

            proc.wait_for(drained, 240.0, "everything accepted and committed", 0.5)
            recovery_s = time.monotonic() - allowed
            ready_after = readiness(port)
            code, _ = proc.terminate(60.0)
        assert code == 0
    finally:
        proc.stop_quietly()
    pending = poison - copies_when_refused
    passed = [
        (tp.partition, committed, offset)
        for sample in samples
        for tp, committed in sample.items()
        for offset in poison_by_tp[tp]
        if offset < committed and (tp.topic, tp.partition, offset) in pending
    ]
    assert refused_requests > 0, "the dead-letter producer never tried to write while refused"
    # Good records keep flowing to the API meanwhile; the poison waiting for its copy holds commits.
    assert pending, "no poison record waited for its copy while refused: the fault came too late"
    assert samples, "no committed positions were read while the dead-letter topic was unwritable"
    assert passed == [], (
        f"committed past poison whose copy was not written (partition, committed, poison): {passed[:5]}"
    )
    assert "dead_letter" in reasons, f"readiness while the dead-letter topic was unwritable: {reasons}"
    assert ready_after == {}, f"still unready after the dead-letter topic was writable again: {ready_after}"
    outcome = Outcome.collect(sandbox, bootstrap, bets.dlq)
    assert poison <= set(outcome.dead), (
        f"poison missing from the dead-letter topic: {sorted(poison - set(outcome.dead))[:5]}"
    )
    verdict = judge(
        scenario="dead letter unwritable",
        size=size,
        ledger=bets.ledger,
        outcome=outcome,
        order=session_order_breaks([("run", sandbox.records(ENDPOINT))], bets.ledger.by_event_id()),
        replayed_records=int(sandbox.stats()["replayed_records"]),
        peak_rss_bytes=rss.peak,
        duration_s=time.monotonic() - started,
        details={
            "refused_s": refused_s,
            "reasons": reasons,
            "refused_requests": refused_requests,
            "commit_reads": len(samples),
            "poison": len(poison),
            "pending_when_refused": len(pending),
            "dlq_duplicates": outcome.dlq_duplicates,
            "accepted_when_refused": accepted_when_refused,
            "good_records": len(wanted),
            "recovery_s": recovery_s,
        },
    )
    keep(verdicts, verdict)
