"""The two backends every contract test runs on: the in-memory fake (`unit`) and the confluent-kafka
adapters on the embedded broker (`broker`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from connector.kafka.memory.broker import InMemoryBroker
from connector.kafka.ports import AdminPort, ConsumerPort, ProducerPort
from tests.support.brokers import UniqueNames, create_topics, make_consumer, make_producer


@dataclass
class Backend:
    """How a contract test gets clients, whichever broker stands behind them."""

    name: str
    names: UniqueNames
    admin: AdminPort
    _consumer: Callable[[str], ConsumerPort]
    _producer: Callable[[], ProducerPort]
    _create_topics: Callable[[list[str], int], None]
    _opened: list[ConsumerPort | ProducerPort] = field(default_factory=list)

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create it and return once it is usable with all its partitions."""
        self._create_topics([name], partitions)

    def consumer(self, group: str) -> ConsumerPort:
        """A group member reading from the earliest offset when nothing is committed."""
        consumer = self._consumer(group)
        self._opened.append(consumer)
        return consumer

    def producer(self) -> ProducerPort:
        producer = self._producer()
        self._opened.append(producer)
        return producer

    def close_all(self) -> None:
        for client in reversed(self._opened):
            client.close()


def _memory_backend(names: UniqueNames) -> Backend:
    broker = InMemoryBroker()
    admin = broker.admin()
    return Backend(
        "memory",
        names,
        admin,
        lambda group: broker.consumer(group),
        broker.producer,
        lambda topics, partitions: admin.create_topics(topics, partitions, 0.0),
    )


def _kafka_backend(names: UniqueNames, bootstrap_servers: str) -> Backend:
    from connector.kafka.admin import KafkaAdmin
    from connector.kafka.config import admin_config

    return Backend(
        "kafka",
        names,
        KafkaAdmin(admin_config(bootstrap_servers, {})),
        lambda group: make_consumer(bootstrap_servers, group),
        lambda: make_producer(bootstrap_servers),
        lambda topics, partitions: create_topics(bootstrap_servers, topics, partitions),
    )


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.unit),
        pytest.param("kafka", marks=pytest.mark.broker),
    ]
)
def backend(request: pytest.FixtureRequest, names: UniqueNames) -> Iterator[Backend]:
    if request.param == "memory":
        chosen = _memory_backend(names)
    else:
        chosen = _kafka_backend(names, request.getfixturevalue("broker").bootstrap_servers)
    yield chosen
    chosen.close_all()
