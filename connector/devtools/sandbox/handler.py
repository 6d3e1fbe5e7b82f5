"""The sandbox's HTTP side: request framing, routing, the ingest checks in the API's order (with the
auth and signature checks), the admin API, and the replies.

All nine endpoints are served under `/apigw/ingest`; the contract is docs/ingest-api.md. Checks on an
ingest request, in this order; the first one that fails answers:

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

Client tags: a path `/_client/TAG/apigw/ingest/...` is served like `/apigw/ingest/...`, and the records it
stores remember TAG (`SandboxServer.clients()`), so that several connectors sharing one sandbox (and its
idempotency keys) can be told apart in a test: give each a base URL with its own tag.

In stats, "duplicates" counts requests answered from the idempotency cache, "replayed_records" the records
in them, and "rejected_requests" counts
ingest requests refused for their content or credentials (400, 401, 413); throttling, faults and routing
errors show only in the per-status counts.
"""

from __future__ import annotations

import hmac
import json
import math
import socket
import time
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from connector.devtools.sandbox.replies import (
    Reply,
    accepted,
    error,
    invalid_records,
    json_reply,
    throttled,
    unauthorized,
)
from connector.devtools.sandbox.state import FaultDraw, SandboxState
from connector.endpoints import ENDPOINTS, MAX_RECORDS_PER_REQUEST, Endpoint
from connector.ingest.signing import derive_key, verify
from connector.runtime.httpserver import BackgroundHTTPServer, QuietHandler

__all__ = ["INGEST_PREFIX", "SandboxAPI", "SandboxHandler"]

INGEST_PREFIX: Final = "/apigw/ingest"
ADMIN_PREFIX: Final = "/_sandbox/"
CLIENT_PREFIX: Final = "/_client/"

_MIN_READ_CAP: Final = 8 * 1024 * 1024
_INGEST_PATHS: Final[dict[str, Endpoint]] = {INGEST_PREFIX + e.path: e for e in ENDPOINTS.values()}
_AUTH_HEADERS: Final = (
    "x-optikpi-token",
    "x-optikpi-account-id",
    "x-optikpi-workspace-id",
    "x-hmac-signature",
)
_HEADERS_READ: Final = ("content-type", *_AUTH_HEADERS, "x-hmac-algorithm", "x-idempotency-key")
_ADMIN_METHODS: Final[dict[str, tuple[str, ...]]] = {
    "records": ("GET", "DELETE"),
    "stats": ("GET",),
    "faults": ("GET", "POST"),
    "health": ("GET",),
}


def _reject_constant(token: str) -> object:
    # Python's json accepts NaN and Infinity; JSON.parse on the real server does not.
    raise ValueError(f"{token} is not valid JSON")


