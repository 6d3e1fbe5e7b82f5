"""`ApiOutage`: reason `api` on /readyz while uploads to a destination have failed for transient
reasons (connection errors, timeouts, 5xx) for longer than `retry.unready_after_s`.

It only reports: the uploads go on retrying as before. One tracker serves every destination's
client, so the reason names every host that is failing, and clears when the last one answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from connector.runtime.health import Health, Reason


class ApiOutage:
    def __init__(self, health: Health, after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._health = health
        self._after_s = after_s
        self._clock = clock
        self._failing: dict[str, tuple[float, str]] = {}  # host → (failing since, last reason)
        self._lock = threading.Lock()

    def failed(self, host: str, reason: str) -> None:
        """A request to `host` failed for a transient reason."""
        now = self._clock()
        with self._lock:
            since = self._failing.get(host, (now, reason))[0]
            self._failing[host] = (since, reason)
            detail = self._detail(now)
        if detail:
            self._health.set(Reason.API, detail)

    def answered(self, host: str) -> None:
        """`host` answered (whatever it said: only a transient failure counts against it)."""
        with self._lock:
            if self._failing.pop(host, None) is None:
                return
            detail = self._detail(self._clock())
        if detail:
            self._health.set(Reason.API, detail)
        else:
            self._health.clear(Reason.API)

    def _detail(self, now: float) -> str:
        down = [
            f"{host} for {now - since:.0f} s (last: {reason})"
            for host, (since, reason) in sorted(self._failing.items())
            if now - since > self._after_s
        ]
        return "uploads failing: " + "; ".join(down) if down else ""
