"""End-to-end helpers: the whole connector (in-process, or as `python -m connector run`) against the
embedded broker, the registry stub and the sandbox, plus the bookkeeping that proves the invariants:
what was produced where, what the API accepted, what reached the dead-letter topic, what is committed.

End offsets are counted while producing (each test owns fresh topics, and the idempotent producer
keeps order without gaps), never asked with ListOffsets: Tansu answers that with a wrong high watermark.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from connector.avro.decoding import encode_confluent
from connector.avro.schemas import load_schema, parse
from connector.config.loader import parse_settings
from connector.config.settings import Settings
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.samples import sample_mappings, sample_record
from connector.devtools.sandbox.server import DEMO_ACCOUNT_ID, DEMO_TOKEN, DEMO_WORKSPACE_ID, SandboxServer
from connector.errors import DeliveryError
from connector.kafka.admin import KafkaAdmin
from connector.kafka.config import admin_config
from connector.kafka.ports import Header, Record, TopicPartition
from connector.kafka.producer import KafkaProducer
from connector.pipeline.deadletter import H_OFFSET, H_PARTITION, H_TOPIC
from connector.pipeline.wiring import Connector, build_connector
from tests.support.brokers import (
    DEFAULT_WAIT_S,
    TEST_CONSUMER_PROPERTIES,
    RecordingListener,
    UniqueNames,
    make_consumer,
    make_producer,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ENDPOINT = "gaming-activity"
BET_SCHEMA: dict[str, Any] = load_schema("bet")
BET_PARSED: Any = parse(BET_SCHEMA)

Position = tuple[str, int, int]  # (topic, partition, offset)


# --------------------------------------------------------------------------------------------- waiting


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    """Poll until `condition()`; a generous safety net that fails naming what never happened."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


# --------------------------------------------------------------------------------------------- configuration


def bet_mapping(
    topic: str, *, fields: Mapping[str, str] | None = None, constants: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The demo's bet mapping (connector/devtools/demo_mappings.yaml) on `topic`, plus fields or constants."""
    entry = copy.deepcopy(sample_mappings()["bet"])
    entry["topic"] = topic
    if fields:
        entry["fields"] = {**entry["fields"], **fields}
    if constants:
        entry["constants"] = {**entry.get("constants", {}), **constants}
    return entry


def connector_doc(
    *,
    bootstrap: str,
    registry_url: str,
    api_url: str,
    group: str,
    dlq_topic: str,
    mappings: Sequence[Mapping[str, Any]],
    token: str = DEMO_TOKEN,
    max_records: int = 50,
    max_wait_ms: int = 100,
    shutdown_timeout_s: float = 15.0,
    max_in_flight_records: int | None = None,
    max_backoff_ms: int = 2000,
    max_concurrency: int = 8,
    server_port: int = 0,
    workers: int | str = 1,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """A complete `run` configuration with the consumer timeouts Tansu's coordinator needs.
    `workers`: `processing.workers` (1, inline, unless a test is about worker processes)."""
    doc: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "auto_offset_reset": "earliest",
            "properties": dict(TEST_CONSUMER_PROPERTIES),
        },
        "schema_registry": {"url": registry_url},
        "optikpi": {
            "base_url": api_url,
            "account_id": DEMO_ACCOUNT_ID,
            "workspace_id": DEMO_WORKSPACE_ID,
            "auth_token": token,
            "timeout_s": timeout_s,
            "max_concurrency": max_concurrency,
        },
        "batching": {"max_records": max_records, "max_wait_ms": max_wait_ms},
        "retry": {"initial_backoff_ms": 100, "max_backoff_ms": max_backoff_ms},
        "dead_letter": {"topic": dlq_topic},
        "server": {"port": server_port, "host": "127.0.0.1"},
        "shutdown_timeout_s": shutdown_timeout_s,
        "processing": {"workers": workers},
        "mappings": [dict(m) for m in mappings],
    }
    if max_in_flight_records is not None:
        doc["backpressure"] = {"max_in_flight_records": max_in_flight_records}
    return doc