class SandboxAPI:
    """The emulated API between the HTTP framing and the state: one request in, one Reply out."""

    def __init__(
        self, state: SandboxState, *, token: str, account_id: str, workspace_id: str, max_body_bytes: int
    ) -> None:
        self.state = state
        self.read_cap = max(_MIN_READ_CAP, 8 * max_body_bytes)
        self._max_body_bytes = max_body_bytes
        self._account = account_id.encode("utf-8")
        self._workspace = workspace_id.encode("utf-8")
        self._credentials = self._credentials_for(token)

    def _credentials_for(self, token: str) -> tuple[bytes, bytes]:
        return token.encode("utf-8"), derive_key(
            token, self._account.decode("utf-8"), self._workspace.decode("utf-8")
        )

    def rotate_token(self, token: str) -> None:
        """From now on only `token` is accepted (an operator rotated the account's token). One
        attribute holds the token and its signing key, so a request in flight sees either pair whole."""
        if not token:
            raise ValueError("token must not be empty")
        self._credentials = self._credentials_for(token)

    # ---- ingest

    def ingest(
        self, endpoint: Endpoint, headers: Mapping[str, str | None], body: bytes, client: str | None = None
    ) -> Reply | None:
        """The answer to one POST on `endpoint`; None means: close the connection without answering."""
        draw = self.state.draw_faults()
        if draw.drop:
            self.state.count_dropped()
            return None
        if draw.latency_s > 0:
            time.sleep(draw.latency_s)
        reply = self._answer(endpoint, headers, body, draw, client)
        self.state.count_answer(endpoint.key, reply.status)
        return reply

    def _answer(
        self,
        endpoint: Endpoint,
        headers: Mapping[str, str | None],
        body: bytes,
        draw: FaultDraw,
        client: str | None,
    ) -> Reply:
        if draw.fail_status is not None:
            return error(draw.fail_status, "Injected server failure", "server", "injected failure")
        if draw.throttle:
            return throttled(1, "Rate limit exceeded (injected)")
        wait = self.state.take_token(endpoint.key)
        if wait > 0:
            return throttled(max(1, math.ceil(wait)), f"Rate limit exceeded for {endpoint.key}")
        refused = self._check_auth(headers, body)
        if refused is not None:
            return refused
        if len(body) > self._max_body_bytes:
            limit = self._max_body_bytes
            return error(
                413, f"Body of {len(body)} bytes exceeds the limit of {limit} bytes", "body", "body too large"
            )
        records = self._parse(body)
        if isinstance(records, Reply):
            return records
        key = headers.get("x-idempotency-key")
        if key:
            earlier = self.state.replayed(endpoint.key, key)
            if earlier is not None:
                return accepted(earlier)
        if len(records) > MAX_RECORDS_PER_REQUEST:
            return error(
                400,
                f"Too many records: {len(records)} > {MAX_RECORDS_PER_REQUEST}",
                "records",
                "too many records",
            )
        invalid = self.state.invalid(endpoint.key, records)
        if invalid is not None:
            return invalid_records(invalid)
        return accepted(self.state.accept(endpoint.key, key, records, client))

    def _check_auth(self, headers: Mapping[str, str | None], body: bytes) -> Reply | None:
        content_type = headers.get("content-type")
        if content_type is None or content_type.split(";", 1)[0].strip().lower() != "application/json":
            return unauthorized("content-type", "wrong content type", "Content-Type must be application/json")
        values: dict[str, bytes] = {}
        for name in _AUTH_HEADERS:
            value = headers.get(name)
            if not value:
                return unauthorized(name, "missing header", f"Missing header {name}")
            # http.server decoded the header as latin-1: this gives back the bytes on the wire.
            values[name] = value.encode("latin-1", "replace")
        algorithm = headers.get("x-hmac-algorithm")
        if not algorithm:
            return unauthorized("x-hmac-algorithm", "missing header", "Missing header x-hmac-algorithm")
        if algorithm.strip().lower() != "sha256":
            return unauthorized(
                "x-hmac-algorithm", "unsupported algorithm", "x-hmac-algorithm must be sha256"
            )
        token, key = self._credentials
        if not hmac.compare_digest(values["x-optikpi-token"], token):
            return unauthorized("x-optikpi-token", "invalid token", "Invalid token")
        if values["x-optikpi-account-id"] != self._account:
            return unauthorized("x-optikpi-account-id", "unknown account", "Unknown account id")
        if values["x-optikpi-workspace-id"] != self._workspace:
            return unauthorized("x-optikpi-workspace-id", "unknown workspace", "Unknown workspace id")
        if not verify(key, body, values["x-hmac-signature"].decode("latin-1")):
            return unauthorized("x-hmac-signature", "signature mismatch", "Invalid signature")
        return None

    @staticmethod
    def _parse(body: bytes) -> list[Any] | Reply:
        try:
            payload = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            # JSONDecodeError's text names a position, never the document's content.
            reason = str(exc) if isinstance(exc, json.JSONDecodeError) else "undecodable body"
            return error(400, f"Invalid JSON: {reason}", "body", "invalid JSON")
        if isinstance(payload, dict):
            return [payload]
        if not isinstance(payload, list):
            return error(
                400, "Body must be a JSON object or an array of objects", "body", "not an object or array"
            )
        if not payload:
            return error(400, "No records in the body", "records", "empty array")
        return payload

    # ---- admin

    def admin(self, method: str, path: str, query: str, body: bytes) -> Reply:
        name = path[len(ADMIN_PREFIX) :]
        if name not in _ADMIN_METHODS:
            return error(404, f"No such sandbox resource: {path}", "path", "unknown path")
        if method not in _ADMIN_METHODS[name]:
            methods = ", ".join(_ADMIN_METHODS[name])
            return error(
                405,
                f"{method} is not allowed on {path}",
                "method",
                "method not allowed",
                headers=(("Allow", methods),),
            )
        if name == "health":
            return json_reply(200, {"status": "ok"})
        if name == "stats":
            return json_reply(200, self.state.stats())
        if name == "records":
            return self._admin_records(method, query)
        return self._admin_faults(method, body)

    def _admin_records(self, method: str, query: str) -> Reply:
        if method == "DELETE":
            self.state.clear()
            return json_reply(200, {"message": "cleared"})
        endpoint = parse_qs(query).get("endpoint", [None])[-1]
        if endpoint is not None and endpoint not in ENDPOINTS:
            return error(400, f"Unknown endpoint {endpoint!r}", "endpoint", "unknown endpoint")
        entries = self.state.records(endpoint)
        return json_reply(
            200, {"count": len(entries), "records": [{"endpoint": k, "record": r} for k, r in entries]}
        )

    def _admin_faults(self, method: str, body: bytes) -> Reply:
        if method == "GET":
            return json_reply(200, self.state.faults())
        try:
            values = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return error(400, "Invalid JSON", "body", "invalid JSON")
        if not isinstance(values, dict):
            return error(400, "Body must be a JSON object", "body", "not an object")
        try:
            return json_reply(200, self.state.set_faults(values))
        except ValueError as exc:
            return error(400, str(exc), "faults", "invalid fault setting")


