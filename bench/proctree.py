"""CPU time and resident memory of a process and all its descendants, read from /proc (Linux).

The connector may run worker processes beside its consumer, so a figure for "the connector" is the
sum over its process tree. Sums of RSS count pages shared between the processes more than once,
which overstates memory a little: the conservative side for a bound.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name is in parentheses and may hold spaces: split after its closing one.
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """`pid` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(_stat_fields(int(entry))[1])
            except (OSError, ValueError, IndexError):
                continue  # it exited while we looked
            children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the live tree, plus what its reaped children had used."""
    total = 0
    for member in descendants(pid):
        try:
            fields = _stat_fields(member)
        except OSError:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of /proc/PID/stat (11-14 after the name).
        total += sum(int(v) for v in fields[11:15])
    return total / _TICKS


def tree_rss(pid: int) -> tuple[int, int]:
    """(bytes resident summed over the live tree, processes in it)."""
    total, members = 0, 0
    for member in descendants(pid):
        try:
            resident = int(Path(f"/proc/{member}/statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        total += resident * _PAGE
        members += 1
    return total, members


class RssSampler:
    """Samples the tree every `interval_s` on a thread: `peak` RSS and `max_processes` since start;
    `mark()` ends a phase."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self._pid = pid
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak = 0
        self.phase_peak = 0
        self.max_processes = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, processes = tree_rss(self._pid)
            self.peak = max(self.peak, rss)
            self.phase_peak = max(self.phase_peak, rss)
            self.max_processes = max(self.max_processes, processes)
            self._stop.wait(self._interval_s)

    def mark(self) -> int:
        """The peak of the phase that ends now; the next phase starts from zero."""
        peak, self.phase_peak = self.phase_peak, 0
        return peak

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
