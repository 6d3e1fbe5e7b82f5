"""A local emulator of the OptiKPI ingest API (`optikpi-connector sandbox`): tests, the demo, benchmarks.

Standard library HTTP only (ThreadingHTTPServer, HTTP/1.1 keep-alive). All nine endpoints are served under
`/apigw/ingest`; the contract is ingest-api.md, the options are config-reference.md ("Sandbox").

Checks on an ingest request, in this order; the first one that fails answers:

1. route: unknown path -> 404, a method other than POST -> 405 (both before any fault, so a wrong base
   URL is never mistaken for a transient failure)
2. the body is read; one above the read cap (8 x max_body_bytes, at least 8 MiB) -> 413 and the connection
   is closed without reading it
3. drop fault: the connection is closed without any answer
4. latency fault: sleep
5. fail fault: 500 or 503 (chosen at random)
6. throttle fault: 429 with `Retry-After: 1`
7. rate limiter: token bucket per endpoint -> 429 with `Retry-After` (unauthenticated requests spend
   tokens too, as they do at a gateway that throttles before it authenticates)
8. auth -> 401: Content-Type, the three x-optikpi headers, x-hmac-algorithm, then the body's signature
9. size: body above max_body_bytes -> 413
10. parse: invalid JSON, or neither an object nor an array of objects, or an empty array -> 400
11. idempotency: an `X-Idempotency-Key` already accepted on this endpoint -> 200 with the first answer's body,
    nothing stored again
12. more than 500 records -> 400; then every record is validated (models.validate_record, plus account_id and
    workspace_id must equal the header ids): any invalid record rejects the whole request with 400
13. store and answer 200

Admin API (never subject to faults, limits or auth): `GET /_sandbox/records[?endpoint=KEY]`,
`DELETE /_sandbox/records` (clears records, idempotency keys and stats; a --store file is an append-only log
and is kept), `GET /_sandbox/stats`, `GET|POST /_sandbox/faults`, `GET /_sandbox/health`.

In stats, "duplicates" counts requests answered from the idempotency cache and "rejected_requests" counts
ingest requests refused for their content or credentials (400, 401, 413); throttling, faults and routing
errors show only in the per-status counts.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import random
import signal
import socket
import socketserver
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final
from urllib.parse import parse_qs, urlsplit

import structlog

from connector.endpoints import ENDPOINTS, MAX_RECORDS_PER_REQUEST, Endpoint
from connector.errors import ExitCode
from connector.ingest.models import FieldError, validate_record
from connector.ingest.ratelimit import TokenBucket
from connector.ingest.signing import derive_key, verify
from connector.runtime.logs import register_secret

__all__ = [
    "DEMO_ACCOUNT_ID",
    "DEMO_TOKEN",
    "DEMO_WORKSPACE_ID",
    "INGEST_PREFIX",
    "SandboxOptions",
    "SandboxServer",
    "run_sandbox",
]

DEMO_TOKEN: Final = "sandbox-token"
DEMO_ACCOUNT_ID: Final = "sandbox-account"
DEMO_WORKSPACE_ID: Final = "sandbox-workspace"

INGEST_PREFIX: Final = "/apigw/ingest"
_ADMIN_PREFIX: Final = "/_sandbox/"

# The first answer's body is replayed for a repeated key; beyond this many keys the oldest are forgotten.
_IDEMPOTENCY_KEYS_KEPT: Final = 100_000
_MAX_ERRORS_LISTED: Final = 100
# A latency fault above this is surely a typo (and would make stop() wait for sleeping handlers).
_MAX_LATENCY_MS: Final = 600_000
_MIN_READ_CAP: Final = 8 * 1024 * 1024

_INGEST_PATHS: Final[dict[str, Endpoint]] = {INGEST_PREFIX + e.path: e for e in ENDPOINTS.values()}
_AUTH_HEADERS: Final = (
    "x-optikpi-token",
    "x-optikpi-account-id",
    "x-optikpi-workspace-id",
    "x-hmac-signature",
)
_HEADERS_READ: Final = ("content-type", *_AUTH_HEADERS, "x-hmac-algorithm", "x-idempotency-key")
_RATE_FAULTS: Final = ("fail_rate", "throttle_rate", "drop_rate")
_REJECTED_STATUSES: Final = frozenset({400, 401, 413})

# details.issue for each models.FieldError rule; the docs' example uses "missing required field".
_ISSUES: Final[dict[str, str]] = {
    "required": "missing required field",
    "type": "wrong type",
    "finite": "not a finite number",
    "json_object": "not a JSON object",
    "datetime": "invalid date-time",
    "date": "invalid date",
    "not_empty": "empty value",
    "category": "wrong event category",
    "choice": "value not allowed",
    "positive": "not greater than 0",
    "charset": "invalid characters",
    "record_type": "record is not an object",
    "mismatch": "does not match the request header",
}

Clock = Callable[[], float]

_log = structlog.get_logger("connector.devtools.sandbox.server")


@dataclass(frozen=True)
class SandboxOptions:
    host: str = "127.0.0.1"
    port: int = 8088  # 0 picks a free port
    token: str = DEMO_TOKEN
    account_id: str = DEMO_ACCOUNT_ID
    workspace_id: str = DEMO_WORKSPACE_ID
    rate_limit_scale: float = 1.0  # multiplies every endpoint's limit; 0 turns limiting off
    fail_rate: float = 0.0
    throttle_rate: float = 0.0
    latency_ms: int = 0
    drop_rate: float = 0.0
    max_body_bytes: int = 1_000_000
    store: Path | None = None  # accepted records are appended here as JSON lines
    seed: int | None = None  # seeds the fault-injection RNG

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535 (got {self.port})")
        for name in ("token", "account_id", "workspace_id"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        if not (math.isfinite(self.rate_limit_scale) and self.rate_limit_scale >= 0):
            raise ValueError("rate_limit_scale must be a finite number >= 0")
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be >= 1")
        _checked_faults(
            {
                "fail_rate": self.fail_rate,
                "throttle_rate": self.throttle_rate,
                "latency_ms": self.latency_ms,
                "drop_rate": self.drop_rate,
            }
        )


# --------------------------------------------------------------------------------------------
# Faults and rate limiting


def _checked_faults(values: Mapping[str, object]) -> dict[str, float | int]:
    """The validated fault settings in `values`; ValueError names the first bad key."""
    checked: dict[str, float | int] = {}
    for key, value in values.items():
        if key not in (*_RATE_FAULTS, "latency_ms"):
            raise ValueError(f"unknown fault {key!r}; known: fail_rate, throttle_rate, latency_ms, drop_rate")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{key} must be a number")
        if key == "latency_ms":
            if value < 0 or value > _MAX_LATENCY_MS or not float(value).is_integer():
                raise ValueError(f"latency_ms must be an integer between 0 and {_MAX_LATENCY_MS}")
            checked[key] = int(value)
        else:
            if not 0 <= value <= 1:
                raise ValueError(f"{key} must be between 0 and 1")
            checked[key] = float(value)
    return checked


@dataclass
class _Faults:
    fail_rate: float
    throttle_rate: float
    latency_ms: int
    drop_rate: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "fail_rate": self.fail_rate,
            "throttle_rate": self.throttle_rate,
            "latency_ms": self.latency_ms,
            "drop_rate": self.drop_rate,
        }


@dataclass(frozen=True)
class _FaultDraw:
    drop: bool
    latency_s: float
    fail_status: int | None
    throttle: bool


# --------------------------------------------------------------------------------------------
# Replies


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json_reply(status: int, value: object, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    return _Reply(status, _json_bytes(value), headers)


_REASONS: Final[dict[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _error(
    status: int,
    message: str,
    field: str,
    issue: str,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    **extra: object,
) -> _Reply:
    details: dict[str, object] = {"field": field, "issue": issue, **extra}
    error = _REASONS.get(status, "Error")
    return _json_reply(status, {"error": error, "message": message, "details": details}, headers)


def _unauthorized(field: str, issue: str, message: str) -> _Reply:
    # Never echo a header value back: the token is a secret, and the others may be mistyped secrets.
    return _error(401, message, field, issue)


def _throttled(retry_after_s: int, message: str) -> _Reply:
    return _error(
        429, message, "rate_limit", "too many requests", headers=(("Retry-After", str(retry_after_s)),)
    )


def _accepted_body(record_ids: list[str]) -> bytes:
    count = len(record_ids)
    return _json_bytes({"message": f"Accepted {count} records", "recordIds": record_ids, "count": count})


def _record_id(record: dict[str, Any]) -> str:
    value = record.get("event_id") or record.get("user_id")
    return str(value) if value else str(uuid.uuid4())


def _reject_constant(token: str) -> object:
    # Python's json accepts NaN and Infinity; JSON.parse on the real server does not.
    raise ValueError(f"{token} is not valid JSON")


# --------------------------------------------------------------------------------------------
# The emulated API, independent of the HTTP plumbing


class _SandboxState:
    def __init__(self, options: SandboxOptions, clock: Clock) -> None:
        self._options = options
        self._key = derive_key(options.token, options.account_id, options.workspace_id)
        self._token = options.token.encode("utf-8")
        self._account = options.account_id.encode("utf-8")
        self._workspace = options.workspace_id.encode("utf-8")
        self._read_cap = max(_MIN_READ_CAP, 8 * options.max_body_bytes)
        self._lock = threading.Lock()
        self._random = random.Random(options.seed)
        self._faults = _Faults(
            options.fail_rate, options.throttle_rate, options.latency_ms, options.drop_rate
        )
        self._buckets: dict[str, TokenBucket] = {}
        if options.rate_limit_scale > 0:
            for e in ENDPOINTS.values():
                rate = e.rate_limit * options.rate_limit_scale
                # At least one whole token, or a scaled-down limit below 1 req/s could never be met.
                self._buckets[e.key] = TokenBucket(rate, burst=max(1.0, rate), clock=clock)
        self._records: list[tuple[str, dict[str, Any]]] = []
        self._idempotency: OrderedDict[tuple[str, str], list[str]] = OrderedDict()
        self._requests: dict[str, Counter[str]] = {}
        self._accepted: Counter[str] = Counter()
        self._duplicates = 0
        self._rejected = 0
        self._dropped = 0
        self._store: IO[str] | None = None
        self._connections: set[socket.socket] = set()

    @property
    def read_cap(self) -> int:
        return self._read_cap

    # ---- lifecycle

    def open_store(self) -> None:
        if self._options.store is not None and self._store is None:
            self._store = self._options.store.open("a", encoding="utf-8")

    def close_store(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def add_connection(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def remove_connection(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def close_connections(self) -> None:
        # Keep-alive handler threads would otherwise go on serving after stop().
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    # ---- ingest

    def handle_ingest(
        self, endpoint: Endpoint, headers: Mapping[str, str | None], body: bytes
    ) -> _Reply | None:
        """The answer to one POST on `endpoint`; None means: close the connection without answering."""
        draw = self._draw_faults()
        if draw.drop:
            with self._lock:
                self._dropped += 1
            return None
        if draw.latency_s > 0:
            time.sleep(draw.latency_s)
        reply = self._answer(endpoint, headers, body, draw)
        with self._lock:
            self._requests.setdefault(endpoint.key, Counter())[str(reply.status)] += 1
            if reply.status in _REJECTED_STATUSES:
                self._rejected += 1
        return reply

    def _draw_faults(self) -> _FaultDraw:
        with self._lock:
            f = self._faults
            rng = self._random
            # Every draw is made on every request so that a seed gives the same sequence whatever the rates.
            drop = rng.random() < f.drop_rate
            fail = rng.random() < f.fail_rate
            status = rng.choice((500, 503))
            throttle = rng.random() < f.throttle_rate
            return _FaultDraw(drop, f.latency_ms / 1000.0, status if fail else None, throttle)

    def _answer(
        self, endpoint: Endpoint, headers: Mapping[str, str | None], body: bytes, draw: _FaultDraw
    ) -> _Reply:
        if draw.fail_status is not None:
            return _error(draw.fail_status, "Injected server failure", "server", "injected failure")
        if draw.throttle:
            return _throttled(1, "Rate limit exceeded (injected)")
        bucket = self._buckets.get(endpoint.key)
        if bucket is not None:
            wait = bucket.try_acquire()
            if wait > 0:
                return _throttled(max(1, math.ceil(wait)), f"Rate limit exceeded for {endpoint.key}")
        refused = self._check_auth(headers, body)
        if refused is not None:
            return refused
        if len(body) > self._options.max_body_bytes:
            return self._too_large(len(body))
        records = self._parse(body)
        if isinstance(records, _Reply):
            return records
        key = headers.get("x-idempotency-key")
        if key:
            replay = self._replay(endpoint.key, key)
            if replay is not None:
                return replay
        if len(records) > MAX_RECORDS_PER_REQUEST:
            return _error(
                400,
                f"Too many records: {len(records)} > {MAX_RECORDS_PER_REQUEST}",
                "records",
                "too many records",
            )
        invalid = self._validate(endpoint.key, records)
        if invalid is not None:
            return invalid
        return self._accept(endpoint.key, key, records)

    def _too_large(self, size: int) -> _Reply:
        limit = self._options.max_body_bytes
        return _error(
            413, f"Body of {size} bytes exceeds the limit of {limit} bytes", "body", "body too large"
        )

    def _check_auth(self, headers: Mapping[str, str | None], body: bytes) -> _Reply | None:
        content_type = headers.get("content-type")
        if content_type is None or content_type.split(";", 1)[0].strip().lower() != "application/json":
            return _unauthorized(
                "content-type", "wrong content type", "Content-Type must be application/json"
            )
        values: dict[str, bytes] = {}
        for name in _AUTH_HEADERS:
            value = headers.get(name)
            if not value:
                return _unauthorized(name, "missing header", f"Missing header {name}")
            # http.server decoded the header as latin-1: this gives back the bytes on the wire.
            values[name] = value.encode("latin-1", "replace")
        algorithm = headers.get("x-hmac-algorithm")
        if not algorithm:
            return _unauthorized("x-hmac-algorithm", "missing header", "Missing header x-hmac-algorithm")
        if algorithm.strip().lower() != "sha256":
            return _unauthorized(
                "x-hmac-algorithm", "unsupported algorithm", "x-hmac-algorithm must be sha256"
            )
        if not hmac.compare_digest(values["x-optikpi-token"], self._token):
            return _unauthorized("x-optikpi-token", "invalid token", "Invalid token")
        if values["x-optikpi-account-id"] != self._account:
            return _unauthorized("x-optikpi-account-id", "unknown account", "Unknown account id")
        if values["x-optikpi-workspace-id"] != self._workspace:
            return _unauthorized("x-optikpi-workspace-id", "unknown workspace", "Unknown workspace id")
        if not verify(self._key, body, values["x-hmac-signature"].decode("latin-1")):
            return _unauthorized("x-hmac-signature", "signature mismatch", "Invalid signature")
        return None

    def _parse(self, body: bytes) -> list[Any] | _Reply:
        try:
            payload = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            # JSONDecodeError's text names a position, never the document's content.
            reason = str(exc) if isinstance(exc, json.JSONDecodeError) else "undecodable body"
            return _error(400, f"Invalid JSON: {reason}", "body", "invalid JSON")
        if isinstance(payload, dict):
            return [payload]
        if not isinstance(payload, list):
            return _error(
                400, "Body must be a JSON object or an array of objects", "body", "not an object or array"
            )
        if not payload:
            return _error(400, "No records in the body", "records", "empty array")
        return payload

    def _replay(self, endpoint_key: str, key: str) -> _Reply | None:
        with self._lock:
            ids = self._idempotency.get((endpoint_key, key))
            if ids is None:
                return None
            self._duplicates += 1
        return _Reply(200, _accepted_body(ids))

    def _record_errors(self, endpoint_key: str, record: object) -> list[FieldError]:
        errors = validate_record(endpoint_key, record)
        if not isinstance(record, dict):
            return errors
        account, workspace = record.get("account_id"), record.get("workspace_id")
        if account == self._options.account_id and workspace == self._options.workspace_id:
            return errors  # the common case, kept cheap: this runs once per record
        for name, value, expected, header in (
            ("account_id", account, self._options.account_id, "x-optikpi-account-id"),
            ("workspace_id", workspace, self._options.workspace_id, "x-optikpi-workspace-id"),
        ):
            # A missing or mistyped id was already reported by validate_record.
            if isinstance(value, str) and value and value != expected:
                errors.append(FieldError(name, "mismatch", f"{name} does not match the {header} header"))
        return errors

    def _validate(self, endpoint_key: str, records: list[Any]) -> _Reply | None:
        listed: list[dict[str, object]] = []
        first: tuple[int, FieldError] | None = None
        for index, record in enumerate(records):
            for err in self._record_errors(endpoint_key, record):
                if first is None:
                    first = (index, err)
                listed.append(
                    {"index": index, "field": err.field or "record", "rule": err.rule, "message": err.message}
                )
                if len(listed) >= _MAX_ERRORS_LISTED:
                    break
            if len(listed) >= _MAX_ERRORS_LISTED:
                break
        if first is None:
            return None
        index, err = first
        return _error(
            400,
            f"Validation failed: {err.message}",
            err.field or "record",
            _ISSUES.get(err.rule, err.rule.replace("_", " ")),
            index=index,
            errors=listed,
        )

    def _accept(self, endpoint_key: str, key: str | None, records: list[dict[str, Any]]) -> _Reply:
        ids = [_record_id(r) for r in records]
        with self._lock:
            if key:
                # A concurrent request with the same key may have won the race since the first look.
                earlier = self._idempotency.get((endpoint_key, key))
                if earlier is not None:
                    self._duplicates += 1
                    return _Reply(200, _accepted_body(earlier))
                self._idempotency[(endpoint_key, key)] = ids
                if len(self._idempotency) > _IDEMPOTENCY_KEYS_KEPT:
                    self._idempotency.popitem(last=False)
            self._records.extend((endpoint_key, r) for r in records)
            self._accepted[endpoint_key] += len(records)
            if self._store is not None:
                self._store.write(
                    "".join(
                        json.dumps({"endpoint": endpoint_key, "record": r}, ensure_ascii=False) + "\n"
                        for r in records
                    )
                )
                self._store.flush()
        return _Reply(200, _accepted_body(ids))

    # ---- admin and inspection

    def records(self, endpoint: str | None) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            if endpoint is None:
                return list(self._records)
            return [entry for entry in self._records if entry[0] == endpoint]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {key: dict(self._requests.get(key, {})) for key in ENDPOINTS},
                "accepted": {key: self._accepted[key] for key in ENDPOINTS},
                "duplicates": self._duplicates,
                "rejected_requests": self._rejected,
                "dropped": self._dropped,
            }

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._idempotency.clear()
            self._requests.clear()
            self._accepted.clear()
            self._duplicates = self._rejected = self._dropped = 0

    def faults(self) -> dict[str, float | int]:
        with self._lock:
            return self._faults.as_dict()

    def set_faults(self, values: Mapping[str, object]) -> dict[str, float | int]:
        checked = _checked_faults(values)
        with self._lock:
            merged = {**self._faults.as_dict(), **checked}
            self._faults = _Faults(
                float(merged["fail_rate"]),
                float(merged["throttle_rate"]),
                int(merged["latency_ms"]),
                float(merged["drop_rate"]),
            )
            return self._faults.as_dict()

    def handle_admin(self, method: str, path: str, query: str, body: bytes) -> _Reply:
        name = path[len(_ADMIN_PREFIX) :]
        allowed = {
            "records": ("GET", "DELETE"),
            "stats": ("GET",),
            "faults": ("GET", "POST"),
            "health": ("GET",),
        }
        if name not in allowed:
            return _error(404, f"No such sandbox resource: {path}", "path", "unknown path")
        if method not in allowed[name]:
            methods = ", ".join(allowed[name])
            return _error(
                405,
                f"{method} is not allowed on {path}",
                "method",
                "method not allowed",
                headers=(("Allow", methods),),
            )
        if name == "health":
            return _json_reply(200, {"status": "ok"})
        if name == "stats":
            return _json_reply(200, self.stats())
        if name == "records":
            return self._admin_records(method, query)
        return self._admin_faults(method, body)

    def _admin_records(self, method: str, query: str) -> _Reply:
        if method == "DELETE":
            self.clear()
            return _json_reply(200, {"message": "cleared"})
        endpoint = parse_qs(query).get("endpoint", [None])[-1]
        if endpoint is not None and endpoint not in ENDPOINTS:
            return _error(400, f"Unknown endpoint {endpoint!r}", "endpoint", "unknown endpoint")
        entries = self.records(endpoint)
        return _json_reply(
            200, {"count": len(entries), "records": [{"endpoint": k, "record": r} for k, r in entries]}
        )

    def _admin_faults(self, method: str, body: bytes) -> _Reply:
        if method == "GET":
            return _json_reply(200, self.faults())
        try:
            values = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return _error(400, "Invalid JSON", "body", "invalid JSON")
        if not isinstance(values, dict):
            return _error(400, "Body must be a JSON object", "body", "not an object")
        try:
            return _json_reply(200, self.set_faults(values))
        except ValueError as exc:
            return _error(400, str(exc), "faults", "invalid fault setting")


# --------------------------------------------------------------------------------------------
# HTTP plumbing


class _FramingError(Exception):
    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: _SandboxState) -> None:
        self.state = state
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can hang on a machine without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body would wait for the client's delayed ACK.
    disable_nagle_algorithm = True
    server_version = "optikpi-sandbox"

    @property
    def _state(self) -> _SandboxState:
        server = self.server
        assert isinstance(server, _HTTPServer)
        return server.state

    def setup(self) -> None:
        super().setup()
        self._state.add_connection(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._state.remove_connection(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request on stderr would dominate the profile and drown the test output.
        return

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        state = self._state
        try:
            body = self._read_body(state.read_cap)
        except _FramingError as exc:
            self.close_connection = True
            self._send(exc.reply)
            return
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        url = urlsplit(self.path)
        endpoint = _INGEST_PATHS.get(url.path)
        if endpoint is not None:
            if self.command != "POST":
                reply: _Reply | None = _error(
                    405, f"{self.command} is not allowed; use POST", "method", "method not allowed",
                    headers=(("Allow", "POST"),),
                )  # fmt: skip
            else:
                headers = {name: self.headers.get(name) for name in _HEADERS_READ}
                reply = state.handle_ingest(endpoint, headers, body)
        elif url.path.startswith(_ADMIN_PREFIX):
            reply = state.handle_admin(self.command, url.path, url.query, body)
        else:
            reply = _error(404, f"No such endpoint: {url.path}", "path", "unknown path")
        if reply is None:
            self.close_connection = True
            return
        self._send(reply)

    def _read_body(self, cap: int) -> bytes:
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None and encoding.strip().lower() == "chunked":
            return self._read_chunked(cap)
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            raise _FramingError(_error(400, "Invalid Content-Length", "content-length", "invalid header"))
        if length > cap:
            raise _FramingError(_error(413, f"Body of {length} bytes is too large", "body", "body too large"))
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionError("client closed the connection mid-body")
        return body

    def _read_chunked(self, cap: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            try:
                chunk = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _FramingError(_error(400, "Invalid chunked body", "body", "invalid chunk")) from None
            if chunk == 0:
                break
            size += chunk
            if size > cap:
                raise _FramingError(_error(413, "Chunked body is too large", "body", "body too large"))
            data = self.rfile.read(chunk)
            if len(data) < chunk:
                raise ConnectionError("client closed the connection mid-body")
            parts.append(data)
            self.rfile.readline(1024)  # the CRLF after the chunk
        # Trailers (ignored) end with an empty line.
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(parts)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed requests: the same JSON error shape as everything else, then close.
        self.close_connection = True
        reason = self.responses.get(code, ("Error", ""))[0]
        self._send(_error(code, message or reason, "request", reason.lower()))


# --------------------------------------------------------------------------------------------
# Public API


class SandboxServer:
    """The sandbox in a background thread: `with SandboxServer(SandboxOptions(port=0)) as s: s.base_url`."""

    def __init__(self, options: SandboxOptions, *, clock: Clock = time.monotonic) -> None:
        self._options = options
        self._state = _SandboxState(options, clock)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            raise RuntimeError("sandbox already started")
        host = self._options.host
        server_class = _HTTPServer6 if ":" in host else _HTTPServer
        httpd = server_class((host, self._options.port), self._state)
        try:
            self._state.open_store()
        except OSError:
            httpd.server_close()
            raise
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.server_close()
        self._state.close_connections()
        if thread is not None:
            thread.join()
        self._state.close_store()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("sandbox not started")
        host, port = self._httpd.server_address[:2]
        assert isinstance(host, str)
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.root_url + INGEST_PREFIX

    def records(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Accepted records in arrival order (all endpoints' when `endpoint` is None)."""
        return [record for _, record in self._state.records(endpoint)]

    def entries(self) -> list[tuple[str, dict[str, Any]]]:
        """Accepted records with their endpoint key, in arrival order."""
        return self._state.records(None)

    def stats(self) -> dict[str, Any]:
        return self._state.stats()

    def clear(self) -> None:
        self._state.clear()

    def faults(self) -> dict[str, float | int]:
        return self._state.faults()

    def set_faults(self, **kw: float) -> None:
        """Change fail_rate / throttle_rate / latency_ms / drop_rate; ValueError on a bad value."""
        self._state.set_faults(kw)


def run_sandbox(options: SandboxOptions) -> int:
    """Serve until SIGINT or SIGTERM; 0 after a clean stop, 1 when the address cannot be bound."""
    register_secret(options.token)
    server = SandboxServer(options)
    try:
        server.start()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        _log.error("sandbox cannot listen", host=options.host, port=options.port, reason=reason)
        return ExitCode.FAILURE
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        _log.info(
            f"sandbox listening on {server.base_url}",
            url=server.base_url,
            admin=server.root_url + "/_sandbox/",
            rate_limit_scale=options.rate_limit_scale,
            faults=server.faults(),
        )
        # Off the main thread no handler of ours is installed, and Ctrl-C arrives as KeyboardInterrupt.
        with contextlib.suppress(KeyboardInterrupt):
            stopping.wait()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stats = server.stats()
    _log.info("sandbox stopped", accepted=sum(stats["accepted"].values()), duplicates=stats["duplicates"])
    return ExitCode.OK