# --------------------------------------------------------------------------------------------
# HTTP framing


def _client_tag(path: str) -> tuple[str, str | None]:
    """(the path without a leading `/_client/TAG`, TAG or None)."""
    if not path.startswith(CLIENT_PREFIX):
        return path, None
    tag, slash, rest = path[len(CLIENT_PREFIX) :].partition("/")
    if not tag or not slash:
        return path, None
    return "/" + rest, tag


class _FramingError(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class SandboxHandler(QuietHandler):
    """One connection; build with `functools.partial(SandboxHandler, api)` for the server."""

    server_version = "optikpi-sandbox"

    def __init__(
        self, api: SandboxAPI, request: socket.socket, client_address: Any, server: BackgroundHTTPServer
    ) -> None:
        self._api = api  # before super().__init__, which serves the connection
        super().__init__(request, client_address, server)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        api = self._api
        try:
            body = self._read_body(api.read_cap)
        except _FramingError as exc:
            self.close_connection = True
            self._send(exc.reply)
            return
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        url = urlsplit(self.path)
        path, client = _client_tag(url.path)
        endpoint = _INGEST_PATHS.get(path)
        if endpoint is not None:
            if self.command != "POST":
                reply: Reply | None = error(
                    405, f"{self.command} is not allowed; use POST", "method", "method not allowed",
                    headers=(("Allow", "POST"),),
                )  # fmt: skip
            else:
                headers = {name: self.headers.get(name) for name in _HEADERS_READ}
                reply = api.ingest(endpoint, headers, body, client)
        elif url.path.startswith(ADMIN_PREFIX):
            reply = api.admin(self.command, url.path, url.query, body)
        else:
            reply = error(404, f"No such endpoint: {url.path}", "path", "unknown path")
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
            raise _FramingError(error(400, "Invalid Content-Length", "content-length", "invalid header"))
        if length > cap:
            raise _FramingError(error(413, f"Body of {length} bytes is too large", "body", "body too large"))
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
                raise _FramingError(error(400, "Invalid chunked body", "body", "invalid chunk")) from None
            if chunk == 0:
                break
            size += chunk
            if size > cap:
                raise _FramingError(error(413, "Chunked body is too large", "body", "body too large"))
            data = self.rfile.read(chunk)
            if len(data) < chunk:
                raise ConnectionError("client closed the connection mid-body")
            parts.append(data)
            self.rfile.readline(1024)  # the CRLF after the chunk
        # Trailers (ignored) end with an empty line.
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(parts)

    def _send(self, reply: Reply) -> None:
        self.reply(reply.status, reply.body, "application/json", reply.headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed requests: the same JSON error shape as everything else, then close.
        self.close_connection = True
        reason = self.responses.get(code, ("Error", ""))[0]
        self._send(error(code, message or reason, "request", reason.lower()))
