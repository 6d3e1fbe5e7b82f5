"""`AdminPort` on confluent-kafka's `AdminClient` (topics, groups and end offsets), what a topic
looks like to a producer (`describe_topic`), and the client library versions."""

from __future__ import annotations

import functools
import threading
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource  # not re-exported for type checkers
from confluent_kafka.admin._listoffsets import OffsetSpec  # likewise
from confluent_kafka.cimpl import NewTopic

from connector.errors import KafkaPortError
from connector.kafka._errors import describe, kafka_error_of, port_error, unreachable
from connector.kafka.ports import AdminPort, TopicPartition


def kafka_version() -> str:
    # The package's version() returns a plain string in recent releases, a (str, int) tuple in older ones.
    client: object = ck.version()
    client_version = client[0] if isinstance(client, tuple) else client
    return f"confluent-kafka {client_version}, librdkafka {ck.libversion()[0]}"


# What librdkafka says when no broker answered a request.
_NO_ANSWER = frozenset({ck.KafkaError._TRANSPORT, ck.KafkaError._TIMED_OUT, ck.KafkaError._ALL_BROKERS_DOWN})


@dataclass(frozen=True)
class TopicDescription:
    """A topic as the metadata and, where the broker gives them, its configs describe it."""

    name: str
    partitions: int
    replication_factor: int  # the fewest replicas of any partition
    leaderless: tuple[int, ...]  # partitions without a leader: nothing can be written to them
    fewest_in_sync: int  # the smallest in-sync replica set of any partition
    configs: Mapping[str, str]  # empty when the broker does not describe them

    def config_int(self, key: str) -> int | None:
        try:
            return int(self.configs[key])
        except (KeyError, ValueError):
            return None


