"""ConsumerLag: `optikpi_consumer_lag` per owned partition, refreshed on the loop's turns.

Lag is the partition's end offset minus its commit position (the first record not yet done). The
end offset is the one last seen in fetched data (see docs/design.md); a paused partition is not
fetched, so for it the broker's answer from `PausedEndOffsets` counts too, whichever is higher.
It is refreshed at most once per interval whatever happens to uploads and commits: the lag alert
must keep moving exactly while uploads fail or the API refuses our credentials, when nothing gets
committed and partitions are paused. A partition that leaves (revoked, lost) takes its series with
it, so no stale lag stays behind on a pod that gave it up.
"""

from __future__ import annotations

from collections.abc import Iterable

from connector.kafka.ports import ConsumerPort, TopicPartition
from connector.pipeline.end_offsets import PausedEndOffsets
from connector.pipeline.offsets import OffsetTracker
from connector.runtime.logs import get_logger
from connector.runtime.metrics import Metrics

log = get_logger(__name__)

LAG_INTERVAL_S = 1.0


class ConsumerLag:
    def __init__(
        self,
        consumer: ConsumerPort,
        tracker: OffsetTracker,
        metrics: Metrics,
        interval_s: float = LAG_INTERVAL_S,
        paused_ends: PausedEndOffsets | None = None,
    ) -> None:
        """`paused_ends`: None (no admin client) leaves a paused partition's lag where it paused."""
        self._consumer = consumer
        self._paused_ends = paused_ends
        self._tracker = tracker
        self._metrics = metrics
        self._interval_s = interval_s
        self._next_at: float | None = None
        self._shown: set[TopicPartition] = set()

    def update(self, now: float) -> None:
        """Refresh every owned partition's lag, at most once per interval."""
        if self._next_at is not None and now < self._next_at:
            return
        self._next_at = now + self._interval_s
        try:
            ends = self._consumer.high_watermarks()
        except Exception as exc:  # lag is informational: it must never stop the loop
            log.debug("cannot read end offsets for the lag metric", error=str(exc))
            return
        if self._paused_ends is not None:
            for tp, asked in self._paused_ends.ends(now).items():
                # Some brokers answer ListOffsets too low (docs/design.md): never below what was fetched.
                ends[tp] = max(asked, ends.get(tp, asked))
        for tp, end in ends.items():
            position = self._tracker.position(tp)
            if position is None:
                continue  # nothing read from it yet: its position is the consumer's, not ours
            self._metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, end - position))
            self._shown.add(tp)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            if tp in self._shown:
                self._shown.discard(tp)
                self._metrics.lag.remove(tp.topic, str(tp.partition))
