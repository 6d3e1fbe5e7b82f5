"""Online `check` tells the truth: a signed request proves the credentials (401 and 404 fail), the
registry answers for every confluent-avro mapping (a local `schema:` included), the dead-letter
topic exists and takes writes (from metadata: no probe record), the mapped topics exist. One line
per check; exit 2 on any failure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connector.cli import main
from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from tests.support.brokers import UniqueNames, make_producer
from tests.support.e2e import (
    bet_mapping,
    connector_doc,
    create_topics,
    read_topic,
    register_bet_schema,
    write_config,
)

pytestmark = pytest.mark.broker


def _check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: dict[str, Any]
) -> tuple[int, dict[str, str]]:
    code = main(["check", "--config", str(write_config(tmp_path, doc))])
    lines: dict[str, str] = {}
    for line in capsys.readouterr().out.splitlines():
        target, sep, rest = line.partition(": ")
        if sep and rest.startswith(("ok", "FAILED")):
            lines[target] = rest
    return code, lines


@pytest.fixture
def setup(
    broker: EmbeddedBroker, registry: RegistryStub, sandbox: SandboxServer, names: UniqueNames
) -> Callable[..., dict[str, Any]]:
    topic, local, dlq = names.topic("bets"), names.topic("local"), names.topic("dlq")
    create_topics(broker.bootstrap_servers, {topic: 2, local: 1, dlq: 1})
    register_bet_schema(registry, topic)
    register_bet_schema(registry, local)

    def doc(**changes: Any) -> dict[str, Any]:
        with_schema = bet_mapping(local)
        with_schema["schema"] = "bet.avsc"  # a local reader schema: the registry is still asked
        d = connector_doc(
            bootstrap=broker.bootstrap_servers,
            registry_url=registry.url,
            api_url=sandbox.base_url,
            group=names.group(),
            dlq_topic=dlq,
            mappings=[bet_mapping(topic), with_schema],
        )
        for path, value in changes.items():
            section, key = path.split("__")
            d[section][key] = value
        return d

    return doc


def test_all_ok_prints_one_ok_line_per_check_and_writes_nothing(
    setup: Callable[..., dict[str, Any]],
    broker: EmbeddedBroker,
    sandbox: SandboxServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = setup()
    code, lines = _check(tmp_path, capsys, doc)
    dlq = doc["dead_letter"]["topic"]
    topics = [m["topic"] for m in doc["mappings"]]
    assert code == 0, lines
    assert lines["api optikpi"].startswith("ok") and "credentials accepted" in lines["api optikpi"]
    for topic in topics:
        assert lines[f"topic {topic}"].startswith("ok")
        assert lines[f"registry {topic}-value"].startswith("ok")
    # Tansu keeps one replica: ok, with the durability warning.
    assert lines[f"dead-letter topic {dlq}"].startswith("ok")
    assert "replication factor 1 (below 3)" in lines[f"dead-letter topic {dlq}"]
    marker = make_producer(broker.bootstrap_servers)  # an empty topic has no end to read to
    marker.produce(dlq, b"marker", b"marker", (), lambda _err: None)
    marker.flush(10.0)
    assert [r.value for r in read_topic(broker.bootstrap_servers, dlq)] == [b"marker"]  # no probe record
    assert sandbox.records() == []


@pytest.mark.parametrize(
    ("change", "target", "says"),
    [
        ({"optikpi__auth_token": "not-the-token"}, "api optikpi", "credentials refused (HTTP 401)"),
        (
            {"optikpi__base_url": "BASE/wrong-path"},
            "api optikpi",
            "no ingest API at this base_url (HTTP 404)",
        ),
        (
            {"dead_letter__topic": "no-such-dead-letter-topic"},
            "dead-letter topic no-such-dead-letter-topic",
            "does not exist",
        ),
        ({"schema_registry__url": "http://127.0.0.1:9"}, "registry LOCAL-value", "unreachable"),
    ],
)
def test_each_failure_is_named_on_its_line_and_exits_2(
    setup: Callable[..., dict[str, Any]],
    sandbox: SandboxServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    target: str,
    says: str,
) -> None:
    base = setup()
    local = base["mappings"][1]["topic"]
    change = {k: v.replace("BASE", sandbox.base_url) for k, v in change.items()}
    code, lines = _check(tmp_path, capsys, setup(**change))
    target = target.replace("LOCAL", local)
    assert code == 2
    assert lines[target].startswith("FAILED") and says in lines[target], lines


def test_run_warns_at_start_when_the_dead_letter_topic_has_one_replica(
    setup: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    from structlog.testing import capture_logs

    from connector.commands.run import warn_about_dead_letter_durability
    from connector.pipeline.wiring import build_connector
    from tests.support.e2e import settings_of

    doc = setup()
    settings = settings_of(doc, tmp_path / "connector.yaml")
    connector = build_connector(settings)  # as `run` does: the check asks through its admin client
    try:
        assert connector.kafka_admin is not None
        with capture_logs() as logs:
            warn_about_dead_letter_durability(connector.kafka_admin, settings)
    finally:
        connector.close()
    warnings = [e for e in logs if e["event"] == "dead-letter topic is not durable enough"]
    assert len(warnings) == 1, logs  # the embedded broker keeps one replica of every topic
    assert warnings[0]["topic"] == doc["dead_letter"]["topic"]
    assert "replication factor 1 (below 3)" in warnings[0]["problem"]
