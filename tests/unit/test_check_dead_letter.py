"""The dead-letter topic's durability warning (printed by `check`, logged at `run` start)."""

from __future__ import annotations

import pytest

from connector.commands.check import dead_letter_durability_warning
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
