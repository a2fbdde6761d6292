"""Time for the engine: what time it is, and waiting for a time to come.

Everything in the engine that waits for an instant goes through a `Clock`, so tests drive
the engine on a virtual clock (tests/virtual_clock.py) instead of the machine's.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Protocol
from collections.abc import Callable

RETRY_BASE_S = 0.25  # store-outage backoff: base and cap
RETRY_CAP_S = 5.0


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock:
    """Wall time for slots, monotonic time for the lease, and the event loop's timers."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Call `callback(*args)` once the wall clock reads `when` (the loop's timer may run
        it a little early: a caller that must never be early checks again)."""
        return asyncio.get_running_loop().call_later(max(0.0, when - self.time()), callback, *args)

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        """Until `event` is set or `seconds` have passed, whichever comes first."""
        if event.is_set() or seconds <= 0:
            return
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()


def backoff(failures: int) -> float:
    """Capped exponential backoff with full jitter."""
    return random.uniform(0, min(RETRY_CAP_S, RETRY_BASE_S * 2 ** failures)) + 0.05
