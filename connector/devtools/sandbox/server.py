"""The sandbox's public face: SandboxOptions, SandboxServer (in a background thread, for tests, the demo
and benchmarks) and run_sandbox (`optikpi-connector sandbox`).

A local emulator of the OptiKPI ingest API; the options are README.md ("Sandbox"). What it checks and
answers, and in which order, is described in `connector.devtools.sandbox.handler`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

import structlog

from connector.devtools.sandbox.handler import INGEST_PREFIX, SandboxAPI, SandboxHandler
from connector.devtools.sandbox.state import Clock, Faults, SandboxState, check_faults
from connector.errors import ExitCode
from connector.runtime.httpserver import BackgroundHTTPServer
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
    slow_rate: float = 0.0  # share of requests answered only after slow_ms more
    slow_ms: int = 0
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
        check_faults(
            {
                "fail_rate": self.fail_rate,
                "throttle_rate": self.throttle_rate,
                "latency_ms": self.latency_ms,
                "drop_rate": self.drop_rate,
                "slow_rate": self.slow_rate,
                "slow_ms": self.slow_ms,
            }
        )


class SandboxServer:
    """The sandbox in a background thread: `with SandboxServer(SandboxOptions(port=0)) as s: s.base_url`."""

    def __init__(self, options: SandboxOptions, *, clock: Clock = time.monotonic) -> None:
        self._options = options
        self._state = SandboxState(
            account_id=options.account_id,
            workspace_id=options.workspace_id,
            faults=Faults(
                options.fail_rate,
                options.throttle_rate,
                options.latency_ms,
                options.drop_rate,
                options.slow_rate,
                options.slow_ms,
            ),
            rate_limit_scale=options.rate_limit_scale,
            seed=options.seed,
            store=options.store,
            clock=clock,
        )
        self._api = SandboxAPI(
            self._state,
            token=options.token,
            account_id=options.account_id,
            workspace_id=options.workspace_id,
            max_body_bytes=options.max_body_bytes,
        )
        self._httpd: BackgroundHTTPServer | None = None

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            raise RuntimeError("sandbox already started")
        handler = functools.partial(SandboxHandler, self._api)
        httpd = BackgroundHTTPServer(self._options.host, self._options.port, handler, name="sandbox-http")
        try:
            self._state.open_store()
        except OSError:
            httpd.server_close()
            raise
        self._httpd = httpd.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stop()
        self._state.close_store()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("sandbox not started")
        return self._httpd.url

    @property
    def base_url(self) -> str:
        return self.root_url + INGEST_PREFIX

    def records(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Accepted records in arrival order (all endpoints' when `endpoint` is None)."""
        return [record for _, record in self._state.records(endpoint)]

    def clients(self, endpoint: str | None = None) -> list[str | None]:
        """The client tag (see handler.py) of each record `records(endpoint)` returns, in that order."""
        return self._state.clients(endpoint)

    def base_url_for(self, client: str) -> str:
        """A base URL whose requests the sandbox serves as usual and tags with `client`."""
        return f"{self.root_url}/_client/{client}{INGEST_PREFIX}"

    def entries(self) -> list[tuple[str, dict[str, Any]]]:
        """Accepted records with their endpoint key, in arrival order."""
        return self._state.records(None)

    def stats(self) -> dict[str, Any]:
        return self._state.stats()

    def clear(self) -> None:
        self._state.clear()

    def faults(self) -> dict[str, float | int]:
        return self._state.faults()

    def rotate_token(self, token: str) -> None:
        """Accept only `token` from now on: the old one is answered 401, as after a rotation."""
        register_secret(token)
        self._api.rotate_token(token)

    def set_faults(self, **kw: float) -> None:
        """Change fail_rate / throttle_rate / latency_ms / drop_rate / slow_rate / slow_ms; ValueError
        on a bad value."""
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
