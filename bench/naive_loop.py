"""The baseline: the loop one would write in an afternoon, with the same libraries and no pipeline.

One thread: poll a record, decode it with fastavro, build the ingest dict by hand, and every 500
records `json.dumps` the batch, sign it, POST it synchronously and commit synchronously. It reads
the bench schema from its file rather than the registry, and validates nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from io import BytesIO
from typing import Any

import fastavro
import httpx
from confluent_kafka import Consumer

from bench.receiver import ACCOUNT_ID, TOKEN, WORKSPACE_ID
from bench.workload import load_schema
from connector.ingest.signing import derive_key


def naive_loop(bootstrap: str, topic: str, group: str, url: str, count: int, timeout_s: float) -> float:
    """Deliver `count` records; returns the monotonic time of the first record consumed."""
    schema = fastavro.parse_schema(load_schema())
    key = derive_key(TOKEN, ACCOUNT_ID, WORKSPACE_ID)
    headers = {
        "Content-Type": "application/json",
        "x-optikpi-token": TOKEN,
        "x-hmac-algorithm": "sha256",
        "x-optikpi-account-id": ACCOUNT_ID,
        "x-optikpi-workspace-id": WORKSPACE_ID,
    }
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe([topic])
    http = httpx.Client(timeout=30)
    batch: list[dict[str, Any]] = []
    sent, first, deadline = 0, 0.0, time.monotonic() + timeout_s
    while sent < count and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        first = first or time.monotonic()
        bet: Any = fastavro.schemaless_reader(BytesIO((msg.value() or b"")[5:]), schema, None)
        record = {
            "account_id": ACCOUNT_ID,
            "workspace_id": WORKSPACE_ID,
            "user_id": bet["player"]["id"],
            "event_category": "Gaming Activity",
            "event_name": bet["event_type"],
            "event_id": bet["bet_id"],
            "event_time": bet["placed_at"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "wager_amount": float(bet["stake"]),
            "game_id": bet["game_id"],
            "game_title": bet["game_title"],
            "provider": bet["provider"],
            "game_category": bet["category"],
            "currency": bet["currency"],
            "betting_channel": bet["channel"],
            "bet_status": bet["status"],
            "num_spins_played": bet["spins"],
        }
        for name in ("win_amount", "odds"):
            if bet[name] is not None:
                record[name] = bet[name]
        batch.append(record)
        if len(batch) == 500 or sent + len(batch) == count:
            body = json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode()
            signature = hmac.new(key, body, hashlib.sha256).hexdigest()
            http.post(
                url, content=body, headers={**headers, "x-hmac-signature": signature}
            ).raise_for_status()
            consumer.commit(asynchronous=False)
            sent, batch = sent + len(batch), []
    consumer.close()
    http.close()
    return first
