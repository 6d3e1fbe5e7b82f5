"""What the pipeline relies on from Kafka, checked the same way on the in-memory fake and on the
confluent-kafka adapters against the embedded broker: if the fake passes where the real thing does,
the pipeline's unit tests on the fake mean something.

(The port has no seek: a member's position is set only by the committed offset, see
`test_a_new_member_resumes_after_the_committed_offset`.)
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from connector.errors import CommitError, DeliveryError
from connector.kafka.ports import Record, TopicPartition
from tests.contract.conftest import Backend
from tests.support.brokers import RecordingListener, consume_until, poll_rounds

pytestmark = pytest.mark.contract


def positions(records: Sequence[Record]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in records]


def produce(
    backend: Backend,
    topic: str,
    values: Sequence[bytes],
    *,
    partitions: int | None = None,
    keys: Sequence[bytes | None] | None = None,
    headers: Sequence[tuple[str, bytes | None]] = (),
) -> None:
    """Produce and wait for every delivery report; to partition i % `partitions` when given."""
    producer = backend.producer()
    reports: list[DeliveryError | None] = []
    for i, value in enumerate(values):
        key = keys[i] if keys is not None else None
        partition = i % partitions if partitions else None
        producer.produce(topic, key, value, headers, reports.append, partition=partition)
    assert producer.flush(30.0) == 0
    assert reports == [None] * len(values)


def test_admin_creates_topics_once_and_lists_them(backend: Backend) -> None:
    a, b = backend.names.topic("a"), backend.names.topic("b")
    backend.admin.create_topics([a, b], 3, 15.0)
    backend.admin.create_topics([a], 3, 15.0)  # an existing topic is not an error

    listed = backend.admin.list_topics(5.0)

    assert (listed[a], listed[b]) == (3, 3)


def test_records_round_trip_with_keys_and_headers(backend: Backend) -> None:
    topic = backend.names.topic()
    backend.create_topic(topic)
    headers = [("source", b"test"), ("nothing", None)]
    produce(
        backend,
        topic,
        [b"value-%d" % i for i in range(5)],
        keys=[b"key-0", b"key-1", b"key-2", b"key-3", None],
        headers=headers,
    )
    consumer = backend.consumer(backend.names.group())
    consumer.subscribe([topic], RecordingListener())

    records = consume_until([consumer], lambda got: len(got) >= 5)

    assert positions(records) == [(0, i) for i in range(5)]
    assert [r.value for r in records] == [b"value-%d" % i for i in range(5)]
    assert [r.key for r in records] == [b"key-0", b"key-1", b"key-2", b"key-3", None]
    assert all(r.headers == tuple(headers) for r in records)
    assert all(r.topic == topic and isinstance(r.timestamp_ms, int) for r in records)


def test_subscribing_calls_on_assign_once_with_every_partition(backend: Backend) -> None:
    topic = backend.names.topic()
    everything = [TopicPartition(topic, p) for p in range(3)]
    backend.create_topic(topic, 3)
    consumer = backend.consumer(backend.names.group())
    listener = RecordingListener()
    assert consumer.assignment() == set()

    consumer.subscribe([topic], listener)
    consume_until([consumer], lambda _: consumer.assignment() == set(everything))

    assert listener.events == [("assign", everything)]


def test_commit_stores_the_next_offset_to_read(backend: Backend) -> None:
    topic = backend.names.topic()
    tp = TopicPartition(topic, 0)
    backend.create_topic(topic)
    produce(backend, topic, [b"v"] * 10)
    consumer = backend.consumer(backend.names.group())
    consumer.subscribe([topic], RecordingListener())
    consume_until([consumer], lambda got: len(got) >= 10)
    assert consumer.committed([tp], 10.0) == {tp: None}

    consumer.commit({tp: 4})
    consumer.commit({})  # nothing to do

    assert consumer.committed([tp], 10.0) == {tp: 4}


def test_a_new_member_resumes_after_the_committed_offset(backend: Backend) -> None:
    topic, group = backend.names.topic(), backend.names.group()
    tp = TopicPartition(topic, 0)
    backend.create_topic(topic)
    produce(backend, topic, [b"v-%d" % i for i in range(10)])
    first = backend.consumer(group)
    first.subscribe([topic], RecordingListener())
    consume_until([first], lambda got: len(got) >= 10)
    first.commit({tp: 4})
    first.close()

    second = backend.consumer(group)
    second.subscribe([topic], RecordingListener())
    records = consume_until([second], lambda got: len(got) >= 6)

    assert positions(records) == [(0, i) for i in range(4, 10)]
    assert records[0].value == b"v-4"


def test_a_commit_for_a_partition_not_owned_is_refused_and_stores_nothing(backend: Backend) -> None:
    owned_topic, other_topic = backend.names.topic("owned"), backend.names.topic("other")
    mine, other = TopicPartition(owned_topic, 0), TopicPartition(other_topic, 0)
    backend.create_topic(owned_topic)
    backend.create_topic(other_topic)
    consumer = backend.consumer(backend.names.group())
    consumer.subscribe([owned_topic], RecordingListener())
    consume_until([consumer], lambda _: bool(consumer.assignment()))

    with pytest.raises(CommitError):
        consumer.commit({mine: 0, other: 1})

    assert consumer.committed([mine, other], 10.0) == {mine: None, other: None}  # all or nothing


def test_paused_partitions_deliver_nothing_until_resumed(backend: Backend) -> None:
    topic = backend.names.topic()
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    backend.create_topic(topic, 2)
    consumer = backend.consumer(backend.names.group())
    consumer.subscribe([topic], RecordingListener())
    consume_until([consumer], lambda _: consumer.assignment() == {p0, p1})

    consumer.pause([p0])
    produce(backend, topic, [b"v"] * 6, partitions=2)
    while_paused = consume_until([consumer], lambda got: len(got) >= 3)
    while_paused += poll_rounds([consumer], 10)

    assert positions(while_paused) == [(1, 0), (1, 1), (1, 2)]

    consumer.resume([p0])
    after_resume = consume_until([consumer], lambda got: len(got) >= 3)

    assert positions(after_resume) == [(0, 0), (0, 1), (0, 2)]


def test_a_partition_resumed_mid_stream_continues_at_the_next_record(backend: Backend) -> None:
    """The adapter's resume also seeks (to wake librdkafka's idle fetcher): to exactly the record
    after the last one handed out, so nothing is skipped or handed out twice."""
    topic = backend.names.topic()
    p0 = TopicPartition(topic, 0)
    backend.create_topic(topic, 1)
    produce(backend, topic, [b"v"] * 8)
    consumer = backend.consumer(backend.names.group())
    consumer.subscribe([topic], RecordingListener())
    first: list[Record] = []
    for _ in range(100):  # joining the group takes a few polls on a real broker
        first += consumer.consume(3 - len(first), 0.2)
        if len(first) == 3:
            break

    consumer.pause([p0])
    while_paused = poll_rounds([consumer], 5)
    consumer.resume([p0])
    rest = consume_until([consumer], lambda got: len(got) >= 5)
    rest += poll_rounds([consumer], 5)

    assert (positions(first), while_paused) == ([(0, 0), (0, 1), (0, 2)], [])
    assert positions(rest) == [(0, offset) for offset in range(3, 8)]


def test_high_watermarks_are_the_end_offsets_seen_in_fetched_data(backend: Backend) -> None:
    topic = backend.names.topic()
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    backend.create_topic(topic, 2)
    produce(backend, topic, [b"v"] * 8, partitions=2)
    produce(backend, topic, [b"more"], partitions=1)  # to partition 0
    consumer = backend.consumer(backend.names.group())
    assert consumer.high_watermarks() == {}  # nothing assigned, nothing fetched

    consumer.subscribe([topic], RecordingListener())
    consume_until([consumer], lambda got: len(got) >= 9)

    assert consumer.high_watermarks() == {p0: 5, p1: 4}


def test_end_offsets_asked_of_the_broker_keep_moving_while_a_partition_is_paused(backend: Backend) -> None:
    """What the lag metric asks for paused partitions, whose end offset in fetched data freezes.
    Records go one batch each: for a batch of several, Tansu answers the batch's first offset + 1,
    which moves and never passes the end (the lag takes the higher of it and the fetched one)."""
    topic = backend.names.topic()
    p0 = TopicPartition(topic, 0)
    backend.create_topic(topic, 1)
    for i in range(3):
        produce(backend, topic, [b"%d" % i])
    consumer = backend.consumer(backend.names.group())
    consumer.subscribe([topic], RecordingListener())
    consume_until([consumer], lambda got: len(got) >= 3)
    consumer.pause([p0])
    poll_rounds([consumer], 3)  # a fetch sent before the pause has its answer by now
    for i in range(3, 5):
        produce(backend, topic, [b"%d" % i])
    poll_rounds([consumer], 3)

    asked = backend.admin.query_end_offsets([p0], 10.0).result(timeout=30.0)

    assert consumer.high_watermarks() == {p0: 3}  # frozen at the pause
    assert asked == {p0: 5}

    produce(backend, topic, [b"batch"] * 4)  # offsets 5 to 8, in one batch
    again = backend.admin.query_end_offsets([p0], 10.0).result(timeout=30.0)[p0]
    assert 5 < again <= 9


def test_delivery_reports_arrive_through_flush_including_refused_records(backend: Backend) -> None:
    topic = backend.names.topic()
    backend.create_topic(topic)
    producer = backend.producer()
    reports: list[DeliveryError | None] = []
    bad_reports: list[DeliveryError | None] = []
    for i in range(3):
        producer.produce(topic, b"k", b"%d" % i, [("h", b"v")], reports.append)
    # Partition 7 does not exist: the record is refused; the caller still hears through the callback.
    producer.produce(topic, None, b"lost", [], bad_reports.append, partition=7)

    assert producer.flush(30.0) == 0

    assert reports == [None, None, None]
    assert len(bad_reports) == 1 and isinstance(bad_reports[0], DeliveryError)


def test_close_leaves_quietly_and_twice_is_harmless(backend: Backend) -> None:
    topic = backend.names.topic()
    backend.create_topic(topic)
    produce(backend, topic, [b"v"])
    consumer = backend.consumer(backend.names.group())
    listener = RecordingListener()
    consumer.subscribe([topic], listener)
    consume_until([consumer], lambda got: len(got) >= 1)

    consumer.close()
    consumer.close()

    assert consumer.assignment() == set()
    assert consumer.high_watermarks() == {}
    # close() leaves the group without calling the listener: the caller has committed already.
    assert listener.events == [("assign", [TopicPartition(topic, 0)])]
