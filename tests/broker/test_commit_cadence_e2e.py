"""Commit cadence against the embedded broker: a stop's drain commits what it finished as it goes
(on the commit interval), never past a record the API has not accepted or the dead-letter topic
does not have."""

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
from tests.support.e2e import (
    accepted_ids,
    bet_mapping,
    bet_topic_with_records,
    committed_offsets,
    connector_doc,
    in_process,
    settings_of,
    wait_until,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]


def test_a_stop_drain_commits_what_it_finished_before_it_ends(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
) -> None:
    # One upload at a time, 300 ms each: a full in-flight bound (1000 records, 20 batches) takes
    # several commit intervals to drain.
    sandbox = sandbox_factory(latency_ms=300)
    bets = bet_topic_with_records(
        broker.bootstrap_servers,
        registry,
        names,
        partitions=1,
        count=3000,
        rng=random.Random(8),
        poison_every=61,
    )
    [tp] = sorted(bets.ledger.end_offsets())
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=bets.group,
        dlq_topic=bets.dlq,
        mappings=[bet_mapping(bets.topic)],
        max_concurrency=1,
        max_in_flight_records=1000,
        shutdown_timeout_s=60.0,
    )
    read: list[int] = []  # the group's committed position, read while the drain runs

    def committed() -> int:
        return committed_offsets(broker.bootstrap_servers, bets.group, [tp])[tp] or 0

    with in_process(settings_of(doc, tmp_path / "connector.yaml")) as runner:
        wait_until(lambda: runner.pipeline.in_flight_records >= 900, 60.0, "a full in-flight bound")
        runner.pipeline.request_stop()
        at_stop = committed()
        while runner.running:
            position = committed()
            accepted = set(accepted_ids(sandbox))
            # Commit only what is done, even mid-drain: every good record below it was accepted.
            below = [r for r in bets.ledger.good() if r.offset < position and r.event_id not in accepted]
            assert not below, f"committed {position} past records the API never accepted: {below[:3]}"
            if runner.running:
                read.append(position)
            time.sleep(0.1)
        assert runner.stop() == 0
    final = committed()
    # Without commits during the drain, every read would show the position at the stop.
    assert any(at_stop < position < final for position in read), (at_stop, sorted(set(read)), final)
