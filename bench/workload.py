"""The benchmark's records: the bench bet schema, its gaming-activity mapping, the payloads and the producers.

Every scenario reads the same bytes: Confluent-framed Avro of `bench/bet_bench.avsc`, registered
with the registry stub, generated deterministically from the record number (so a payload can be
rebuilt anywhere without shipping it between processes). Producing uses confluent_kafka directly in
large batches: the 1M-record backlog must not take longer to write than to read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any, Final

import fastavro
from confluent_kafka import Producer

BENCH_DIR: Final = Path(__file__).resolve().parent
SCHEMA_PATH: Final = BENCH_DIR / "bet_bench.avsc"
ENDPOINT: Final = "gaming-activity"

# The mapping every connector run uses; game_id, game_title, provider and currency have model
# names already and arrive through copy_matching.
MAPPING_FIELDS: Final = {
    "user_id": "player.id",
    "event_id": "bet_id",
    "event_name": "event_type",
    "event_time": "placed_at",
    "wager_amount": "stake",
    "win_amount": "win_amount",
    "odds": "odds",
    "game_category": "category",
    "betting_channel": "channel",
    "bet_status": "status",
    "num_spins_played": "spins",
}

_EPOCH_MS: Final = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_TITLES: Final = ("Book of Dead", "Lightning Roulette", "Blackjack VIP", "Premier League")
_CATEGORIES: Final = ("SLOTS", "LIVE_CASINO", "TABLE_GAMES", "SPORTS")
_CHANNELS: Final = ("WEB", "IOS_APP", "ANDROID_APP", "RETAIL")
_STATUSES: Final = ("OPEN", "WON", "LOST")


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def parsed_schema() -> Any:
    return fastavro.parse_schema(load_schema())


def mapping(topic: str) -> dict[str, Any]:
    return {
        "topic": topic,
        "endpoint": ENDPOINT,
        "format": "confluent-avro",
        "schema": str(SCHEMA_PATH),
        "fields": dict(MAPPING_FIELDS),
        "copy_matching": True,
    }


def event_id(prefix: str, n: int) -> str:
    return f"{prefix}-{n:08d}"


def bet(prefix: str, n: int) -> dict[str, Any]:
    """Record number `n` of a run; `prefix` makes event ids unique across runs on other topics."""
    kind = n % 4
    settled = n % 3 != 0
    return {
        "bet_id": event_id(prefix, n),
        "player": {"id": f"player-{n % 50_000}", "brand": "bench-casino", "country": "MT"},
        "event_type": "BET_SETTLED" if settled else "BET_PLACED",
        "game_id": f"game-{n % 400}",
        "game_title": _TITLES[kind],
        "provider": "Evolution" if kind == 1 else "NetEnt",
        "category": _CATEGORIES[kind],
        "stake": Decimal(n % 5000 + 10).scaleb(-2) + 1,
        "win_amount": float(n % 700) / 4 if settled else None,
        "odds": 1.5 + (n % 40) / 8 if kind == 3 else None,
        "currency": "EUR",
        "placed_at": _EPOCH_MS + n * 37,
        "channel": _CHANNELS[n % 4],
        "status": _STATUSES[n % 3],
        "session_id": f"sess-{n // 20}" if n % 5 else None,
        "spins": n % 100,
    }


class Encoder:
    """Confluent wire format (magic byte, schema id, Avro body) of the bench bets."""

    def __init__(self, schema_id: int) -> None:
        self._header = b"\x00" + schema_id.to_bytes(4, "big")
        self._schema = parsed_schema()

    def payload(self, record: dict[str, Any]) -> bytes:
        out = BytesIO()
        out.write(self._header)
        fastavro.schemaless_writer(out, self._schema, record)
        return out.getvalue()

    def payloads(self, prefix: str, start: int, stop: int) -> list[bytes]:
        return [self.payload(bet(prefix, n)) for n in range(start, stop)]


def _producer(bootstrap: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 500_000,
            "compression.type": "none",
            "acks": "all",
        }
    )


def produce_backlog(
    bootstrap: str, topic: str, encoder: Encoder, prefix: str, count: int, chunk: int = 20_000
) -> float:
    """Write `count` bets round-robin over the topic's partitions; returns the seconds it took."""
    producer = _producer(bootstrap)
    errors: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    started = time.monotonic()
    for start in range(0, count, chunk):
        for n, value in enumerate(encoder.payloads(prefix, start, min(count, start + chunk)), start):
            _produce(producer, topic, event_id(prefix, n).encode(), value, report)
    if producer.flush(120) or errors:
        raise RuntimeError(f"producing the backlog failed: {errors[:3]}")
    return time.monotonic() - started


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, report: Callable[..., None]) -> None:
    while True:
        try:
            producer.produce(topic, value, key, on_delivery=report)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.05)


def produce_paced(
    bootstrap: str, topic: str, encoder: Encoder, prefix: str, rate: float, seconds: float
) -> dict[str, int]:
    """`rate` bets per second for `seconds`, in 10 ms slices; returns event id → Kafka timestamp (ms)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": "all"})
    stamps: dict[str, int] = {}
    errors: list[str] = []

    def report(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            stamps[msg.key().decode()] = msg.timestamp()[1]

    total = int(rate * seconds)
    started = time.monotonic()
    for n in _paced(total, rate, started):
        _produce(producer, topic, event_id(prefix, n).encode(), encoder.payload(bet(prefix, n)), report)
        producer.poll(0)
    if producer.flush(30) or errors:
        raise RuntimeError(f"paced producing failed: {errors[:3]}")
    return stamps


def _paced(total: int, rate: float, started: float) -> Iterator[int]:
    n = 0
    while n < total:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        while n < due:
            yield n
            n += 1
        time.sleep(0.01)
