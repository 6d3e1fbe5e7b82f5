"""The connector under test, built by the composition root and run in a process of its own.

The child process parses a generated configuration exactly as `run` does, builds the connector with
`build_connector` and runs its loop until it has finished `count` records, the parent asks it to stop,
or its deadline passes. It marks the monotonic time of the first record consumed and the CPU time of
its process tree (worker processes included) at that moment and when done, so CPU per record leaves
out start-up and shutdown. The parent samples the tree's RSS meanwhile.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from bench.proctree import RssSampler, tree_cpu_s
from bench.receiver import ACCOUNT_ID, TOKEN, WORKSPACE_ID
from bench.workload import mapping

DLQ_TOPIC = "bench.dlq"
# Tansu's coordinator is slow when members come and go; these keep the join short.
CONSUMER_PROPERTIES = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "max.poll.interval.ms": 60000,
}


def connector_config(
    *,
    bootstrap: str,
    registry_url: str,
    api_url: str,
    topic: str,
    group: str,
    workers: int | str,
    max_wait_ms: int = 500,
    max_backoff_ms: int = 60_000,
) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": group, "properties": CONSUMER_PROPERTIES},
        "schema_registry": {"url": registry_url},
        "optikpi": {
            "base_url": api_url,
            "account_id": ACCOUNT_ID,
            "workspace_id": WORKSPACE_ID,
            "auth_token": TOKEN,
        },
        "batching": {"max_records": 500, "max_wait_ms": max_wait_ms},
        "retry": {"initial_backoff_ms": 200, "max_backoff_ms": max_backoff_ms},
        "processing": {"workers": workers},
        "dead_letter": {"topic": DLQ_TOPIC},
        "server": {"port": 0},
        "shutdown_timeout_s": 20,
        "log_level": "error",
        "mappings": [mapping(topic)],
    }


def _child(
    conn: Connection, doc: dict[str, Any], source: str, count: int, stop: Event, timeout_s: float
) -> None:
    import os

    from connector.config.loader import parse_settings
    from connector.pipeline.loop import Pipeline
    from connector.pipeline.wiring import build_connector
    from connector.runtime.allocator import keep_heap_for_batches
    from connector.runtime.logs import configure

    keep_heap_for_batches()  # as `run` does

    configure("error", json=True)
    try:
        connector = build_connector(parse_settings(doc, "run", source=source, env={}))
    except Exception as exc:  # the parent reports it instead of waiting out the deadline
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
        raise
    pid = os.getpid()
    marks: dict[str, float] = {}
    peak_in_flight = 0
    deadline = time.monotonic() + timeout_s

    def until(p: Pipeline) -> bool:
        nonlocal peak_in_flight
        peak_in_flight = max(peak_in_flight, p.in_flight_records)
        if "first_at" not in marks and p.stats["consumed"]:
            marks["first_at"], marks["cpu_first"] = time.monotonic(), tree_cpu_s(pid)
        finished = count > 0 and p.stats["accepted"] + p.stats["dead_lettered"] >= count
        if finished and p.in_flight_records == 0:
            marks["done_at"], marks["cpu_done"] = time.monotonic(), tree_cpu_s(pid)
            return True
        return stop.is_set() or time.monotonic() > deadline

    code = connector.pipeline.run(until=until)
    stats = {**connector.pipeline.stats, "commits": connector.pipeline.commits}
    connector.close()
    conn.send(
        {
            "exit_code": code,
            "stats": stats,
            "peak_in_flight": peak_in_flight,
            "timed_out": "done_at" not in marks and not stop.is_set(),
            **marks,
        }
    )


class ConnectorProcess:
    """`with ConnectorProcess(doc, workdir, "w1", count) as run: ...; result = run.result()`."""

    def __init__(self, doc: dict[str, Any], workdir: Path, name: str, count: int, timeout_s: float) -> None:
        ctx = mp.get_context("spawn")
        self._conn, self._child_conn = ctx.Pipe(duplex=False)
        self._stop = ctx.Event()
        self._timeout_s = timeout_s
        source = str(workdir / f"{name}.yaml")
        # Not a daemon: a daemonic process may not start the connector's worker processes.
        self._process = ctx.Process(
            target=_child,
            args=(self._child_conn, doc, source, count, self._stop, timeout_s),
            name=f"connector-{name}",
        )
        self.sampler: RssSampler | None = None

    def __enter__(self) -> ConnectorProcess:
        self._process.start()
        self._child_conn.close()  # so that a child that dies shows as EOF, not as silence
        assert self._process.pid is not None
        self.sampler = RssSampler(self._process.pid).__enter__()
        return self

    def stop(self) -> None:
        self._stop.set()

    def result(self) -> dict[str, Any]:
        """Wait for the child to finish (its own deadline, plus the drain) and return its marks."""
        if not self._conn.poll(self._timeout_s + 60):
            raise RuntimeError(f"{self._process.name} did not report within its deadline")
        try:
            result: dict[str, Any] = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"{self._process.name} died (exit code {self._process.exitcode})") from None
        if "error" in result:
            raise RuntimeError(f"{self._process.name} failed to start: {result['error']}")
        if self.sampler is not None:
            result["peak_rss"] = self.sampler.peak
            result["processes"] = self.sampler.max_processes
        return result

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self.sampler is not None:
            self.sampler.__exit__()
        self._process.join(60)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
