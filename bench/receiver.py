"""A minimal ingest API for the benchmark: checks each request's signature, counts, and remembers when.

Runs in a process of its own (`start_receiver`), on loopback, so that it never shares an interpreter
lock with what it measures. Per request it verifies the HMAC signature against the HKDF key (401 when
wrong), parses the JSON array and counts its records. It does not validate them: the connector has
done that, and the benchmark measures the connector, not an API. With `track` on, it keeps each
record's acceptance time (wall clock) by event_id, for the latency run.

Faults are set through `POST /_bench/faults` with `{"latency_ms": 50}` (each upload is answered
50 ms after its request arrived, the checks included) or `{"outage": true}` (503 to
every upload until `{"outage": false}`); `GET /_bench/stats` returns the counts, the monotonic times
of the first and last acceptance and the refused requests; `GET /_bench/accepted` the tracked times.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import httpx
import orjson

from connector.ingest.signing import derive_key, verify
from connector.runtime.httpserver import BackgroundHTTPServer, QuietHandler

TOKEN = "bench-token"
ACCOUNT_ID = "bench-account"
WORKSPACE_ID = "bench-workspace"
_JSON = "application/json"


@dataclass
class _State:
    key: bytes
    track: bool
    lock: threading.Lock = field(default_factory=threading.Lock)
    latency_s: float = 0.0
    outage: bool = False
    accepted: int = 0
    requests: int = 0
    refused: int = 0
    bad_signatures: int = 0
    first_at: float | None = None
    last_at: float | None = None
    accepted_at: dict[str, float] = field(default_factory=dict)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "accepted": self.accepted,
                "requests": self.requests,
                "refused": self.refused,
                "bad_signatures": self.bad_signatures,
                "first_at": self.first_at,
                "last_at": self.last_at,
                "cpu_s": time.process_time(),
            }

    def upload(self, body: bytes, signature: str, arrived: float) -> int:
        """The answer goes out `latency_s` after the request `arrived` (monotonic): the checks
        below run inside that time, as an API's own work is part of its latency."""
        status, records = 200, []
        if self.outage:
            status = 503
        elif not verify(self.key, body, signature):
            status = 401
        else:
            records = orjson.loads(body)
        if self.latency_s:
            time.sleep(max(0.0, arrived + self.latency_s - time.monotonic()))
        if status != 200:
            with self.lock:
                if status == 503:
                    self.refused += 1
                else:
                    self.bad_signatures += 1
            return status
        now, wall = time.monotonic(), time.time()
        with self.lock:
            self.requests += 1
            self.accepted += len(records)
            self.first_at = self.first_at or now
            self.last_at = now
            if self.track:
                for record in records:
                    self.accepted_at[record["event_id"]] = wall
        return 200


def _handler(state: _State) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            if self.path == "/_bench/stats":
                self.reply(200, orjson.dumps(state.stats()), _JSON)
            elif self.path == "/_bench/accepted":
                with state.lock:
                    body = orjson.dumps(state.accepted_at)
                self.reply(200, body, _JSON)
            else:
                self.reply(404, b"{}", _JSON)

        def do_POST(self) -> None:
            arrived = time.monotonic()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/_bench/faults":
                faults = orjson.loads(body)
                state.latency_s = faults.get("latency_ms", state.latency_s * 1000) / 1000
                state.outage = bool(faults.get("outage", state.outage))
                self.reply(200, b"{}", _JSON)
                return
            status = state.upload(body, self.headers.get("x-hmac-signature", ""), arrived)
            answer = {"message": "ok", "count": 1} if status == 200 else {"error": str(status)}
            self.reply(status, orjson.dumps(answer), _JSON)

    return Handler


def _serve(conn: Connection, track: bool) -> None:
    state = _State(derive_key(TOKEN, ACCOUNT_ID, WORKSPACE_ID), track)
    server = BackgroundHTTPServer("127.0.0.1", 0, _handler(state), name="bench-receiver").start()
    conn.send(server.url)
    conn.recv()  # the parent says when to stop
    server.stop()


class Receiver:
    """`with Receiver(track=True) as api: api.base_url ... api.stats()`, served by a child process."""

    def __init__(self, *, track: bool = False) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, track), daemon=True, name="bench-receiver")
        self.url = ""
        self._http = httpx.Client(timeout=30)

    @property
    def base_url(self) -> str:
        return self.url + "/apigw/ingest"

    def __enter__(self) -> Receiver:
        self._process.start()
        if not self._conn.poll(30):
            raise RuntimeError("the bench receiver did not start")
        self.url = self._conn.recv()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()
        self._conn.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def faults(self, **faults: Any) -> None:
        self._http.post(self.url + "/_bench/faults", json=faults).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self._http.get(self.url + "/_bench/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def accepted_at(self) -> dict[str, float]:
        response = self._http.get(self.url + "/_bench/accepted")
        response.raise_for_status()
        accepted: dict[str, float] = response.json()
        return accepted

    def wait_for(self, accepted: int, timeout_s: float) -> dict[str, Any]:
        """Poll until `accepted` records have been accepted or the timeout passes; the last stats."""
        deadline = time.monotonic() + timeout_s
        while True:
            stats = self.stats()
            if stats["accepted"] >= accepted or time.monotonic() > deadline:
                return stats
            time.sleep(0.1)
