"""The consumer loop, top-down: poll → decode → map → validate → batch → upload → commit.

Threading: one thread (the caller's) owns the consumer, the dead-letter producer, the offset
tracker and every data structure here; rebalance callbacks also run on it, inside `consume`.
Only the HTTP uploads run on worker threads, and they report back through a queue; with
`processing.workers` > 1 the transforms run in worker processes, fed by one thread that reports
back through a queue too. Nothing is shared without going through a queue, so there are no
locks on the hot path.

The parts: `frame` and the intake (record → JSON body or poison, inline or in worker processes,
results in partition order), `Dispatcher` (batches, uploads, their
outcomes), `PauseBook` and `Backpressure` (who is paused, and why), `RegistryStalls` (records
waiting for the schema registry), `DeadLetterPath` (poison and the breaker), `UploadOutcomes`
(what an upload's answer does to its records), `OffsetTracker` (what may be committed). This
module decides what happens when.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor

from connector.config.settings import BackpressureSettings, BatchingSettings, DeadLetterSettings
from connector.errors import (
    FatalKafkaError,
    PipelineStopped,
    RegistryUnavailable,
    Stage,
    UnusableMappingError,
)
from connector.ingest.backoff import Backoff
from connector.kafka.ports import AdminPort, ConsumerPort, Record, TopicPartition
from connector.pipeline.commits import OffsetCommitter
from connector.pipeline.deadletter import DeadLetterWriter
from connector.pipeline.deadletter_path import DeadLetterPath
from connector.pipeline.dispatch import Dispatcher, Uploader
from connector.pipeline.end_offsets import PausedEndOffsets
from connector.pipeline.intake import InlineIntake, Intake, PooledIntake, Route, frame
from connector.pipeline.lag import ConsumerLag
from connector.pipeline.mapping_pauses import MappingPauses
from connector.pipeline.offsets import OffsetTracker
from connector.pipeline.outcomes import UploadOutcomes
from connector.pipeline.pauses import Backpressure, PauseBook
from connector.pipeline.stalls import RegistryStalls
from connector.runtime.health import Health, Reason
from connector.runtime.logs import get_logger
from connector.runtime.metrics import Metrics
from connector.transform.factory import TransformFactory, make_transform
from connector.transform.spec import Poison
from connector.transform.workers import TransformPool

__all__ = ["Pipeline", "PipelineStopped", "Route", "Uploader"]

log = get_logger(__name__)

POLL_RECORDS = 500
POLL_TIMEOUT_S = 0.2
COMMIT_INTERVAL_S = 1.0
TRANSFORM_POLL_S = 0.01  # the longest consume() may block while transforms are out
POOL_CLOSE_S = 2.0
# Retry schedules, (first wait, cap) in seconds, jittered by Backoff.equal_jitter.
CREDENTIALS_RETRY_S = (5.0, 60.0)  # probes while the API refuses our credentials
REGISTRY_RETRY_S = (1.0, 30.0)
DLQ_RETRY_S = (1.0, 30.0)
REBALANCE_DRAIN_S = 10.0


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
        wall_clock: Callable[[], float] = time.time,
        pool: TransformPool | None = None,
        make: TransformFactory = make_transform,
        admin: AdminPort | None = None,
    ) -> None:
        """`pool`: started worker processes to run transforms in (the pipeline closes it); None:
        inline, each transform built by `make`. `admin`: asked for the end offsets of paused
        partitions (for the lag metric); None: their lag stays as it was when they paused."""
        self._consumer = consumer
        self._uploaders = uploaders
        self._routes = routes
        self._shutdown_timeout_s = shutdown_timeout_s
        self._clock = clock
        self._sleep = sleep
        self.metrics = metrics or Metrics()
        self.health = health or Health(clock)
        rng = rng or random.Random()
        # Set by the upload threads and the transform pool when a result is ready: consume() then
        # returns at once, so the partition's next batch goes out without waiting out the poll.
        self._wake = threading.Event()

        self._tracker = OffsetTracker()
        self._pauses = PauseBook(consumer, self._tracker, self.metrics)
        self._load = Backpressure(
            backpressure, self._pauses, self.metrics, self._tracker, min_share=2 * batching.max_records
        )
        paused_ends = PausedEndOffsets(admin, self._pauses.paused) if admin is not None else None
        self._lag = ConsumerLag(consumer, self._tracker, self.metrics, paused_ends=paused_ends)
        self._dispatcher = Dispatcher(
            uploaders,
            executor,
            batching,
            lanes=dict(lanes or {}),
            clock=clock,
            health=self.health,
            pauses=self._pauses,
            credentials_backoff=Backoff(credentials_retry_s, rng),
            wake=self._wake.set,
        )
        self._stalls = RegistryStalls(Backoff(REGISTRY_RETRY_S, rng), clock, self._pauses, self.health)
        self._dead_letters = DeadLetterPath(
            dead_letters,
            dead_letter,
            Backoff(DLQ_RETRY_S, rng),
            clock,
            self.health,
            on_written=self._dead_lettered,
            on_tripped=self._breaker_tripped,
        )
        self._mapping_pauses = MappingPauses(self._pauses, self.health, self.metrics)
        self._intake: Intake = (
            InlineIntake(self._apply, make) if pool is None else PooledIntake(pool, self._apply)
        )
        if pool is not None:
            pool.on_result(self._wake.set)
        self._stop = threading.Event()
        self._fatal: str | None = None
        self.stats: dict[str, int] = {"consumed": 0, "accepted": 0, "dead_lettered": 0}
        self._outcomes = UploadOutcomes(
            self._tracker, self._load, self._dead_letters, self.metrics, self.stats, wall_clock
        )
        self._commits = OffsetCommitter(consumer, self._tracker, self.metrics, clock, commit_interval_s)
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
        timeout = self._dispatcher.poll_timeout(POLL_TIMEOUT_S)
        if self._intake.busy:
            timeout = min(timeout, TRANSFORM_POLL_S)
        # Only work that is out can wake the wait; with none, consume() blocks in one piece.
        out = self._intake.busy or self._dispatcher.sending
        records = self._consumer.consume(POLL_RECORDS, timeout, self._wake if out else None)
        self._wake.clear()  # what woke it is taken in below, by _service
        self._pauses.apply_deferred()
        for record in records:
            self._accept(record)
        if records:
            self._intake.flush()
            # One metric update per topic and poll, not per record (the hot path).
            for topic, count in Counter(r.topic for r in records).items():
                self.metrics.records_consumed.labels(topic).inc(count)
        self._service()

    # ------------------------------------------------------------------ rebalance callbacks
    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            self._tracker.assign(tp)
        self._pauses.assigned(partitions)
        log.info("partitions assigned", partitions=[str(tp) for tp in partitions])
        self.health.clear(Reason.STARTING)
        for reason, active in (
            (Reason.CREDENTIALS, self.health.has(Reason.CREDENTIALS)),
            (Reason.BACKPRESSURE, self._load.over()),
        ):
            if active:  # the new partitions join the pause (deferred: they are not assigned yet)
                self._pauses.pause(partitions, reason, defer=True)
        tripped = self._dead_letters.tripped
        if tripped:
            self._pauses.pause([tp for tp in partitions if tp.topic in tripped], Reason.BREAKER, defer=True)
        self._mapping_pauses.pause_assigned(partitions)

    def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        """Finish what the revoked partitions have in flight (within a deadline), commit what is
        done, then let them go. Anything unfinished is abandoned uncommitted: the next owner
        re-reads it (at-least-once)."""
        revoked = [tp for tp in partitions if self._tracker.owns(tp)]
        if not revoked:
            return
        log.info("partitions revoked", partitions=[str(tp) for tp in revoked])
        self._dispatcher.seal_all()
        deadline = self._clock() + min(REBALANCE_DRAIN_S, self._shutdown_timeout_s)
        try:
            self._drain(revoked, deadline)
            self._commits.commit(revoked)
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
        self._load.add(size)
        self.stats["consumed"] += 1
        if self._stalls.hold_back(record):
            return  # keep the partition's order behind the stalled record
        self._process(record)

    def _process(self, record: Record) -> bool:
        """Frame, find the writer schema, hand to the intake. False when the registry is
        unreachable (record not taken)."""
        if self._mapping_pauses.hold(record):
            return True
        route = self._routes[record.topic]
        try:
            framed = frame(route, record)
        except RegistryUnavailable as exc:
            self._stalls.stall(record, str(exc))
            return False
        except UnusableMappingError as exc:
            self._mapping_pauses.pause(record, exc)
            return True
        if isinstance(framed, Poison):
            self._intake.reject(record, route, framed)
        else:
            self._intake.submit(record, route, *framed)
        return True

    def _apply(self, record: Record, route: Route, result: bytes | Poison) -> None:
        """A record's transform result, in offset order within its partition: batch or dead-letter."""
        mapping = route.mapping
        if isinstance(result, Poison):
            self._dead_letters.send(
                record, result.stage, result.error_class, result.message, mapping.endpoint
            )
        else:
            self._dead_letters.passed(record.topic)
            self._dispatcher.add(record, mapping.destination, mapping.endpoint, result)

    # ------------------------------------------------------------------ the service loop
    def _service(self) -> None:
        now = self._clock()
        self._stalls.retry(now, self._process)
        self._intake.flush()
        self._intake.collect()
        self._dispatcher.seal_due(now)
        self._dispatcher.probe_refused(now)
        self._dead_letters.retry_due(now)
        # Settle before dispatching too: a finished upload frees its partitions for their next
        # batch in this turn, not one poll later.
        self._dispatcher.settle(self._outcomes.uploaded)
        self._dispatcher.dispatch()
        self._dispatcher.settle(self._outcomes.uploaded)
        self._dead_letters.poll()
        self._load.apply()
        self._commits.due(now)
        self._lag.update(now)

    def _breaker_tripped(self, topic: str) -> None:
        self._pauses.pause_topic(topic, Reason.BREAKER)
        self.metrics.paused_topics.labels(Reason.BREAKER.value).set(len(self._dead_letters.tripped))

    def _dead_lettered(self, record: Record, stage: Stage) -> None:
        self.stats["dead_lettered"] += 1
        self.dead_lettered_by_stage[stage.value] += 1
        self.metrics.dead_lettered.labels(stage.value, record.topic).inc()
        self._outcomes.done(record)

    # ------------------------------------------------------------------ offsets
    def _forget(self, partitions: Sequence[TopicPartition]) -> None:
        gone = set(partitions)
        for tp in gone:
            self._stalls.drop(tp)
            self._mapping_pauses.drop(tp)
            self._load.remove(*self._tracker.drop(tp))
        self._pauses.forget(gone)
        self._intake.drop_partitions(gone)
        self._dispatcher.drop_partitions(gone)
        self._lag.forget(gone)

    # ------------------------------------------------------------------ draining and stopping
    def _busy(self, partitions: Iterable[TopicPartition] | None) -> bool:
        """Work that can still finish: pending records, less those waiting for the schema
        registry (they cannot finish without it, so a drain does not wait for them) and those of
        topics paused for their mapping (they never finish in this process)."""
        if partitions is None:
            return self._load.records > self._stalls.held() + self._mapping_pauses.held()
        return any(
            self._tracker.pending_count(tp) > self._stalls.held(tp) + self._mapping_pauses.held(tp)
            for tp in partitions
        )

    def _drain(self, partitions: Sequence[TopicPartition] | None, deadline: float) -> bool:
        """Keep uploads and dead-letter writes going until the partitions have nothing pending or
        the deadline passes. Returns True when drained."""
        while self._busy(partitions):
            if self._clock() >= deadline:
                return False
            now = self._clock()
            if self._intake.collect():
                self._dispatcher.seal_all()  # the drain sends what came back without waiting
            self._dispatcher.probe_refused(now)
            self._dead_letters.retry_due(now)
            self._dispatcher.settle(self._outcomes.uploaded)
            self._dispatcher.dispatch()
            self._dead_letters.poll()
            # What finished is committed as the drain goes: a drain cut short re-sends only the rest.
            self._commits.due(now)
            if self._busy(partitions) and not self._dispatcher.has_completions():
                self._sleep(0.02)
        return True

    def shutdown(self) -> int:
        """Stop fetching, finish within shutdown_timeout_s, commit what is done, leave the group."""
        started = self._clock()
        log.info(
            "stopping: draining in-flight records",
            in_flight=self._load.records,
            timeout_s=self._shutdown_timeout_s,
        )
        self.health.set(Reason.STOPPING, "shutting down", expected=True)
        try:
            self._pauses.pause_all(Reason.STOPPING)
            if self._fatal is None:
                self._dispatcher.seal_all()
                drained = self._drain(None, started + self._shutdown_timeout_s)
                if not drained:
                    log.warning(
                        "drain deadline passed; unfinished records stay uncommitted",
                        in_flight=self._load.records,
                    )
        except PipelineStopped as exc:
            self._fatal = self._fatal or str(exc)
        finally:
            for uploader in self._uploaders.values():
                uploader.cancel()
            # Results not back by now are lost with the workers: their records stay uncommitted.
            self._intake.close(POOL_CLOSE_S)
            try:
                self._settle_quietly()
                self._commits.commit(None)
            except FatalKafkaError as exc:  # the client died: nothing more can be committed
                self._fatal = self._fatal or f"Kafka client failed: {exc}"
            finally:
                self._dead_letters.flush(5.0)
                self._consumer.close(max(0.0, started + self._shutdown_timeout_s - self._clock()))
        elapsed = self._clock() - started
        if self._fatal:
            log.error("connector stopped on a fatal error", reason=self._fatal, drain_s=round(elapsed, 3))
            return 1
        log.info(
            "connector stopped",
            drain_s=round(elapsed, 3),
            uncommitted=self._load.records,
            **self.stats,
            commits=self.commits,
        )
        return 0

    def _settle_quietly(self) -> None:
        # Uploads that finished while we were cancelling still count.
        try:
            self._dispatcher.settle(self._outcomes.uploaded)
            self._dead_letters.poll()
        except PipelineStopped as exc:
            self._fatal = self._fatal or str(exc)

    # ------------------------------------------------------------------ introspection (tests, demo)
    @property
    def commits(self) -> int:
        """Successful offset commits since start (the committer counts them; `stats` has the rest)."""
        return self._commits.commits

    @property
    def in_flight_records(self) -> int:
        return self._load.records

    @property
    def in_flight_bytes(self) -> int:
        return self._load.bytes

    @property
    def breaker_tripped(self) -> bool:
        return bool(self._dead_letters.tripped)

    @property
    def tripped_topics(self) -> frozenset[str]:
        return self._dead_letters.tripped

    @property
    def mapping_paused_topics(self) -> frozenset[str]:
        return self._mapping_pauses.topics

    def committed_positions(self) -> dict[TopicPartition, int | None]:
        return {tp: self._tracker.position(tp) for tp in self._tracker.partitions()}
