"""Transform worker processes: chunks of payloads in, a body or a Poison per payload out.

The consumer process keeps everything that decides what is committed; the workers only run
transforms. Each worker takes one chunk at a time over its own pipe (so a dead worker's chunk is
known), builds a transform the first time it sees a key (the spec travels once per worker and
key) and keeps it. Payloads travel as a pickled list of bytes: one copy each way, no framing or
lifetime to manage, which shared memory would need and which would only pay off for values far
larger than the records here.

A feeder thread in the consumer process hands chunks to idle workers and collects results, so a
worker never waits for the consumer loop's next turn; it blocks in `wait()` (GIL released). The
loop talks to it through two queues only: `submit` and `completed`.

A worker that dies loses nothing: it is restarted and its chunk goes out again. A chunk that
kills workers `CRASH_LIMIT` times is split in halves, and each half that kills a worker again is
split further, down to the one record that does it: that record comes back as DECODE poison.

A worker still on one chunk after `chunk_deadline_s` is killed and counts as a crash, so a record
whose transform never returns (a decoder looping on a hostile payload) is found the same way
instead of holding its partition for ever. The deadline is thousands of times what a chunk
takes (256 records, milliseconds), and a single record still gets `CRASH_LIMIT` full tries.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any, Final

from connector.errors import Stage, WorkerPoolError
from connector.runtime.allocator import keep_heap_for_batches
from connector.runtime.logs import get_logger
from connector.transform.factory import TransformFactory, make_transform
from connector.transform.spec import Poison, Transform, TransformSpec

__all__ = ["CHUNK_DEADLINE_S", "CRASH_CLASS", "TIMEOUT_CLASS", "ChunkResult", "TransformPool", "pool_context"]

log = get_logger(__name__)

CRASH_LIMIT: Final = 2  # tries of a whole chunk before it is split
CRASH_CLASS: Final = "TransformWorkerCrashed"
TIMEOUT_CLASS: Final = "TransformTimedOut"
CHUNK_DEADLINE_S: Final = 60.0
START_TIMEOUT_S: Final = 60.0
MAX_FAILED_STARTS: Final = 3  # restarts in a row that die before they are ready: give up
_READY: Final = "ready"

Result = bytes | Poison
# (chunk id, index of the first result in that chunk, results)
ChunkResult = tuple[int, int, list[Result]]


Context = ForkServerContext | SpawnContext


def pool_context() -> Context:
    """forkserver where there is one, else spawn; never fork: librdkafka's threads exist by now."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # Workers fork from a server that has these imported already: restarts take milliseconds.
    context.set_forkserver_preload(["connector.transform.workers"])
    return context


def _serve(conn: Connection, make: TransformFactory) -> None:
    """A worker's life: build transforms on first sight of a key, run chunks, answer."""
    # Ctrl-C reaches the whole process group; the consumer process decides when workers stop.
    # SIGTERM keeps its default: multiprocessing's exit handler ends stray daemon workers with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_heap_for_batches()
    transforms: dict[Hashable, Transform] = {}
    conn.send(_READY)
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the consumer process is gone
            return
        if message is None:
            return
        chunk_id, key, spec, payloads = message
        try:
            if spec is not None:
                transforms[key] = make(spec)
            transform = transforms[key]
            answer: list[Result] | str = [transform(payload) for payload in payloads]
        except Exception as exc:  # a bug, not a record's problem: transforms never raise for data
            answer = f"{type(exc).__name__}: {exc}"
        conn.send((chunk_id, answer))


@dataclass(eq=False)
class _Chunk:
    origin: int  # the id `submit` returned
    start: int  # index of payloads[0] within the submitted chunk
    key: Hashable
    spec: TransformSpec
    payloads: list[bytes]
    limit: int = CRASH_LIMIT  # crashes before splitting (halves of a crashing chunk: 1)
    crashes: int = 0


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    chunk: _Chunk | None = None
    known: set[Hashable] = field(default_factory=set)  # keys whose spec it has
    sent_at: float = 0.0  # when `chunk` was sent (monotonic)
    overdue: bool = False  # killed for running past the deadline


