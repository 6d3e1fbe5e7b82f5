"""`ConsumerPort` on a confluent-kafka `Consumer` in a consumer group, and the conversions between
librdkafka's messages, partitions and errors and the port's, which the producer and reader share.

Choices that matter for correctness:
- offsets are never committed or stored automatically (see `connector.kafka.config`); the pipeline
  commits explicit offsets, synchronously, and only for partitions this member currently owns
  (brokers do not check ownership: Tansu and the classic Kafka group protocol accept a commit for
  any partition from any member of the current generation, so the guard lives here);
- cooperative-sticky assignment: a rebalance revokes only the partitions that move. The listener
  is called from inside `consume()`; confluent-kafka performs the incremental (un)assign itself
  right after the callback returns (or raises), so the revoked partitions are still owned, and can
  be committed, while `on_revoke` runs;
- `close()` leaves the group without calling the listener: the caller commits first. A member
  whose join is still in flight cannot leave until it is answered (the coordinator answers a
  connection's requests in order, and a JoinGroup may be held for up to half the session timeout,
  by Tansu on every first join): close gives the join time to finish, else the coordinator keeps
  a member nobody will ever speak for, and the next member's join waits out the rebalance
  timeout (max.poll.interval.ms, 5 minutes by default);
- a commit is sent asynchronously and then confirmed by reading the committed offsets back, with a
  deadline (`COMMIT_WAIT_S`): librdkafka's synchronous commit waits for the group coordinator
  without one, and a coordinator that stops answering (a frozen broker) held the consumer loop
  past max.poll.interval.ms. Waiting on another thread does not help: a synchronous commit in
  flight blocks `consume()` too. The read-back goes to the coordinator after the commit, which
  answers in order, so it sees the commit; an offset at or past the one sent confirms it (a
  later owner may have moved it on). Unconfirmed is a `CommitError`: the caller retries later,
  and a commit that lands late only stores offsets of records that were done;
- end offsets come from fetch responses (`cached=True`), never from ListOffsets, which some
  brokers (Tansu) answer wrongly.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from threading import Event
from typing import TYPE_CHECKING, Any

import confluent_kafka as ck

from connector.errors import CommitError, FatalKafkaError, KafkaPortError
from connector.kafka._errors import describe, port_error
from connector.kafka.admin import kafka_version
from connector.kafka.config import redact_config
from connector.kafka.ports import ConsumerPort, RebalanceListener, Record, TopicPartition
from connector.runtime.logs import get_logger

COMMIT_WAIT_S = 2.0
WAKE_SLICE_S = 0.002  # how often a wait in consume() looks at its wake flag


def to_port(partitions: Iterable[ck.TopicPartition]) -> list[TopicPartition]:
    return [TopicPartition(tp.topic, tp.partition) for tp in partitions]


def to_ck(partitions: Iterable[TopicPartition]) -> list[ck.TopicPartition]:
    return [ck.TopicPartition(tp.topic, tp.partition) for tp in partitions]


def to_record(message: ck.Message, tps: dict[tuple[str, int], TopicPartition] | None = None) -> Record:
    """The port's record of a message. Its headers stay in the message until someone reads them.
    `tps`: the consumer's shared TopicPartitions (the pipeline keys everything on them)."""
    topic = message.topic()
    partition = message.partition()
    offset = message.offset()
    if topic is None or partition is None or offset is None:
        raise KafkaPortError("librdkafka returned a message without a position")
    tp = None
    if tps is not None:
        tp = tps.get((topic, partition))
        if tp is None:
            tp = tps[(topic, partition)] = TopicPartition(topic, partition)
    timestamp_type, timestamp = message.timestamp()
    return Record(
        topic,
        partition,
        offset,
        message.key(),
        message.value(),
        message.headers,
        None if timestamp_type == ck.TIMESTAMP_NOT_AVAILABLE else timestamp,
        tp,
    )


def cached_high_watermarks(consumer: ck.Consumer) -> dict[TopicPartition, int]:
    """End offsets of the assigned partitions as last seen in fetched data (absent: none fetched yet).

    librdkafka's "no offset" marker (OFFSET_INVALID, -1001) is negative like every other non-offset.
    """
    try:
        assigned = consumer.assignment()
    except ck.KafkaException as exc:
        raise port_error(exc, "cannot read the assignment") from exc
    marks: dict[TopicPartition, int] = {}
    for tp in assigned:
        try:
            watermarks = consumer.get_watermark_offsets(tp, cached=True)
        except ck.KafkaException:
            continue  # nothing fetched for it yet
        if watermarks is not None and watermarks[1] >= 0:
            marks[TopicPartition(tp.topic, tp.partition)] = watermarks[1]
    return marks


