"""The consumer loop, top-down: poll → decode → map → validate → batch → upload → commit.

Threading: one thread (the caller's) owns the consumer, the dead-letter producer, the offset
tracker and every data structure here; rebalance callbacks also run on it, inside `consume`.
Only the HTTP uploads run on worker threads, and they report back through a queue. Nothing is
shared without going through that queue, so there are no locks on the hot path.
"""

from __future__ import annotations

import queue
import random
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Protocol

from connector.avro.decoding import DecodeError, RecordDecoder, RegistryUnavailable
from connector.config.settings import BackpressureSettings, BatchingSettings, DeadLetterSettings
from connector.ingest.backoff import Backoff
from connector.ingest.client import (
    CredentialsError,
    IngestError,
    RetryBudgetExceeded,
    UploadCancelled,
    UploadResult,
)
from connector.ingest.jsjson import NonFiniteNumberError, dumps_bytes
from connector.ingest.models import format_errors, validate_record
from connector.kafka.ports import (
    CommitError,
    ConsumerPort,
    DeliveryError,
    FatalKafkaError,
    Record,
    TopicPartition,
)
from connector.mapping.compiled import MappingError, TopicMapping
from connector.pipeline.batching import Batch, BatchAccumulator, BatchItem, BatchKey, DispatchQueue
from connector.pipeline.deadletter import DeadLetterWriter, Stage
from connector.pipeline.offsets import OffsetTracker
from connector.runtime.health import DeadLetterBreaker, Health, Reason
from connector.runtime.logs import get_logger
from connector.runtime.metrics import Metrics

log = get_logger(__name__)

POLL_RECORDS = 500
POLL_TIMEOUT_S = 0.2
UPLOAD_POLL_S = 0.01  # the longest consume() may block while uploads are in flight
COMMIT_INTERVAL_S = 1.0
# First and longest wait (jittered: Backoff.equal_jitter) between probes while the API refuses us.
CREDENTIALS_RETRY_S = (5.0, 60.0)
REGISTRY_RETRY_S = (1.0, 30.0)
DLQ_RETRY_S = (1.0, 30.0)
REBALANCE_DRAIN_S = 10.0
RESUME_FRACTION = 0.5  # backpressure hysteresis: resume when in-flight falls below half the bound


class Uploader(Protocol):
    def upload_encoded(self, endpoint: str, parts: Sequence[bytes]) -> UploadResult: ...

    def cancel(self) -> None: ...


@dataclass(frozen=True)
class Route:
    """Everything the pipeline needs to process one topic."""

    mapping: TopicMapping
    decoder: RecordDecoder


@dataclass
class _Stall:
    """Records of one partition waiting for the schema registry, in offset order."""

    records: deque[Record] = field(default_factory=deque)
    retry_at: float = 0.0
    attempt: int = 0


@dataclass
class _Completion:
    batch: Batch
    result: UploadResult | None
    error: BaseException | None


class PipelineStopped(Exception):
    """A fatal condition: the loop stops without committing the work it could not finish."""


