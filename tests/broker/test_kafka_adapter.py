"""The confluent-kafka adapters (`connector.kafka.consumer`, `.producer`, `.admin`) against a real
Kafka-protocol broker (the embedded Tansu).

What only the real adapters show: cooperative rebalancing between two members, why the ownership
guard on commit lives in the adapter, and the producer's close. What the fake and the adapters share
(round trip, commits, pause/resume, end offsets, delivery reports, close) is in tests/contract.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.errors import CommitError, DeliveryError
from connector.kafka.config import producer_config
from connector.kafka.consumer import KafkaConsumer
from connector.kafka.ports import Record, TopicPartition
from connector.kafka.producer import KafkaProducer
from tests.support.brokers import (
    RecordingListener,
    UniqueNames,
    consume_until,
    create_topics,
    make_consumer,
    poll_rounds,
    produce_records,
)

pytestmark = pytest.mark.broker

LONG_WAIT_S = 30.0


@pytest.fixture
def consumers() -> Iterator[list[KafkaConsumer]]:
    """Consumers created by a test; closed afterwards so they leave their groups."""
    created: list[KafkaConsumer] = []
    yield created
    for consumer in created:
        consumer.close()


def joined(
    broker: EmbeddedBroker,
    consumers: list[KafkaConsumer],
    group: str,
    topics: Sequence[str],
    listener: RecordingListener | None = None,
) -> tuple[KafkaConsumer, RecordingListener]:
    consumer = make_consumer(broker.bootstrap_servers, group)
    consumers.append(consumer)
    listener = listener if listener is not None else RecordingListener()
    consumer.subscribe(topics, listener)
    return consumer, listener


def test_two_consumers_split_the_partitions_cooperatively_and_one_takes_all_when_the_other_leaves(
    broker: EmbeddedBroker, names: UniqueNames, consumers: list[KafkaConsumer]
) -> None:
    topic, group = names.topic(), names.group()
    everything = {TopicPartition(topic, p) for p in range(4)}
    create_topics(broker.bootstrap_servers, [topic], 4)
    produce_records(broker.bootstrap_servers, topic, 8, partitions=4)
    first, first_listener = joined(broker, consumers, group, [topic])
    consume_until([first], lambda got: len(got) >= 8)
    assert first.assignment() == everything

    # What the pipeline does on revoke: commit what is done, while the partitions are still owned.
    def commit_done(partitions: Sequence[TopicPartition]) -> None:
        first.commit({tp: 2 for tp in partitions})

    first_listener.on_revoke_hook = commit_done
    second, second_listener = joined(broker, consumers, group, [topic])
    from_either = consume_until(
        [first, second],
        lambda _: bool(second.assignment()) and first.assignment() | second.assignment() == everything,
    )
    from_either += poll_rounds([first, second], 5)

    moved = second.assignment()
    assert not first.assignment() & moved
    assert first_listener.hook_errors == []
    assert first_listener.partitions("revoke") == moved  # only what moved was revoked: cooperative
    assert first.assignment() == everything - moved
    assert second_listener.partitions("assign") == moved
    # The new owner starts where the old one committed during its revoke: nothing is read twice.
    assert second.committed(sorted(moved), 10.0) == dict.fromkeys(moved, 2)
    assert from_either == []

    # Committing for a partition the other member owns is refused before anything is sent.
    # (Tansu itself would store it: see the test below.)
    theirs = min(moved)
    with pytest.raises(CommitError):
        first.commit({theirs: 0})
    assert second.committed([theirs], 10.0) == {theirs: 2}

    second.close()
    consume_until([first], lambda _: first.assignment() == everything)

    assert second_listener.partitions("revoke") == set()  # close() does not call the listener
    assert first_listener.partitions("assign") == everything


def test_commit_for_a_partition_not_owned_raises_commit_error_though_tansu_would_store_it(
    broker: EmbeddedBroker, names: UniqueNames, consumers: list[KafkaConsumer]
) -> None:
    owned_topic, other_topic = names.topic("owned"), names.topic("other")
    mine, other = TopicPartition(owned_topic, 0), TopicPartition(other_topic, 0)
    create_topics(broker.bootstrap_servers, [owned_topic, other_topic], 1)
    consumer, _ = joined(broker, consumers, names.group(), [owned_topic])
    consume_until([consumer], lambda _: bool(consumer.assignment()))

    with pytest.raises(CommitError):
        consumer.commit({mine: 0, other: 1})

    assert consumer.committed([mine, other], 10.0) == {mine: None, other: None}  # all or nothing

    # Why the adapter guards commits itself: the broker does not. Tansu (like the classic Kafka
    # group protocol) stores an OffsetCommit from any current member for any partition (even one
    # that does not exist). Pinned down here by going around the adapter on purpose.
    raw = consumer._consumer
    ck_topic_partition = type(raw.assignment()[0])  # only connector.kafka imports confluent_kafka
    result = raw.commit(offsets=[ck_topic_partition(other_topic, 0, 7)], asynchronous=False)

    assert [tp.error for tp in result] == [None]
    assert consumer.committed([other], 10.0) == {other: 7}


def test_a_wait_in_consume_ends_when_its_wake_is_set_and_still_returns_records(
    broker: EmbeddedBroker, names: UniqueNames, consumers: list[KafkaConsumer]
) -> None:
    # librdkafka cannot be woken from another thread: the adapter waits in slices and looks at the
    # flag between them. The pipeline sets it when an upload or a transform finishes.
    topic = names.topic()
    create_topics(broker.bootstrap_servers, [topic], 1)
    consumer, _ = joined(broker, consumers, names.group(), [topic])
    consume_until([consumer], lambda _: bool(consumer.assignment()))
    wake = threading.Event()
    timer = threading.Timer(0.2, wake.set)
    timer.start()
    started = time.monotonic()
    try:
        got = consumer.consume(10, LONG_WAIT_S, wake)
    finally:
        timer.cancel()

    assert got == []
    assert time.monotonic() - started < LONG_WAIT_S / 2  # woken, not timed out

    # Records still end a wait at once, flag or none.
    produce_records(broker.bootstrap_servers, topic, 3)
    assert len(consume_until([consumer], lambda got: len(got) >= 3)) == 3
    wake.clear()
    produce_records(broker.bootstrap_servers, topic, 2)
    late: list[Record] = []
    deadline = time.monotonic() + LONG_WAIT_S
    while len(late) < 2 and time.monotonic() < deadline:
        late += consumer.consume(10, 1.0, wake)
    assert len(late) == 2


# --- no broker needed: the producer's close ----------------------------------------------------


def test_closing_the_producer_reports_what_was_never_delivered() -> None:
    # Nothing listens on port 1: the record can only stay queued until close() abandons it.
    producer = KafkaProducer(producer_config("127.0.0.1:1", {}))
    reports: list[DeliveryError | None] = []
    producer.produce("anything", None, b"v", [], reports.append)

    producer.close()

    assert len(reports) == 1
    assert isinstance(reports[0], DeliveryError)
