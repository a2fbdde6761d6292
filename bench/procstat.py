"""CPU and memory of a process from /proc: a process's CPU seconds, its status counters,
and `CpuWindow`, the CPU it used between two moments."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of the whole process (all threads), in seconds."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and the context switch counters from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches", "Threads"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


@dataclass
class CpuWindow:
    """CPU used by a process between `start` and `stop`, as % of one core."""

    pid: int
    t0: float = 0.0
    c0: float | None = None
    t1: float = 0.0
    c1: float | None = None
    s0: dict = field(default_factory=dict)
    s1: dict = field(default_factory=dict)

    def start(self) -> None:
        self.t0, self.c0, self.s0 = time.monotonic(), cpu_seconds(self.pid), proc_status(self.pid)

    def stop(self) -> None:
        self.t1, self.c1, self.s1 = time.monotonic(), cpu_seconds(self.pid), proc_status(self.pid)

    @property
    def percent(self) -> float | None:
        if self.c0 is None or self.c1 is None or self.t1 <= self.t0:
            return None
        return round(100.0 * (self.c1 - self.c0) / (self.t1 - self.t0), 2)

    @property
    def cpu_s(self) -> float | None:
        return None if self.c0 is None or self.c1 is None else round(self.c1 - self.c0, 3)

    @property
    def wakeups_per_s(self) -> float | None:
        """Voluntary context switches per second: how often the process went to sleep."""
        a, b = self.s0.get("voluntary_ctxt_switches"), self.s1.get("voluntary_ctxt_switches")
        if a is None or b is None or self.t1 <= self.t0:
            return None
        return round((b - a) / (self.t1 - self.t0), 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid, "seconds": round(self.t1 - self.t0, 3), "cpu_s": self.cpu_s,
            "cpu_percent_of_core": self.percent, "rss_kb": self.s1.get("VmRSS"), "peak_rss_kb": self.s1.get("VmHWM"),
            "threads": self.s1.get("Threads"), "voluntary_switches_per_s": self.wakeups_per_s,
        }

