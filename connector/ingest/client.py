"""IngestClient: signed uploads to the ingest API, following its status-code contract.

- transient (5xx, 408, timeouts, connection errors): exponential backoff with full jitter, forever
  unless `retry.max_elapsed_s` sets a budget;
- 429: wait `Retry-After` (seconds or HTTP date), else back off; the endpoint's token bucket
  halves its rate (AIMD, see ratelimit.py), so replicas sharing the account's limit settle on it;
- 400/413/422: the batch is split until the offending records are isolated; only they are
  reported as rejected, everything else is delivered, in order;
- 401/403/404/405: CredentialsError, which no caller can mistake for a data error.
Every request carries an `X-Idempotency-Key` derived from its exact body, so every retry of the
same records (even after a restart, if they are batched the same way) carries the same key.
Every request of one upload also carries its `X-Trace-Id` (kept out of the key, so retries stay
identical), logged with the upload.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from connector import __version__
from connector.config.settings import BatchingSettings, DestinationSettings, RetrySettings
from connector.endpoints import ENDPOINTS, MAX_RECORDS_PER_REQUEST
from connector.errors import CredentialsError, RetryBudgetExceeded, UploadCancelled
from connector.ingest.backoff import Backoff, parse_retry_after
from connector.ingest.jsjson import dumps_bytes
from connector.ingest.outage import ApiOutage
from connector.ingest.ratelimit import AdaptiveTokenBucket
from connector.ingest.signing import FileToken, HmacAuth, StaticToken, TokenSource
from connector.runtime.logs import get_logger
from connector.runtime.metrics import Metrics
from connector.runtime.tracing import new_trace_id

RESPONSE_EXCERPT_BYTES = 1024
MAX_RETRY_AFTER_S = 600.0
_CREDENTIALS_STATUSES = frozenset({401, 403, 404, 405})
# A redirect (http:// base_url sent to https://, a gateway login page) blames no record: treated like 404.
_REDIRECT_STATUSES = range(300, 400)
_TRANSIENT_STATUSES = frozenset({408, 425, 429})

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int  # position in the records given to upload()
    status: int | None  # None: rejected before sending (a single record larger than max_bytes)
    message: str
    response: str  # first 1 KB of the response body


@dataclass
class UploadResult:
    endpoint: str
    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    requests: int = 0
    trace_id: str = ""  # the X-Trace-Id its requests carried

    @property
    def ok(self) -> bool:
        return not self.rejected


def idempotency_key(path: str, body: bytes) -> str:
    return hashlib.sha256(path.encode() + b"\n" + body).hexdigest()[:32]


def token_source(destination: DestinationSettings) -> TokenSource:
    if destination.auth_token_file is not None:
        return FileToken(destination.auth_token_file)
    assert destination.auth_token is not None  # config guarantees exactly one of the two
    return StaticToken(destination.auth_token.get_secret_value())


def _api_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("error") or "")
        details = body.get("details")
        if isinstance(details, dict) and details.get("field") and str(details["field"]) not in message:
            message += f" (field {details['field']}: {details.get('issue', '')})"
        return message[:500] or response.reason_phrase
    return response.reason_phrase


def _without_token(text: str, response: httpx.Response) -> str:
    # A server may echo the token it refused; this text ends up in exceptions, health output, DLQ headers.
    token = response.request.headers.get("x-optikpi-token")
    return text.replace(token, "***") if token else text


def _excerpt(response: httpx.Response) -> str:
    # Scrubbed before the cut, so no token prefix survives at the edge. Bytes, not characters: 1 KB is
    # what a DLQ header may hold; "ignore" drops a multi-byte character cut in two.
    text = _without_token(response.content.decode("utf-8", "replace"), response)
    return text.encode("utf-8")[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "ignore")


class IngestClient:
    def __init__(
        self,
        destination: DestinationSettings,
        retry: RetrySettings,
        batching: BatchingSettings,
        *,
        token: TokenSource | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        name: str = "optikpi",
        outage: ApiOutage | None = None,
    ) -> None:
        """`outage`: told of every transient failure and every answer, for reason `api` on /readyz."""
        self.name = name
        self._outage = outage
        self._retry = retry
        self._max_records = min(batching.max_records, MAX_RECORDS_PER_REQUEST)
        self._max_bytes = batching.max_bytes
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep or self._interruptible_sleep
        self._backoff = Backoff(retry, rng)
        self._metrics = metrics
        self._buckets = {
            key: AdaptiveTokenBucket(destination.rate_limit(key), clock=clock) for key in ENDPOINTS
        }
        self._slots = threading.BoundedSemaphore(destination.max_concurrency)
        self._auth = HmacAuth(
            destination.account_id, destination.workspace_id, token or token_source(destination)
        )
        url = httpx.URL(destination.base_url)
        self.host = f"{url.host}:{url.port}" if url.port else url.host  # never the path or a userinfo
        self._http = httpx.Client(
            base_url=destination.base_url,
            auth=self._auth,
            timeout=httpx.Timeout(destination.timeout_s, connect=min(10.0, destination.timeout_s)),
            limits=httpx.Limits(
                max_connections=destination.max_concurrency,
                max_keepalive_connections=destination.max_concurrency,
            ),
            headers={"User-Agent": f"optikpi-connector/{__version__}"},
            transport=transport,
        )

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Cancel waits in progress and close the connection pool."""
        self._stop.set()
        self._http.close()

    def cancel(self) -> None:
        """Make uploads that are waiting to retry give up with UploadCancelled."""
        self._stop.set()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _pause(self, seconds: float) -> None:
        if self._stop.is_set():
            raise UploadCancelled("upload cancelled")
        self._sleep(seconds)
        if self._stop.is_set():
            raise UploadCancelled("upload cancelled")

    # -- public API ------------------------------------------------------------------------
    def upload(self, endpoint: str, records: Sequence[Mapping[str, Any]]) -> UploadResult:
        return self.upload_encoded(endpoint, [dumps_bytes(r) for r in records])

    def upload_encoded(
        self, endpoint: str, parts: Sequence[bytes], *, trace_id: str | None = None
    ) -> UploadResult:
        """Upload records already serialized one by one (each part is one record's JSON).

        Requests are cut at max_records and max_bytes; records are delivered in the given order.
        Every request carries `trace_id` as X-Trace-Id (a new random one when None).
        """
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        result = UploadResult(endpoint, trace_id=trace_id or new_trace_id())
        for group in self._chunks(parts, result):
            self._send(endpoint, group, parts, result)
        log.debug(
            "upload finished",
            destination=self.name,
            endpoint=endpoint,
            records=len(parts),
            accepted=result.accepted,
            rejected=len(result.rejected),
            requests=result.requests,
            trace_id=result.trace_id,
        )
        return result

    # -- internals -------------------------------------------------------------------------
    def _chunks(self, parts: Sequence[bytes], result: UploadResult) -> Iterator[list[int]]:
        group: list[int] = []
        size = 1  # "[", then each record adds its length plus one "," or "]"
        for index, part in enumerate(parts):
            part_size = len(part) + 1
            if len(part) + 2 > self._max_bytes:
                # Splitting cannot help: no request can carry this record.
                result.rejected.append(
                    Rejection(
                        index,
                        None,
                        f"record is {len(part)} bytes, larger than max_bytes {self._max_bytes}",
                        "",
                    )
                )
                continue
            if group and (len(group) >= self._max_records or size + part_size > self._max_bytes):
                yield group
                group, size = [], 1
            group.append(index)
            size += part_size
        if group:
            yield group

    def _send(self, endpoint: str, group: list[int], parts: Sequence[bytes], result: UploadResult) -> None:
        body = b"[" + b",".join(parts[i] for i in group) + b"]"
        status, response = self._post(endpoint, body, result)
        if status < 300:
            result.accepted += len(group)
            if self._metrics:
                self._metrics.records_accepted.labels(endpoint).inc(len(group))
            return
        if len(group) == 1:
            result.rejected.append(
                Rejection(
                    group[0], status, _without_token(_api_message(response), response), _excerpt(response)
                )
            )
            if self._metrics:
                self._metrics.records_rejected.labels(endpoint).inc()
            return
        # The API names no record reliably; halving isolates each bad record in log2(n) steps,
        # and sending the left half first keeps the records in order.
        middle = len(group) // 2
        log.info(
            "narrowing rejected batch",
            endpoint=endpoint,
            status=status,
            records=len(group),
            trace_id=result.trace_id,
        )
        self._send(endpoint, group[:middle], parts, result)
        self._send(endpoint, group[middle:], parts, result)

    def _post(self, endpoint: str, body: bytes, result: UploadResult) -> tuple[int, httpx.Response]:
        """POST until the answer is final (2xx or a data error). Raises CredentialsError,
        RetryBudgetExceeded or UploadCancelled."""
        path = ENDPOINTS[endpoint].path
        headers = {"X-Idempotency-Key": idempotency_key(path, body), "X-Trace-Id": result.trace_id}
        bucket = self._buckets[endpoint]
        started = self._clock()
        attempt = 0
        while True:
            bucket.acquire(self._pause)
            if self._metrics:
                self._metrics.rate_limit.labels(self.name, endpoint).set(bucket.rate)
            reason: str
            retry_after: float | None = None
            with self._slots:
                if self._stop.is_set():
                    raise UploadCancelled("upload cancelled")
                sent_at = self._clock()
                try:
                    response = self._http.post(path, content=body, headers=headers)
                except httpx.TransportError as exc:
                    response = None
                    reason = type(exc).__name__
            result.requests += 1
            if self._metrics:
                self._metrics.request_seconds.labels(endpoint).observe(max(0.0, self._clock() - sent_at))
                status_label = str(response.status_code) if response is not None else "error"
                self._metrics.requests.labels(endpoint, status_label).inc()
            if self._outage is not None:
                if response is None or response.status_code >= 500 or response.status_code == 408:
                    self._outage.failed(self.host, reason if response is None else str(response.status_code))
                else:
                    self._outage.answered(self.host)
            if response is not None:
                status = response.status_code
                if status < 300:
                    return status, response
                if status in _CREDENTIALS_STATUSES or status in _REDIRECT_STATUSES:
                    raise CredentialsError(status, endpoint, _without_token(_api_message(response), response))
                if status not in _TRANSIENT_STATUSES and status < 500:
                    return status, response
                reason = str(status)
                if status == 429:
                    if bucket.throttled(sent_at):
                        log.info(
                            "ingest API throttled us; lowering the request rate",
                            destination=self.name,
                            endpoint=endpoint,
                            rate_per_s=round(bucket.rate, 3),
                        )
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    if retry_after is not None:
                        # Honoured, but a server asking for a day's pause must not stall a batch
                        # for a day.
                        retry_after = min(retry_after, max(MAX_RETRY_AFTER_S, self._backoff.ceiling(64)))
            delay = retry_after if retry_after is not None else self._backoff.delay(attempt)
            elapsed = self._clock() - started
            budget = self._retry.max_elapsed_s
            if budget > 0 and elapsed + delay > budget:
                raise RetryBudgetExceeded(
                    f"{endpoint}: still failing after {elapsed:.1f}s, {attempt + 1} attempts (last: {reason})"
                )
            if self._metrics:
                self._metrics.retries.labels(endpoint, reason).inc()
            log.warning(
                "ingest request failed, retrying",
                destination=self.name,
                host=self.host,
                endpoint=endpoint,
                reason=reason,
                attempt=attempt + 1,
                retry_in_s=round(delay, 3),
                trace_id=result.trace_id,
            )
            self._pause(delay)
            attempt += 1
