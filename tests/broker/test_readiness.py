"""/readyz names what is wrong, on the real broker: a mapped topic that does not exist (`topic`,
ready once it is created) and an ingest API that does not answer (`api`, ready once it does)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from connector.runtime.health import Reason
from tests.support.brokers import UniqueNames
from tests.support.e2e import (
    accepted_count,
    bet_mapping,
    bet_topic_with_records,
    connector_doc,
    create_topics,
    free_port,
    in_process,
    settings_of,
    wait_until,
)

pytestmark = pytest.mark.broker

SETTLE_S = 90.0  # a safety net only


def test_a_missing_topic_is_named_until_it_is_created(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox: SandboxServer,
    names: UniqueNames,
    tmp_path: Path,
) -> None:
    present, missing, dlq = names.topic("present"), names.topic("missing"), names.topic("dlq")
    create_topics(broker.bootstrap_servers, {present: 1, dlq: 1})
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=names.group(),
        dlq_topic=dlq,
        mappings=[bet_mapping(present), bet_mapping(missing)],
    )
    with in_process(settings_of(doc, tmp_path / "connector.yaml")) as runner:
        health = runner.connector.health
        wait_until(lambda: "topic" in health.reasons(), SETTLE_S, "reason topic")
        assert missing in health.reasons()[Reason.TOPIC] and present not in health.reasons()[Reason.TOPIC]

        create_topics(broker.bootstrap_servers, {missing: 1})
        wait_until(lambda: health.ready, SETTLE_S, "readiness once the topic exists")
        assert runner.stop() == 0


def test_an_api_that_does_not_answer_is_named_until_it_answers(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there yet
    bets = bet_topic_with_records(
        broker.bootstrap_servers, registry, names, partitions=1, count=20, rng=random.Random(3)
    )
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=f"http://127.0.0.1:{port}/apigw/ingest",
        group=bets.group,
        dlq_topic=bets.dlq,
        mappings=[bet_mapping(bets.topic)],
        max_backoff_ms=500,
    )
    doc["retry"]["unready_after_s"] = 2.0
    with in_process(settings_of(doc, tmp_path / "connector.yaml")) as runner:
        health = runner.connector.health
        wait_until(lambda: "api" in health.reasons(), SETTLE_S, "reason api")
        assert f"127.0.0.1:{port}" in health.reasons()[Reason.API]
        assert runner.pipeline.stats["dead_lettered"] == 0  # it reports; the records wait

        sandbox = sandbox_factory(port=port)
        wait_until(lambda: accepted_count(sandbox) == 20, SETTLE_S, "the records to be accepted")
        wait_until(lambda: health.ready, SETTLE_S, "readiness once the API answers")
        assert runner.stop() == 0
