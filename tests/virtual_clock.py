"""A virtual clock for driving the engine in-process, and the parts that go with it.

Time moves only when a test says so. `advance(s)` walks through every timer due in the next
`s` seconds in order, letting the engine settle (run until it waits on the clock again, its
store calls answered) before each; `jump(s)` lets the time pass in one go, as for a process
that was paused, and fires everything that came due at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Any
from collections.abc import Callable

from scheduler.engine.clock import Clock
from scheduler.model import Outcome
from scheduler.store.protocol import StoreUnavailable

SETTLE_TIMEOUT_S = 20.0  # real seconds; a deadline for the engine to go quiet, never a pace


class _Timer:
    def __init__(self, when: float, callback: Callable[..., Any], args: tuple):
        self.when, self.callback, self.args, self.cancelled = when, callback, args, False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock(Clock):
    def __init__(self, start: float, busy: Callable[[], bool] = lambda: False):
        self.now = start
        self._mono_offset = 1_000.0 - start  # monotonic time is its own scale, as on a machine
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self.busy = busy  # whether work outside the clock (a store call) is still under way

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now + self._mono_offset

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> _Timer:
        timer = _Timer(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        done = asyncio.get_running_loop().create_future()
        timer = self.call_at(self.now + max(0.0, seconds), lambda: done.done() or done.set_result(None))
        try:
            await done
        finally:
            timer.cancel()

    def _next_due(self, until: float) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers and self._timers[0][0] <= until else None

    def _fire_due(self) -> bool:
        fired = False
        while self._next_due(self.now) is not None:
            _, _, timer = heapq.heappop(self._timers)
            timer.callback(*timer.args)
            fired = True
        return fired

    async def settle(self) -> None:
        """Run the loop until nothing is ready, no store call is under way, and no timer is due."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        quiet = 0
        while quiet < 3:
            await asyncio.sleep(0)
            if self._fire_due() or loop._ready or self.busy():  # type: ignore[attr-defined]
                quiet = 0
                if self.busy():
                    await asyncio.sleep(0.001)  # let the store's worker thread answer
            else:
                quiet += 1
            if time.monotonic() > deadline:
                raise AssertionError("the engine did not settle")

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        await self.settle()
        while (when := self._next_due(target)) is not None:
            self.now = max(self.now, when)
            self._fire_due()
            await self.settle()
        self.now = target
        await self.settle()

    async def advance_to(self, instant: float) -> None:
        await self.advance(instant - self.now)

    async def jump(self, seconds: float) -> None:
        await self.settle()
        self.now += seconds
        self._fire_due()
        await self.settle()


class WatchedStore:
    """A real store, with its calls under way counted (so the clock knows when the engine is
    quiet) and faults a test can switch on: `failing` names the calls that raise
    StoreUnavailable."""

    WAITS = {"wait_wake", "wait_released"}  # these wait on the real clock by design

    def __init__(self, store: Any):
        self._store = store
        self.calls_under_way = 0
        self.failing: set[str] = set()

    def busy(self) -> bool:
        return self.calls_under_way > 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr) or not asyncio.iscoroutinefunction(attr) or name in self.WAITS:
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if name in self.failing:
                raise StoreUnavailable(f"{name}: switched off by the test")
            self.calls_under_way += 1
            try:
                return await attr(*args, **kwargs)
            finally:
                self.calls_under_way -= 1

        return call


class ScriptedDispatcher:
    """Sends nothing over the network: records (virtual time, job, slot, attempt, epoch) of
    each call, takes `duration_s[job]` virtual seconds, and answers ok."""

    def __init__(self, clock: VirtualClock, duration_s: dict[str, float] | None = None):
        self.clock = clock
        self.duration_s = duration_s or {}
        self.sent: list[tuple[float, str, int, int, int]] = []
        self.ended: list[tuple[float, str, int]] = []

    async def send(self, fire: Any, on_attempt: Any = None, places: Any = None) -> Outcome:
        if places is not None:  # SCHEDULER_MAX_CONCURRENCY: a place for the call, as the Dispatcher takes it
            waiter = places.take(fire.claim.slot)
            if waiter is not None:
                await places.wait(waiter)
        try:
            started = self.clock.time()
            self.sent.append((started, fire.job.name, fire.claim.slot, fire.claim.attempt, fire.epoch))
            await self.clock.sleep(self.duration_s.get(fire.job.name, 0.0))
            self.ended.append((self.clock.time(), fire.job.name, fire.claim.slot))
        finally:
            if places is not None:
                places.give()
        return Outcome("ok", fire.claim.attempt, self.clock.time() - started, self.clock.time(), 200)

    def slots(self, job: str, base: int = 0) -> list[int]:
        return [slot - base for _, name, slot, _, _ in self.sent if name == job]

    def times(self, job: str, base: float = 0.0) -> list[float]:
        return [round(at - base, 6) for at, name, *_ in self.sent if name == job]
