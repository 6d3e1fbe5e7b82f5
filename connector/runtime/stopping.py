"""SIGTERM from the first moment of the process: before the pipeline runs, the signal ends start-up
at once (exit 0, nothing to drain); once it runs, the signal asks it to drain and leave the group.

Kubernetes sends SIGTERM whenever it likes, including while the configuration is still being read
or the consumer is still joining its group. Python's default action would kill the process with
143 and no log line, so the handler is installed before anything heavy is imported (this module
imports only the standard library), and hands over to the pipeline's own stop when it starts.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType


class StopRequested(BaseException):
    """SIGTERM before the pipeline ran: unwinds start-up. A BaseException, so that no `except
    Exception` on the way mistakes it for a failure of whatever it interrupted."""

    def __init__(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"{self.signal_name} received during start-up")


EARLY_STOP_EVENT = "stopped before start-up finished"

_stop: Callable[[int], None] | None = None
# The signal that raised StopRequested: a library callback running at that moment (librdkafka's
# log callback, for one) may swallow the exception, and `hand_over` must not let it be lost.
_requested: int | None = None


def report_early_stop(exc: StopRequested) -> None:
    """The log line of a stop that came before logging was set up (while the imports ran): JSON
    when stderr is not a terminal, as `--log-format auto` would write it."""
    if sys.stderr.isatty():
        print(f"{EARLY_STOP_EVENT} (signal {exc.signal_name})", file=sys.stderr)
    else:
        print(
            json.dumps({"event": EARLY_STOP_EVENT, "level": "info", "signal": exc.signal_name}),
            file=sys.stderr,
        )


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if _stop is not None:
        _stop(signum)
        return
    global _requested
    _requested = signum
    raise StopRequested(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install_early() -> Callable[[], None]:
    """SIGTERM ends start-up (StopRequested) until `hand_over` is called. SIGINT keeps Python's
    KeyboardInterrupt until then: Ctrl-C on a command is an interruption, exit 130.

    Returns what puts the handlers found back (for callers that run `main` in-process)."""
    global _stop, _requested
    _stop = None
    _requested = None
    if not _main_thread():
        return lambda: None
    found = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, _on_signal)

    def restore() -> None:
        global _stop
        _stop = None
        for signum, handler in found.items():
            signal.signal(signum, handler)

    return restore


def not_a_service() -> None:
    """Commands that are not a service (send, dlq, ...) are killed by SIGTERM as usual."""
    if _main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def hand_over(stop: Callable[[int], None]) -> None:
    """From now on SIGTERM and SIGINT call `stop(signum)` (it must be safe in a signal handler).
    Raises StopRequested when a SIGTERM came earlier and something swallowed its exception."""
    global _stop
    if not _main_thread():
        return
    if _requested is not None:
        raise StopRequested(_requested)
    _stop = stop
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
