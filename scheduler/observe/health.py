"""What /healthz and /readyz report: the loop beats, the store is reachable, the clock agrees."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


class Health:
    """What /healthz and /readyz report. The engine beats; the store's reachability is noted."""

    def __init__(self, stale_after_s: float = 10.0) -> None:
        self.stale_after_s = stale_after_s
        self.last_beat = time.monotonic()
        self.store_ok = False
        self.store_refused = False  # a call the store refused (Redis ACL) is being retried
        self.clock_ok = True  # within SCHEDULER_MAX_CLOCK_SKEW of the Redis server
        self.format_ok = True  # the store's state format is one this version reads
        # The job sources' states (sources.watch.JobSources.states), once they run: what
        # /readyz says of them in its body. They never make it fail: a readiness probe gates
        # the whole pod, and the app's pod must not leave its Service because its own jobs
        # URL is slow to answer at start.
        self.sources: Callable[[], Iterable[dict]] | None = None

    def ready(self) -> tuple[bool, str]:
        if self.store_refused:
            return False, "the state store refuses a command this replica needs (Redis ACL; see the log)"
        if not self.store_ok:
            return False, "state store unreachable"
        if not self.clock_ok:
            return False, "clock off from the Redis server's by more than SCHEDULER_MAX_CLOCK_SKEW"
        if not self.format_ok:
            return False, "the state store holds a newer state format than this version reads"
        return True, "ok" + self._sources_note()

    def _sources_note(self) -> str:
        notes = []
        for s in self.sources() if self.sources is not None else ():
            if s.get("ok") is None:
                notes.append(f"jobs {s['source']} not read yet")
            elif not s.get("ok"):
                notes.append(f"jobs {s['source']} unreadable (its last good set in force)")
            if s.get("held"):
                notes.append(f"jobs {s['source']} held: its last read would remove {s['held']['dropped']} jobs")
        return "; " + "; ".join(notes) if notes else ""

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.last_beat < self.stale_after_s
