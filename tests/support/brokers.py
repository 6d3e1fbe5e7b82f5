"""Helpers for tests against a real Kafka-protocol broker (the embedded Tansu, or any bootstrap)."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from connector.errors import DeliveryError
from connector.kafka.admin import KafkaAdmin
from connector.kafka.config import admin_config, consumer_config, producer_config
from connector.kafka.consumer import KafkaConsumer
from connector.kafka.ports import ConsumerPort, Header, Record, TopicPartition
from connector.kafka.producer import KafkaProducer

# Tansu's group coordinator is slow to notice a vanished member; these keep tests short
# (and librdkafka accepts them: heartbeat < session timeout, session < poll interval).
TEST_CONSUMER_PROPERTIES: Mapping[str, object] = {
    "session.timeout.ms": 6000,
    "max.poll.interval.ms": 10000,
    "heartbeat.interval.ms": 1000,
}

# How long a helper may wait for the broker before the test fails (a safety net, not an assertion
# on speed: a join takes about 3 s on Tansu, a rebalance between two members about 10 s).
DEFAULT_WAIT_S = 45.0

_counter = itertools.count(1)


@dataclass(frozen=True)
class UniqueNames:
    """Topic and group names no other test uses (the broker lives for the whole session)."""

    prefix: str

    @classmethod
    def for_test(cls, test_name: str) -> UniqueNames:
        slug = re.sub(r"[^a-zA-Z0-9]+", "-", test_name).strip("-").lower()[:40]
        return cls(f"{slug}-{next(_counter)}")

    def topic(self, suffix: str = "") -> str:
        return f"t-{self.prefix}{'-' + suffix if suffix else ''}"

    def group(self, suffix: str = "") -> str:
        return f"g-{self.prefix}{'-' + suffix if suffix else ''}"


@dataclass
class RecordingListener:
    """A RebalanceListener that remembers every callback, and can run a hook during on_revoke."""

    events: list[tuple[str, list[TopicPartition]]] = field(default_factory=list)
    on_revoke_hook: Callable[[Sequence[TopicPartition]], None] | None = None
    hook_errors: list[BaseException] = field(default_factory=list)

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        self.events.append(("assign", sorted(partitions)))

    def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        self.events.append(("revoke", sorted(partitions)))
        if self.on_revoke_hook is not None:
            try:
                self.on_revoke_hook(partitions)
            except Exception as exc:  # kept for the test to assert on, outside librdkafka's callback
                self.hook_errors.append(exc)

    def on_lost(self, partitions: Sequence[TopicPartition]) -> None:
        self.events.append(("lost", sorted(partitions)))

    def partitions(self, kind: str) -> set[TopicPartition]:
        return {tp for what, parts in self.events if what == kind for tp in parts}


def create_topics(
    bootstrap_servers: str, names: Sequence[str], partitions: int, timeout_s: float = DEFAULT_WAIT_S
) -> None:
    """Create the topics and wait until the metadata shows them with all their partitions."""
    admin = KafkaAdmin(admin_config(bootstrap_servers, {}))
    admin.create_topics(names, partitions, timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        listed = admin.list_topics(5.0)
        if all(listed.get(name) == partitions for name in names):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"topics {list(names)} not visible with {partitions} partitions: {listed}")
        time.sleep(0.1)


def make_producer(bootstrap_servers: str, **properties: object) -> KafkaProducer:
    return KafkaProducer(producer_config(bootstrap_servers, properties))


def produce_records(
    bootstrap_servers: str,
    topic: str,
    count: int,
    *,
    partitions: int | None = None,
    partition: int | None = None,
    key: Callable[[int], bytes | None] = lambda i: b"key-%d" % i,
    value: Callable[[int], bytes | None] = lambda i: b"value-%d" % i,
    headers: Callable[[int], Sequence[Header]] = lambda i: (),
    timeout_s: float = DEFAULT_WAIT_S,
) -> None:
    """Produce `count` records (to `partition`, or round robin over `partitions`, or wherever the
    partitioner puts them) and wait for every delivery report; any delivery error fails the test."""
    producer = make_producer(bootstrap_servers)
    reports: list[DeliveryError | None] = []
    try:
        for i in range(count):
            target = partition if partition is not None else (i % partitions if partitions else None)
            producer.produce(topic, key(i), value(i), headers(i), reports.append, partition=target)
        outstanding = producer.flush(timeout_s)
    finally:
        producer.close()
    assert outstanding == 0, f"{outstanding} records still waiting for a delivery report"
    errors = [report for report in reports if report is not None]
    assert len(reports) == count and not errors, f"delivery failed: {errors[:3]}"


def make_consumer(
    bootstrap_servers: str, group_id: str, auto_offset_reset: str = "earliest", **properties: object
) -> KafkaConsumer:
    """A consumer with the short group timeouts above; `properties` override them."""
    settings = {**TEST_CONSUMER_PROPERTIES, **properties}
    return KafkaConsumer(consumer_config(bootstrap_servers, group_id, auto_offset_reset, settings))


def consume_until(
    consumers: Iterable[ConsumerPort],
    done: Callable[[list[Record]], bool],
    timeout_s: float = DEFAULT_WAIT_S,
    max_records: int = 500,
) -> list[Record]:
    """Keep every consumer polling (group membership and rebalances need it) until `done(records)`."""
    members = list(consumers)
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while not done(records):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:.0f} s with {len(records)} records")
        for consumer in members:
            records.extend(consumer.consume(max_records, 0.1))
    return records


def poll_rounds(consumers: Iterable[ConsumerPort], rounds: int, max_records: int = 500) -> list[Record]:
    """A fixed number of short polls on every consumer (to observe that nothing more arrives)."""
    members = list(consumers)
    records: list[Record] = []
    for _ in range(rounds):
        for consumer in members:
            records.extend(consumer.consume(max_records, 0.1))
    return records
