"""Readiness and liveness, as the pipeline reports them to /readyz and /healthz."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum

from connector.runtime.logs import get_logger

log = get_logger(__name__)


class Reason(StrEnum):
    """Why the connector is not ready (the keys /readyz reports and the `reason` label of
    optikpi_unready), and why the pipeline pauses partitions. The values are part of that output:
    never rename one."""

    STARTING = "starting"
    STOPPING = "stopping"
    CREDENTIALS = "credentials"  # the ingest API refuses our credentials
    BREAKER = "breaker"  # too many records dead-lettered: the breaker stopped consumption
    REGISTRY = "registry"  # the schema registry is unreachable
    DEAD_LETTER = "dead_letter"  # cannot write to the dead-letter topic
    BACKPRESSURE = "backpressure"  # pauses only: a slow API makes us slow, not unready
    PARTITION_SHARE = "partition_share"  # pauses only: one partition holds more than its share
    TOPIC = "topic"  # a mapped topic does not exist (re-checked until it does)
    KAFKA = "kafka"  # no broker has answered for a few seconds
    API = "api"  # uploads to a destination have failed transiently for longer than retry.unready_after_s
    MAPPING = "mapping"  # a mapping cannot apply to a writer schema of its topic: that topic paused


class Health:
    """Ready when no reason against it is set. Each reason is logged once when it appears and
    once when it clears, so a 3 a.m. reader sees why the pod went unready and when it recovered."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, stall_after_s: float = 120.0) -> None:
        self._clock = clock
        self._stall_after_s = stall_after_s
        self._reasons: dict[Reason, str] = {Reason.STARTING: "the consumer has not joined its group yet"}
        self._lock = threading.Lock()
        self._last_beat = clock()
        self.on_change: Callable[[Reason, bool], None] | None = None

    def set(self, reason: Reason, message: str, *, expected: bool = False) -> None:
        """`expected`: a planned state (shutting down) that is logged at info, not error."""
        message = " ".join(message.split())  # /readyz gives one line per reason
        with self._lock:
            new = reason not in self._reasons
            self._reasons[reason] = message
        if new:
            (log.info if expected else log.error)("connector not ready", reason=reason, detail=message)
            if self.on_change:
                self.on_change(reason, True)

    def clear(self, reason: Reason) -> None:
        with self._lock:
            had = self._reasons.pop(reason, None) is not None
        if had:
            log.info("readiness restored", reason=reason)
            if self.on_change:
                self.on_change(reason, False)

    def has(self, reason: Reason) -> bool:
        with self._lock:
            return reason in self._reasons

    @property
    def ready(self) -> bool:
        with self._lock:
            return not self._reasons

    def reasons(self) -> dict[Reason, str]:
        with self._lock:
            return dict(self._reasons)

    def beat(self) -> None:
        self._last_beat = self._clock()

    @property
    def alive(self) -> bool:
        """False when the main loop has not come round for a long time (a hang, not a slow API)."""
        return self._clock() - self._last_beat < self._stall_after_s
