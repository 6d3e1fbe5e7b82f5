"""What the sandbox remembers, apart from HTTP: accepted records, the idempotency LRU, request stats,
the fault settings and their random draws, the per-endpoint rate limits, and record validation.

Thread-safe: every handler thread of the server shares one SandboxState.
"""

from __future__ import annotations

import json
import math
import random
import threading
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from connector.endpoints import ENDPOINTS
from connector.ingest.ratelimit import TokenBucket
from connector.ingest.validation import FieldError, validate_record

__all__ = ["FaultDraw", "Faults", "Invalid", "SandboxState", "check_faults"]

# A repeated key gets the first answer's record ids again; beyond this many keys the oldest are forgotten.
_IDEMPOTENCY_KEYS_KEPT: Final = 100_000
_MAX_ERRORS_LISTED: Final = 100
# A latency fault above this is surely a typo (and would make stop() wait for sleeping handlers).
_MAX_LATENCY_MS: Final = 600_000
_RATE_FAULTS: Final = ("fail_rate", "throttle_rate", "drop_rate", "slow_rate")
_DURATION_FAULTS: Final = ("latency_ms", "slow_ms")
FAULT_NAMES: Final = ("fail_rate", "throttle_rate", "latency_ms", "drop_rate", "slow_rate", "slow_ms")
_REJECTED_STATUSES: Final = frozenset({400, 401, 413})

Clock = Callable[[], float]


# --------------------------------------------------------------------------------------------
# Faults


def check_faults(values: Mapping[str, object]) -> dict[str, float | int]:
    """The validated fault settings in `values`; ValueError names the first bad key."""
    checked: dict[str, float | int] = {}
    for key, value in values.items():
        if key not in FAULT_NAMES:
            raise ValueError(f"unknown fault {key!r}; known: {', '.join(FAULT_NAMES)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{key} must be a number")
        if key in _DURATION_FAULTS:
            if value < 0 or value > _MAX_LATENCY_MS or not float(value).is_integer():
                raise ValueError(f"{key} must be an integer between 0 and {_MAX_LATENCY_MS}")
            checked[key] = int(value)
        else:
            if not 0 <= value <= 1:
                raise ValueError(f"{key} must be between 0 and 1")
            checked[key] = float(value)
    return checked


@dataclass
class Faults:
    fail_rate: float
    throttle_rate: float
    latency_ms: int
    drop_rate: float
    # A share of requests is slow: answered only after `slow_ms` on top of `latency_ms`. A long tail
    # above the client's timeout makes timeouts race successes (the request is stored after the wait).
    slow_rate: float = 0.0
    slow_ms: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "fail_rate": self.fail_rate,
            "throttle_rate": self.throttle_rate,
            "latency_ms": self.latency_ms,
            "drop_rate": self.drop_rate,
            "slow_rate": self.slow_rate,
            "slow_ms": self.slow_ms,
        }


@dataclass(frozen=True)
class FaultDraw:
    """The faults one request meets."""

    drop: bool
    latency_s: float
    fail_status: int | None
    throttle: bool


# --------------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True)
class Invalid:
    """Why a request's records are refused: the first error, and up to 100 errors as listed in the answer."""

    index: int
    error: FieldError
    listed: list[dict[str, object]]


def _record_id(record: dict[str, Any]) -> str:
    value = record.get("event_id") or record.get("user_id")
    return str(value) if value else str(uuid.uuid4())


# --------------------------------------------------------------------------------------------
# The state