def write_config(directory: Path, doc: Mapping[str, Any], name: str = "connector.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(dict(doc), sort_keys=False), encoding="utf-8")
    return path


def settings_of(doc: Mapping[str, Any], source: Path) -> Settings:
    return parse_settings(doc, "run", source=str(source), env={})


def offline_settings(source: Path, workers: int | str = 1) -> Settings:
    """`run` settings for a bet mapping whose broker, registry and API are never reached (port 1):
    for tests that replace what would reach them."""
    doc = connector_doc(
        bootstrap="127.0.0.1:1",
        registry_url="http://127.0.0.1:1",
        api_url="http://127.0.0.1:1/apigw/ingest",
        group="g",
        dlq_topic="dlq",
        mappings=[bet_mapping("bets")],
        workers=workers,
    )
    return settings_of(doc, source)


# --------------------------------------------------------------------------------------------- producing


def make_bet(rng: random.Random, index: int, **overrides: Any) -> dict[str, Any]:
    """A valid bet datum (samples' generator) with a bet id unique to this index."""
    bet = sample_record("bet", rng, index)
    bet["bet_id"] = f"bet-{index:07d}-{rng.getrandbits(24):06x}"
    bet.update(overrides)
    return bet


def register_bet_schema(registry: RegistryStub, topic: str) -> int:
    return registry.register(f"{topic}-value", BET_SCHEMA)


def encode_bet(schema_id: int, bet: Mapping[str, Any]) -> bytes:
    return encode_confluent(schema_id, BET_PARSED, bet)


@dataclass(frozen=True)
class Produced:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    event_id: str | None  # what the API sees as event_id; None when the record never gets there
    poison: str | None = None  # the dead-letter stage the record must end in

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @property
    def position(self) -> Position:
        return (self.topic, self.partition, self.offset)


class Ledger:
    """Everything a test produced, with the offset each record got (counted per partition)."""

    def __init__(self, bootstrap: str) -> None:
        self._producer: KafkaProducer = make_producer(bootstrap)
        self._next: Counter[TopicPartition] = Counter()
        self._reports: list[DeliveryError | None] = []
        self.records: list[Produced] = []

    def produce(
        self,
        topic: str,
        partition: int,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[Header] = (),
        event_id: str | None = None,
        poison: str | None = None,
    ) -> Produced:
        tp = TopicPartition(topic, partition)
        record = Produced(topic, partition, self._next[tp], key, value, tuple(headers), event_id, poison)
        self._next[tp] += 1
        self._producer.produce(topic, key, value, record.headers, self._reports.append, partition=partition)
        self.records.append(record)
        return record

    def flush(self, timeout_s: float = DEFAULT_WAIT_S) -> None:
        outstanding = self._producer.flush(timeout_s)
        errors = [r for r in self._reports if r is not None]
        assert outstanding == 0 and not errors, f"produce failed: {outstanding} outstanding, {errors[:3]}"
        assert len(self._reports) == len(self.records), "a delivery report is missing"

    def close(self) -> None:
        self._producer.close()

    def end_offsets(self, topic: str | None = None) -> dict[TopicPartition, int]:
        return {tp: n for tp, n in self._next.items() if topic is None or tp.topic == topic}

    def good(self) -> list[Produced]:
        return [r for r in self.records if r.poison is None]

    def poison(self) -> list[Produced]:
        return [r for r in self.records if r.poison is not None]

    def by_event_id(self) -> dict[str, Produced]:
        return {r.event_id: r for r in self.records if r.event_id is not None and r.poison is None}


@dataclass(frozen=True)
class BetTopic:
    topic: str
    dlq: str
    group: str
    ledger: Ledger


def bet_topic_with_records(
    bootstrap: str,
    registry: RegistryStub,
    names: UniqueNames,
    *,
    partitions: int,
    count: int,
    rng: random.Random,
    poison_every: int = 0,
) -> BetTopic:
    """The common set-up: a bets topic and a dead-letter topic, `count` bets produced and recorded."""
    topic, dlq, group = names.topic("bets"), names.topic("dlq"), names.group()
    create_topics(bootstrap, {topic: partitions, dlq: 1})
    ledger = Ledger(bootstrap)
    try:
        produce_bets(
            ledger,
            topic,
            register_bet_schema(registry, topic),
            count,
            partitions,
            rng,
            poison_every=poison_every,
        )
    finally:
        ledger.close()
    return BetTopic(topic, dlq, group, ledger)


def produce_bets(
    ledger: Ledger,
    topic: str,
    schema_id: int,
    count: int,
    partitions: int,
    rng: random.Random,
    *,
    first_index: int = 0,
    poison_every: int = 0,
) -> list[Produced]:
    """`count` bets round robin over the partitions; every `poison_every`-th one (if set) is a
    value the decoder refuses (valid framing, garbage after it)."""
    out = []
    for i in range(first_index, first_index + count):
        bet = make_bet(rng, i)
        key = str(bet["player"]["id"]).encode()
        headers: tuple[Header, ...] = (("e2e.index", str(i).encode()),)
        if poison_every and i % poison_every == poison_every - 1:
            value = encode_bet(schema_id, bet)[:5] + b"\xff\xff\xff\x0fgarbage"
            # Its would-be event id, so that a check can prove the API never got it.
            out.append(
                ledger.produce(
                    topic,
                    i % partitions,
                    value,
                    key=key,
                    headers=headers,
                    event_id=str(bet["bet_id"]),
                    poison="DECODE",
                )
            )
        else:
            value = encode_bet(schema_id, bet)
            out.append(
                ledger.produce(
                    topic, i % partitions, value, key=key, headers=headers, event_id=str(bet["bet_id"])
                )
            )
    ledger.flush()
    return out


def create_topics(bootstrap: str, topics: Mapping[str, int], timeout_s: float = DEFAULT_WAIT_S) -> None:
    """Create topics (name → partitions) and wait until the metadata shows all their partitions."""
    admin = KafkaAdmin(admin_config(bootstrap, {}))
    for partitions in sorted(set(topics.values())):
        admin.create_topics([t for t, n in topics.items() if n == partitions], partitions, timeout_s)
    wait_until(
        lambda: all(admin.list_topics(5.0).get(t) == n for t, n in topics.items()),
        timeout_s,
        f"topics {sorted(topics)} in the metadata",
        poll_s=0.1,
    )


# --------------------------------------------------------------------------------------------- reading back


def read_topic(bootstrap: str, topic: str, timeout_s: float = DEFAULT_WAIT_S) -> list[Record]:
    """Every record of `topic`, read by a fresh consumer group until each partition's position
    reaches the high watermark of the fetch responses (not ListOffsets)."""
    partitions = KafkaAdmin(admin_config(bootstrap, {})).list_topics(10.0)[topic]
    consumer = make_consumer(bootstrap, f"reader-{uuid.uuid4().hex[:12]}")
    consumer.subscribe([topic], RecordingListener())
    records: list[Record] = []
    position: dict[TopicPartition, int] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            for record in consumer.consume(500, 0.2):
                records.append(record)
                position[record.tp] = record.offset + 1
            marks = consumer.high_watermarks()
            if len(marks) == partitions and all(position.get(tp, 0) >= end for tp, end in marks.items()):
                return records
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within {timeout_s:.0f} s: {marks}")
    finally:
        consumer.close()


def committed_offsets(
    bootstrap: str, group: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The group's committed positions, as a consumer of that group reads them (without joining)."""
    consumer = make_consumer(bootstrap, group)
    try:
        return consumer.committed(list(partitions), 15.0)
    finally:
        consumer.close()


def header(record: Record, name: str) -> bytes | None:
    """The last value of header `name` (added headers come after the original ones)."""
    found = [value for key, value in record.headers if key == name]
    return found[-1] if found else None


def dlq_origin(record: Record) -> Position:
    topic, partition, offset = (header(record, h) for h in (H_TOPIC, H_PARTITION, H_OFFSET))
    assert topic is not None and partition is not None and offset is not None, record.headers
    return (topic.decode(), int(partition), int(offset))


def accepted_ids(sandbox: SandboxServer, endpoint: str = ENDPOINT) -> Counter[str]:
    """event_id → how many times the API accepted a record with it."""
    return Counter(str(r.get("event_id")) for r in sandbox.records(endpoint))


def accepted_count(sandbox: SandboxServer, endpoint: str = ENDPOINT) -> int:
    return int(sandbox.stats()["accepted"][endpoint])


def wait_for_quiet_sandbox(sandbox: SandboxServer, quiet_s: float = 0.5, timeout_s: float = 30.0) -> None:
    """Requests a killed connector left in flight still complete on the sandbox's side; wait for
    the accepted count to stop moving before taking it as the truth."""
    last = accepted_count(sandbox)
    stable_since = time.monotonic()
    deadline = stable_since + timeout_s
    while time.monotonic() - stable_since < quiet_s:
        if time.monotonic() > deadline:
            raise AssertionError("the sandbox kept accepting records long after the connector stopped")
        time.sleep(0.05)
        now = accepted_count(sandbox)
        if now != last:
            last, stable_since = now, time.monotonic()


@dataclass
class Outcome:
    """What came out of the other end, compared with the ledger."""

    accepted: Counter[str]  # event_id → times accepted by the API
    dead: Counter[Position]  # source position → copies in the dead-letter topic
    dlq_records: list[Record] = field(default_factory=list)

    @classmethod
    def collect(cls, sandbox: SandboxServer, bootstrap: str, dlq_topic: str) -> Outcome:
        records = read_topic(bootstrap, dlq_topic)
        return cls(accepted_ids(sandbox), Counter(dlq_origin(r) for r in records), records)

    def lost(self, ledger: Ledger) -> list[Produced]:
        """Produced records neither accepted nor dead-lettered."""
        return [
            r
            for r in ledger.records
            if not (r.event_id is not None and r.poison is None and r.event_id in self.accepted)
            and r.position not in self.dead
        ]

    @property
    def api_duplicates(self) -> int:
        return sum(n - 1 for n in self.accepted.values() if n > 1)

    @property
    def dlq_duplicates(self) -> int:
        return sum(n - 1 for n in self.dead.values() if n > 1)


# --------------------------------------------------------------------------------------------- the connector


def free_port() -> int:
    from connector.devtools.embedded_broker import free_port as _free_port

    return _free_port()


def log_events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a connector process, in order; other lines are skipped."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict):
                out.append(event)
    return out


def order_breaks(
    records: list[dict[str, Any]], by_id: Mapping[str, Produced], restarts: Mapping[str, int] | None = None
) -> list[str]:
    """Partitions whose records reached the API out of offset order (or twice) within one session.
    `restarts["topic[p]"]`: how many times the partition may start over (at a lower or equal offset)
    in the session, because it was revoked and given back meanwhile."""
    offsets: dict[TopicPartition, list[int]] = defaultdict(list)
    for record in records:
        produced = by_id.get(str(record["event_id"]))
        if produced is not None:
            offsets[produced.tp].append(produced.offset)
    allowed = restarts or {}
    return [
        str(tp)
        for tp, seen in offsets.items()
        if sum(1 for a, b in itertools.pairwise(seen) if b <= a) > allowed.get(str(tp), 0)
    ]


class ConnectorProcess:
    """`python -m connector --log-format json run --config FILE` in a child process; its log is kept."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connector", "--log-format", "json", "run", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to commit or leave the group."""
        if self.running:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30.0)
        self._log.close()

    def terminate(self, timeout_s: float) -> tuple[int, float]:
        """SIGTERM, then wait for the exit; (exit code, seconds from the signal to the exit)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the connector did not exit within {timeout_s:.0f} s of SIGTERM; see {self.log_path.name}"
            ) from None
        finally:
            self._log.close()
        return code, time.monotonic() - started

    def events(self) -> list[dict[str, Any]]:
        return log_events(self.log_path)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def assignment(self) -> set[str]:
        """Partitions ("topic[p]") this process owns according to its own log."""
        owned: set[str] = set()
        for e in self.events():
            if e.get("event") == "partitions assigned":
                owned |= set(e.get("partitions", []))
            elif e.get("event") in ("partitions revoked", "partitions lost"):
                owned -= set(e.get("partitions", []))
        return owned

    def wait_for(
        self,
        condition: Callable[[ConnectorProcess], bool],
        timeout_s: float,
        what: str,
        poll_s: float = 0.05,
    ) -> None:
        def check() -> bool:
            if not self.running:
                raise AssertionError(f"the connector exited ({self.process.returncode}) before {what}")
            return condition(self)

        wait_until(check, timeout_s, what, poll_s=poll_s)

    def metric(self, port: int, name: str) -> float | None:
        """One unlabelled Prometheus sample from the process's /metrics."""
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2.0).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def stop_quietly(self) -> None:
        """Teardown: a process a failing test left behind goes away without a trace of doubt."""
        if self.running:
            self.process.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(30.0)
        if not self._log.closed:
            self._log.close()


