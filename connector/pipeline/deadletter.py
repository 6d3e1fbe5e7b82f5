"""DeadLetterWriter: poison records to the dead-letter topic, byte for byte, with the reason.

Headers follow Kafka Connect's names (`__connect.errors.*`) so existing tools read them. A record
counts as done only when the broker acknowledged its copy (idempotent producer, acks=all): the
caller passes `on_done` and marks the source offset done from there, never earlier.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from connector import __version__
from connector.errors import Stage
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


class DeadLetterWriter:
    def __init__(self, producer: ProducerPort, topic: str, now: Callable[[], datetime] = _utc_now) -> None:
        self.topic = topic
        self._producer = producer
        self._now = now

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
        self._producer.produce(self.topic, record.key, record.value, headers, on_done)

    def poll(self) -> int:
        return self._producer.poll(0)

    def flush(self, timeout_s: float) -> int:
        return self._producer.flush(timeout_s)