class KafkaAdmin:
    """`AdminPort` on confluent-kafka's `AdminClient`."""

    def __init__(self, config: Mapping[str, object], replication_factor: int = -1) -> None:
        # -1 lets the broker apply its default replication factor (KIP-464).
        self._replication_factor = replication_factor
        self._bootstrap = str(config.get("bootstrap.servers", ""))
        self.last_error: str | None = None
        settings = {"error_cb": self._on_error, **config}
        try:
            self._admin = AdminClient(settings)  # type: ignore[arg-type]  # values checked by librdkafka
        except ck.KafkaException as exc:
            raise port_error(exc, "cannot create the kafka admin client") from exc

    def _on_error(self, error: ck.KafkaError) -> None:
        # Kept for the one-line message: "connection refused" says more than "transport failure".
        self.last_error = describe(error)

    def _unreachable(self, timeout_s: float, error: object) -> KafkaPortError:
        self._admin.poll(0)  # serves error_cb (and the log lines) queued meanwhile
        return unreachable(self._bootstrap, timeout_s, self.last_error or str(error))

    def create_topics(self, names: Sequence[str], partitions: int, timeout_s: float) -> None:
        if not names:
            return
        new_topics = [
            NewTopic(name, num_partitions=partitions, replication_factor=self._replication_factor)
            for name in names
        ]
        futures = self._admin.create_topics(
            new_topics, operation_timeout=timeout_s, request_timeout=timeout_s
        )
        failures: list[str] = []
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
            except ck.KafkaException as exc:
                error = kafka_error_of(exc)
                if error is not None and error.code() == ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                failures.append(f"{name}: {describe(error) if error is not None else exc}")
            except FutureTimeoutError:
                failures.append(f"{name}: no answer within {timeout_s} s")
        if failures:
            raise KafkaPortError("cannot create topics: " + "; ".join(failures))

    def list_topics(self, timeout_s: float) -> dict[str, int]:
        try:
            metadata = self._admin.list_topics(timeout=timeout_s)
        except ck.KafkaException as exc:
            error = kafka_error_of(exc)
            if error is not None and error.code() in _NO_ANSWER:
                raise self._unreachable(timeout_s, describe(error)) from exc
            raise port_error(exc, "cannot list topics") from exc
        return {name: len(topic.partitions) for name, topic in metadata.topics.items() if topic.error is None}

    def describe_topic(self, name: str, timeout_s: float) -> TopicDescription | None:
        """None when the topic does not exist. Reads metadata and configs only: writes nothing."""
        try:
            # All topics: a metadata request naming one may create it (auto.create.topics.enable).
            metadata = self._admin.list_topics(timeout=timeout_s)
        except ck.KafkaException as exc:
            raise port_error(exc, f"cannot read the metadata of {name}") from exc
        topic = metadata.topics.get(name)
        if topic is None or not topic.partitions:
            return None
        if topic.error is not None:
            raise KafkaPortError(f"cannot describe {name}: {describe(topic.error)}")
        partitions = list(topic.partitions.values())
        return TopicDescription(
            name=name,
            partitions=len(partitions),
            replication_factor=min(len(p.replicas) for p in partitions),
            leaderless=tuple(sorted(p.id for p in partitions if p.leader < 0)),
            fewest_in_sync=min(len(p.isrs) for p in partitions),
            configs=self._topic_configs(name, timeout_s),
        )

    def _topic_configs(self, name: str, timeout_s: float) -> dict[str, str]:
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        try:
            future = self._admin.describe_configs([resource], request_timeout=timeout_s)[resource]
            entries = future.result(timeout=timeout_s)
        except (ck.KafkaException, FutureTimeoutError, ValueError, TypeError):
            return {}  # not every broker (or ACL) allows it: the metadata still answers
        return {key: entry.value for key, entry in entries.items() if entry.value is not None}

    def topic_max_message_bytes(self, topic: str, timeout_s: float) -> int | None:
        """The topic's `max.message.bytes`; None when the broker does not say (no DescribeConfigs,
        no permission, no answer in time): callers then go by the producer's own limit."""
        try:
            value = self._topic_configs(topic, timeout_s).get("max.message.bytes")
            return int(value) if value is not None else None
        except ValueError:
            return None

    def query_end_offsets(
        self, partitions: Collection[TopicPartition], timeout_s: float
    ) -> Future[dict[TopicPartition, int]]:
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # untyped in confluent-kafka
        request = {ck.TopicPartition(tp.topic, tp.partition): latest for tp in partitions}
        if not request:
            answer: Future[dict[TopicPartition, int]] = Future()
            answer.set_result({})
            return answer
        try:
            # The high watermark, as the consumer's cached one is whatever its isolation.level:
            # librdkafka caches the fetch response's HighwaterMarkOffset, not its LastStableOffset.
            futures = self._admin.list_offsets(
                request, isolation_level=ck.IsolationLevel.READ_UNCOMMITTED, request_timeout=timeout_s
            )
        except (ck.KafkaException, ValueError, TypeError) as exc:
            failed: Future[dict[TopicPartition, int]] = Future()
            failed.set_exception(KafkaPortError(f"cannot ask for end offsets: {exc}"))
            return failed
        return _gathered_offsets(futures)

    def list_groups(self, timeout_s: float) -> set[str]:
        """Names of the consumer groups the cluster knows (any group that joined or committed)."""
        try:
            result = self._admin.list_consumer_groups(request_timeout=timeout_s).result(timeout=timeout_s)
        except ck.KafkaException as exc:
            raise port_error(exc, "cannot list consumer groups") from exc
        except FutureTimeoutError:
            raise KafkaPortError(f"cannot list consumer groups: no answer within {timeout_s} s") from None
        return {group.group_id for group in result.valid}


def _gathered_offsets(futures: Mapping[ck.TopicPartition, Future[Any]]) -> Future[dict[TopicPartition, int]]:
    """One future for librdkafka's one-per-partition futures, done when the last of them is (their
    callbacks run on librdkafka's background thread): nobody has to wait on any of them."""
    gathered: Future[dict[TopicPartition, int]] = Future()
    offsets: dict[TopicPartition, int] = {}
    errors: list[str] = []
    left = len(futures)
    lock = threading.Lock()
    if not left:
        gathered.set_result(offsets)

    def settle(ck_tp: ck.TopicPartition, future: Future[Any]) -> None:
        nonlocal left
        tp = TopicPartition(ck_tp.topic, ck_tp.partition)
        with lock:
            try:
                offset = future.result().offset
                if offset >= 0:
                    offsets[tp] = offset
                else:  # how a request that timed out comes back
                    errors.append(f"{tp}: no offset ({offset})")
            except Exception as exc:  # one partition's answer, whatever went wrong: the rest still count
                error = kafka_error_of(exc) if isinstance(exc, ck.KafkaException) else None
                errors.append(f"{tp}: {describe(error) if error is not None else exc}")
            left -= 1
            if left:
                return
        if offsets or not errors:
            gathered.set_result(offsets)
        else:
            gathered.set_exception(KafkaPortError("no end offsets: " + "; ".join(errors)))

    for ck_tp, future in futures.items():
        future.add_done_callback(functools.partial(settle, ck_tp))
    return gathered


if TYPE_CHECKING:  # mypy proves the adapter implements the port

    def _implements_port(admin: KafkaAdmin) -> AdminPort:
        return admin
