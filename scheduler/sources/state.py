"""One source of jobs as the watcher keeps it: its reader, the last good set kept through
failed reads, a held read, and the counts a refresh waits on; and the delay before a failed
source is asked again."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from .document import Parsed
from .guard import Hold

BACKOFF_FIRST_S = 1.0


def backoff_s(failures: int, refresh_s: float, rand: Callable[[], float] = random.random) -> float:
    """Delay before retrying a source after `failures` failed reads in a row: 1 s, 2 s, 4 s...
    capped at the refresh period (a failing source is never asked less often than a good
    one), each drawn from its upper half so that replicas do not ask in step."""
    cap = min(refresh_s, BACKOFF_FIRST_S * 2 ** min(failures - 1, 30))
    return cap * (0.5 + rand() / 2)


class SourceState:
    """One reader and what it last gave: the good set kept through failed reads."""

    def __init__(self, reader):
        self.reader = reader
        self.good: Parsed | None = None
        self.error: str | None = None
        self.failures = 0  # in a row
        self.failures_total = 0
        self.reads_total = 0
        self.last_success: float | None = None
        self.wake = asyncio.Event()
        self.forced = False
        self.held: Hold | None = None
        self.started = self.finished = 0  # reads of the loop, so a caller can wait for a fresh one
        self.last_changed = 0  # names the last finished read changed
        self.changed_total = 0  # names changed by every read so far: a refresh reports its own share
        self.done = asyncio.Event()  # set at the end of each read of the loop

    def state(self) -> dict:
        return {
            "source": self.reader.source, "location": self.reader.location,
            "ok": None if self.reads_total == 0 else self.error is None, "error": self.error,
            "jobs": len(self.good.jobs) if self.good else 0,
            "rejected": len(self.good.rejected) if self.good else 0,
            "last_success": self.last_success, "reads_total": self.reads_total,
            "failures_total": self.failures_total, "held": self.held.as_dict() if self.held else None,
        }

    def summary(self, changed_since: int | None = None) -> dict:
        """What a refresh answers for this source (SPEC section 8, "Refresh now"): part of its
        state, and `changed`: the names changed since `changed_since` (a count of
        changed_total), else by the last read."""
        state = self.state()
        out = {k: state[k] for k in ("source", "ok", "error", "jobs", "rejected")}
        out["changed"] = self.last_changed if changed_since is None else self.changed_total - changed_since
        out["held"] = state["held"]
        return out
