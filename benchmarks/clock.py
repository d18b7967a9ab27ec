"""A clock for shared machines: samples taken while other processes used the CPU are taken again."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``function()`` took, and its result."""
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


class QuietClock:
    """Times calls, and takes a sample again when other processes used the CPU while it was taken.

    Machines are often shared (other builds, tests, a browser), and on 2 cores one busy neighbour doubles a
    forward pass. Before each sample the clock waits up to ``quiet_wait_s`` for a quiet moment; a sample during
    which processes other than ``pids`` (this one, the servers it measures, and reaped children) used more than
    ``foreign_limit`` of a core is taken again, at most ``attempts`` times in all, keeping the least disturbed one.
    `record` keeps how much foreign CPU the kept samples saw, so a reader can judge the numbers. On systems
    without ``/proc`` every sample counts as quiet.
    """

    def __init__(
        self, pids: Sequence[int] = (), foreign_limit: float = 0.2, attempts: int = 3, quiet_wait_s: float = 1.0
    ):
        self.pids = [os.getpid(), *pids]
        self.foreign_limit = foreign_limit
        self.attempts = attempts
        self.quiet_wait_s = quiet_wait_s
        self.foreign: list[float] = []  # other processes' CPU use, in cores, during each kept sample
        self.retaken = 0

    def time(self, function: Callable[[], Any]) -> tuple[float, Any]:
        """Seconds ``function()`` took in the quietest of up to ``attempts`` tries, and its result."""
        best: tuple[float, float, Any] | None = None
        for attempt in range(self.attempts):
            if attempt:
                self.retaken += 1
            self._wait_for_quiet()
            before = self._ticks()
            elapsed, value = timed(function)
            foreign = self._foreign_cores(before, self._ticks(), elapsed)
            if best is None or foreign < best[0]:
                best = (foreign, elapsed, value)
            if foreign <= self.foreign_limit:
                break
        self.foreign.append(best[0])
        return best[1], best[2]

    def record(self) -> dict[str, Any]:
        """What the kept samples saw, for `summarize` (JSON-friendly, so child processes can send it)."""
        return {"foreign": list(self.foreign), "retaken": self.retaken}

    def _wait_for_quiet(self) -> None:
        deadline = time.perf_counter() + self.quiet_wait_s
        while time.perf_counter() < deadline:
            before = self._ticks()
            time.sleep(0.1)
            if self._foreign_cores(before, self._ticks(), 0.1) <= self.foreign_limit:
                return

    def _foreign_cores(self, before: tuple[int, int], after: tuple[int, int], seconds: float) -> float:
        foreign_ticks = (after[0] - before[0]) - (after[1] - before[1])
        # Ticks are 10 ms: one stray tick is forgiven, or a short sample would never count as quiet.
        return max(0, foreign_ticks - 1) / _TICKS_PER_S / max(seconds, 1e-3)

    def _ticks(self) -> tuple[int, int]:
        """(ticks the whole machine spent busy, ticks spent by our processes and their reaped children)."""
        return _machine_busy_ticks(), sum(_process_ticks(pid) for pid in self.pids)


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Samples kept and retaken, and the median and worst foreign CPU (in cores), over the records of clocks."""
    foreign = [value for record in records for value in record["foreign"]]
    return {
        "samples": len(foreign),
        "retaken": sum(record["retaken"] for record in records),
        "median": statistics.median(foreign) if foreign else 0.0,
        "worst": max(foreign, default=0.0),
    }


def _machine_busy_ticks() -> int:
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return 0
    # user, nice, system, idle, iowait, irq, softirq, steal (guest time is already inside user): all but idle and
    # iowait. Steal counts: it is a neighbour too.
    return sum(fields[:8]) - fields[3] - fields[4]


def _process_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:  # gone, or no /proc
        return 0
    return sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
