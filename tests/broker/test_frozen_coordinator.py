"""librdkafka's synchronous commit waits for the group coordinator without a timeout. While the
broker is frozen the consumer loop must not wait with it: held past max.poll.interval.ms the
member loses its partitions (the frozen-broker chaos scenario lost them this way)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from connector.errors import CommitError
from connector.kafka.consumer import KafkaConsumer
from connector.kafka.ports import TopicPartition
from tests.support.brokers import (
    RecordingListener,
    UniqueNames,
    consume_until,
    create_topics,
    make_consumer,
    produce_records,
)
from tests.support.e2e import wait_until
from tests.support.frozen_broker import freeze, own_broker, thaw

pytestmark = pytest.mark.broker

FROZEN_S = 5.0  # longer than a commit waits for its confirmation, shorter than the session timeout


def _committed_after_a_poll(consumer: KafkaConsumer, offsets: dict[TopicPartition, int]) -> bool:
    consumer.consume(100, 0.1)  # keep the membership (it may have to rejoin after the thaw)
    try:
        consumer.commit(offsets)
    except CommitError:
        return False
    return True


def test_a_commit_the_frozen_coordinator_does_not_answer_fails_instead_of_waiting_for_the_thaw(
    tmp_path: Path, names: UniqueNames
) -> None:
    with own_broker(tmp_path / "tansu.log") as broker:
        topic, group = names.topic(), names.group()
        create_topics(broker.bootstrap_servers, [topic], 1)
        produce_records(broker.bootstrap_servers, topic, 10, partition=0)
        consumer = make_consumer(broker.bootstrap_servers, group)
        try:
            consumer.subscribe([topic], RecordingListener())
            tp = consume_until([consumer], lambda records: len(records) >= 10)[0].tp
            consumer.commit({tp: 5})  # the coordinator answers
            assert consumer.committed([tp], 10.0) == {tp: 5}

            freeze(broker)
            thawing = threading.Timer(FROZEN_S, thaw, [broker])
            thawing.start()
            try:
                with pytest.raises(CommitError, match="not confirmed"):
                    consumer.commit({tp: 8})
                frozen_poll = consumer.consume(100, 0.1)  # the loop goes on while it is frozen
            finally:
                thawing.join()
            assert frozen_poll == []

            wait_until(lambda: _committed_after_a_poll(consumer, {tp: 10}), 60.0, "a commit after the thaw")
            assert consumer.committed([tp], 10.0) == {tp: 10}
        finally:
            consumer.close(5.0)
