"""Schema Registry down: records arrive under a schema id the connector has not fetched yet while
the registry answers 503. Their partitions pause (readiness `registry`), nothing is dead-lettered,
and they resume when the registry is back."""

from __future__ import annotations

import copy
import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.avro.decoding import encode_confluent
from connector.avro.schemas import parse
from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from tests.support.brokers import UniqueNames
from tests.support.chaos import PeakRss, Verdict, Watch, judge, keep, session_order_breaks, wait_s
from tests.support.e2e import (
    BET_SCHEMA,
    ENDPOINT,
    ConnectorProcess,
    Ledger,
    Outcome,
    accepted_ids,
    bet_mapping,
    connector_doc,
    create_topics,
    free_port,
    make_bet,
    produce_bets,
    register_bet_schema,
    write_config,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(1800)]

PAUSED = "optikpi_paused_partitions"


@pytest.fixture
def registry_up_again(registry: RegistryStub) -> Iterator[RegistryStub]:
    """The registry is shared by the session: whatever happens, it is answering again afterwards."""
    yield registry
    registry.unavailable = False


def later_bet_schema(tag: str) -> dict[str, Any]:
    """The bet schema with one more optional field: a new schema id for the same data."""
    schema = copy.deepcopy(BET_SCHEMA)
    extra = {"name": f"chaos_{tag}", "type": ["null", "string"], "default": None}
    schema["fields"] = [*schema["fields"], extra]
    return schema


def test_registry_down_pauses_the_affected_partitions_and_dead_letters_nothing(
    size: str,
    broker: EmbeddedBroker,
    registry_up_again: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    verdicts: dict[str, Verdict],
) -> None:
    registry = registry_up_again
    full = size == "full"
    half = 10_000 if full else 1500
    down_s = 30.0 if full else 4.0
    started = time.monotonic()
    sandbox = sandbox_factory(latency_ms=5)
    topic, dlq, group = names.topic("bets"), names.topic("dlq"), names.group()
    create_topics(broker.bootstrap_servers, {topic: 3, dlq: 1})
    ledger = Ledger(broker.bootstrap_servers)
    rng = random.Random(12)
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
    proc = ConnectorProcess(write_config(tmp_path, doc), tmp_path / "registry.log")
    try:
        with PeakRss() as rss, Watch(port, (PAUSED,)) as watch:
            rss.watch(proc.process.pid)
            produce_bets(ledger, topic, register_bet_schema(registry, topic), half, 3, rng)
            first = {r.event_id for r in ledger.good()}
            proc.wait_for(lambda _p: first <= set(accepted_ids(sandbox)), 300.0, "the first half", 0.2)
            later = later_bet_schema(uuid.uuid4().hex)
            later_id = registry.register(f"{topic}-value", later)
            later_parsed = parse(later)
            registry.unavailable = True
            watch.reset()
            for i in range(half, 2 * half):
                bet = make_bet(rng, i)
                ledger.produce(
                    topic,
                    i % 3,
                    encode_confluent(later_id, later_parsed, bet),
                    key=str(bet["player"]["id"]).encode(),
                    event_id=str(bet["bet_id"]),
                )
            ledger.flush()
            wait_s(down_s, lambda: proc.running)
            watch.sample()
            paused_max, reasons = watch.maxima[PAUSED], set(watch.reasons)
            accepted_while_down = len(sandbox.records(ENDPOINT))
            registry.unavailable = False
            back = time.monotonic()
            wanted = set(ledger.by_event_id())
            proc.wait_for(lambda _p: wanted <= set(accepted_ids(sandbox)), 300.0, "everything accepted", 0.2)
            recovery_s = time.monotonic() - back
            code, _ = proc.terminate(60.0)
        assert code == 0
    finally:
        proc.stop_quietly()
        ledger.close()
    assert accepted_while_down == half, "a record under the unknown schema id went through"
    assert paused_max > 0, "no partition paused while the registry was down"
    assert "registry" in reasons, reasons
    outcome = Outcome.collect(sandbox, broker.bootstrap_servers, dlq)
    assert not outcome.dead, f"dead-lettered while the registry was down: {list(outcome.dead)[:5]}"
    verdict = judge(
        scenario="registry down",
        size=size,
        ledger=ledger,
        outcome=outcome,
        order=session_order_breaks([("run", sandbox.records(ENDPOINT))], ledger.by_event_id()),
        replayed_records=int(sandbox.stats()["replayed_records"]),
        peak_rss_bytes=rss.peak,
        duration_s=time.monotonic() - started,
        details={"down_s": down_s, "paused_max": paused_max, "reasons": reasons, "recovery_s": recovery_s},
        dedup_duplicates_max=0,
    )
    keep(verdicts, verdict)