class TransformPool:
    """`size` worker processes. `submit` and `completed` are for the consumer loop's thread."""

    def __init__(
        self,
        size: int,
        make: TransformFactory = make_transform,
        context: Context | None = None,
        chunk_deadline_s: float = CHUNK_DEADLINE_S,
    ) -> None:
        self.size = size
        self._deadline_s = chunk_deadline_s
        self._make = make
        self._context = context or pool_context()
        self._workers: list[_Worker] = []
        self._todo: queue.SimpleQueue[_Chunk] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[ChunkResult] = queue.SimpleQueue()
        self._wake_reader, self._wake_writer = self._context.Pipe(duplex=False)
        self._closing = False
        self._failure: str | None = None
        self._failed_starts = 0
        self._next_id = 0
        self._thread = threading.Thread(target=self._feed, name="transform-pool", daemon=True)
        self.in_flight = 0  # records submitted whose results `completed` has not returned yet
        self.restarts = 0
        self._on_result: Callable[[], None] = lambda: None

    def on_result(self, callback: Callable[[], None]) -> None:
        """`callback()` runs on the feeder thread each time a result is ready for `completed`."""
        self._on_result = callback

    # ------------------------------------------------------------------ the consumer loop's side
    def start(self, timeout_s: float = START_TIMEOUT_S) -> TransformPool:
        """Start the workers and wait until each is ready. Raises WorkerPoolError."""
        try:
            self._workers = [self._spawn() for _ in range(self.size)]
        except (OSError, ValueError, RuntimeError) as exc:
            self.close(0.0)
            raise WorkerPoolError(f"cannot start the transform worker processes: {exc}") from None
        deadline = time.monotonic() + timeout_s
        for worker in self._workers:
            left = max(0.0, deadline - time.monotonic())
            if not (worker.conn.poll(left) and self._receive(worker) == _READY):
                code = worker.process.exitcode
                self.close(0.0)
                why = f"exit code {code}" if code is not None else f"not ready after {timeout_s:.0f} s"
                raise WorkerPoolError(f"cannot start the transform worker processes: {why}")
            worker.ready = True
        self._thread.start()
        return self

    def submit(self, key: Hashable, spec: TransformSpec, payloads: list[bytes]) -> int:
        """Queue a chunk; returns its id (results come back tagged with it)."""
        chunk_id = self._next_id
        self._next_id += 1
        self.in_flight += len(payloads)
        self._todo.put(_Chunk(chunk_id, 0, key, spec, payloads))
        self._wake()
        return chunk_id

    def completed(self) -> list[ChunkResult]:
        """The results that came back since the last call (parts of a chunk may come separately)."""
        if self._failure is not None:
            raise WorkerPoolError(self._failure)
        out: list[ChunkResult] = []
        while True:
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                break
            self.in_flight -= len(item[2])
            out.append(item)
        return out

    def close(self, timeout_s: float) -> None:
        """Stop the workers: those idle at once, the others within `timeout_s` or killed. Results
        not collected by then are lost (their records stay uncommitted)."""
        self._closing = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        for worker in self._workers:
            if worker.chunk is None and worker.process.is_alive():
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1.0)
            worker.conn.close()
        self._workers = []
        self._wake_reader.close()
        self._wake_writer.close()

    def pids(self) -> list[int | None]:
        """The workers' process ids (tests kill them)."""
        return [worker.process.pid for worker in self._workers]

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_writer.send_bytes(b"")

    # ------------------------------------------------------------------ the feeder thread
    def _spawn(self) -> _Worker:
        mine, theirs = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(theirs, self._make), daemon=True)
        process.name = "optikpi-transform"
        process.start()
        theirs.close()
        return _Worker(process, mine)

    def _feed(self) -> None:
        try:
            self._feed_until_closed()
        except Exception as exc:  # a bug here must stop the pipeline, not leave it waiting forever
            log.exception("transform pool feeder failed")
            self._failure = f"the transform pool failed: {type(exc).__name__}: {exc}"

    def _feed_until_closed(self) -> None:
        waiting: deque[_Chunk] = deque()
        while not self._closing:
            while True:
                try:
                    waiting.append(self._todo.get_nowait())
                except queue.Empty:
                    break
            for worker in self._workers:
                if waiting and worker.ready and worker.chunk is None:
                    self._send(worker, waiting.popleft(), waiting)
            watched: list[Any] = [self._wake_reader]
            for worker in self._workers:
                watched += [worker.conn, worker.process.sentinel]
            ready = wait(watched, timeout=self._kill_overdue())
            if self._wake_reader in ready:
                while self._wake_reader.poll():
                    self._wake_reader.recv_bytes()
            for index, worker in enumerate(self._workers):
                if worker.conn in ready:
                    self._answer(worker)
                if worker.process.sentinel in ready or not worker.process.is_alive():
                    self._workers[index] = self._replace(worker, waiting)
            if self._failure is not None:
                return

    def _kill_overdue(self) -> float:
        """Kill workers past the deadline (their sentinels then report a crash); returns how long
        the feeder may wait before the next deadline, at most 1 s."""
        now = time.monotonic()
        wait_s = 1.0
        for worker in self._workers:
            if worker.chunk is None or worker.overdue:
                continue
            left = worker.sent_at + self._deadline_s - now
            if left > 0:
                wait_s = min(wait_s, left)
                continue
            worker.overdue = True
            log.warning(
                "transform worker is past its deadline; killing it",
                deadline_s=self._deadline_s,
                records=len(worker.chunk.payloads),
            )
            with contextlib.suppress(OSError, ValueError):
                worker.process.kill()
        return wait_s

    def _send(self, worker: _Worker, chunk: _Chunk, waiting: deque[_Chunk]) -> None:
        spec = None if chunk.key in worker.known else chunk.spec
        try:
            worker.conn.send((chunk.origin, chunk.key, spec, chunk.payloads))
        except OSError:  # it died while idle: not this chunk's doing; the sentinel restarts it
            waiting.appendleft(chunk)
            return
        worker.known.add(chunk.key)
        worker.chunk = chunk
        worker.sent_at = time.monotonic()

    def _receive(self, worker: _Worker) -> Any:
        try:
            return worker.conn.recv()
        except (EOFError, OSError):
            return None  # it died: its sentinel says so too

    def _answer(self, worker: _Worker) -> None:
        message = self._receive(worker)
        if message == _READY:
            worker.ready = True
            self._failed_starts = 0
            return
        chunk = worker.chunk
        if message is None or chunk is None:
            return
        worker.chunk = None
        _chunk_id, answer = message
        if isinstance(answer, str):
            self._failure = f"a transform failed in a worker process: {answer}"
            log.error("transform worker failed", error=answer)
            return
        self._finish((chunk.origin, chunk.start, answer))

    def _finish(self, result: ChunkResult) -> None:
        self._done.put(result)
        self._on_result()

    def _replace(self, dead: _Worker, waiting: deque[_Chunk]) -> _Worker:
        dead.process.join(1.0)
        code = dead.process.exitcode
        dead.conn.close()
        chunk = dead.chunk
        if not dead.ready:
            self._failed_starts += 1
            if self._failed_starts >= MAX_FAILED_STARTS:
                self._failure = f"transform workers keep dying before they are ready (exit code {code})"
                log.error("transform workers keep dying at start", exit_code=code)
        if chunk is not None:
            self._crashed(chunk, None if dead.overdue else _describe_exit(code), waiting)
        self.restarts += 1
        try:
            return self._spawn()
        except (OSError, ValueError, RuntimeError) as exc:
            self._failure = f"cannot restart a transform worker process: {exc}"
            return dead

    def _crashed(self, chunk: _Chunk, how: str | None, waiting: deque[_Chunk]) -> None:
        """`how` the worker died, or None when it was killed for running past the deadline."""
        chunk.crashes += 1
        log.warning(
            "transform worker died; its records are tried again",
            exit=how or f"killed after {self._deadline_s:g} s on one chunk",
            records=len(chunk.payloads),
            crashes=chunk.crashes,
        )
        if chunk.crashes < chunk.limit:
            waiting.appendleft(chunk)
        elif len(chunk.payloads) == 1:
            if how is None:
                within = f"{self._deadline_s:g} s"
                reason = f"the record's transform did not finish within {within}, each time it was tried"
                poison = Poison(Stage.DECODE, TIMEOUT_CLASS, reason)
            else:
                reason = f"the record crashed the transform worker process ({how}) each time it was tried"
                poison = Poison(Stage.DECODE, CRASH_CLASS, reason)
            self._finish((chunk.origin, chunk.start, [poison]))
        else:
            middle = len(chunk.payloads) // 2
            # A half that kills a worker again is split at once; a single record gets the full
            # number of tries, so that one unrelated crash does not make it poison.
            halves = [
                _Chunk(chunk.origin, chunk.start + offset, chunk.key, chunk.spec, part, limit=limit)
                for offset, part in ((0, chunk.payloads[:middle]), (middle, chunk.payloads[middle:]))
                for limit in [CRASH_LIMIT if len(part) == 1 else 1]
            ]
            waiting.extendleft(reversed(halves))


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
