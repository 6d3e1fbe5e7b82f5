"""The connector with transform worker processes (`processing: {workers: 2}`) on a real broker.

A kill -9 of the consumer process takes its workers down with it (they see their pipe close); the
restart must lose nothing and keep each partition's records in offset order within each session.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from connector.kafka.ports import TopicPartition
from tests.support.brokers import UniqueNames
from tests.support.e2e import (
    ENDPOINT,
    ConnectorProcess,
    Ledger,
    Outcome,
    Produced,
    accepted_count,
    accepted_ids,
    bet_mapping,
    connector_doc,
    create_topics,
    produce_bets,
    register_bet_schema,
    wait_for_quiet_sandbox,
    write_config,
)

pytestmark = pytest.mark.broker

RECORDS = 3000
PARTITIONS = 3
TIMEOUT_S = 180.0


@pytest.fixture
def processes() -> Iterator[list[ConnectorProcess]]:
    started: list[ConnectorProcess] = []
    yield started
    for proc in started:
        proc.stop_quietly()


def assert_offset_order_within(session: list[dict[str, Any]], by_id: dict[str, Produced]) -> None:
    offsets: dict[TopicPartition, list[int]] = defaultdict(list)
    for record in session:
        produced = by_id.get(str(record["event_id"]))
        if produced is not None:
            offsets[produced.tp].append(produced.offset)
    for tp, seen in offsets.items():
        assert seen == sorted(set(seen)), f"{tp} reached the API out of offset order (or twice) in a session"


def test_workers_survive_a_kill_9_of_the_consumer_process_and_a_restart_loses_nothing(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    processes: list[ConnectorProcess],
) -> None:
    sandbox = sandbox_factory(latency_ms=20)  # uploads in flight when the kill lands
    topic, dlq, group = names.topic("bets"), names.topic("dlq"), names.group()
    create_topics(broker.bootstrap_servers, {topic: PARTITIONS, dlq: 1})
    schema_id = register_bet_schema(registry, topic)
    ledger = Ledger(broker.bootstrap_servers)
    try:
        produce_bets(ledger, topic, schema_id, RECORDS, PARTITIONS, random.Random(7), poison_every=97)
    finally:
        ledger.close()
    by_id = ledger.by_event_id()
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=group,
        dlq_topic=dlq,
        mappings=[bet_mapping(topic)],
        max_in_flight_records=1000,
        workers=2,
    )
    config = write_config(tmp_path, doc)

    first = ConnectorProcess(config, tmp_path / "run-1.log")
    processes.append(first)
    first.wait_for(lambda _p: accepted_count(sandbox) >= RECORDS // 3, TIMEOUT_S, "a third accepted")
    [started] = first.named("transform workers started")
    assert started["workers"] == 2
    first.kill()
    wait_for_quiet_sandbox(sandbox)
    session_one = len(sandbox.records(ENDPOINT))
    assert session_one < len(by_id), "the kill came too late to test anything"

    second = ConnectorProcess(config, tmp_path / "run-2.log")
    processes.append(second)
    second.wait_for(
        lambda _p: set(by_id) <= set(accepted_ids(sandbox)), TIMEOUT_S, "every good record accepted", 0.5
    )
    code, _drain_s = second.terminate(60.0)
    assert code == 0

    outcome = Outcome.collect(sandbox, broker.bootstrap_servers, dlq)
    assert outcome.lost(ledger) == []  # every produced record was accepted or dead-lettered
    assert {position for position in outcome.dead} == {r.position for r in ledger.poison()}
    records = sandbox.records(ENDPOINT)
    assert_offset_order_within(records[:session_one], by_id)
    assert_offset_order_within(records[session_one:], by_id)
