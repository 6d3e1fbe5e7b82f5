"""A mapping that cannot apply pauses its topic, a foreign schema id is poison, one broken topic trips
its own breaker, and `run` refuses a local schema its mapping cannot apply to: against the embedded
broker, the registry stub and the sandbox, with the connector as a child process.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.avro.decoding import encode_confluent
from connector.avro.schemas import load_schema, parse
from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.samples import sample_record
from connector.devtools.sandbox.server import SandboxServer
from connector.kafka.ports import TopicPartition
from connector.pipeline.deadletter import H_MESSAGE, H_STAGE
from tests.support.brokers import UniqueNames
from tests.support.e2e import (
    REPO_ROOT,
    ConnectorProcess,
    Ledger,
    accepted_count,
    bet_mapping,
    committed_offsets,
    connector_doc,
    create_topics,
    dlq_origin,
    free_port,
    header,
    produce_bets,
    read_topic,
    register_bet_schema,
    write_config,
)

pytestmark = pytest.mark.broker

SETTLE_S = 90.0  # a safety net only
UNFIT = {"user_id": "player.uid"}  # the bet schema's player has no uid: `check` reports an error


@pytest.fixture
def processes() -> Iterator[list[ConnectorProcess]]:
    started: list[ConnectorProcess] = []
    yield started
    for proc in started:
        proc.stop_quietly()


def registry_only(mapping: dict[str, Any]) -> dict[str, Any]:
    """Without a reader schema the mapping reads each writer schema, checked when first seen (a
    reader schema the mapping cannot apply to stops `run` at start instead)."""
    return {k: v for k, v in mapping.items() if k != "schema"}


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2.0)
    except httpx.HTTPError:
        return 0, {}
    return response.status_code, response.json()


def paused_topics(port: int, reason: str) -> float | None:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2.0).text
    for line in text.splitlines():
        if line.startswith(f'optikpi_paused_topics{{reason="{reason}"}} '):
            return float(line.split()[1])
    return None


def test_an_unfit_mapping_pauses_its_topic_a_foreign_id_is_poison_a_broken_topic_trips_alone(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox: SandboxServer,
    names: UniqueNames,
    tmp_path: Path,
    processes: list[ConnectorProcess],
) -> None:
    unfit, good, broken = names.topic("unfit"), names.topic("good"), names.topic("broken")
    other, dlq, group = names.topic("deposits"), names.topic("dlq"), names.group()
    create_topics(broker.bootstrap_servers, {unfit: 1, good: 2, broken: 1, dlq: 1})
    rng = random.Random(8)
    ledger = Ledger(broker.bootstrap_servers)
    try:
        unfit_id = register_bet_schema(registry, unfit)
        produce_bets(ledger, unfit, unfit_id, 20, 1, rng)
        good_records = produce_bets(ledger, good, register_bet_schema(registry, good), 300, 2, rng)
        deposit = load_schema("deposit")
        foreign_id = registry.register(f"{other}-value", deposit)
        foreign = ledger.produce(
            good, 0, encode_confluent(foreign_id, parse(deposit), sample_record("deposit", rng, 0))
        )
        produce_bets(ledger, broken, register_bet_schema(registry, broken), 150, 1, rng, poison_every=1)
        ledger.flush()
    finally:
        ledger.close()

    port = free_port()
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=group,
        dlq_topic=dlq,
        mappings=[
            registry_only(bet_mapping(unfit, fields=UNFIT)),
            registry_only(bet_mapping(good)),
            bet_mapping(broken),
        ],
        server_port=port,
    )
    proc = ConnectorProcess(write_config(tmp_path, doc), tmp_path / "connector.log")
    processes.append(proc)

    def settled(_p: ConnectorProcess) -> bool:
        status, body = readyz(port)
        reasons = body.get("reasons", {})
        return (
            accepted_count(sandbox) >= len(good_records)
            and status == 503
            and {"mapping", "breaker"} <= set(reasons)
        )

    proc.wait_for(settled, SETTLE_S, "the good topic delivered and /readyz naming mapping and breaker")
    _, body = readyz(port)
    mapping_reason = body["reasons"]["mapping"]
    assert f"topic {unfit}, schema id {unfit_id}: field user_id:" in mapping_reason
    assert f"topic {broken}:" in body["reasons"]["breaker"]
    assert unfit not in body["reasons"]["breaker"] and good not in body["reasons"]["breaker"]
    assert paused_topics(port, "mapping") == 1
    assert paused_topics(port, "breaker") == 1
    assert accepted_count(sandbox) == len(good_records)  # the good topic flowed, every record once

    code, _ = proc.terminate(60.0)
    assert code == 0
    dead = read_topic(broker.bootstrap_servers, dlq)
    origins = [dlq_origin(r) for r in dead]
    assert not any(topic == unfit for topic, _, _ in origins)  # nothing of the paused topic
    assert not committed_offsets(broker.bootstrap_servers, group, [TopicPartition(unfit, 0)])[
        TopicPartition(unfit, 0)
    ]
    [foreign_copy] = [r for r in dead if dlq_origin(r) == foreign.position]
    assert header(foreign_copy, H_STAGE) == b"DECODE"
    message = (header(foreign_copy, H_MESSAGE) or b"").decode()
    assert f"schema id {foreign_id}" in message and f"not registered under subject '{good}-value'" in message
    # The broken topic paused at its trip: 100 seen at least, and not all 150 (the rest wait).
    assert 100 <= sum(1 for topic, _, _ in origins if topic == broken) <= 150


def test_run_refuses_a_local_schema_its_mapping_cannot_apply_to(
    broker: EmbeddedBroker, names: UniqueNames, tmp_path: Path
) -> None:
    topic = names.topic("bets")
    entry = {
        **bet_mapping(topic, fields=UNFIT),
        "format": "avro",
        "schema": str(REPO_ROOT / "schemas/bet.avsc"),
    }
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url="http://127.0.0.1:1",
        api_url="http://127.0.0.1:1/apigw/ingest",
        group=names.group(),
        dlq_topic=names.topic("dlq"),
        mappings=[entry],
    )
    del doc["schema_registry"]
    config = write_config(tmp_path, doc)
    done = subprocess.run(
        [sys.executable, "-m", "connector", "--log-level", "warning", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("configuration error: ")
    assert f"mappings[0] (topic {topic}): user_id: source path 'player.uid' not found" in lines[0]
