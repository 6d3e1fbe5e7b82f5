"""When offsets are committed: at most once an interval, from the last commit of finished work.

Only positions the `OffsetTracker` calls done are ever committed; this module decides *when*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from connector.errors import CommitError
from connector.kafka.ports import ConsumerPort, TopicPartition
from connector.pipeline.offsets import OffsetTracker
from connector.runtime.logs import get_logger
from connector.runtime.metrics import Metrics

log = get_logger(__name__)


class OffsetCommitter:
    def __init__(
        self,
        consumer: ConsumerPort,
        tracker: OffsetTracker,
        metrics: Metrics,
        clock: Callable[[], float],
        interval_s: float,
    ) -> None:
        self._consumer = consumer
        self._tracker = tracker
        self._metrics = metrics
        self._clock = clock
        self._interval_s = interval_s
        self._last = clock()
        self.commits = 0  # successful commits since start

    def due(self, now: float) -> None:
        """Commit everything done, if an interval has passed since the last commit of done work."""
        if now - self._last >= self._interval_s:
            self.commit(None)

    def commit(self, only: Iterable[TopicPartition] | None) -> None:
        positions = self._tracker.to_commit(only)
        if not positions:
            return
        # The interval runs from the last commit of done work, not the last look nor a commit of
        # where fetching started: the first work done after an idle spell (the group join, a
        # pause) is committed in the same turn.
        if self._tracker.any_done(positions):
            self._last = self._clock()
        try:
            self._consumer.commit(positions)
        except CommitError as exc:
            self._last = self._clock()  # retried on the interval, not on every turn
            self._metrics.commits.labels("failed").inc()
            log.warning("offset commit failed; will retry", error=str(exc))
            return
        self._tracker.committed(positions)
        self.commits += 1
        self._metrics.commits.labels("ok").inc()
