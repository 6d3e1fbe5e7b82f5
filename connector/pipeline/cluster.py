"""`ClusterWatch`: asks the cluster for its topics every few seconds, on its own thread, and says
on /readyz what it found: reason `topic` while a mapped topic does not exist, reason `kafka` while no
broker has answered for longer than `silent_after_s`. Both clear on the first answer that says so.

A thread of its own because a metadata request waits out its timeout when no broker answers, and
the consumer loop must not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from connector.errors import KafkaPortError
from connector.kafka.config import broker_hosts
from connector.kafka.ports import AdminPort
from connector.runtime.health import Health, Reason
from connector.runtime.logs import get_logger

log = get_logger(__name__)

CHECK_INTERVAL_S = 3.0
SILENT_AFTER_S = 6.0


class ClusterWatch:
    def __init__(
        self,
        admin: AdminPort,
        topics: Sequence[str],
        health: Health,
        bootstrap_servers: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = CHECK_INTERVAL_S,
        silent_after_s: float = SILENT_AFTER_S,
    ) -> None:
        self._admin = admin
        self._topics = sorted(set(topics))
        self._health = health
        self._hosts = broker_hosts(bootstrap_servers)
        self._clock = clock
        self._interval_s = interval_s
        self._silent_after_s = silent_after_s
        self._last_answer = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """One round: ask for the topics and set or clear the two reasons."""
        try:
            known = self._admin.list_topics(min(self._interval_s, self._silent_after_s))
        except KafkaPortError as exc:
            silent = self._clock() - self._last_answer
            if silent > self._silent_after_s:
                self._health.set(
                    Reason.KAFKA,
                    f"no answer from kafka.bootstrap_servers {self._hosts} for {silent:.0f} s: {exc}",
                )
            return
        self._last_answer = self._clock()
        self._health.clear(Reason.KAFKA)
        missing = [topic for topic in self._topics if topic not in known]
        if missing:
            self._health.set(Reason.TOPIC, f"mapped topic does not exist: {', '.join(missing)}")
        else:
            self._health.clear(Reason.TOPIC)

    def start(self) -> ClusterWatch:
        self._thread = threading.Thread(target=self._run, name="cluster-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval_s + self._silent_after_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # a readiness report must never take the connector down
                log.exception("cluster check failed")
            self._stop.wait(self._interval_s)
