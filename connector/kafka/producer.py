"""`ProducerPort` on an idempotent confluent-kafka `Producer` (the dead-letter writer's transport).

Every failure to deliver reaches the caller one way, through its delivery callback from `poll()` or
`flush()`, whether librdkafka refused the record at once or the broker never acknowledged it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import confluent_kafka as ck

from connector.errors import DeliveryError, FatalKafkaError, KafkaPortError, RecordTooLargeError
from connector.kafka._errors import kafka_error_of, port_error
from connector.kafka.admin import KafkaAdmin, kafka_version
from connector.kafka.config import redact_config
from connector.kafka.consumer import FatalErrorLatch
from connector.kafka.ports import DeliveryCallback, Header, ProducerPort
from connector.runtime.logs import get_logger

# How long produce() waits for room in librdkafka's local queue before giving up.
_QUEUE_FULL_WAIT_S = 1.0
# Deliveries failing with these mean the broker no longer accepts the producer's id and epoch: after
# a delivery times out, librdkafka bumps the epoch on its own, which a broker may refuse from then on
# (the embedded broker answers PRODUCER_FENCED to every later write). Only a new producer, with an id
# of its own, can write again.
_IDENTITY_REFUSED = frozenset(
    {
        ck.KafkaError.PRODUCER_FENCED,
        ck.KafkaError.INVALID_PRODUCER_EPOCH,
        ck.KafkaError.UNKNOWN_PRODUCER_ID,
        ck.KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
    }
)
# librdkafka's default `message.max.bytes`.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000


def _delivery_error(error: ck.KafkaError | None, text: str) -> DeliveryError:
    if error is not None and error.code() == ck.KafkaError.MSG_SIZE_TOO_LARGE:
        return RecordTooLargeError(text)
    return DeliveryError(text)


def message_max_bytes(config: Mapping[str, object]) -> int:
    """The producer's own size limit for one record, from its librdkafka settings."""
    try:
        return int(str(config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES)))
    except ValueError:
        return DEFAULT_MESSAGE_MAX_BYTES


def dead_letter_size_limit(
    producer_settings: Mapping[str, object], admin: KafkaAdmin | None, topic: str, timeout_s: float
) -> int:
    """The largest record the dead-letter topic takes from this producer: the smaller of the
    producer's `message.max.bytes` and the topic's `max.message.bytes`, where the broker says."""
    limit = message_max_bytes(producer_settings)
    if admin is not None:
        topic_limit = admin.topic_max_message_bytes(topic, timeout_s)
        if topic_limit is not None:
            limit = min(limit, topic_limit)
    return limit


class KafkaProducer:
    """`ProducerPort` on an idempotent confluent-kafka `Producer` (the dead-letter writer's transport)."""

    def __init__(self, config: Mapping[str, object], logger: Any = None) -> None:
        self._logger = logger if logger is not None else get_logger(__name__)
        self._errors = FatalErrorLatch(self._logger, "producer")
        settings: dict[str, Any] = dict(config)
        settings.setdefault("error_cb", self._errors)
        self._logger.debug("kafka producer config", config=redact_config(settings), version=kafka_version())
        self._settings = settings
        self._producer = self._create()
        self._renew = False
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
        if self._renew:
            self._replace()

        def delivered(error: ck.KafkaError | None, _message: ck.Message) -> None:
            if error is not None and error.code() in _IDENTITY_REFUSED:
                self._renew = True
            on_delivery(None if error is None else _delivery_error(error, str(error)))

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
                error = port_error(exc, f"produce to {topic} refused")
                if isinstance(error, FatalKafkaError):
                    raise error from exc
                self._refused.append((on_delivery, _delivery_error(kafka_error_of(exc), str(error))))
                return

    def _create(self) -> ck.Producer:
        try:
            return ck.Producer(self._settings)
        except ck.KafkaException as exc:
            raise port_error(exc, "cannot create the kafka producer") from exc

    def _replace(self) -> None:
        """A new producer in place of one whose id the broker refuses; what the old one still
        held fails through its callbacks (the caller tries those again, with the new one)."""
        self._renew = False
        self._logger.warning("kafka producer replaced: the broker refused its producer id")
        old = self._producer
        old.purge(in_queue=True, in_flight=True, blocking=True)
        old.poll(0)
        old.close()
        self._producer = self._create()

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


if TYPE_CHECKING:  # mypy proves the adapter implements the port

    def _implements_port(producer: KafkaProducer) -> ProducerPort:
        return producer
