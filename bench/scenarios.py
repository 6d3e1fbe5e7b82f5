"""One function per measurement; each starts what it needs, stops by itself and raises when a run fails.

Throughput is counted from the first record consumed (marked by the consumer under test) to the last
record accepted (marked by the receiver); both are CLOCK_MONOTONIC, which every process on the
machine shares. Every run reads with a fresh consumer group.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time
from dataclasses import dataclass
from io import BytesIO
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import fastavro

from bench.connector_run import ConnectorProcess, connector_config
from bench.naive_loop import naive_loop
from bench.proctree import RssSampler
from bench.receiver import Receiver
from bench.report import Backlog, Latency, Throughput
from bench.workload import Encoder, parsed_schema, produce_backlog, produce_paced


@dataclass(frozen=True)
class Env:
    bootstrap: str
    registry_url: str
    schema_id: int
    workdir: Path
    timeout_s: float = 300.0

    def config(
        self, api: Receiver, topic: str, name: str, workers: int | str, **extra: Any
    ) -> dict[str, Any]:
        return connector_config(
            bootstrap=self.bootstrap,
            registry_url=self.registry_url,
            api_url=api.base_url,
            topic=topic,
            group=f"bench-{name}-{os.getpid()}",
            workers=workers,
            **extra,
        )


def decode_ceiling(payloads: list[bytes], passes: int = 2) -> float:
    """Records per CPU second of `fastavro.schemaless_reader` alone, logical types on, in this one
    thread; best pass. CPU time, not wall time: other work on a shared machine must not lower it."""
    schema = parsed_schema()
    reader = fastavro.schemaless_reader
    best = 0.0
    for _ in range(passes):
        started = time.thread_time()
        for payload in payloads:
            buffer = BytesIO(payload)
            buffer.seek(5)  # past the Confluent header
            reader(buffer, schema, None)
        best = max(best, len(payloads) / (time.thread_time() - started))
    return best


def _naive_child(conn: Connection, args: tuple[str, str, str, str, int, float]) -> None:
    cpu = time.process_time()
    first = naive_loop(*args)
    conn.send((first, time.process_time() - cpu))


def naive(env: Env, topic: str, name: str, count: int) -> Throughput:
    ctx = mp.get_context("spawn")
    with Receiver() as api:
        parent, child = ctx.Pipe(duplex=False)
        args = (env.bootstrap, topic, f"bench-{name}-{os.getpid()}", api.base_url + "/events/gaming-activity")
        process = ctx.Process(target=_naive_child, args=(child, (*args, count, env.timeout_s)), name="naive")
        process.start()
        child.close()
        assert process.pid is not None
        try:
            with RssSampler(process.pid) as sampler:
                if not parent.poll(env.timeout_s + 30):
                    raise RuntimeError(f"{name} did not finish")
                first, cpu_s = parent.recv()
        finally:
            process.join(30)
            if process.is_alive():
                process.kill()
        stats = api.stats()
    _check_accepted(name, stats, count)
    return Throughput(
        count, stats["last_at"] - first, cpu_s, sampler.peak, sampler.max_processes, stats["cpu_s"]
    )


def _check_accepted(name: str, stats: dict[str, Any], count: int) -> None:
    if stats["accepted"] < count or stats["bad_signatures"]:
        raise RuntimeError(f"{name}: the receiver accepted {stats['accepted']:,} of {count:,} ({stats})")


def connector_throughput(
    env: Env, topic: str, name: str, count: int, workers: int | str, latency_ms: int = 0
) -> Throughput:
    with Receiver() as api:
        if latency_ms:
            api.faults(latency_ms=latency_ms)
        with ConnectorProcess(
            env.config(api, topic, name, workers), env.workdir, name, count, env.timeout_s
        ) as run:
            result = run.result()
        stats = api.stats()
    if result["exit_code"] != 0 or result["timed_out"]:
        raise RuntimeError(f"connector run {name} did not finish cleanly: {result}")
    _check_accepted(name, stats, count)
    cpu_s = result["cpu_done"] - result["cpu_first"]
    seconds = stats["last_at"] - result["first_at"]
    return Throughput(count, seconds, cpu_s, result["peak_rss"], result["processes"], stats["cpu_s"])


def _percentile(ordered: list[float], q: int) -> float:
    return statistics.quantiles(ordered, n=100, method="inclusive")[q - 1] if len(ordered) > 1 else ordered[0]


def live_latency(env: Env, topic: str, rate: float, seconds: float, max_wait_ms: int) -> Latency:
    """A paced producer at `rate` records/s; each record's Kafka timestamp → its acceptance at the API."""
    encoder = Encoder(env.schema_id)
    warm = 200
    with Receiver(track=True) as api:
        doc = env.config(api, topic, "live", "auto", max_wait_ms=max_wait_ms)
        with ConnectorProcess(doc, env.workdir, "live", 0, env.timeout_s) as run:
            # Warm-up records: the group has joined and holds every partition before the clock runs.
            produce_backlog(env.bootstrap, topic, encoder, "warm", warm)
            if api.wait_for(warm, 120)["accepted"] < warm:
                raise RuntimeError("the live run's warm-up records were not accepted")
            started = time.monotonic()
            stamps = produce_paced(env.bootstrap, topic, encoder, "live", rate, seconds)
            offered = len(stamps) / (time.monotonic() - started)
            api.wait_for(warm + len(stamps), 60 + 2 * max_wait_ms / 1000)
            accepted = api.accepted_at()
            run.stop()
            run.result()
    missing = [event_id for event_id in stamps if event_id not in accepted]
    if missing:
        raise RuntimeError(f"live run: {len(missing):,} of {len(stamps):,} records never accepted")
    ordered = sorted(1000 * accepted[event_id] - stamp for event_id, stamp in stamps.items())
    return Latency(
        offered, len(ordered), _percentile(ordered, 50), _percentile(ordered, 95), _percentile(ordered, 99)
    )


def backlog_outage(env: Env, topic: str, count: int, outage_s: float, drain_timeout_s: float) -> Backlog:
    """The connector starts on a backlog of `count` records while the API answers 503; the peak RSS of
    its processes during the outage is what the backpressure bounds must keep low. Then the API recovers."""
    with Receiver() as api:
        api.faults(outage=True)
        # Short backoff caps, so that the drain starts within seconds of the API's recovery.
        doc = env.config(api, topic, "backlog", "auto", max_backoff_ms=2000)
        timeout_s = 120 + outage_s + drain_timeout_s
        with ConnectorProcess(doc, env.workdir, "backlog", count, timeout_s) as run:
            deadline = time.monotonic() + 120
            while api.stats()["refused"] == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(outage_s)
            assert run.sampler is not None
            peak_outage = run.sampler.mark()
            api.faults(outage=False)
            lifted = time.monotonic()
            stats = api.wait_for(count, drain_timeout_s)
            drain_s = (stats["last_at"] or lifted) - lifted
            run.stop()
            result = run.result()
    return Backlog(
        count, outage_s, peak_outage, result["peak_rss"], stats["accepted"], drain_s, stats["refused"]
    )
