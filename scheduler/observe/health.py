"""What /healthz and /readyz report: the loop beats, the store is reachable, the clock agrees."""

from __future__ import annotations


import time




class Health:
    """What /healthz and /readyz report. The engine beats; the store's reachability is noted."""

    def __init__(self, stale_after_s: float = 10.0) -> None:
        self.stale_after_s = stale_after_s
        self.last_beat = time.monotonic()
        self.store_ok = False
        self.store_refused = False  # a call the store refused (Redis ACL) is being retried
        self.clock_ok = True  # within SCHEDULER_MAX_CLOCK_SKEW of the Redis server
        self.format_ok = True  # the store's state format is one this version reads

    def ready(self) -> tuple[bool, str]:
        if self.store_refused:
            return False, "the state store refuses a command this replica needs (Redis ACL; see the log)"
        if not self.store_ok:
            return False, "state store unreachable"
        if not self.clock_ok:
            return False, "clock off from the Redis server's by more than SCHEDULER_MAX_CLOCK_SKEW"
        if not self.format_ok:
            return False, "the state store holds a newer state format than this version reads"
        return True, "ok"

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.last_beat < self.stale_after_s
