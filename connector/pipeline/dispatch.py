"""The dispatcher: from mapped records to uploads, and their outcomes back to the loop.

Each record's JSON joins the accumulator of its (destination, endpoint, lane); sealed batches wait
in their lane's dispatch queue until no earlier batch holding their partitions is in flight, then
upload on the executor's worker threads. Outcomes come back through a queue that only the loop
thread reads (`settle`), so nothing else is shared between threads.

A batch the API refused for credentials is never a data problem: it stays in flight, parked (its
partitions blocked, nothing committed past it), and probes the API again on the retry schedule,
while nothing else is sent and every partition is paused. All parked batches wait on that one
condition: the first accepted upload resumes every one of them at once. A parked batch loses the
records of partitions revoked meanwhile (and is gone once it holds none): their next owner sends
them, and a probe must not send them a second time.
"""

from __future__ import annotations

import queue
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Protocol

from connector.config.settings import BatchingSettings
from connector.errors import CredentialsError, PipelineStopped, RetryBudgetExceeded, UploadCancelled
from connector.ingest.backoff import Backoff
from connector.ingest.client import UploadResult
from connector.kafka.ports import Record, TopicPartition
from connector.pipeline.batching import Batch, BatchAccumulator, BatchItem, BatchKey, DispatchQueue
from connector.pipeline.pauses import PauseBook
from connector.pipeline.retry import RetrySchedule
from connector.runtime.health import Health, Reason
from connector.runtime.logs import get_logger
from connector.runtime.tracing import new_trace_id, trace_id_from

log = get_logger(__name__)

UPLOAD_POLL_S = 0.01  # the longest consume() may block while uploads are in flight


class Uploader(Protocol):
    def upload_encoded(
        self, endpoint: str, parts: Sequence[bytes], *, trace_id: str | None = None
    ) -> UploadResult: ...

    def cancel(self) -> None: ...


@dataclass
class _Completion:
    batch: Batch
    result: UploadResult | None
    error: BaseException | None


