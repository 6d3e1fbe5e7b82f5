"""What an upload's answer does to its records (the loop hands every settled upload here).

Accepted records are done: their offsets may be committed and their bytes leave the in-flight
load. Records the API refused go to the dead-letter path at stage UPLOAD, with the API's answer.
Each accepted batch adds one delivery-delay observation, for its oldest record.
"""

from __future__ import annotations

from collections.abc import Callable

from connector.errors import IngestError, Stage
from connector.ingest.client import UploadResult
from connector.kafka.ports import Record
from connector.pipeline.batching import Batch
from connector.pipeline.deadletter_path import DeadLetterPath
from connector.pipeline.offsets import OffsetTracker
from connector.pipeline.pauses import Backpressure
from connector.runtime.metrics import Metrics

__all__ = ["UploadOutcomes"]


class UploadOutcomes:
    def __init__(
        self,
        tracker: OffsetTracker,
        load: Backpressure,
        dead_letters: DeadLetterPath,
        metrics: Metrics,
        stats: dict[str, int],
        wall_clock: Callable[[], float],
    ) -> None:
        self._tracker = tracker
        self._load = load
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._stats = stats  # the pipeline's counters: "accepted" is counted here
        self._wall_clock = wall_clock  # Kafka timestamps are wall-clock time

    def uploaded(self, batch: Batch, endpoint: str, result: UploadResult) -> None:
        if result.accepted:
            self._observe_delivery(batch, endpoint)
        if not result.rejected:  # the usual case: the whole batch is done at once
            count, size = self._tracker.done_many(item.record for item in batch.items)
            self._load.remove(count, size)
            self._stats["accepted"] += count
            return
        rejected = {r.index: r for r in result.rejected}
        for index, item in enumerate(batch.items):
            if not self._tracker.is_pending(item.record.tp, item.record.offset):
                continue  # its partition was revoked or lost meanwhile: the new owner handles it
            rejection = rejected.get(index)
            if rejection is None:
                self._stats["accepted"] += 1
                self.done(item.record)
            else:
                self._dead_letters.send(
                    item.record,
                    Stage.UPLOAD,
                    "IngestRejected",
                    str(IngestError(rejection.message)),
                    endpoint,
                    http_status=rejection.status,
                    http_response=rejection.response,
                    trace_id=batch.trace_id,
                )

    def done(self, record: Record) -> None:
        size = self._tracker.done(record.tp, record.offset)
        if size is not None:
            self._load.remove(1, size)

    def _observe_delivery(self, batch: Batch, endpoint: str) -> None:
        """One observation per accepted batch, for its oldest record: nothing per record, and the
        oldest record is the one the dashboard's p95/p99 are about."""
        oldest = min((i.record.timestamp_ms for i in batch.items if i.record.timestamp_ms), default=None)
        if oldest is not None:
            delay = max(0.0, self._wall_clock() - oldest / 1000.0)
            self._metrics.delivery_seconds.labels(endpoint).observe(delay)
