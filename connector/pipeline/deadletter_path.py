"""The dead-letter path: poison records to the dead-letter topic until the broker has them, and
a breaker per topic that pauses the topic when most of its records turn out to be poison.

A poison record is done (its offset may be committed past) only once the broker acknowledged its
copy. A failed write keeps it pending, so its partition's commit position cannot pass it, and is
tried again on the retry schedule while /readyz reports `dead_letter`.

The breakers are per topic (one mapping each): with one window for every topic, a topic whose
every record fails hid among healthy ones and never tripped it.
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


MIN_SEEN = 100  # a breaker judges no topic on fewer records than this


class DeadLetterBreaker:
    """Trips when more than `max_ratio` of the records in its window (the last `window` records
    whose transform finished) were dead-lettered, once at least `min_seen` records have been
    counted: a few early poison records in a young stream do not trip it.

    A record counts when its transform result is known, in partition order, whatever it is: a
    good record counted only once the API accepted it would lag behind the poison counted at
    once, and a large poll of mostly good records would look mostly poison. One the API refuses
    later turns a counted good outcome into a dead one (`refused`)."""

    def __init__(self, window: int, max_ratio: float, min_seen: int = MIN_SEEN) -> None:
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._max_ratio = max_ratio
        self._min_seen = min_seen
        self._seen = 0
        self._dead = 0
        self.tripped = False

    def record(self, dead: bool) -> bool:
        """Count one finished record; returns True when this call tripped the breaker."""
        if len(self._outcomes) == self._outcomes.maxlen and self._outcomes[0]:
            self._dead -= 1
        self._outcomes.append(dead)
        self._seen += 1
        if dead:
            self._dead += 1
        return self._judge()

    def refused(self) -> bool:
        """A record counted good was refused by the API: the newest good outcome in the window
        becomes dead (which one does not matter to the counts). True when this tripped it."""
        outcomes = self._outcomes
        for index in range(len(outcomes) - 1, -1, -1):
            if not outcomes[index]:
                outcomes[index] = True
                self._dead += 1
                return self._judge()
        return self.record(True)  # its good outcome already left the window

    def _judge(self) -> bool:
        if (
            not self.tripped
            and self._seen >= self._min_seen
            and self._dead > self._max_ratio * len(self._outcomes)
        ):
            self.tripped = True
            return True
        return False

    def describe(self) -> str:
        return (
            f"{self._dead} of the last {len(self._outcomes)} records were dead-lettered "
            f"(more than max_ratio {self._max_ratio:g})"
        )


class DeadLetterPath:
    """`on_written(record, stage)` runs once the broker has the copy; `on_tripped(topic)` when
    the topic's breaker trips (readiness is already set then)."""

    def __init__(
        self,
        writer: DeadLetterWriter,
        settings: DeadLetterSettings,
        backoff: Backoff,
        clock: Callable[[], float],
        health: Health,
        *,
        on_written: Callable[[Record, Stage], None],
        on_tripped: Callable[[str], None],
    ) -> None:
        self._writer = writer
        self._settings = settings
        self._breakers: dict[str, DeadLetterBreaker] = {}
        self._retries: RetrySchedule[Callable[[], None]] = RetrySchedule(backoff, clock)
        self._health = health
        self._on_written = on_written
        self._on_tripped = on_tripped

    @property
    def tripped(self) -> frozenset[str]:
        """The topics whose breaker tripped."""
        return frozenset(topic for topic, breaker in self._breakers.items() if breaker.tripped)

    def _breaker(self, topic: str) -> DeadLetterBreaker:
        breaker = self._breakers.get(topic)
        if breaker is None:
            breaker = self._breakers[topic] = DeadLetterBreaker(
                self._settings.window, self._settings.max_ratio
            )
        return breaker

    def passed(self, topic: str) -> None:
        """One record of `topic` transformed into a request body: its breaker counts the good
        ones too."""
        self._breaker(topic).record(False)

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
        breaker = self._breaker(record.topic)
        if breaker.refused() if stage is Stage.UPLOAD else breaker.record(True):
            self._tripped(record.topic)

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

    def _tripped(self, topic: str) -> None:
        log.error(
            "dead-letter breaker tripped; topic paused", topic=topic, detail=self._breakers[topic].describe()
        )
        self._health.set(
            Reason.BREAKER,
            "; ".join(f"topic {t}: {self._breakers[t].describe()}" for t in sorted(self.tripped))
            + "; paused (restart after fixing the cause)",
        )
        self._on_tripped(topic)

    def retry_due(self, now: float) -> None:
        for write in self._retries.due(now):
            write()

    def poll(self) -> None:
        """Serve delivery reports (the `on_done` of earlier writes)."""
        self._writer.poll()

    def flush(self, timeout_s: float) -> None:
        self._writer.flush(timeout_s)
