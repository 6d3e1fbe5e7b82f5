"""The pause book: which partitions are paused, and for which reasons; and backpressure, the
reason that comes from our own load.

Several conditions pause fetching independently (backpressure, refused credentials, a tripped
dead-letter breaker, a schema registry stall, stopping). A partition stays paused while any of
its reasons holds, so one condition clearing never resumes a partition another one still holds.
"""

from __future__ import annotations

from collections.abc import Iterable

from connector.config.settings import BackpressureSettings
from connector.kafka.ports import ConsumerPort, TopicPartition
from connector.pipeline.offsets import OffsetTracker
from connector.runtime.health import Reason
from connector.runtime.logs import get_logger
from connector.runtime.metrics import Metrics

log = get_logger(__name__)

RESUME_FRACTION = 0.5  # backpressure hysteresis: resume when in-flight falls below half the bound


class PauseBook:
    def __init__(self, consumer: ConsumerPort, tracker: OffsetTracker, metrics: Metrics) -> None:
        self._consumer = consumer
        self._tracker = tracker  # read only: which partitions we own
        self._metrics = metrics
        self._reasons: dict[TopicPartition, set[Reason]] = {}
        self._deferred: list[TopicPartition] = []
        self._fresh: list[TopicPartition] = []  # assigned in this consume(), not reconciled yet

    def pause(self, partitions: Iterable[TopicPartition], reason: Reason, *, defer: bool = False) -> None:
        """`defer`: inside the assign callback the partitions are not assigned yet and a pause would
        be lost; `apply_deferred` pauses them right after consume() returns."""
        newly = []
        for tp in partitions:
            reasons = self._reasons.setdefault(tp, set())
            if not reasons:
                newly.append(tp)
            reasons.add(reason)
        if newly and defer:
            self._deferred.extend(newly)
        elif newly:
            self._consumer.pause(newly)
        self._count()

    def pause_all(self, reason: Reason) -> None:
        """Pause every partition we own."""
        self.pause(self._tracker.partitions(), reason)

    def pause_topic(self, topic: str, reason: Reason) -> None:
        """Pause every partition of `topic` we own."""
        self.pause([tp for tp in self._tracker.partitions() if tp.topic == topic], reason)

    def resume(self, reason: Reason, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Drop `reason` (for all partitions, or these); resume those left without a reason."""
        targets = list(self._reasons) if partitions is None else list(partitions)
        resumed = []
        for tp in targets:
            reasons = self._reasons.get(tp)
            if reasons and reason in reasons:
                reasons.discard(reason)
                if not reasons and self._tracker.owns(tp):
                    resumed.append(tp)
        if resumed:
            self._consumer.resume(resumed)
        self._count()

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """Assigned afresh: the old reasons no longer apply. librdkafka, though, keeps a partition's
        pause through a revoke or a lost membership and the re-assignment after it: a partition
        paused then would come back paused with no reason left to resume it, and never fetch
        again. `apply_deferred` resumes each one no reason holds."""
        self.forget(partitions)
        self._fresh.extend(partitions)

    def apply_deferred(self) -> None:
        if self._deferred:
            owned = [tp for tp in self._deferred if self._reasons.get(tp)]
            self._deferred.clear()
            if owned:
                self._consumer.pause(owned)
        if self._fresh:
            free = [tp for tp in self._fresh if not self._reasons.get(tp) and self._tracker.owns(tp)]
            self._fresh.clear()
            if free:
                self._consumer.resume(free)

    def paused(self) -> set[TopicPartition]:
        """The partitions some reason holds paused."""
        return {tp for tp, reasons in self._reasons.items() if reasons}

    def holds(self, reason: Reason) -> bool:
        """Whether any partition is paused for `reason`."""
        return any(reason in reasons for reasons in self._reasons.values())

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Assigned afresh, revoked or lost: a partition's old reasons no longer apply."""
        for tp in partitions:
            self._reasons.pop(tp, None)
        self._count()

    def _count(self) -> None:
        self._metrics.paused_partitions.set(sum(1 for reasons in self._reasons.values() if reasons))


class Backpressure:
    """Records (and their bytes) consumed but not done yet, against the configured bounds: at a
    bound every partition pauses, and resumes once below RESUME_FRACTION of it. Slow is not
    unready: this never touches readiness.

    Each partition also has a share of the record bound: the bound over the partitions owned, and
    never less than two batches. The consumer hands out records a partition at a time (a fetch
    brings a block of each), and one partition's batches upload one after the other, so without
    shares a slow API lets the first partition's block fill the whole bound while the other
    partitions' lanes stand idle (50 ms of API latency: 13k records/s with one bound, 28k with
    room for every partition). A partition over its share pauses alone until it is below half.
    """

    def __init__(
        self,
        settings: BackpressureSettings,
        pauses: PauseBook,
        metrics: Metrics,
        tracker: OffsetTracker,
        min_share: int,
    ) -> None:
        self._settings = settings
        self._pauses = pauses
        self._metrics = metrics
        self._tracker = tracker
        self._min_share = min_share
        self._over_share: set[TopicPartition] = set()
        self.records = 0
        self.bytes = 0

    def add(self, size: int) -> None:
        self.records += 1
        self.bytes += size

    def remove(self, records: int, size: int) -> None:
        self.records -= records
        self.bytes -= size

    def over(self, fraction: float = 1.0) -> bool:
        return (
            self.records >= self._settings.max_in_flight_records * fraction
            or self.bytes >= self._settings.max_in_flight_bytes * fraction
        )

    def apply(self) -> None:
        self._metrics.in_flight_records.set(self.records)
        self._metrics.in_flight_bytes.set(self.bytes)
        paused = self._pauses.holds(Reason.BACKPRESSURE)
        if not paused and self.over():
            log.info("in-flight bound reached; pausing fetch", records=self.records, bytes=self.bytes)
            self._pauses.pause_all(Reason.BACKPRESSURE)
        elif paused and not self.over(RESUME_FRACTION):
            self._pauses.resume(Reason.BACKPRESSURE)
        self._apply_shares()

    def share(self, owned: int) -> int:
        """Records one of `owned` partitions may have in flight before it pauses alone."""
        return max(self._min_share, self._settings.max_in_flight_records // max(1, owned))

    def _apply_shares(self) -> None:
        owned = self._tracker.partitions()
        share = self.share(len(owned))
        over = []
        under = []
        for tp in owned:
            pending = self._tracker.pending_count(tp)
            if tp not in self._over_share and pending >= share:
                over.append(tp)
            elif tp in self._over_share and pending < share * RESUME_FRACTION:
                under.append(tp)
        self._over_share.difference_update(under)
        self._over_share.intersection_update(owned)  # revoked ones are gone
        if over:
            self._over_share.update(over)
            self._pauses.pause(over, Reason.PARTITION_SHARE)
        if under:
            self._pauses.resume(Reason.PARTITION_SHARE, under)