class SandboxState:
    def __init__(
        self,
        *,
        account_id: str,
        workspace_id: str,
        faults: Faults,
        rate_limit_scale: float,
        seed: int | None,
        store: Path | None,
        clock: Clock,
    ) -> None:
        self._account_id = account_id
        self._workspace_id = workspace_id
        self._store_path = store
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        # Its own generator, so that the slow draws leave the other faults' seeded sequence as it was.
        self._slow_random = random.Random(None if seed is None else f"slow-{seed}")
        self._faults = faults
        self._buckets: dict[str, TokenBucket] = {}
        if rate_limit_scale > 0:
            for e in ENDPOINTS.values():
                rate = e.rate_limit * rate_limit_scale
                # At least one whole token, or a scaled-down limit below 1 req/s could never be met.
                self._buckets[e.key] = TokenBucket(rate, burst=max(1.0, rate), clock=clock)
        self._records: list[tuple[str, dict[str, Any]]] = []
        self._clients: list[str | None] = []  # the client tag each record came with, beside _records
        self._idempotency: OrderedDict[tuple[str, str], list[str]] = OrderedDict()
        self._requests: dict[str, Counter[str]] = {}
        self._accepted: Counter[str] = Counter()
        self._duplicates = 0
        self._replayed_records = 0
        self._rejected = 0
        self._dropped = 0
        self._store: IO[str] | None = None

    # ---- the --store file

    def open_store(self) -> None:
        if self._store_path is not None and self._store is None:
            self._store = self._store_path.open("a", encoding="utf-8")

    def close_store(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # ---- faults and rate limits

    def draw_faults(self) -> FaultDraw:
        with self._lock:
            f = self._faults
            rng = self._random
            # Every draw is made on every request so that a seed gives the same sequence whatever the rates.
            drop = rng.random() < f.drop_rate
            fail = rng.random() < f.fail_rate
            status = rng.choice((500, 503))
            throttle = rng.random() < f.throttle_rate
            slow = self._slow_random.random() < f.slow_rate
            latency_ms = f.latency_ms + (f.slow_ms if slow else 0)
            return FaultDraw(drop, latency_ms / 1000.0, status if fail else None, throttle)

    def take_token(self, endpoint_key: str) -> float:
        """0 when the request may go on, else the seconds until the endpoint's bucket has a token."""
        bucket = self._buckets.get(endpoint_key)
        return 0.0 if bucket is None else bucket.try_acquire()

    def faults(self) -> dict[str, float | int]:
        with self._lock:
            return self._faults.as_dict()

    def set_faults(self, values: Mapping[str, object]) -> dict[str, float | int]:
        checked = check_faults(values)
        with self._lock:
            merged = {**self._faults.as_dict(), **checked}
            self._faults = Faults(
                float(merged["fail_rate"]),
                float(merged["throttle_rate"]),
                int(merged["latency_ms"]),
                float(merged["drop_rate"]),
                float(merged["slow_rate"]),
                int(merged["slow_ms"]),
            )
            return self._faults.as_dict()

    # ---- stats

    def count_dropped(self) -> None:
        with self._lock:
            self._dropped += 1

    def count_answer(self, endpoint_key: str, status: int) -> None:
        with self._lock:
            self._requests.setdefault(endpoint_key, Counter())[str(status)] += 1
            if status in _REJECTED_STATUSES:
                self._rejected += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {key: dict(self._requests.get(key, {})) for key in ENDPOINTS},
                "accepted": {key: self._accepted[key] for key in ENDPOINTS},
                "duplicates": self._duplicates,
                "replayed_records": self._replayed_records,
                "rejected_requests": self._rejected,
                "dropped": self._dropped,
            }

    # ---- validation

    def _record_errors(self, endpoint_key: str, record: object) -> list[FieldError]:
        errors = validate_record(endpoint_key, record)
        if not isinstance(record, dict):
            return errors
        account, workspace = record.get("account_id"), record.get("workspace_id")
        if account == self._account_id and workspace == self._workspace_id:
            return errors  # the common case, kept cheap: this runs once per record
        for name, value, expected, header in (
            ("account_id", account, self._account_id, "x-optikpi-account-id"),
            ("workspace_id", workspace, self._workspace_id, "x-optikpi-workspace-id"),
        ):
            # A missing or mistyped id was already reported by validate_record.
            if isinstance(value, str) and value and value != expected:
                errors.append(FieldError(name, "mismatch", f"{name} does not match the {header} header"))
        return errors

    def invalid(self, endpoint_key: str, records: list[Any]) -> Invalid | None:
        """None when every record is valid for the endpoint and carries the header's account and workspace."""
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
        return Invalid(first[0], first[1], listed)

    # ---- records and idempotency

    def replayed(self, endpoint_key: str, key: str) -> list[str] | None:
        """The record ids of the request already accepted under idempotency `key`, counted as a duplicate."""
        with self._lock:
            ids = self._idempotency.get((endpoint_key, key))
            if ids is not None:
                self._duplicates += 1
                self._replayed_records += len(ids)
            return ids

    def accept(
        self, endpoint_key: str, key: str | None, records: list[dict[str, Any]], client: str | None = None
    ) -> list[str]:
        """Store `records` (with the request's client tag) and return their ids; for a `key` accepted
        meanwhile, the first request's ids."""
        ids = [_record_id(r) for r in records]
        with self._lock:
            if key:
                # A concurrent request with the same key may have won the race since the first look.
                earlier = self._idempotency.get((endpoint_key, key))
                if earlier is not None:
                    self._duplicates += 1
                    self._replayed_records += len(earlier)
                    return earlier
                self._idempotency[(endpoint_key, key)] = ids
                if len(self._idempotency) > _IDEMPOTENCY_KEYS_KEPT:
                    self._idempotency.popitem(last=False)
            self._records.extend((endpoint_key, r) for r in records)
            self._clients.extend(client for _ in records)
            self._accepted[endpoint_key] += len(records)
            if self._store is not None:
                self._store.write(
                    "".join(
                        json.dumps({"endpoint": endpoint_key, "record": r}, ensure_ascii=False) + "\n"
                        for r in records
                    )
                )
                self._store.flush()
        return ids

    def records(self, endpoint: str | None) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            if endpoint is None:
                return list(self._records)
            return [entry for entry in self._records if entry[0] == endpoint]

    def clients(self, endpoint: str | None) -> list[str | None]:
        """The client tag of each record `records(endpoint)` returns, in the same order."""
        with self._lock:
            pairs = zip(self._records, self._clients, strict=True)
            return [client for (key, _), client in pairs if endpoint in (None, key)]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._clients.clear()
            self._idempotency.clear()
            self._requests.clear()
            self._accepted.clear()
            self._duplicates = self._replayed_records = self._rejected = self._dropped = 0
