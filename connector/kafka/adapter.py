"""The ports of `connector.kafka.ports` on confluent-kafka (librdkafka); the only module importing it.

Choices that matter for correctness:
- offsets are never committed or stored automatically; the pipeline commits explicit offsets,
  synchronously, and only for partitions this member currently owns (brokers do not check
  ownership: Tansu and the classic Kafka group protocol accept a commit for any partition from any
  member of the current generation, so the guard lives here);
- cooperative-sticky assignment: a rebalance revokes only the partitions that move. The listener
  is called from inside `consume()`; confluent-kafka performs the incremental (un)assign itself
  right after the callback returns (or raises), so the revoked partitions are still owned, and can
  be committed, while `on_revoke` runs;
- `close()` leaves the group without calling the listener: the caller commits first;
- end offsets come from fetch responses (`cached=True`), never from ListOffsets, which some
  brokers (Tansu) answer wrongly.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import TYPE_CHECKING, Any

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from connector.kafka.ports import (
    AdminPort,
    CommitError,
    ConsumerPort,
    DeliveryCallback,
    DeliveryError,
    FatalKafkaError,
    Header,
    KafkaPortError,
    ProducerPort,
    RebalanceListener,
    Record,
    TopicPartition,
)
from connector.runtime.logs import get_logger

DEFAULT_CLIENT_ID = "optikpi-connector"

# librdkafka's "no offset" marker (OFFSET_INVALID): no committed offset, or no cached watermark.
_OFFSET_INVALID = -1001
_SECRET_CONFIG_KEY = re.compile(r"password|secret|token|key|user\.info", re.IGNORECASE)
_REDACTED = "***"
# How long produce() waits for room in librdkafka's local queue before giving up.
_QUEUE_FULL_WAIT_S = 1.0


def redact_config(config: Mapping[str, object]) -> dict[str, object]:
    """A copy that is safe to log: values of secret-looking keys masked, callables named only."""
    safe: dict[str, object] = {}
    for key, value in config.items():
        if _SECRET_CONFIG_KEY.search(key):
            safe[key] = _REDACTED
        elif value is None or isinstance(value, str | int | float | bool):
            safe[key] = value
        else:  # callbacks, loggers: their repr says nothing useful and may say too much
            safe[key] = f"<{type(value).__name__}>"
    return safe


def consumer_config(
    bootstrap_servers: str,
    group_id: str,
    auto_offset_reset: str,
    properties: Mapping[str, object],
    client_id: str = DEFAULT_CLIENT_ID,
) -> dict[str, object]:
    """librdkafka consumer settings: the connector's defaults, overridden by the user's `properties`."""
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "client.id": client_id,
        "auto.offset.reset": auto_offset_reset,
        # Offsets move only when the pipeline says every record below them is done.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.partition.eof": False,
    }
    config.update(properties)
    return config


def producer_config(
    bootstrap_servers: str, properties: Mapping[str, object], client_id: str = DEFAULT_CLIENT_ID
) -> dict[str, object]:
    """Idempotent producer settings (a dead-letter write counts only once acks=all confirmed it)."""
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap_servers,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
    }
    config.update(properties)
    return config


def admin_config(
    bootstrap_servers: str, properties: Mapping[str, object], client_id: str = DEFAULT_CLIENT_ID
) -> dict[str, object]:
    config: dict[str, object] = {"bootstrap.servers": bootstrap_servers, "client.id": client_id}
    config.update(properties)
    return config


# confluent-kafka refuses a consumer without a group.id, even one that only ever assign()s; a reader
# uses this one, never joins it and never commits to it.
READER_GROUP_ID = "optikpi-connector-reader"


def reader_config(
    bootstrap_servers: str, properties: Mapping[str, object], client_id: str = DEFAULT_CLIENT_ID
) -> dict[str, object]:
    """Settings for a `PartitionReader`: the user's `properties` (security...), but never a group's."""
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap_servers,
        "client.id": client_id,
        "auto.offset.reset": "earliest",
    }
    config.update({key: value for key, value in properties.items() if not key.startswith("group.")})
    config.update(
        {
            "group.id": READER_GROUP_ID,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
        }
    )
    return config


def kafka_version() -> str:
    # The package's version() returns a plain string in recent releases, a (str, int) tuple in older ones.
    client: object = ck.version()
    client_version = client[0] if isinstance(client, tuple) else client
    return f"confluent-kafka {client_version}, librdkafka {ck.libversion()[0]}"


def _describe(error: ck.KafkaError) -> str:
    return f"{error.name()}: {error.str()}"


def _port_error(exc: ck.KafkaException, what: str) -> KafkaPortError:
    error = exc.args[0] if exc.args and isinstance(exc.args[0], ck.KafkaError) else None
    if error is None:
        return KafkaPortError(f"{what}: {exc}")
    if error.fatal():
        return FatalKafkaError(f"{what}: {_describe(error)}")
    return KafkaPortError(f"{what}: {_describe(error)}")


def _to_port(partitions: Iterable[ck.TopicPartition]) -> list[TopicPartition]:
    return [TopicPartition(tp.topic, tp.partition) for tp in partitions]


def _to_ck(partitions: Iterable[TopicPartition]) -> list[ck.TopicPartition]:
    return [ck.TopicPartition(tp.topic, tp.partition) for tp in partitions]


def _to_record(message: ck.Message) -> Record:
    topic = message.topic()
    partition = message.partition()
    offset = message.offset()
    if topic is None or partition is None or offset is None:
        raise KafkaPortError("librdkafka returned a message without a position")
    raw_headers = message.headers() or []
    headers: tuple[Header, ...] = tuple(
        (name, value.encode() if isinstance(value, str) else value)
        for name, value in (raw_headers.items() if isinstance(raw_headers, dict) else raw_headers)
    )
    timestamp_type, timestamp = message.timestamp()
    return Record(
        topic=topic,
        partition=partition,
        offset=offset,
        key=message.key(),
        value=message.value(),
        headers=headers,
        timestamp_ms=None if timestamp_type == ck.TIMESTAMP_NOT_AVAILABLE else timestamp,
    )


class _FatalErrorLatch:
    """librdkafka reports client-wide errors through `error_cb`; fatal ones stop the client."""

    def __init__(self, logger: Any, client: str) -> None:
        self._logger = logger
        self._client = client
        self.fatal: str | None = None

    def __call__(self, error: ck.KafkaError) -> None:
        if error.fatal():
            self.fatal = _describe(error)
            self._logger.error("kafka fatal error", client=self._client, error=self.fatal)
        elif error.code() == ck.KafkaError._TRANSPORT:
            # librdkafka logs each failed connection itself; retries are its business.
            self._logger.debug("kafka error", client=self._client, error=_describe(error))
        else:
            self._logger.warning("kafka error", client=self._client, error=_describe(error))

    def raise_if_fatal(self) -> None:
        if self.fatal is not None:
            raise FatalKafkaError(f"kafka {self._client} failed: {self.fatal}")


class KafkaConsumer:
    """`ConsumerPort` on a confluent-kafka `Consumer` subscribed through the group protocol."""

    def __init__(self, config: Mapping[str, object], logger: Any = None) -> None:
        self._logger = logger if logger is not None else get_logger(__name__)
        self._errors = _FatalErrorLatch(self._logger, "consumer")
        settings: dict[str, Any] = dict(config)
        settings.setdefault("error_cb", self._errors)
        settings.setdefault("logger", self._logger)
        self._logger.debug("kafka consumer config", config=redact_config(settings), version=kafka_version())
        try:
            self._consumer = ck.Consumer(settings)
        except ck.KafkaException as exc:
            raise _port_error(exc, "cannot create the kafka consumer") from exc
        self._listener: RebalanceListener | None = None
        self._lost_now: set[TopicPartition] = set()
        self._closing = False
        self._closed = False

    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None:
        self._listener = listener
        try:
            self._consumer.subscribe(
                list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
        except ck.KafkaException as exc:
            raise _port_error(exc, "subscribe failed") from exc

    # The callbacks below do not (incremental_)assign themselves: confluent-kafka does the
    # cooperative incremental assign/unassign right after they return, even when they raise.
    # Cooperative rebalances also call back with empty lists (nothing gained); those are not passed on.
    def _on_assign(self, _consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        if partitions and self._listener is not None and not self._closing:
            self._listener.on_assign(_to_port(partitions))

    def _on_revoke(self, _consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        if partitions and self._listener is not None and not self._closing:
            self._listener.on_revoke(_to_port(partitions))

    def _on_lost(self, _consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        if partitions and self._listener is not None and not self._closing:
            lost = _to_port(partitions)
            # Lost partitions stay in librdkafka's assignment until this returns, but they already
            # belong to someone else: the commit guard must not let them through meanwhile.
            self._lost_now = set(lost)
            try:
                self._listener.on_lost(lost)
            finally:
                self._lost_now = set()

    def consume(self, max_records: int, timeout_s: float) -> list[Record]:
        self._errors.raise_if_fatal()
        try:
            messages = self._consumer.consume(num_messages=max_records, timeout=timeout_s)
        except ck.KafkaException as exc:
            raise _port_error(exc, "consume failed") from exc
        records: list[Record] = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(_to_record(message))
            elif error.fatal():
                raise FatalKafkaError(f"kafka consumer failed: {_describe(error)}")
            else:
                # Per-partition conditions (unknown topic, poll interval exceeded...): librdkafka
                # recovers or rebalances by itself; there is no record to hand over.
                self._logger.warning(
                    "kafka consume error",
                    error=_describe(error),
                    topic=message.topic(),
                    partition=message.partition(),
                )
        self._errors.raise_if_fatal()
        return records

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        owned = self.assignment() - self._lost_now
        not_owned = sorted(tp for tp in offsets if tp not in owned)
        if not_owned:
            names = ", ".join(str(tp) for tp in not_owned)
            raise CommitError(f"not committing for partitions this consumer does not own: {names}")
        request = [ck.TopicPartition(tp.topic, tp.partition, offset) for tp, offset in offsets.items()]
        try:
            result = self._consumer.commit(offsets=request, asynchronous=False)
        except ck.KafkaException as exc:
            error = _port_error(exc, "commit failed")
            if isinstance(error, FatalKafkaError):
                raise error from exc
            raise CommitError(str(error)) from exc
        failed = [
            f"{tp.topic}[{tp.partition}]: {_describe(tp.error)}" for tp in result if tp.error is not None
        ]
        if failed:
            raise CommitError("commit failed for " + "; ".join(failed))

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        parts = _to_ck(partitions)
        if parts:
            try:
                self._consumer.pause(parts)
            except ck.KafkaException as exc:
                raise _port_error(exc, "pause failed") from exc

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        parts = _to_ck(partitions)
        if parts:
            try:
                self._consumer.resume(parts)
            except ck.KafkaException as exc:
                raise _port_error(exc, "resume failed") from exc

    def assignment(self) -> set[TopicPartition]:
        if self._closed:
            return set()
        try:
            return set(_to_port(self._consumer.assignment()))
        except ck.KafkaException as exc:
            raise _port_error(exc, "cannot read the assignment") from exc

    def committed(
        self, partitions: Iterable[TopicPartition], timeout_s: float
    ) -> dict[TopicPartition, int | None]:
        parts = _to_ck(partitions)
        if not parts:
            return {}
        try:
            result = self._consumer.committed(parts, timeout=timeout_s)
        except ck.KafkaException as exc:
            raise _port_error(exc, "cannot read committed offsets") from exc
        offsets: dict[TopicPartition, int | None] = {}
        for tp in result:
            if tp.error is not None:
                raise KafkaPortError(f"cannot read the committed offset of {tp.topic}[{tp.partition}]")
            offsets[TopicPartition(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        return offsets

    def high_watermarks(self) -> dict[TopicPartition, int]:
        marks: dict[TopicPartition, int] = {}
        for tp in self._consumer.assignment():
            try:
                watermarks = self._consumer.get_watermark_offsets(tp, cached=True)
            except ck.KafkaException:
                continue  # nothing fetched for it yet
            if watermarks is None:
                continue
            high = watermarks[1]
            if high != _OFFSET_INVALID and high >= 0:
                marks[TopicPartition(tp.topic, tp.partition)] = high
        return marks

    def close(self) -> None:
        if self._closed:
            return
        self._closing = True
        try:
            self._consumer.close()
        except ck.KafkaException as exc:
            raise _port_error(exc, "close failed") from exc
        finally:
            self._closed = True

    @property
    def member_id(self) -> str | None:
        """The group member id (for logs); None before the first join."""
        try:
            return self._consumer.memberid() or None
        except (RuntimeError, ck.KafkaException):
            return None


class KafkaProducer:
    """`ProducerPort` on an idempotent confluent-kafka `Producer` (the dead-letter writer's transport)."""

    def __init__(self, config: Mapping[str, object], logger: Any = None) -> None:
        self._logger = logger if logger is not None else get_logger(__name__)
        self._errors = _FatalErrorLatch(self._logger, "producer")
        settings: dict[str, Any] = dict(config)
        settings.setdefault("error_cb", self._errors)
        settings.setdefault("logger", self._logger)
        self._logger.debug("kafka producer config", config=redact_config(settings), version=kafka_version())
        try:
            self._producer = ck.Producer(settings)
        except ck.KafkaException as exc:
            raise _port_error(exc, "cannot create the kafka producer") from exc
        # Records librdkafka refused at produce() time; their callbacks run from the next poll/flush,
        # so callers see exactly one way a delivery can fail.
        self._refused: deque[tuple[DeliveryCallback, DeliveryError]] = deque()
        self._closed = False

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header],
        on_delivery: DeliveryCallback,
        partition: int | None = None,
    ) -> None:
        self._errors.raise_if_fatal()

        def delivered(error: ck.KafkaError | None, _message: ck.Message) -> None:
            on_delivery(None if error is None else DeliveryError(str(error)))

        arguments: dict[str, Any] = {
            "value": value,
            "key": key,
            "headers": list(headers),
            "on_delivery": delivered,
        }
        if partition is not None:
            arguments["partition"] = partition
        for attempt in range(2):
            try:
                self._producer.produce(topic, **arguments)
                return
            except BufferError:
                if attempt == 0:
                    # The local queue is full: serving callbacks is what frees room in it.
                    self._producer.poll(_QUEUE_FULL_WAIT_S)
                    continue
                raise KafkaPortError("the kafka producer queue is full") from None
            except ck.KafkaException as exc:
                error = _port_error(exc, f"produce to {topic} refused")
                if isinstance(error, FatalKafkaError):
                    raise error from exc
                self._refused.append((on_delivery, DeliveryError(str(error))))
                return

    def _run_refused(self) -> int:
        ran = 0
        while self._refused:
            callback, error = self._refused.popleft()
            callback(error)
            ran += 1
        return ran

    def poll(self, timeout_s: float) -> int:
        ran = self._run_refused()
        ran += self._producer.poll(0 if ran else timeout_s)
        self._errors.raise_if_fatal()
        return ran

    def flush(self, timeout_s: float) -> int:
        self._run_refused()
        outstanding = self._producer.flush(timeout_s)
        self._errors.raise_if_fatal()
        return outstanding

    def close(self) -> None:
        """Release the client. Records still outstanding are abandoned (flush first): their
        callbacks run here with a DeliveryError, since nobody can confirm them any more."""
        if self._closed:
            return
        self._closed = True
        self._run_refused()
        # confluent-kafka's close() flushes without a time limit; purging first keeps it prompt.
        self._producer.purge(in_queue=True, in_flight=True, blocking=True)
        self._producer.poll(0)
        self._producer.close()