class Pipeline:
    def __init__(
        self,
        consumer: ConsumerPort,
        dead_letters: DeadLetterWriter,
        uploaders: Mapping[str, Uploader],
        routes: Mapping[str, Route],
        *,
        batching: BatchingSettings,
        dead_letter: DeadLetterSettings,
        backpressure: BackpressureSettings,
        executor: Executor,
        shutdown_timeout_s: float = 25.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        metrics: Metrics | None = None,
        health: Health | None = None,
        commit_interval_s: float = COMMIT_INTERVAL_S,
        credentials_retry_s: tuple[float, float] = CREDENTIALS_RETRY_S,
        lanes: Mapping[str, int] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._consumer = consumer
        self._dlq = dead_letters
        self._uploaders = uploaders
        self._routes = routes
        self._batching = batching
        self._bp = backpressure
        self._executor = executor
        self._shutdown_timeout_s = shutdown_timeout_s
        self._clock = clock
        self._sleep = sleep
        self.metrics = metrics or Metrics()
        self.health = health or Health(clock)
        self._commit_interval_s = commit_interval_s
        rng = rng or random.Random()
        self._credentials_backoff = Backoff(credentials_retry_s, rng)
        self._registry_backoff = Backoff(REGISTRY_RETRY_S, rng)
        self._dlq_backoff = Backoff(DLQ_RETRY_S, rng)

        self._tracker = OffsetTracker()
        self._lanes = dict(lanes or {})
        self._lane_of: dict[tuple[str, TopicPartition], int] = {}
        self._accumulators: dict[BatchKey, BatchAccumulator] = {}
        self._queues: dict[BatchKey, DispatchQueue] = {}
        self._in_flight: dict[int, Batch] = {}
        self._completions: queue.SimpleQueue[_Completion] = queue.SimpleQueue()
        self._credential_retries: list[tuple[float, Batch]] = []
        self._credential_attempt = 0
        self._dlq_retries: list[tuple[float, Callable[[], None]]] = []
        self._dlq_attempt = 0
        self._stalls: dict[TopicPartition, _Stall] = {}
        self._breaker = DeadLetterBreaker(dead_letter.window, dead_letter.max_ratio)
        self._paused: dict[TopicPartition, set[Reason]] = {}
        self._deferred_pauses: list[TopicPartition] = []
        self._in_flight_records = 0
        self._in_flight_bytes = 0
        self._last_commit = clock()
        self._stop = threading.Event()
        self._fatal: str | None = None
        self.stats: dict[str, int] = {"consumed": 0, "accepted": 0, "dead_lettered": 0, "commits": 0}
        self.dead_lettered_by_stage: dict[str, int] = {s.value: 0 for s in Stage}

    # ------------------------------------------------------------------ public
    def request_stop(self) -> None:
        """Safe to call from a signal handler or another thread."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, until: Callable[[Pipeline], bool] | None = None) -> int:
        """Consume until a stop is requested (or `until(self)` is true); drain, commit, leave.
        Returns the process exit code."""
        topics = sorted(self._routes)
        self._consumer.subscribe(topics, self)
        log.info("consumer started", topics=topics)
        try:
            while not self._stop.is_set() and self._fatal is None:
                self.step()
                if until is not None and until(self):
                    break
        except FatalKafkaError as exc:
            self._fatal = f"Kafka client failed: {exc}"
        except PipelineStopped as exc:
            self._fatal = str(exc)
        except Exception as exc:  # a bug must still leave the group without committing unfinished work
            log.exception("unexpected error in the consumer loop")
            self._fatal = f"unexpected error: {type(exc).__name__}: {exc}"
        return self.shutdown()

    def step(self) -> None:
        """One turn of the loop: fetch, process, send, settle, commit."""
        self.health.beat()
        timeout = self._poll_timeout()
        records = self._consumer.consume(POLL_RECORDS, timeout)
        if self._deferred_pauses:
            owned = [tp for tp in self._deferred_pauses if self._paused.get(tp)]
            self._deferred_pauses.clear()
            if owned:
                self._consumer.pause(owned)
        for record in records:
            self._accept(record)
        if records:
            # One metric update per topic and poll, not per record (the hot path).
            for topic, count in Counter(r.topic for r in records).items():
                self.metrics.records_consumed.labels(topic).inc(count)
        self._service()

    # ------------------------------------------------------------------ rebalance callbacks
    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            self._tracker.assign(tp)
            self._paused.pop(tp, None)
        log.info("partitions assigned", partitions=[str(tp) for tp in partitions])
        self.health.clear(Reason.STARTING)
        for reason in (Reason.CREDENTIALS, Reason.BREAKER, Reason.BACKPRESSURE):
            if self._pause_reason_active(reason):
                # Inside the assign callback the partitions are not assigned yet and a pause
                # would be lost: apply it right after consume() returns.
                self._pause(partitions, reason, defer=True)

    def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        """Finish what the revoked partitions have in flight (within a deadline), commit what is
        done, then let them go. Anything unfinished is abandoned uncommitted: the next owner
        re-reads it (at-least-once)."""
        revoked = [tp for tp in partitions if self._tracker.owns(tp)]
        if not revoked:
            return
        log.info("partitions revoked", partitions=[str(tp) for tp in revoked])
        for acc in self._accumulators.values():
            batch = acc.flush()
            if batch is not None:
                self._queues[acc.key].push(batch)
        deadline = self._clock() + min(REBALANCE_DRAIN_S, self._shutdown_timeout_s)
        try:
            self._drain(revoked, deadline)
            self._commit(revoked)
        finally:
            # Even when the drain stops the pipeline: the partitions leave with this callback,
            # and a later commit for them would overwrite their next owner's progress.
            self._forget(revoked)

    def on_lost(self, partitions: Sequence[TopicPartition]) -> None:
        """Someone else owns them already: committing now could overwrite their progress."""
        log.warning("partitions lost", partitions=[str(tp) for tp in partitions])
        self._forget([tp for tp in partitions if self._tracker.owns(tp)])

    # ------------------------------------------------------------------ intake
    def _accept(self, record: Record) -> None:
        tp = record.tp
        size = len(record.value or b"") + len(record.key or b"") + 64
        if not self._tracker.add(tp, record.offset, size):
            return  # a re-delivery of a record already being handled
        self._in_flight_records += 1
        self._in_flight_bytes += size
        self.stats["consumed"] += 1
        stall = self._stalls.get(tp)
        if stall is not None:
            stall.records.append(record)  # keep the partition's order behind the stalled record
            return
        self._process(record)

    def _process(self, record: Record) -> bool:
        """Decode, map, validate, batch. False when the registry is unreachable (record not taken)."""
        route = self._routes[record.topic]
        mapping = route.mapping
        try:
            decoded = route.decoder.decode(record.value)
        except RegistryUnavailable as exc:
            self._stall(record, str(exc))
            return False
        except DecodeError as exc:
            self._dead_letter(record, Stage.DECODE, exc, mapping.endpoint)
            return True
        try:
            mapped = mapping.map(decoded)
        except MappingError as exc:
            self._dead_letter(record, Stage.MAP, exc, mapping.endpoint)
            return True
        errors = validate_record(mapping.endpoint, mapped)
        if errors:
            self._dead_letter(
                record,
                Stage.VALIDATE,
                ValueError(format_errors(errors)),
                mapping.endpoint,
                error_class="ValidationError",
            )
            return True
        try:
            body = dumps_bytes(mapped)
        except (NonFiniteNumberError, TypeError) as exc:
            self._dead_letter(record, Stage.MAP, exc, mapping.endpoint)
            return True
        key = (mapping.destination, mapping.endpoint, self._lane(mapping.destination, record.tp))
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
        return True

    def _lane(self, destination: str, tp: TopicPartition) -> int:
        """Each partition always batches in the same lane of its destination. Lanes hold
        disjoint partitions, so their batches may be in flight together without breaking the
        order within a partition: that is where concurrency towards one endpoint comes from."""
        lane = self._lane_of.get((destination, tp))
        if lane is None:
            lanes = max(1, self._lanes.get(destination, 1))
            lane = self._lane_of[(destination, tp)] = (zlib.crc32(tp.topic.encode()) + tp.partition) % lanes
        return lane

    # ------------------------------------------------------------------ the service loop
    def _service(self) -> None:
        now = self._clock()
        for acc in self._accumulators.values():
            batch = acc.take_if_due(now)
            if batch is not None:
                self._queues[acc.key].push(batch)
        self._retry_stalls(now)
        self._retry_credentials(now)
        self._retry_dead_letters(now)
        self._dispatch()
        self._settle()
        self._dlq.poll()
        self._apply_backpressure()
        if now - self._last_commit >= self._commit_interval_s:
            self._commit(None)

    def _poll_timeout(self) -> float:
        """Sleep in consume() no longer than until the next batch is due."""
        timeout = POLL_TIMEOUT_S
        now = self._clock()
        for acc in self._accumulators.values():
            due = acc.due_at()
            if due is not None:
                timeout = min(timeout, max(0.0, due - now))
        sending = len(self._in_flight) > len(self._credential_retries)  # parked batches wait anyway
        waiting = any(self._queues.values()) and not self.health.has(Reason.CREDENTIALS)
        if sending or waiting:
            # consume() cannot be woken when an upload finishes: blocking for long here would hold
            # the next batch of the same partitions back, and cap throughput at a batch per turn.
            timeout = min(timeout, UPLOAD_POLL_S)
        if not self._completions.empty():
            timeout = 0.0
        return timeout

    def _dispatch(self) -> None:
        if self.health.has(Reason.CREDENTIALS):
            return  # stop sending: only the parked batches probe the API (_retry_credentials)
        for key, dq in self._queues.items():
            destination, endpoint, _ = key
            for batch in dq.ready():
                self._submit(destination, endpoint, batch)

    def _submit(self, destination: str, endpoint: str, batch: Batch) -> None:
        self._in_flight[batch.id] = batch
        uploader = self._uploaders[destination]
        parts = [item.body for item in batch.items]

        def done(future: Future[UploadResult]) -> None:
            exc = future.exception()
            self._completions.put(_Completion(batch, None if exc else future.result(), exc))

        self._executor.submit(uploader.upload_encoded, endpoint, parts).add_done_callback(done)

    def _settle(self) -> None:
        while True:
            try:
                completion = self._completions.get_nowait()
            except queue.Empty:
                return
            self._complete(completion)

    def _complete(self, c: _Completion) -> None:
        batch = c.batch
        destination, endpoint, _ = batch.key
        if isinstance(c.error, CredentialsError):
            # Never a data problem: keep the whole batch in flight (its partitions stay blocked,
            # nothing is committed past it) and probe again later.
            delay = self._credentials_backoff.equal_jitter(self._credential_attempt)
            self._credential_attempt += 1
            self._credential_retries.append((self._clock() + delay, batch))
            self.health.set(Reason.CREDENTIALS, str(c.error))
            self._pause(self._tracker.partitions(), Reason.CREDENTIALS)
            log.error(
                "ingest API refused our credentials; paused, nothing committed or dead-lettered",
                destination=destination,
                status=c.error.status,
                retry_in_s=delay,
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
        if self.health.has(Reason.CREDENTIALS):
            self._credential_attempt = 0
            self.health.clear(Reason.CREDENTIALS)
            self._unpause(Reason.CREDENTIALS)
        rejected = {r.index: r for r in c.result.rejected}
        for index, item in enumerate(batch.items):
            if not self._tracker.is_pending(item.record.tp, item.record.offset):
                continue  # its partition was revoked or lost meanwhile: the new owner handles it
            rejection = rejected.get(index)
            if rejection is None:
                self.stats["accepted"] += 1
                self._breaker.record(False)
                self._done(item.record)
            else:
                self._dead_letter(
                    item.record,
                    Stage.UPLOAD,
                    IngestError(rejection.message),
                    endpoint,
                    error_class="IngestRejected",
                    http_status=rejection.status,
                    http_response=rejection.response,
                )

    def _retry_credentials(self, now: float) -> None:
        due = [b for t, b in self._credential_retries if t <= now]
        if not due:
            return
        self._credential_retries = [(t, b) for t, b in self._credential_retries if t > now]
        for batch in due:
            destination, endpoint, _ = batch.key
            log.info("probing the ingest API again", destination=destination, endpoint=endpoint)
            self._submit(destination, endpoint, batch)

    # ------------------------------------------------------------------ registry stalls
    def _stall(self, record: Record, reason: str) -> None:
        stall = self._stalls.setdefault(record.tp, _Stall())
        stall.records.appendleft(record)
        stall.retry_at = self._clock() + self._registry_backoff.equal_jitter(stall.attempt)
        stall.attempt += 1
        self._pause([record.tp], Reason.REGISTRY)
        self.health.set(Reason.REGISTRY, f"schema registry unreachable: {reason}")

    def _retry_stalls(self, now: float) -> None:
        for tp, stall in list(self._stalls.items()):
            if stall.retry_at > now:
                continue
            pending = stall.records
            while pending:
                record = pending.popleft()
                if not self._process(record):
                    # _process put it back at the head of this same stall, ahead of the rest and
                    # with the next (longer) wait: the attempt count must survive the retry.
                    break
            else:
                del self._stalls[tp]
                self._unpause(Reason.REGISTRY, [tp])
        if not self._stalls:
            self.health.clear(Reason.REGISTRY)

    # ------------------------------------------------------------------ dead letters
    def _dead_letter(
        self,
        record: Record,
        stage: Stage,
        exc: BaseException,
        endpoint: str | None,
        *,
        error_class: str | None = None,
        http_status: int | None = None,
        http_response: str | None = None,
    ) -> None:
        message = str(exc) or type(exc).__name__
        cls = error_class or type(exc).__name__
        log.warning(
            "dead-lettering record",
            stage=stage.value,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=message[:300],
        )
        if self._breaker.record(True):
            self.health.set(
                Reason.BREAKER,
                f"more than {self._breaker.limit:.0f} of the last {self._breaker.window} records "
                "were dead-lettered; consumption stopped (restart after fixing the cause)",
            )
            self._pause(self._tracker.partitions(), Reason.BREAKER)

        def write() -> None:
            try:
                self._dlq.write(
                    record,
                    stage,
                    cls,
                    message,
                    on_done,
                    endpoint=endpoint,
                    http_status=http_status,
                    http_response=http_response,
                )
            except Exception as exc:  # queue full, producer failed: same as a failed delivery
                on_done(DeliveryError(f"{type(exc).__name__}: {exc}"))

        def on_done(err: DeliveryError | None) -> None:
            if err is None:
                self._dlq_attempt = 0
                self.health.clear(Reason.DEAD_LETTER)
                self.stats["dead_lettered"] += 1
                self.dead_lettered_by_stage[stage.value] += 1
                self.metrics.dead_lettered.labels(stage.value, record.topic).inc()
                self._done(record)
                return
            # The poison must not be lost: the record stays pending, so its partition's commit
            # position cannot pass it, and we try again.
            delay = self._dlq_backoff.equal_jitter(self._dlq_attempt)
            self._dlq_attempt += 1
            self.health.set(Reason.DEAD_LETTER, f"cannot write to the dead-letter topic: {err}")
            self._dlq_retries.append((self._clock() + delay, write))

        write()

    def _retry_dead_letters(self, now: float) -> None:
        due = [w for t, w in self._dlq_retries if t <= now]
        if due:
            self._dlq_retries = [(t, w) for t, w in self._dlq_retries if t > now]
            for write in due:
                write()

    # ------------------------------------------------------------------ offsets
    def _done(self, record: Record) -> None:
        size = self._tracker.done(record.tp, record.offset)
        if size is not None:
            self._in_flight_records -= 1
            self._in_flight_bytes -= size

    def _settle_quietly(self) -> None:
        # Uploads that finished while we were cancelling still count.
        try:
            self._settle()
            self._dlq.poll()
        except PipelineStopped as exc:
            self._fatal = self._fatal or str(exc)

    def _commit(self, only: Iterable[TopicPartition] | None) -> None:
        self._last_commit = self._clock()
        positions = self._tracker.to_commit(only)
        if not positions:
            return
        try:
            self._consumer.commit(positions)
        except CommitError as exc:
            self.metrics.commits.labels("failed").inc()
            log.warning("offset commit failed; will retry", error=str(exc))
            return
        self._tracker.committed(positions)
        self.stats["commits"] += 1
        self.metrics.commits.labels("ok").inc()
        self._update_lag(positions)

    def _update_lag(self, positions: Mapping[TopicPartition, int]) -> None:
        try:
            ends = self._consumer.high_watermarks()
        except Exception:  # lag is informational; never let it break a commit
            return
        for tp, position in positions.items():
            end = ends.get(tp)
            if end is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, end - position))

    def _forget(self, partitions: Sequence[TopicPartition]) -> None:
        gone = set(partitions)
        for tp in gone:
            self._stalls.pop(tp, None)
            records, size = self._tracker.drop(tp)
            self._in_flight_records -= records
            self._in_flight_bytes -= size
            self._paused.pop(tp, None)
        for acc in self._accumulators.values():
            acc.drop_partitions(gone)
        for dq in self._queues.values():
            dq.drop_partitions(gone)

    # ------------------------------------------------------------------ pausing
    def _pause_reason_active(self, reason: Reason) -> bool:
        if reason == Reason.CREDENTIALS:
            return self.health.has(Reason.CREDENTIALS)
        if reason == Reason.BREAKER:
            return self._breaker.tripped
        if reason == Reason.BACKPRESSURE:
            return self._over_bound(1.0)
        return False

    def _pause(self, partitions: Iterable[TopicPartition], reason: Reason, defer: bool = False) -> None:
        newly = []
        for tp in partitions:
            reasons = self._paused.setdefault(tp, set())
            if not reasons:
                newly.append(tp)
            reasons.add(reason)
        if newly and defer:
            self._deferred_pauses.extend(newly)
        elif newly:
            self._consumer.pause(newly)
        self.metrics.paused_partitions.set(sum(1 for r in self._paused.values() if r))

    def _unpause(self, reason: Reason, partitions: Iterable[TopicPartition] | None = None) -> None:
        targets = list(self._paused) if partitions is None else list(partitions)
        resumed = []
        for tp in targets:
            reasons = self._paused.get(tp)
            if reasons and reason in reasons:
                reasons.discard(reason)
                if not reasons and self._tracker.owns(tp):
                    resumed.append(tp)
        if resumed:
            self._consumer.resume(resumed)
        self.metrics.paused_partitions.set(sum(1 for r in self._paused.values() if r))

    def _over_bound(self, fraction: float) -> bool:
        return (
            self._in_flight_records >= self._bp.max_in_flight_records * fraction
            or self._in_flight_bytes >= self._bp.max_in_flight_bytes * fraction
        )

    def _apply_backpressure(self) -> None:
        self.metrics.in_flight_records.set(self._in_flight_records)
        self.metrics.in_flight_bytes.set(self._in_flight_bytes)
        paused = any(Reason.BACKPRESSURE in r for r in self._paused.values())
        if not paused and self._over_bound(1.0):
            log.info(
                "in-flight bound reached; pausing fetch",
                records=self._in_flight_records,
                bytes=self._in_flight_bytes,
            )
            self._pause(self._tracker.partitions(), Reason.BACKPRESSURE)
        elif paused and not self._over_bound(RESUME_FRACTION):
            self._unpause(Reason.BACKPRESSURE)

    # ------------------------------------------------------------------ draining and stopping
    def _busy(self, partitions: Iterable[TopicPartition] | None) -> bool:
        """Work that can still finish: pending records, less those waiting for the schema
        registry (they cannot finish without it, so a drain does not wait for them)."""

        def stalled(tp: TopicPartition) -> int:
            stall = self._stalls.get(tp)
            return len(stall.records) if stall else 0

        if partitions is None:
            return self._in_flight_records > sum(len(s.records) for s in self._stalls.values())
        return any(self._tracker.pending_count(tp) > stalled(tp) for tp in partitions)

    def _drain(self, partitions: Sequence[TopicPartition] | None, deadline: float) -> bool:
        """Keep uploads and dead-letter writes going until the partitions have nothing pending or
        the deadline passes. Returns True when drained."""
        while self._busy(partitions):
            if self._clock() >= deadline:
                return False
            self._service_draining()
            if self._busy(partitions) and self._completions.empty():
                self._sleep(0.02)
        return True

    def _service_draining(self) -> None:
        now = self._clock()
        self._retry_credentials(now)
        self._retry_dead_letters(now)
        self._dispatch()
        self._settle()
        self._dlq.poll()

    def shutdown(self) -> int:
        """Stop fetching, finish within shutdown_timeout_s, commit what is done, leave the group."""
        started = self._clock()
        log.info(
            "stopping: draining in-flight records",
            in_flight=self._in_flight_records,
            timeout_s=self._shutdown_timeout_s,
        )
        self.health.set(Reason.STOPPING, "shutting down", expected=True)
        try:
            self._pause(self._tracker.partitions(), Reason.STOPPING)
            if self._fatal is None:
                for acc in self._accumulators.values():
                    batch = acc.flush()
                    if batch is not None:
                        self._queues[acc.key].push(batch)
                drained = self._drain(None, started + self._shutdown_timeout_s)
                if not drained:
                    log.warning(
                        "drain deadline passed; unfinished records stay uncommitted",
                        in_flight=self._in_flight_records,
                    )
        except PipelineStopped as exc:
            self._fatal = self._fatal or str(exc)
        finally:
            for uploader in self._uploaders.values():
                uploader.cancel()
            try:
                self._settle_quietly()
                self._commit(None)
            except FatalKafkaError as exc:  # the client died: nothing more can be committed
                self._fatal = self._fatal or f"Kafka client failed: {exc}"
            finally:
                self._dlq.flush(5.0)
                self._consumer.close()
        elapsed = self._clock() - started
        if self._fatal:
            log.error("connector stopped on a fatal error", reason=self._fatal, drain_s=round(elapsed, 3))
            return 1
        log.info(
            "connector stopped", drain_s=round(elapsed, 3), uncommitted=self._in_flight_records, **self.stats
        )
        return 0

    # ------------------------------------------------------------------ introspection (tests, demo)
    @property
    def in_flight_records(self) -> int:
        return self._in_flight_records

    @property
    def in_flight_bytes(self) -> int:
        return self._in_flight_bytes

    @property
    def breaker_tripped(self) -> bool:
        return self._breaker.tripped

    def committed_positions(self) -> dict[TopicPartition, int | None]:
        return {tp: self._tracker.position(tp) for tp in self._tracker.partitions()}
