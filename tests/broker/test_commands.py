"""The commands that wire the whole product together: `produce-sample` and `demo`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from connector.cli import main
from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from tests.support.brokers import RecordingListener, UniqueNames, consume_until, make_consumer

pytestmark = pytest.mark.broker


def test_produce_sample_writes_every_mapped_topic(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    names: UniqueNames,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bets, deposits = names.topic("bets"), names.topic("deposits")
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": broker.bootstrap_servers},
                "schema_registry": {"url": registry.url},
                "mappings": [
                    {"topic": bets, "endpoint": "gaming-activity", "schema": "bet.avsc"},
                    {"topic": deposits, "endpoint": "deposit", "schema": "deposit.avsc"},
                ],
            }
        )
    )
    code = main(["produce-sample", "--config", str(config), "--count", "40", "--poison-rate", "0.2"])
    out = capsys.readouterr().out
    assert code == 0, out
    counts = {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(r"^(\S+): (\d+) events \((\d+) poison\)$", out, re.M)
    }
    assert set(counts) == {bets, deposits}
    assert all(total == 40 and 0 < poison < 40 for total, poison in counts.values())

    consumer = make_consumer(broker.bootstrap_servers, names.group())
    consumer.subscribe([bets, deposits], RecordingListener())
    try:
        records = consume_until([consumer], lambda got: len(got) >= 80)
    finally:
        consumer.close()
    assert {r.topic for r in records} == {bets, deposits}
    clean = [r for r in records if not any(k == "sample.poison" for k, _ in r.headers)]
    assert len(clean) == 80 - sum(p for _, p in counts.values())
    assert all(r.value is not None and r.value[:1] == b"\x00" for r in clean)  # Confluent framing


def test_demo_runs_the_whole_pipeline_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["demo", "--count", "60", "--poison-rate", "0.05", "--timeout", "120", "--workdir", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "accepted by the ingest API (sandbox)" in out and "dead-lettered, by stage" in out
    summary = re.search(r"^(\d+) events produced, (\d+) accepted, (\d+) dead-lettered", out, re.M)
    assert summary is not None, out
    produced, accepted, dead = map(int, summary.groups())
    assert produced == 360 and accepted + dead == produced and accepted > 0
    assert (tmp_path / "demo-config.yaml").is_file()