class _DebugLogs:
    """Takes librdkafka's log lines at debug level: a reader's caller reports failures itself, in one line."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def log(self, _level: int, message: str, *args: object) -> None:
        self._logger.debug(message % args if args else message)


class PartitionReader:
    """Reads chosen partitions from chosen offsets outside any consumer group (inspection tools).

    Nothing is ever committed and no group is joined: partitions are assign()ed, never subscribed.
    A partition's end is known from librdkafka's partition-EOF events and from the watermarks
    cached from fetch responses, never from ListOffsets (which some brokers, Tansu, answer wrongly).
    """

    def __init__(self, config: Mapping[str, object], logger: Any = None) -> None:
        self._logger = logger if logger is not None else get_logger(__name__)
        self.last_error: str | None = None
        settings: dict[str, Any] = dict(config)
        settings.setdefault("error_cb", self._on_error)
        settings.setdefault("logger", _DebugLogs(self._logger))
        self._logger.debug("kafka reader config", config=redact_config(settings), version=kafka_version())
        try:
            self._consumer = ck.Consumer(settings)
        except ck.KafkaException as exc:
            raise _port_error(exc, "cannot create the kafka reader") from exc
        except ValueError as exc:  # confluent-kafka's own checks (a missing group.id...)
            raise KafkaPortError(f"cannot create the kafka reader: {exc}") from exc
        self._closed = False

    def _on_error(self, error: ck.KafkaError) -> None:
        # Kept for the caller's one-line message ("connection refused" says more than "timed out").
        self.last_error = _describe(error)
        self._logger.debug("kafka reader error", error=self.last_error)

    def topics(self, timeout_s: float) -> dict[str, int]:
        """Topic name → partition count; KafkaPortError when no broker answers within `timeout_s`."""
        try:
            metadata = self._consumer.list_topics(timeout=timeout_s)
        except ck.KafkaException as exc:
            self._consumer.poll(0)  # serves error_cb, which knows why (connection refused, TLS, auth...)
            raise _port_error(exc, "cannot read the cluster metadata") from exc
        return {name: len(topic.partitions) for name, topic in metadata.topics.items() if topic.error is None}

    def assign(self, positions: Mapping[TopicPartition, int | None]) -> None:
        """Read these partitions from these offsets (None: from the beginning), replacing any assignment."""
        request = [
            ck.TopicPartition(tp.topic, tp.partition, ck.OFFSET_BEGINNING if offset is None else offset)
            for tp, offset in positions.items()
        ]
        try:
            self._consumer.assign(request)
        except ck.KafkaException as exc:
            raise _port_error(exc, "assign failed") from exc

    def read(self, max_records: int, timeout_s: float) -> tuple[list[Record], dict[TopicPartition, int]]:
        """Records, and the partitions that reached their end in this call (with the end offset)."""
        try:
            messages = self._consumer.consume(num_messages=max_records, timeout=timeout_s)
        except ck.KafkaException as exc:
            raise _port_error(exc, "read failed") from exc
        records: list[Record] = []
        ends: dict[TopicPartition, int] = {}
        for message in messages:
            error = message.error()
            if error is None:
                records.append(_to_record(message))
            elif error.code() == ck.KafkaError._PARTITION_EOF:
                topic, partition, offset = message.topic(), message.partition(), message.offset()
                if topic is not None and partition is not None and offset is not None:
                    ends[TopicPartition(topic, partition)] = offset
            elif error.fatal() or error.code() == ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise KafkaPortError(f"read failed: {_describe(error)}")
            else:
                self.last_error = _describe(error)
                self._logger.debug("kafka read error", error=self.last_error, topic=message.topic())
        return records, ends

    def high_watermarks(self) -> dict[TopicPartition, int]:
        """End offsets of the assigned partitions as last seen in fetched data (absent: none fetched yet)."""
        marks: dict[TopicPartition, int] = {}
        try:
            assigned = self._consumer.assignment()
        except ck.KafkaException as exc:
            raise _port_error(exc, "cannot read the assignment") from exc
        for tp in assigned:
            try:
                watermarks = self._consumer.get_watermark_offsets(tp, cached=True)
            except ck.KafkaException:
                continue
            if watermarks is not None and watermarks[1] >= 0:
                marks[TopicPartition(tp.topic, tp.partition)] = watermarks[1]
        return marks

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._consumer.close()  # no group joined, auto-commit off: nothing is committed here
        except ck.KafkaException as exc:
            raise _port_error(exc, "close failed") from exc


class KafkaAdmin:
    """`AdminPort` on confluent-kafka's `AdminClient`."""

    def __init__(self, config: Mapping[str, object], replication_factor: int = -1) -> None:
        # -1 lets the broker apply its default replication factor (KIP-464).
        self._replication_factor = replication_factor
        try:
            self._admin = AdminClient(dict(config))  # type: ignore[arg-type]  # values checked by librdkafka
        except ck.KafkaException as exc:
            raise _port_error(exc, "cannot create the kafka admin client") from exc

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
                error = exc.args[0] if exc.args and isinstance(exc.args[0], ck.KafkaError) else None
                if error is not None and error.code() == ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                failures.append(f"{name}: {_describe(error) if error is not None else exc}")
            except FutureTimeoutError:
                failures.append(f"{name}: no answer within {timeout_s} s")
        if failures:
            raise KafkaPortError("cannot create topics: " + "; ".join(failures))

    def list_topics(self, timeout_s: float) -> dict[str, int]:
        try:
            metadata = self._admin.list_topics(timeout=timeout_s)
        except ck.KafkaException as exc:
            raise _port_error(exc, "cannot list topics") from exc
        return {name: len(topic.partitions) for name, topic in metadata.topics.items() if topic.error is None}

    def list_groups(self, timeout_s: float) -> set[str]:
        """Names of the consumer groups the cluster knows (any group that joined or committed)."""
        try:
            result = self._admin.list_consumer_groups(request_timeout=timeout_s).result(timeout=timeout_s)
        except ck.KafkaException as exc:
            raise _port_error(exc, "cannot list consumer groups") from exc
        except FutureTimeoutError:
            raise KafkaPortError(f"cannot list consumer groups: no answer within {timeout_s} s") from None
        return {group.group_id for group in result.valid}


if TYPE_CHECKING:  # mypy proves the adapters implement the ports

    def _implements_ports(
        consumer: KafkaConsumer, producer: KafkaProducer, admin: KafkaAdmin
    ) -> tuple[ConsumerPort, ProducerPort, AdminPort]:
        return consumer, producer, admin