class Dispatcher:
    def __init__(
        self,
        uploaders: Mapping[str, Uploader],
        executor: Executor,
        batching: BatchingSettings,
        *,
        lanes: Mapping[str, int],
        clock: Callable[[], float],
        health: Health,
        pauses: PauseBook,
        credentials_backoff: Backoff,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._uploaders = uploaders
        self._wake = wake  # called from the upload threads when an upload finishes
        self._executor = executor
        self._batching = batching
        self._lanes = lanes
        self._clock = clock
        self._health = health
        self._pauses = pauses
        self._lane_of: dict[tuple[str, TopicPartition], int] = {}
        self._accumulators: dict[BatchKey, BatchAccumulator] = {}
        self._queues: dict[BatchKey, DispatchQueue] = {}
        self._in_flight: dict[int, Batch] = {}
        self._completions: queue.SimpleQueue[_Completion] = queue.SimpleQueue()
        self._refused: RetrySchedule[Batch] = RetrySchedule(credentials_backoff, clock)
        # Partitions revoked while a batch holding them was being sent: should that batch come back
        # refused, it parks without their records.
        self._revoked_in_flight: dict[int, set[TopicPartition]] = {}

    # ------------------------------------------------------------------ batching
    def add(self, record: Record, destination: str, endpoint: str, body: bytes) -> None:
        key = (destination, endpoint, self._lane(destination, record.tp))
        acc = self._accumulators.get(key)
        if acc is None:
            acc = self._accumulators[key] = BatchAccumulator(
                key,
                self._batching.max_records,
                self._batching.max_bytes,
                self._batching.max_wait_ms / 1000.0,
                self._clock,
            )
            self._queues[key] = DispatchQueue()
        sealed = acc.add(BatchItem(record, body))
        if sealed is not None:
            self._queues[key].push(sealed)

    def _lane(self, destination: str, tp: TopicPartition) -> int:
        """Each partition always batches in the same lane of its destination. Lanes hold
        disjoint partitions, so their batches may be in flight together without breaking the
        order within a partition: that is where concurrency towards one endpoint comes from."""
        lane = self._lane_of.get((destination, tp))
        if lane is None:
            lanes = max(1, self._lanes.get(destination, 1))
            lane = self._lane_of[(destination, tp)] = (zlib.crc32(tp.topic.encode()) + tp.partition) % lanes
        return lane

    def seal_due(self, now: float) -> None:
        """Seal the open batches whose oldest record has waited max_wait."""
        for acc in self._accumulators.values():
            batch = acc.take_if_due(now)
            if batch is not None:
                self._queues[acc.key].push(batch)

    def seal_all(self) -> None:
        """Seal every open batch, due or not (a revoke, a shutdown)."""
        for acc in self._accumulators.values():
            batch = acc.flush()
            if batch is not None:
                self._queues[acc.key].push(batch)

    def drop_partitions(self, gone: set[TopicPartition]) -> None:
        """Forget the not yet sent records of these partitions. Batches in flight still complete;
        the loop ignores their records then."""
        for acc in self._accumulators.values():
            acc.drop_partitions(gone)
        for dq in self._queues.values():
            dq.drop_partitions(gone)
        parked = {batch.id for batch in self._refused.waiting()}
        for batch in self._refused.waiting():
            self._unpark_partitions(batch, gone)
        for batch_id, batch in self._in_flight.items():
            if batch_id not in parked and not gone.isdisjoint(batch.partitions):
                self._revoked_in_flight.setdefault(batch_id, set()).update(gone)

    def _unpark_partitions(self, batch: Batch, gone: set[TopicPartition]) -> None:
        """Take the records of `gone` out of a parked (not in flight) batch; forget it when empty."""
        leaving = batch.partitions & gone
        if not leaving:
            return
        batch.items = [item for item in batch.items if item.record.tp not in leaving]
        batch.body_bytes = 1 + sum(len(item.body) + 1 for item in batch.items)
        self._queues[batch.key].release(leaving)
        if not batch.items:
            self._refused.remove(batch)
            self._in_flight.pop(batch.id, None)

    @property
    def sending(self) -> bool:
        """Uploads are out (parked batches do not count: they wait for their probe anyway)."""
        return len(self._in_flight) > len(self._refused)

    def poll_timeout(self, longest: float) -> float:
        """How long consume() may block: no longer than until the next batch is due."""
        timeout = longest
        now = self._clock()
        probe_at = self._refused.due_at()
        if probe_at is not None:
            timeout = min(timeout, max(0.0, probe_at - now))
        for acc in self._accumulators.values():
            due = acc.due_at()
            if due is not None:
                timeout = min(timeout, max(0.0, due - now))
        sending = self.sending
        waiting = any(self._queues.values()) and not self._health.has(Reason.CREDENTIALS)
        if sending or waiting:
            # consume() cannot be woken when an upload finishes: blocking for long here would hold
            # the next batch of the same partitions back, and cap throughput at a batch per turn.
            timeout = min(timeout, UPLOAD_POLL_S)
        if not self._completions.empty():
            timeout = 0.0
        return timeout

    # ------------------------------------------------------------------ uploads
    def dispatch(self) -> None:
        if self._health.has(Reason.CREDENTIALS):
            return  # stop sending: only the parked batches probe the API (probe_refused)
        for key, dq in self._queues.items():
            destination, endpoint, _ = key
            for batch in dq.ready():
                self._submit(destination, endpoint, batch)

    def probe_refused(self, now: float) -> None:
        for batch in self._refused.due(now):
            destination, endpoint, _ = batch.key
            log.info("probing the ingest API again", destination=destination, endpoint=endpoint)
            self._submit(destination, endpoint, batch)

    def _submit(self, destination: str, endpoint: str, batch: Batch) -> None:
        self._in_flight[batch.id] = batch
        uploader = self._uploaders[destination]
        parts = [item.body for item in batch.items]
        if batch.trace_id is None:
            # The producer's trace when the first record carries one: the batch joins that trace.
            batch.trace_id = trace_id_from(batch.items[0].record.headers) or new_trace_id()

        def done(future: Future[UploadResult]) -> None:
            exc = future.exception()
            self._completions.put(_Completion(batch, None if exc else future.result(), exc))
            self._wake()

        future = self._executor.submit(uploader.upload_encoded, endpoint, parts, trace_id=batch.trace_id)
        future.add_done_callback(done)

    def has_completions(self) -> bool:
        return not self._completions.empty()

    def settle(self, on_uploaded: Callable[[Batch, str, UploadResult], None]) -> None:
        """Take in the finished uploads: `on_uploaded(batch, endpoint, result)` for each that got
        an answer. Raises PipelineStopped on a failure the pipeline cannot get past."""
        while True:
            try:
                completion = self._completions.get_nowait()
            except queue.Empty:
                return
            self._complete(completion, on_uploaded)

    def _complete(self, c: _Completion, on_uploaded: Callable[[Batch, str, UploadResult], None]) -> None:
        batch = c.batch
        destination, endpoint, _ = batch.key
        revoked = self._revoked_in_flight.pop(batch.id, set())
        if isinstance(c.error, CredentialsError):
            delay = self._refused.schedule(batch)
            self._unpark_partitions(batch, revoked)
            self._health.set(Reason.CREDENTIALS, str(c.error))
            self._pauses.pause_all(Reason.CREDENTIALS)
            log.error(
                "ingest API refused our credentials; paused, nothing committed or dead-lettered",
                destination=destination,
                endpoint=endpoint,
                status=c.error.status,
                retry_in_s=round(delay, 3),
            )
            return
        self._in_flight.pop(batch.id, None)
        self._queues[batch.key].finished(batch)
        if isinstance(c.error, UploadCancelled):
            return  # shutting down: these records stay uncommitted
        if isinstance(c.error, RetryBudgetExceeded):
            raise PipelineStopped(f"giving up after the retry budget: {c.error}")
        if c.error is not None:
            raise PipelineStopped(f"upload failed unexpectedly: {type(c.error).__name__}: {c.error}")
        assert c.result is not None
        if self._health.has(Reason.CREDENTIALS):
            self._refused.succeeded()
            self._health.clear(Reason.CREDENTIALS)
            self._pauses.resume(Reason.CREDENTIALS)
        on_uploaded(batch, endpoint, c.result)
