"""The consumer adapter's resume wakes librdkafka's fetcher (see KafkaConsumer._wake_fetchers).

Whether the wake-up resumes at exactly the next record is checked against the embedded broker in
tests/contract (`test_a_partition_resumed_mid_stream_continues_at_the_next_record`)."""

from __future__ import annotations

from typing import Any

import confluent_kafka as ck
import pytest

from connector.kafka.consumer import KafkaConsumer
from connector.kafka.ports import TopicPartition

pytestmark = pytest.mark.unit


class FakeLibrdkafkaConsumer:
    """Stands in for `confluent_kafka.Consumer`: positions as given, calls recorded."""

    positions: dict[tuple[str, int], int] = {}
    seek_error: ck.KafkaException | None = None

    def __init__(self, _settings: dict[str, Any]) -> None:
        self.calls: list[tuple[str, list[tuple[str, int, int]]]] = []

    def resume(self, parts: list[ck.TopicPartition]) -> None:
        self.calls.append(("resume", [(tp.topic, tp.partition, tp.offset) for tp in parts]))

    def position(self, parts: list[ck.TopicPartition]) -> list[ck.TopicPartition]:
        return [
            ck.TopicPartition(tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), -1001))
            for tp in parts
        ]

    def seek(self, tp: ck.TopicPartition) -> None:
        if self.seek_error is not None:
            raise self.seek_error
        self.calls.append(("seek", [(tp.topic, tp.partition, tp.offset)]))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeLibrdkafkaConsumer]:
    monkeypatch.setattr(ck, "Consumer", FakeLibrdkafkaConsumer)
    monkeypatch.setattr(FakeLibrdkafkaConsumer, "positions", {("t", 0): 42})
    monkeypatch.setattr(FakeLibrdkafkaConsumer, "seek_error", None)
    return FakeLibrdkafkaConsumer


def test_resume_seeks_each_resumed_partition_to_where_it_resumes_anyway(
    fake: type[FakeLibrdkafkaConsumer],
) -> None:
    consumer = KafkaConsumer({"group.id": "g"})
    client: Any = consumer._consumer

    consumer.resume([TopicPartition("t", 0), TopicPartition("t", 1)])

    assert client.calls == [
        ("resume", [("t", 0, -1001), ("t", 1, -1001)]),
        # partition 1 has handed out nothing yet: no position, nothing to seek
        ("seek", [("t", 0, 42)]),
    ]


def test_a_failed_wake_up_leaves_the_plain_resume(fake: type[FakeLibrdkafkaConsumer]) -> None:
    fake.seek_error = ck.KafkaException(ck.KafkaError(ck.KafkaError._STATE))
    consumer = KafkaConsumer({"group.id": "g"})

    client: Any = consumer._consumer

    consumer.resume([TopicPartition("t", 0)])  # does not raise

    assert client.calls == [("resume", [("t", 0, -1001)])]
