"""SIGTERM at any moment of start-up: reading the configuration, wiring, the group join. The
process exits 0 within shutdown_timeout_s, says so in its log, and leaves the group, so that the
next member joins at once instead of waiting for a member that will never speak again.

On Tansu a first JoinGroup is held for about half the session timeout, and a member that went
away with its join unanswered stays in the group: the next join then waited more than two
minutes here (seven with the default timeouts). The connector gets max.poll.interval.ms = 60 s,
so a member left behind would hold the next join for at least that long; the probe below gives
the next join half of it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from tests.support.brokers import RecordingListener, UniqueNames, make_consumer
from tests.support.e2e import ConnectorProcess, bet_mapping, connector_doc, create_topics, write_config

pytestmark = pytest.mark.broker

SHUTDOWN_TIMEOUT_S = 15.0
STALE_MEMBER_HOLDS_S = (
    60.0  # the connector's max.poll.interval.ms: how long a member left behind holds a join
)
NEXT_JOIN_S = STALE_MEMBER_HOLDS_S / 2
# From 0.3 s (before that, the interpreter itself may still be starting: its default SIGTERM
# action, 143, is the only one left) to past the group join (about 3 s with these timeouts).
MOMENTS_S = [0.3, *sorted(round(random.Random(8).uniform(0.3, 5.0), 2) for _ in range(3))]


@pytest.fixture
def process() -> Iterator[list[ConnectorProcess]]:
    started: list[ConnectorProcess] = []
    yield started
    for proc in started:
        proc.stop_quietly()


@pytest.mark.parametrize("moment_s", MOMENTS_S)
def test_sigterm_during_start_up_exits_0_and_leaves_the_group(
    moment_s: float,
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox: SandboxServer,
    names: UniqueNames,
    tmp_path: Path,
    process: list[ConnectorProcess],
) -> None:
    topic, dlq, group = names.topic("bets"), names.topic("dlq"), names.group()
    create_topics(broker.bootstrap_servers, {topic: 2, dlq: 1})
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=group,
        dlq_topic=dlq,
        mappings=[bet_mapping(topic)],
        shutdown_timeout_s=SHUTDOWN_TIMEOUT_S,
    )
    doc["kafka"]["properties"]["max.poll.interval.ms"] = int(STALE_MEMBER_HOLDS_S * 1000)
    connector = ConnectorProcess(write_config(tmp_path, doc), tmp_path / "connector.log")
    process.append(connector)

    time.sleep(moment_s)
    code, _ = connector.terminate(SHUTDOWN_TIMEOUT_S + 5.0)
    events = {e.get("event") for e in connector.events()}
    assert code == 0, f"exit {code} after SIGTERM at {moment_s} s; log: {sorted(map(str, events))}"
    assert events & {"stopped before start-up finished", "connector stopped"}, events

    successor = make_consumer(broker.bootstrap_servers, group)
    try:
        successor.subscribe([topic], RecordingListener())
        deadline = time.monotonic() + NEXT_JOIN_S
        while not successor.assignment() and time.monotonic() < deadline:
            successor.consume(10, 0.1)
        assert successor.assignment(), (
            f"after a SIGTERM at {moment_s} s the next member did not join within {NEXT_JOIN_S:.0f} s: "
            "the stopped process is still a member of the group"
        )
    finally:
        successor.close()
