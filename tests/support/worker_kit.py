"""Test transforms for worker processes, at module level so that workers can import them.

They wrap `json_transform` and act on a marker in the JSON value: `"act":"slow"` sleeps (after
writing the worker's pid to the file named by the spec's `marker` option, so a test knows whom to
kill mid-chunk), `"act":"kill"` kills its own process, every time, and `"act":"hang"` never
returns.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from connector.transform.spec import Poison, Transform, TransformSpec
from tests.support.pipeline_kit import json_transform

SLOW = b'"act":"slow"'
KILL = b'"act":"kill"'
HANG = b'"act":"hang"'


def acting_transform(spec: TransformSpec) -> Transform:
    inner = json_transform(spec)
    marker = spec.writer_schema.get("marker")
    slow_s = float(spec.writer_schema.get("slow_s", 0.3))

    def transform(payload: bytes) -> bytes | Poison:
        if KILL in payload:
            os.kill(os.getpid(), signal.SIGKILL)
        if HANG in payload:
            while True:  # what a decoder looping on a hostile payload looks like from outside
                time.sleep(1.0)
        if SLOW in payload:
            if marker:
                with Path(marker).open("a") as out:
                    out.write(f"{os.getpid()}\n")
            time.sleep(slow_s)
        return inner(payload)

    return transform


def build_counting_transform(spec: TransformSpec) -> Transform:
    """Answers `<pid>:<transforms built in this process so far>` for every payload."""
    global _built
    _built += 1
    built = _built

    def transform(payload: bytes) -> bytes | Poison:
        return f"{os.getpid()}:{built}".encode()

    return transform


_built = 0
