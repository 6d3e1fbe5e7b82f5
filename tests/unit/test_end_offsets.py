"""PausedEndOffsets (the end offsets of paused partitions, asked of the broker) and how ConsumerLag
uses them, on the in-memory broker: which partitions are asked for, how often, and what a slow,
failing or too-low answer does."""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import Future

import pytest

from connector.kafka.memory.broker import InMemoryBroker
from connector.kafka.ports import TopicPartition
from connector.pipeline.end_offsets import PausedEndOffsets
from connector.pipeline.lag import ConsumerLag
from connector.pipeline.offsets import OffsetTracker
from connector.runtime.metrics import Metrics
from tests.support.brokers import RecordingListener

pytestmark = pytest.mark.unit

TP0 = TopicPartition("bets", 0)
TP1 = TopicPartition("bets", 1)


def produce(broker: InMemoryBroker, count: int, partition: int = 0) -> None:
    for _ in range(count):
        broker.produce("bets", b"v", partition=partition)


def two_partitions() -> InMemoryBroker:
    broker = InMemoryBroker()
    broker.create_topic("bets", 2)
    produce(broker, 4, partition=0)
    produce(broker, 2, partition=1)
    return broker


def test_only_paused_partitions_are_asked_for_and_at_most_once_per_interval() -> None:
    broker = two_partitions()
    ends = PausedEndOffsets(broker.admin(), lambda: {TP0}, interval_s=5.0)

    assert ends.ends(0.0) == {TP0: 4}
    produce(broker, 3)
    assert [ends.ends(now) for now in (1.0, 2.5, 4.9)] == [{TP0: 4}] * 3  # the last answer stands
    assert ends.ends(5.0) == {TP0: 7}
    assert broker.end_offset_queries == [[TP0], [TP0]]


def test_nothing_is_asked_while_nothing_is_paused() -> None:
    broker = two_partitions()
    ends = PausedEndOffsets(broker.admin(), set, interval_s=5.0)

    assert [ends.ends(float(now)) for now in range(0, 30, 5)] == [{}] * 6
    assert broker.end_offset_queries == []


def test_an_unanswered_question_is_never_followed_by_another() -> None:
    """A frozen broker: questions must not pile up behind the one still out."""
    broker = two_partitions()
    broker.hold_end_offsets()
    ends = PausedEndOffsets(broker.admin(), lambda: {TP0}, interval_s=5.0)

    assert all(ends.ends(float(now)) == {} for now in range(60))
    assert len(broker.end_offset_queries) == 1

    produce(broker, 2)
    broker.hold_end_offsets(False)  # answered at last, with the end offsets of that moment
    assert ends.ends(60.0) == {TP0: 6}


def test_a_failed_question_keeps_the_last_answer_until_the_next_one() -> None:
    broker = two_partitions()
    ends = PausedEndOffsets(broker.admin(), lambda: {TP0}, interval_s=5.0)
    assert ends.ends(0.0) == {TP0: 4}

    broker.fail_end_offsets(1)
    produce(broker, 2)
    assert ends.ends(5.0) == {TP0: 4}
    assert ends.ends(9.0) == {TP0: 4}  # a failure is not asked again before the interval is up
    assert ends.ends(10.0) == {TP0: 6}
    assert len(broker.end_offset_queries) == 3


def test_a_resumed_partition_drops_its_answer() -> None:
    broker = two_partitions()
    paused = {TP0, TP1}
    ends = PausedEndOffsets(broker.admin(), lambda: paused, interval_s=5.0)
    assert ends.ends(0.0) == {TP0: 4, TP1: 2}

    paused.discard(TP1)

    assert ends.ends(1.0) == {TP0: 4}


class TooLowAdmin:
    """Answers ListOffsets two below the real end, as Tansu can for a batch of several records."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker

    def create_topics(self, names: object, partitions: int, timeout_s: float) -> None:
        raise AssertionError("not used")

    def list_topics(self, timeout_s: float) -> dict[str, int]:
        raise AssertionError("not used")

    def query_end_offsets(
        self, partitions: Collection[TopicPartition], timeout_s: float
    ) -> Future[dict[TopicPartition, int]]:
        answer: Future[dict[TopicPartition, int]] = Future()
        answer.set_result({tp: self._broker.end_offset(tp) - 2 for tp in partitions})
        return answer


def test_an_answer_below_the_fetched_end_offset_never_lowers_the_lag() -> None:
    broker = InMemoryBroker()
    broker.create_topic("bets", 1)
    produce(broker, 5)
    consumer = broker.consumer("g")
    consumer.subscribe(["bets"], RecordingListener())
    assert len(consumer.consume(10, 0.0)) == 5  # fetched: the cached end offset is 5
    consumer.pause([TP0])
    tracker, metrics = OffsetTracker(), Metrics()
    tracker.assign(TP0)
    tracker.add(TP0, 1, 10)  # the first record not done yet: offset 1
    paused_ends = PausedEndOffsets(TooLowAdmin(broker), lambda: {TP0})
    lag = ConsumerLag(consumer, tracker, metrics, paused_ends=paused_ends)

    lag.update(0.0)

    assert metrics.registry.get_sample_value("optikpi_consumer_lag", {"topic": "bets", "partition": "0"}) == 4
