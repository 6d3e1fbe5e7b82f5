"""The dead-letter path: poison records to the dead-letter topic until the broker has them, and
the breaker that stops consumption when most records turn out to be poison.

A poison record is done (its offset may be committed past) only once the broker acknowledged its
copy. A failed write keeps it pending, so its partition's commit position cannot pass it, and is
tried again on the retry schedule while /readyz reports `dead_letter`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from connector.config.settings import DeadLetterSettings
from connector.errors import DeliveryError, Stage
from connector.ingest.backoff import Backoff
from connector.kafka.ports import Record
from connector.pipeline.deadletter import DeadLetterWriter
from connector.pipeline.retry import RetrySchedule
from connector.runtime.health import Health, Reason
from connector.runtime.logs import get_logger

log = get_logger(__name__)


class DeadLetterBreaker:
    """Trips when more than `max_ratio` of the last `window` finished records were dead-lettered.

    Counting against the full window (not the records seen so far) keeps a few early poison
    records in a young stream from tripping it."""

    def __init__(self, window: int, max_ratio: float) -> None:
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._limit = max_ratio * window
        self._dead = 0
        self.tripped = False

    def record(self, dead: bool) -> bool:
        """Count one finished record; returns True when this call tripped the breaker."""
        if len(self._outcomes) == self._outcomes.maxlen and self._outcomes[0]:
            self._dead -= 1
        self._outcomes.append(dead)
        if dead:
            self._dead += 1
        if not self.tripped and self._dead > self._limit:
            self.tripped = True
            return True
        return False

    @property
    def limit(self) -> float:
        return self._limit

    @property
    def window(self) -> int:
        return self._outcomes.maxlen or 0


class DeadLetterPath:
    """`on_written(record, stage)` runs once the broker has the copy; `on_tripped()` when the
    breaker trips (readiness is already set then)."""

    def __init__(
        self,
        writer: DeadLetterWriter,
        settings: DeadLetterSettings,
        backoff: Backoff,
        clock: Callable[[], float],
        health: Health,
        *,
        on_written: Callable[[Record, Stage], None],
        on_tripped: Callable[[], None],
    ) -> None:
        self._writer = writer
        self._breaker = DeadLetterBreaker(settings.window, settings.max_ratio)
        self._retries: RetrySchedule[Callable[[], None]] = RetrySchedule(backoff, clock)
        self._health = health
        self._on_written = on_written
        self._on_tripped = on_tripped

    @property
    def tripped(self) -> bool:
        return self._breaker.tripped

    def accepted(self) -> None:
        """One record the API accepted: the breaker counts the good ones too."""
        self._breaker.record(False)

    def send(
        self,
        record: Record,
        stage: Stage,
        error_class: str,
        message: str,
        endpoint: str | None,
        *,
        http_status: int | None = None,
        http_response: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        message = message or error_class
        log.warning(
            "dead-lettering record",
            stage=stage.value,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=message[:300],
            **({"trace_id": trace_id} if trace_id else {}),
        )
        if self._breaker.record(True):
            self._health.set(
                Reason.BREAKER,
                f"more than {self._breaker.limit:.0f} of the last {self._breaker.window} records "
                "were dead-lettered; consumption stopped (restart after fixing the cause)",
            )
            self._on_tripped()

        def write() -> None:
            try:
                self._writer.write(
                    record,
                    stage,
                    error_class,
                    message,
                    on_done,
                    endpoint=endpoint,
                    http_status=http_status,
                    http_response=http_response,
                    trace_id=trace_id,
                )
            except Exception as exc:  # queue full, producer failed: same as a failed delivery
                on_done(DeliveryError(f"{type(exc).__name__}: {exc}"))

        def on_done(err: DeliveryError | None) -> None:
            if err is None:
                self._retries.succeeded()
                self._health.clear(Reason.DEAD_LETTER)
                self._on_written(record, stage)
                return
            self._health.set(Reason.DEAD_LETTER, f"cannot write to the dead-letter topic: {err}")
            self._retries.schedule(write)

        write()

    def retry_due(self, now: float) -> None:
        for write in self._retries.due(now):
            write()

    def poll(self) -> None:
        """Serve delivery reports (the `on_done` of earlier writes)."""
        self._writer.poll()

    def flush(self, timeout_s: float) -> None:
        self._writer.flush(timeout_s)
