"""DeadLetterWriter: poison records to the dead-letter topic, byte for byte, with the reason.

Headers follow Kafka Connect's names (`__connect.errors.*`) so existing tools read them. A record
counts as done only when the broker acknowledged its copy (idempotent producer, acks=all): the
caller passes `on_done` and marks the source offset done from there, never earlier.

A copy larger than the dead-letter topic takes (the producer's `message.max.bytes`, the topic's
`max.message.bytes`) would be refused on every try and block its partition for good. It is written
with the value omitted (null) and `optikpi.value.omitted: <original size>` instead; the original
stays where the topic, partition and offset headers say, for as long as its retention keeps it.
The limit is decided up front where it is known, and a copy the producer or broker refuses as too
large anyway is written once more without its value.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from connector import __version__
from connector.errors import DeliveryError, RecordTooLargeError, Stage
from connector.kafka.ports import DeliveryCallback, Header, ProducerPort, Record
from connector.runtime.tracing import trace_id_from

RESPONSE_EXCERPT_BYTES = 1024
MESSAGE_MAX_CHARS = 4000


H_TOPIC = "__connect.errors.topic"
H_PARTITION = "__connect.errors.partition"
H_OFFSET = "__connect.errors.offset"
H_STAGE = "__connect.errors.stage"
H_CLASS = "__connect.errors.exception.class.name"
H_MESSAGE = "__connect.errors.exception.message"
H_ENDPOINT = "optikpi.endpoint"
H_HTTP_STATUS = "optikpi.http.status"
H_HTTP_RESPONSE = "optikpi.http.response"
H_FAILED_AT = "optikpi.failed_at"
H_VERSION = "optikpi.connector.version"
H_TRACE_ID = "optikpi.trace_id"
H_VALUE_OMITTED = "optikpi.value.omitted"
# What a record costs on top of its key, value and headers (Kafka's record-batch framing), with
# room to spare: the estimate must never be below what the producer counts.
_RECORD_OVERHEAD_BYTES = 512
_HEADER_OVERHEAD_BYTES = 10
ADDED_HEADERS = frozenset(
    {
        H_TOPIC,
        H_PARTITION,
        H_OFFSET,
        H_STAGE,
        H_CLASS,
        H_MESSAGE,
        H_ENDPOINT,
        H_HTTP_STATUS,
        H_HTTP_RESPONSE,
        H_FAILED_AT,
        H_VERSION,
        H_TRACE_ID,
        H_VALUE_OMITTED,
    }
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, e.g. `2024-03-01T12:00:00.250Z` (the `failed_at` header).

    An aware moment in another zone is converted, so the trailing Z is true; a naive one is taken as
    local time (what `datetime.astimezone` does)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def dead_letter_headers(
    record: Record,
    stage: Stage,
    error_class: str,
    message: str,
    *,
    endpoint: str | None = None,
    http_status: int | None = None,
    http_response: str | None = None,
    failed_at: datetime,
    trace_id: str | None = None,
) -> list[Header]:
    """`trace_id`: the upload's X-Trace-Id (stage UPLOAD); otherwise the record's own traceparent
    names the trace, when it has one."""
    headers: list[Header] = list(record.headers)
    headers += [
        (H_TOPIC, record.topic.encode()),
        (H_PARTITION, str(record.partition).encode()),
        (H_OFFSET, str(record.offset).encode()),
        (H_STAGE, stage.value.encode()),
        (H_CLASS, error_class.encode()),
        (H_MESSAGE, message[:MESSAGE_MAX_CHARS].encode("utf-8", "replace")),
    ]
    if endpoint:
        headers.append((H_ENDPOINT, endpoint.encode()))
    if http_status is not None:
        headers.append((H_HTTP_STATUS, str(http_status).encode()))
    if http_response is not None:
        headers.append((H_HTTP_RESPONSE, http_response.encode("utf-8", "replace")[:RESPONSE_EXCERPT_BYTES]))
    headers.append((H_FAILED_AT, format_timestamp(failed_at).encode()))
    headers.append((H_VERSION, __version__.encode()))
    trace_id = trace_id or trace_id_from(record.headers)
    if trace_id:
        headers.append((H_TRACE_ID, trace_id.encode()))
    return headers


def record_size(key: bytes | None, value: bytes | None, headers: list[Header]) -> int:
    """An upper estimate of a record's size as the producer and broker count it."""
    size = _RECORD_OVERHEAD_BYTES + len(key or b"") + len(value or b"")
    for name, header_value in headers:
        size += len(name.encode()) + len(header_value or b"") + _HEADER_OVERHEAD_BYTES
    return size


def value_omitted(headers: tuple[Header, ...] | list[Header]) -> int | None:
    """The original value size of a dead-letter copy written without its value, else None."""
    for name, value in headers:
        if name == H_VALUE_OMITTED and value is not None:
            try:
                return int(value.decode())
            except ValueError:
                return -1
    return None


class DeadLetterWriter:
    """`max_bytes`: the largest record the dead-letter topic takes (None: not known up front)."""

    def __init__(
        self,
        producer: ProducerPort,
        topic: str,
        now: Callable[[], datetime] = _utc_now,
        *,
        max_bytes: int | None = None,
    ) -> None:
        self.topic = topic
        self._producer = producer
        self._now = now
        self.max_bytes = max_bytes

    def write(
        self,
        record: Record,
        stage: Stage,
        error_class: str,
        message: str,
        on_done: DeliveryCallback,
        *,
        endpoint: str | None = None,
        http_status: int | None = None,
        http_response: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        headers = dead_letter_headers(
            record,
            stage,
            error_class,
            message,
            endpoint=endpoint,
            http_status=http_status,
            http_response=http_response,
            failed_at=self._now(),
            trace_id=trace_id,
        )
        value = record.value
        limit = self.max_bytes
        if value is not None and limit is not None and record_size(record.key, value, headers) > limit:
            self._produce_omitted(record, headers, on_done)
            return

        def delivered(err: DeliveryError | None) -> None:
            if isinstance(err, RecordTooLargeError) and value is not None:
                # Once: a copy without its value is as small as this record's copy gets.
                self._produce_omitted(record, headers, on_done)
                return
            on_done(err)

        self._producer.produce(self.topic, record.key, value, headers, delivered)

    def _produce_omitted(self, record: Record, headers: list[Header], on_done: DeliveryCallback) -> None:
        size = len(record.value or b"")
        omitted = [*headers, (H_VALUE_OMITTED, str(size).encode())]
        self._producer.produce(self.topic, record.key, None, omitted, on_done)

    def poll(self) -> int:
        return self._producer.poll(0)

    def flush(self, timeout_s: float) -> int:
        return self._producer.flush(timeout_s)
