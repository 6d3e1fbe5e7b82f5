"""The dead-letter producer writes again after an outage that timed its deliveries out.

After a timed-out delivery librdkafka bumps the idempotent producer's epoch on its own; the embedded
broker refuses the bumped epoch (PRODUCER_FENCED) on every later write, so without a new producer
the dead-letter topic stayed unwritable for good once it had been unwritable for a while."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.errors import DeliveryError
from connector.kafka.config import producer_config
from connector.kafka.producer import KafkaProducer
from tests.support.brokers import UniqueNames
from tests.support.e2e import create_topics, read_topic
from tests.support.kafka_proxy import KafkaProxy, proxied_broker

pytestmark = pytest.mark.broker

CLIENT_ID = "renewal-test"


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[KafkaProxy]:
    with proxied_broker(tmp_path / "tansu.log") as (_broker, fronted):
        yield fronted


def deliver(producer: KafkaProducer, topic: str, value: bytes) -> DeliveryError | None:
    reports: list[DeliveryError | None] = []
    producer.produce(topic, None, value, [], reports.append)
    assert producer.flush(30.0) == 0
    assert len(reports) == 1
    return reports[0]


def test_a_producer_whose_deliveries_timed_out_writes_again_once_the_broker_takes_them(
    proxy: KafkaProxy, names: UniqueNames
) -> None:
    topic = names.topic("dlq")
    create_topics(proxy.bootstrap_servers, {topic: 1})
    config = producer_config(proxy.bootstrap_servers, {"message.timeout.ms": 2000}, client_id=CLIENT_ID)
    producer = KafkaProducer(config)
    try:
        assert deliver(producer, topic, b"before") is None
        proxy.refuse_produce(CLIENT_ID)
        assert deliver(producer, topic, b"refused") is not None
        assert proxy.refused > 0
        proxy.allow_produce()
        # The first write after the outage may still fail (the broker refuses the bumped epoch),
        # as a dead-letter retry would; the one after it goes out on a new producer.
        outcomes = [deliver(producer, topic, b"after-%d" % n) for n in range(3)]
    finally:
        producer.close()
    assert outcomes[-1] is None, f"still failing after the outage: {outcomes}"
    values = [r.value for r in read_topic(proxy.bootstrap_servers, topic)]
    assert b"before" in values and b"after-2" in values
