"""The connector's exit codes and its one error tree.

Exit codes are a contract with operators and scripts: 0 success, 1 a runtime failure (for `send`,
at least one record rejected or invalid), 2 bad usage or bad configuration, 130 interrupted (Ctrl-C,
the shell's 128 + SIGINT).
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    INTERRUPTED = 130
