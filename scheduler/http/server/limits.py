"""Bounds of the daemon's HTTP port that span its connections: the bytes of answers it holds
for clients yet to read them, and log lines about turned-away work at most once an interval."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("scheduler.http")

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
LOG_INTERVAL_S = 10.0


class Every:
    """Counts an event and logs it at most once per `interval_s`, with how many there were
    since the last line: a flood costs one line an interval, never one (or a traceback) each."""

    def __init__(self, level: int, message: str, interval_s: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.level, self.message, self.interval_s, self.clock = level, message, interval_s, clock
        self.count = 0
        self.total = 0
        self._last: float | None = None

    def note(self, **extra: object) -> None:
        self.count += 1
        self.total += 1
        now = self.clock()
        if self._last is None or now - self._last >= self.interval_s:
            log.log(self.level, self.message, extra={"count": self.count, **extra})
            self.count, self._last = 0, now


class Holder(Protocol):
    """A connection, as the budget sees it: closed at once to free what it holds."""

    def abort(self) -> None: ...


class ResponseBudget:
    """The bytes of answers the port holds at once, across its connections. An answer is held
    from the moment its handler returns it until its last byte is handed to the kernel, and a
    connection holds one at a time. When a new answer would pass `limit_bytes`, the connections
    whose clients stopped reading (their writes wait on a full socket) are closed, the longest
    waiting first; if that frees too little, the new answer is refused. One answer larger than
    the whole limit is still served when nothing else is held."""

    def __init__(self, limit_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self.held_bytes = 0
        self._held: dict[Holder, int] = {}
        self._stalled: dict[Holder, None] = {}  # in the order they stalled
        self.evicted = Every(logging.WARNING, "HTTP port: closed connections whose clients stopped reading")

    def admit(self, holder: Holder, size: int) -> bool:
        """Reserves `size` bytes for `holder`'s next answer; False when they cannot be had."""
        self.release(holder)
        for stalled in list(self._stalled):
            if self.held_bytes + size <= self.limit_bytes:
                break
            self.release(stalled)
            stalled.abort()
            self.evicted.note(held_bytes=self.held_bytes, limit_bytes=self.limit_bytes)
        if self.held_bytes and self.held_bytes + size > self.limit_bytes:
            return False
        self._held[holder] = size
        self.held_bytes += size
        return True

    def release(self, holder: Holder) -> None:
        self.held_bytes -= self._held.pop(holder, 0)
        self._stalled.pop(holder, None)

    def stalled(self, holder: Holder) -> None:
        if holder in self._held:
            self._stalled[holder] = None

    def moving(self, holder: Holder) -> None:
        self._stalled.pop(holder, None)