class InProcessConnector:
    """The connector built by the composition root, its loop on a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.connector: Connector = build_connector(settings)
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="connector-loop", daemon=True)

    def _run(self) -> None:
        try:
            self.exit_code = self.connector.pipeline.run()
        except BaseException as exc:  # reported by stop(), in the test's thread
            self.error = exc

    def start(self) -> InProcessConnector:
        self._thread.start()
        return self

    @property
    def pipeline(self) -> Any:
        return self.connector.pipeline

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 60.0) -> int:
        self.connector.pipeline.request_stop()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise AssertionError(f"the connector loop did not stop within {timeout_s:.0f} s")
        self.connector.close()
        if self.error is not None:
            raise AssertionError(f"the connector loop raised {self.error!r}") from self.error
        assert self.exit_code is not None
        return self.exit_code


@contextlib.contextmanager
def in_process(settings: Settings) -> Iterator[InProcessConnector]:
    runner = InProcessConnector(settings).start()
    try:
        yield runner
    finally:
        if runner.running:
            with contextlib.suppress(AssertionError):
                runner.stop()


# --------------------------------------------------------------------------------------------- kill -9 loop


@dataclass
class Interruption:
    """One stop of the connector in the loop: what was done, and the numbers around it."""

    signal: str  # "SIGKILL" or "SIGTERM"
    accepted_before: int  # records (with repeats) the API had accepted when the signal went out
    committed: dict[TopicPartition, int]
    api_window: int  # records the API accepted at or above the committed positions: may be re-sent
    poison_window: int  # poison records at or above the committed positions: may be dead-lettered again
    drain_s: float | None = None  # SIGTERM only: from the signal to the exit
    session_end: int = 0  # records the API had stored once the stopped run's last upload settled


@dataclass
class KillLoopReport:
    records: int
    partitions: int
    interruptions: list[Interruption]
    outcome: Outcome
    lost: list[Produced]
    committed: dict[TopicPartition, int | None]
    end_offsets: dict[TopicPartition, int]
    final_drain_s: float
    elapsed_s: float
    order_breaks: list[str]  # "session N: topic[p]" where a partition's records went out of order
    ledger: Ledger | None = None  # what was produced, for the chaos suite's checks

    @property
    def kills(self) -> int:
        return sum(1 for i in self.interruptions if i.signal == "SIGKILL")

    @property
    def api_window(self) -> int:
        return sum(i.api_window for i in self.interruptions)

    @property
    def poison_window(self) -> int:
        return sum(i.poison_window for i in self.interruptions)

    @property
    def drain_times(self) -> list[float]:
        times = [i.drain_s for i in self.interruptions if i.drain_s is not None]
        return [*times, self.final_drain_s]

    def assert_sound(self, kills: int) -> None:
        """Invariants 1 and 2 after a kill loop: nothing lost, duplicates within the uncommitted
        windows, and everything committed in the end."""
        assert self.kills == kills
        assert self.lost == [], f"lost {len(self.lost)} records, e.g. {self.lost[:3]}"
        assert self.outcome.api_duplicates <= self.api_window
        assert self.outcome.dlq_duplicates <= self.poison_window
        assert self.committed == self.end_offsets
        assert self.order_breaks == [], f"offset order broken within a session: {self.order_breaks}"

    def summary(self) -> str:
        return (
            f"{self.records} records over {self.partitions} partitions, {self.kills} kill -9 and "
            f"{len(self.interruptions) - self.kills} SIGTERM interruptions: lost {len(self.lost)}, "
            f"API duplicates {self.outcome.api_duplicates} (uncommitted-and-accepted window summed over "
            f"the interruptions: {self.api_window}), dead-letter duplicates {self.outcome.dlq_duplicates} "
            f"(window {self.poison_window}), drain times {[round(t, 2) for t in self.drain_times]} s, "
            f"{self.elapsed_s:.0f} s in all"
        )


def run_kill_loop(
    *,
    bootstrap: str,
    registry: RegistryStub,
    sandbox: SandboxServer,
    workdir: Path,
    topic: str,
    dlq_topic: str,
    group: str,
    records: int,
    partitions: int,
    interruptions: int,
    seed: int,
    progress: tuple[float, float] = (0.15, 0.5),
    sigterm_every: int = 0,
    poison_every: int = 97,
    max_in_flight_records: int = 1000,
    shutdown_timeout_s: float = 15.0,
    timeout_s: float = 120.0,
    workers: int | str = 1,
    on_start: Callable[[ConnectorProcess], None] | None = None,
    mid_run: Callable[[ConnectorProcess], None] | None = None,
) -> KillLoopReport:
    """Produce `records` bets (half at the start, the rest in a slice before each later run), start
    the connector and stop it `interruptions` times mid-stream (SIGKILL; every `sigterm_every`-th one
    SIGTERM), each when the API has accepted a seeded random share (`progress`) of what is still
    missing; then let a last run finish and stop it with SIGTERM.

    At every interruption the committed positions are read back and checked against invariant 1
    (every good record below them was accepted) and the uncommitted window is measured.
    `on_start(process)` runs as each process starts; `mid_run(process)` once in each interrupted run,
    when the API has accepted half of what that run is to reach (a fault inside a live process)."""
    started = time.monotonic()
    rng = random.Random(seed)
    create_topics(bootstrap, {topic: partitions, dlq_topic: 1})
    schema_id = register_bet_schema(registry, topic)
    # Half the records are there at the start; the rest arrive in slices, one before each later run,
    # as live traffic would. A run overshoots its target by what the API accepts while the loop
    # notices and signals it, so with everything produced up front the later runs of a long loop
    # found nothing left to consume and waited for a target they could not reach.
    slice_size = records // (2 * interruptions) if interruptions > 1 else 0
    ledger = Ledger(bootstrap)
    try:
        produce_bets(
            ledger,
            topic,
            schema_id,
            records - slice_size * (interruptions - 1),
            partitions,
            rng,
            poison_every=poison_every,
        )
        doc = connector_doc(
            bootstrap=bootstrap,
            registry_url=registry.url,
            api_url=sandbox.base_url,
            group=group,
            dlq_topic=dlq_topic,
            mappings=[bet_mapping(topic)],
            max_in_flight_records=max_in_flight_records,
            shutdown_timeout_s=shutdown_timeout_s,
            workers=workers,
        )
        config = write_config(workdir, doc)
        done: list[Interruption] = []
        tps = sorted(ledger.end_offsets())
        previous: dict[TopicPartition, int] = dict.fromkeys(tps, 0)
        by_id = ledger.by_event_id()
        poison = ledger.poison()
        for n in range(interruptions):
            if n > 0 and slice_size:
                produce_bets(
                    ledger,
                    topic,
                    schema_id,
                    slice_size,
                    partitions,
                    rng,
                    first_index=len(ledger.records),
                    poison_every=poison_every,
                )
            by_id = ledger.by_event_id()
            poison = ledger.poison()
            missing = len(by_id) - len(set(accepted_ids(sandbox)) & set(by_id))
            lo, hi = progress
            target = accepted_count(sandbox) + max(1, int(missing * rng.uniform(lo, hi)))
            halfway = (accepted_count(sandbox) + target) // 2
            proc = ConnectorProcess(config, workdir / f"run-{n + 1}.log")
            if on_start is not None:
                on_start(proc)

            def reached(proc: ConnectorProcess = proc, target: int = target) -> bool:
                return accepted_count(sandbox) >= target or not proc.running

            try:
                if mid_run is not None:
                    wait_until(partial(reached, target=halfway), timeout_s, f"run {n + 1} to reach {halfway}")
                    if proc.running:
                        mid_run(proc)
                wait_until(reached, timeout_s, f"run {n + 1} to reach {target} accepted records")
                assert proc.running, f"run {n + 1} exited early with {proc.process.returncode}"
                accepted_before = accepted_count(sandbox)
                use_sigterm = sigterm_every > 0 and (n + 1) % sigterm_every == 0
                drain_s = None
                if use_sigterm:
                    code, drain_s = proc.terminate(shutdown_timeout_s + 30.0)
                    assert code == 0, f"run {n + 1} exited with {code} after SIGTERM"
                else:
                    proc.kill()
            finally:
                proc.stop_quietly()
            wait_for_quiet_sandbox(sandbox)
            committed = {tp: c or 0 for tp, c in committed_offsets(bootstrap, group, tps).items()}
            accepted = accepted_ids(sandbox)
            # Invariant 1 at the moment of the crash: nothing good below a committed position is missing.
            unaccepted_below = [
                r.position for r in ledger.good() if r.offset < committed[r.tp] and r.event_id not in accepted
            ]
            assert not unaccepted_below, (
                f"committed past records the API never accepted: {unaccepted_below[:5]}"
            )
            regressed = {tp: (previous[tp], c) for tp, c in committed.items() if c < previous[tp]}
            assert not regressed, f"committed positions went backwards: {regressed}"
            previous = committed
            api_window = sum(
                1
                for event_id in accepted
                if event_id in by_id and by_id[event_id].offset >= committed[by_id[event_id].tp]
            )
            poison_window = sum(1 for r in poison if r.offset >= committed[r.tp])
            done.append(
                Interruption(
                    "SIGTERM" if use_sigterm else "SIGKILL",
                    accepted_before,
                    committed,
                    api_window,
                    poison_window,
                    drain_s,
                    len(sandbox.records(ENDPOINT)),
                )
            )
        # The last run finishes everything, then stops cleanly.
        final = ConnectorProcess(config, workdir / "run-final.log")
        if on_start is not None:
            on_start(final)
        try:
            final.wait_for(
                lambda _p: set(by_id) <= set(accepted_ids(sandbox)),
                timeout_s,
                "the last run to get every good record accepted",
                poll_s=0.5,
            )
            code, final_drain = final.terminate(shutdown_timeout_s + 30.0)
            assert code == 0, f"the last run exited with {code}"
        finally:
            final.stop_quietly()
        outcome = Outcome.collect(sandbox, bootstrap, dlq_topic)
        stored = sandbox.records(ENDPOINT)
        bounds = [0, *(i.session_end for i in done), len(stored)]
        breaks = [
            f"session {n + 1}: {tp}"
            for n, (start, end) in enumerate(itertools.pairwise(bounds))
            for tp in order_breaks(stored[start:end], by_id)
        ]
    finally:
        ledger.close()
    return KillLoopReport(
        records=records,
        partitions=partitions,
        interruptions=done,
        outcome=outcome,
        lost=outcome.lost(ledger),
        committed=committed_offsets(bootstrap, group, tps),
        end_offsets=ledger.end_offsets(),
        final_drain_s=final_drain,
        elapsed_s=time.monotonic() - started,
        order_breaks=breaks,
        ledger=ledger,
    )


def machine_description() -> str:
    import platform

    cpus = os.cpu_count() or 0
    try:
        meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
        memory = f", {int(meminfo[1]) / 1024 / 1024:.0f} GiB RAM"
    except (OSError, IndexError, ValueError):
        memory = ""
    return (
        f"{platform.system()} {platform.machine()}, {cpus} CPU(s){memory}, Python {platform.python_version()}"
    )


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")
