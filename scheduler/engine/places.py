"""SCHEDULER_MAX_CONCURRENCY: the places for HTTP calls in flight at once, all origins together.

A fire takes a place only for one attempt's HTTP call, once its origin's lane has let it go
(dispatch.Dispatcher.send): a fire waiting for a throttled origin, for a Retry-After or between
retries holds none, so one overloaded app never stalls the calls to the others."""

from __future__ import annotations

import asyncio
import heapq


class Places:
    """SCHEDULER_MAX_CONCURRENCY places for HTTP calls; past them, waiters served oldest slot
    first (then in the order they came). A counter while places are free, a heap of futures
    only when none is: unlike asyncio.Semaphore (whose acquire is a coroutine), taking a free
    place costs no await, once per call."""

    def __init__(self, count: int):
        self.free = count
        self._waiters: list[tuple[float, int, asyncio.Future]] = []  # (slot, arrival, future)
        self._arrivals = 0

    def take(self, slot: float) -> asyncio.Future | None:
        """None: a place is taken. Else a future that resolves when one is handed over."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return None
        self._arrivals += 1
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (slot, self._arrivals, waiter))
        return waiter

    async def wait(self, waiter: asyncio.Future) -> None:
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed over just as the call was cancelled: pass it on
            raise

    def give(self) -> None:
        """Give a place back: to the first live waiter, else to the free count."""
        while self._waiters:
            waiter = heapq.heappop(self._waiters)[2]
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1