class FatalErrorLatch:
    """librdkafka reports client-wide errors through `error_cb`; fatal ones stop the client."""

    def __init__(self, logger: Any, client: str) -> None:
        self._logger = logger
        self._client = client
        self.fatal: str | None = None

    def __call__(self, error: ck.KafkaError) -> None:
        if error.fatal():
            self.fatal = describe(error)
            self._logger.error("kafka fatal error", client=self._client, error=self.fatal)
        elif error.code() == ck.KafkaError._TRANSPORT:
            # librdkafka logs each failed connection itself; retries are its business.
            self._logger.debug("kafka error", client=self._client, error=describe(error))
        else:
            self._logger.warning("kafka error", client=self._client, error=describe(error))

    def raise_if_fatal(self) -> None:
        if self.fatal is not None:
            raise FatalKafkaError(f"kafka {self._client} failed: {self.fatal}")


class KafkaConsumer:
    """`ConsumerPort` on a confluent-kafka `Consumer` subscribed through the group protocol."""

    def __init__(
        self, config: Mapping[str, object], logger: Any = None, commit_wait_s: float = COMMIT_WAIT_S
    ) -> None:
        self._logger = logger if logger is not None else get_logger(__name__)
        self._errors = FatalErrorLatch(self._logger, "consumer")
        settings: dict[str, Any] = dict(config)
        settings.setdefault("error_cb", self._errors)
        self._logger.debug("kafka consumer config", config=redact_config(settings), version=kafka_version())
        try:
            self._consumer = ck.Consumer(settings)
        except ck.KafkaException as exc:
            raise port_error(exc, "cannot create the kafka consumer") from exc
        self._listener: RebalanceListener | None = None
        self._lost_now: set[TopicPartition] = set()
        self._tps: dict[tuple[str, int], TopicPartition] = {}
        self._subscribed = False
        self._joined = False  # an assignment (maybe empty) has come back from the coordinator
        self._closing = False
        self._closed = False
        self._commit_wait_s = commit_wait_s

    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None:
        self._listener = listener
        try:
            self._consumer.subscribe(
                list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
        except ck.KafkaException as exc:
            raise port_error(exc, "subscribe failed") from exc
        self._subscribed = True

    # The callbacks below do not (incremental_)assign themselves: confluent-kafka does the
    # cooperative incremental assign/unassign right after they return, even when they raise.
    # Cooperative rebalances also call back with empty lists (nothing gained); those are not passed on.
    def _on_assign(self, _consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        self._joined = True
        if partitions and self._listener is not None and not self._closing:
            self._listener.on_assign(to_port(partitions))

    def _on_revoke(self, _consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        if partitions and self._listener is not None and not self._closing:
            self._listener.on_revoke(to_port(partitions))

    def _on_lost(self, _consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        if partitions and self._listener is not None and not self._closing:
            lost = to_port(partitions)
            # Lost partitions stay in librdkafka's assignment until this returns, but they already
            # belong to someone else: the commit guard must not let them through meanwhile.
            self._lost_now = set(lost)
            try:
                self._listener.on_lost(lost)
            finally:
                self._lost_now = set()

    def consume(self, max_records: int, timeout_s: float, wake: Event | None = None) -> list[Record]:
        self._errors.raise_if_fatal()
        try:
            messages = self._fetch(max_records, timeout_s, wake)
        except ck.KafkaException as exc:
            raise port_error(exc, "consume failed") from exc
        records: list[Record] = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(to_record(message, self._tps))
            elif error.fatal():
                raise FatalKafkaError(f"kafka consumer failed: {describe(error)}")
            else:
                # Per-partition conditions (unknown topic, poll interval exceeded...): librdkafka
                # recovers or rebalances by itself; there is no record to hand over.
                self._logger.warning(
                    "kafka consume error",
                    error=describe(error),
                    topic=message.topic(),
                    partition=message.partition(),
                )
        self._errors.raise_if_fatal()
        return records

    def _fetch(self, max_records: int, timeout_s: float, wake: Event | None) -> list[ck.Message]:
        """librdkafka's consume cannot be woken from another thread, so with a `wake` to watch the
        wait goes in short slices: a finished upload or transform is seen within one slice, not
        after the whole timeout, and records that arrive meanwhile still end the wait at once."""
        if wake is None:
            return self._consumer.consume(num_messages=max_records, timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            wait = 0.0 if wake.is_set() else max(0.0, min(WAKE_SLICE_S, left))
            messages = self._consumer.consume(num_messages=max_records, timeout=wait)
            if messages or wake.is_set() or left <= WAKE_SLICE_S:
                return messages

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
            self._consumer.commit(offsets=request, asynchronous=True)
            stored = self.committed(offsets, self._commit_wait_s)
        except KafkaPortError as exc:
            if isinstance(exc, FatalKafkaError):
                raise
            raise CommitError(f"commit not confirmed: {exc}") from exc
        except ck.KafkaException as exc:
            error = port_error(exc, "commit failed")
            if isinstance(error, FatalKafkaError):
                raise error from exc
            raise CommitError(str(error)) from exc
        behind = sorted(tp for tp, offset in offsets.items() if (stored.get(tp) or 0) < offset)
        if behind:
            names = ", ".join(f"{tp} (sent {offsets[tp]}, stored {stored.get(tp)})" for tp in behind)
            raise CommitError(f"commit not stored for {names}")

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        parts = to_ck(partitions)
        if parts:
            try:
                self._consumer.pause(parts)
            except ck.KafkaException as exc:
                raise port_error(exc, "pause failed") from exc

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        parts = to_ck(partitions)
        if parts:
            try:
                self._consumer.resume(parts)
            except ck.KafkaException as exc:
                raise port_error(exc, "resume failed") from exc
            self._wake_fetchers(parts)

    def _wake_fetchers(self, parts: list[ck.TopicPartition]) -> None:
        """librdkafka does not wake a broker's fetcher that went idle because all its partitions
        were paused: a resumed partition's first fetch then waits for the fetcher's next tick, up to
        a second (0.75-0.9 s measured on the embedded broker, every time). A seek to the position
        the partition resumes from anyway (the record after the last one handed out) wakes it at
        once and changes nothing else. Only a speed-up: a failed seek leaves the plain resume."""
        try:
            positions = self._consumer.position(parts)
            for tp in positions:
                if tp.error is None and tp.offset >= 0:  # nothing handed out yet: nothing to wake
                    self._consumer.seek(tp)
        except ck.KafkaException as exc:
            self._logger.debug("could not wake the fetcher after a resume", error=str(exc))

    def assignment(self) -> set[TopicPartition]:
        if self._closed:
            return set()
        try:
            return set(to_port(self._consumer.assignment()))
        except ck.KafkaException as exc:
            raise port_error(exc, "cannot read the assignment") from exc

    def committed(
        self, partitions: Iterable[TopicPartition], timeout_s: float
    ) -> dict[TopicPartition, int | None]:
        parts = to_ck(partitions)
        if not parts:
            return {}
        try:
            result = self._consumer.committed(parts, timeout=timeout_s)
        except ck.KafkaException as exc:
            raise port_error(exc, "cannot read committed offsets") from exc
        offsets: dict[TopicPartition, int | None] = {}
        for tp in result:
            if tp.error is not None:
                raise KafkaPortError(f"cannot read the committed offset of {tp.topic}[{tp.partition}]")
            offsets[TopicPartition(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        return offsets

    def high_watermarks(self) -> dict[TopicPartition, int]:
        return {} if self._closed else cached_high_watermarks(self._consumer)

    def close(self, timeout_s: float = 0.0) -> None:
        if self._closed:
            return
        self._closing = True
        try:
            self._finish_join(timeout_s)
            self._consumer.close()
        except ck.KafkaException as exc:
            raise port_error(exc, "close failed") from exc
        finally:
            self._closed = True

    def _finish_join(self, timeout_s: float) -> None:
        """Serve the consumer until its join is answered (or `timeout_s` passes), so that the leave
        close() sends is not queued behind it. The listener hears nothing of it (closing), and
        records fetched meanwhile are dropped uncommitted."""
        deadline = time.monotonic() + timeout_s
        while self._subscribed and not self._joined and time.monotonic() < deadline:
            try:
                self._consumer.consume(
                    num_messages=1, timeout=min(0.1, max(0.0, deadline - time.monotonic()))
                )
            except ck.KafkaException:
                return  # the client cannot go on: close() says the rest

    @property
    def member_id(self) -> str | None:
        """The group member id (for logs); None before the first join."""
        try:
            return self._consumer.memberid() or None
        except (RuntimeError, ck.KafkaException):
            return None


if TYPE_CHECKING:  # mypy proves the adapter implements the port

    def _implements_port(consumer: KafkaConsumer) -> ConsumerPort:
        return consumer
