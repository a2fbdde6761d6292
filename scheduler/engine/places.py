"""SCHEDULER_MAX_CONCURRENCY: the places for HTTP calls that fires take in turn."""

from __future__ import annotations

import asyncio
from collections import deque


class Places:
    """SCHEDULER_MAX_CONCURRENCY places for HTTP calls, first come first served. A counter
    while places are free, a queue of futures only when none is: unlike asyncio.Semaphore
    (whose acquire is a coroutine), taking a free place costs no await, once per fire."""

    def __init__(self, count: int):
        self.free = count
        self._waiters: deque[asyncio.Future] = deque()

    def take(self) -> asyncio.Future | None:
        """None: a place is taken. Else a future that resolves when one is handed over."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return None
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    async def wait(self, waiter: asyncio.Future) -> None:
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed over just as the fire was cancelled: pass it on
            raise

    def give(self) -> None:
        """Give a place back: to the first live waiter, else to the free count."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1
