"""The dead-letter topic's durability warning (printed by `check`, logged at `run` start)."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from connector.commands.check import dead_letter_durability_warning
from connector.errors import KafkaPortError
from connector.kafka.admin import TopicDescription

pytestmark = pytest.mark.unit


def topic(replicas: int, configs: dict[str, str]) -> TopicDescription:
    return TopicDescription("dlq", 3, replicas, (), replicas, configs)


def test_three_replicas_and_two_in_sync_are_durable() -> None:
    assert dead_letter_durability_warning(topic(3, {"min.insync.replicas": "2"})) is None


@pytest.mark.parametrize(
    ("replicas", "configs", "says"),
    [
        (1, {}, "replication factor 1 (below 3)"),
        (3, {"min.insync.replicas": "1"}, "min.insync.replicas 1 (below 2)"),
    ],
)
def test_fewer_replicas_or_in_sync_replicas_warn(replicas: int, configs: dict[str, str], says: str) -> None:
    warning = dead_letter_durability_warning(topic(replicas, configs))
    assert warning is not None and says in warning and "only copy" in warning


# --- at `run` start: asked through the admin client the wiring built, never a second one ----------


class DescribingAdmin:
    """Stands in for the wiring's KafkaAdmin: describes one topic, or fails to."""

    def __init__(self, found: TopicDescription | None = None, error: str | None = None) -> None:
        self.found, self.error = found, error
        self.asked: list[str] = []

    def describe_topic(self, name: str, timeout_s: float) -> TopicDescription | None:
        self.asked.append(name)
        if self.error is not None:
            raise KafkaPortError(self.error)
        return self.found


def run_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, admin: DescribingAdmin | None
) -> list[MutableMapping[str, Any]]:
    """`run_connector`'s log lines, with a wired connector whose pipeline ends at once."""
    from structlog.testing import capture_logs

    import connector.commands.run as run_module
    from tests.support.e2e import offline_settings

    def no_second_admin(_config: Any) -> Any:
        raise AssertionError("run created a Kafka admin client of its own")

    wired: Any = SimpleNamespace(
        pipeline=SimpleNamespace(run=lambda: 0, request_stop=lambda: None),
        health=None,
        metrics=None,
        close=lambda: None,
        kafka_admin=admin,
    )
    monkeypatch.setattr(run_module, "build_connector", lambda _settings: wired)
    monkeypatch.setattr(run_module, "install_signal_handlers", lambda _stop: None)
    monkeypatch.setattr(run_module, "keep_heap_for_batches", lambda: False)
    monkeypatch.setattr("connector.kafka.admin.KafkaAdmin", no_second_admin)
    with capture_logs() as logs:
        assert run_module.run_connector(offline_settings(tmp_path / "connector.yaml")) == 0
    return [e for e in logs if e["log_level"] == "warning"]


def test_run_warns_once_about_a_one_replica_dead_letter_topic_through_the_wired_admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = DescribingAdmin(topic(1, {}))

    warnings = run_logs(tmp_path, monkeypatch, admin)

    assert admin.asked == ["dlq"]
    assert [(e["event"], e["topic"]) for e in warnings] == [
        ("dead-letter topic is not durable enough", "dlq")
    ]
    assert warnings[0]["problem"] == dead_letter_durability_warning(topic(1, {}))


def test_run_says_nothing_about_a_durable_or_missing_dead_letter_topic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_logs(tmp_path, monkeypatch, DescribingAdmin(topic(3, {"min.insync.replicas": "2"}))) == []
    assert run_logs(tmp_path, monkeypatch, DescribingAdmin(None)) == []


def test_run_logs_a_topic_it_cannot_describe_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings = run_logs(tmp_path, monkeypatch, DescribingAdmin(error="no answer"))

    assert [(e["event"], e["error"]) for e in warnings] == [
        ("cannot describe the dead-letter topic", "no answer")
    ]


def test_run_skips_the_check_when_the_wiring_built_no_admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_logs(tmp_path, monkeypatch, None) == []
