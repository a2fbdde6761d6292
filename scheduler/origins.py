"""Calls to one origin, limited and adapted: SCHEDULER_TARGET_MAX_IN_FLIGHT and
SCHEDULER_TARGET_RATE, with additive increase and multiplicative decrease (AIMD).

A `Lane` per origin (scheme, host, port) holds the HTTP calls (attempts) to it: at most its
limit in flight, at most `rate` started a second, none before a Retry-After has passed. The
limit starts at the maximum. A 429, a 503 or a Retry-After sets it to DECREASE times the calls
then in flight (if lower); an answer much slower than the job's recent answers multiplies it
by DECREASE; either once per round trip (answers to calls sent before the last decrease do not
lower it again). Each healthy answer while at least half of the limit is in use adds 1/limit
to it (about +1 per round trip; PROBE/limit within one call of the load last refused),
never above the maximum nor below FLOOR. Calls that find no place
wait in slot order (the oldest slot first, then the order they came) and are never dropped.

The fast path, a healthy origin under its limit: a dict lookup and a counter.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections.abc import Awaitable, Callable

from .http.client.url import origin, show_origin

log = logging.getLogger("scheduler.origins")

# Chosen by measurement (tests/test_origin_limits.py: 1,000 slots on one second, an app serving
# 20 calls of 0.1 s at once, 503 beyond; 5.0 s is the least it can take). 503s / boundary to the
# last delivery: 0.5: 4.9 % / 6.3 s, 0.7: 5.0-5.1 % / 5.6-5.9 s, 0.9: 6.5 % / 18.3 s (fires
# refused again and again back off for seconds). 44 of the 503s are the first round trip's, at
# the maximum: the price of a healthy app seeing no change. Since the global cap counts calls
# only (fires backing off no longer hold places and so no longer slow the app by accident):
# 0.7: 7.1-8.2 % / 5.5-6.9 s; 0.5: 5.7 % / 7.5 s (a busy machine).
DECREASE = 0.7  # the limit's factor on a sign of overload
FLOOR = 1.0  # the least the limit falls to: one call at a time still goes
PROBE = 0.2  # a round trip's growth of the limit within one call of the load last refused
SLOW_FACTOR = 4.0  # an answer this many times slower than the job's recent baseline is a sign...
SLOW_MIN_S = 0.25  # ... when also this much slower: the event loop's hiccups under load stay below
BASELINE_WEIGHT = 0.05  # of each answer in a job's latency baseline (an EWMA over ~20 answers)
HOLD_CAP_S = 60.0  # the longest a Retry-After holds the whole origin (a fire's own retry waits it all)
LOG_EVERY_S = 10.0  # a lane logs its limit at most this often (and when back at the maximum)
OVERLOAD = frozenset({429, 503})


class Lane:
    """The calls to one origin: a counter while under the limit, a heap of waiters past it."""

    def __init__(self, name: str, most: int, rate: float | None, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]]):
        self.name = name
        self.most = most
        self.limit = float(most)
        self.in_flight = 0
        self.waiting: list[tuple[float, int, asyncio.Future]] = []  # (slot, arrival, future)
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = 0.0  # with a rate: when the next call may start
        self.hold_until = 0.0  # a Retry-After: no call starts before
        self.paced = bool(rate)  # a rate or a hold: every take looks at the clock
        self.clock, self.sleep = clock, sleep
        self.baselines: dict[str, float] = {}  # job -> EWMA of its answers' latency
        self.cut_at = -math.inf  # when the limit was last lowered
        self.ceiling = math.inf  # the load at the last decrease: growth slows near it
        self.logged_at = -math.inf
        self._arrivals = 0
        self._timer: asyncio.Task | None = None

    def take(self) -> bool:
        """True: a place is taken. False: wait for one with `wait`."""
        if self.in_flight < self.limit and not self.waiting and not self.paced:
            self.in_flight += 1
            return True
        return self._take_paced()

    def _take_paced(self) -> bool:
        if self.waiting or self.in_flight >= self.limit:
            return False
        now = self.clock()
        if now < self.hold_until or now < self.next_at:
            return False
        self._started(now)
        return True

    def _started(self, now: float) -> None:
        self.in_flight += 1
        if self.interval:
            self.next_at = max(now, self.next_at) + self.interval
        self.paced = bool(self.interval) or now < self.hold_until

    async def wait(self, slot: float) -> None:
        """Wait for a place, behind every waiter of an older slot (or of the same slot and come
        earlier). Cancelled, it leaves; handed a place just as it was cancelled, it passes it on."""
        self._arrivals += 1
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiting, (slot, self._arrivals, waiter))
        self._wake()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()
            raise

    def give(self) -> None:
        """A place back without an answer to learn from (the call was cancelled)."""
        self.in_flight -= 1
        if self.waiting:
            self._wake()

    def done(self, began: float, job: str, status: int | None, retry_after_s: float | None) -> None:
        """A call's place back, and what its answer says about the origin's load."""
        self.in_flight -= 1
        now = self.clock()
        if status in OVERLOAD or retry_after_s is not None:
            if retry_after_s:
                self.hold_until = max(self.hold_until, now + min(retry_after_s, HOLD_CAP_S))
                self.paced = True
            self._cut(began, now, f"HTTP {status}" + (f", Retry-After {retry_after_s:g}s" if retry_after_s else ""),
                      self.in_flight + 1)
        else:
            latency = max(0.0, now - began)
            baseline = self.baselines.get(job)
            self.baselines[job] = latency if baseline is None else baseline + BASELINE_WEIGHT * (latency - baseline)
            if baseline is not None and latency > SLOW_FACTOR * baseline and latency - baseline > SLOW_MIN_S:
                self._cut(began, now, f"an answer in {latency:.3f}s against {baseline:.3f}s usually", self.limit)
            elif status is not None and self.limit < self.most and 2 * (self.in_flight + 1) >= self.limit:
                # Raised only while in use (half of it in flight, this call included): a limit
                # never tried does not grow between bursts.
                # +1 a round trip, but PROBE within one call of where the app last refused.
                step = PROBE if abs(self.limit - self.ceiling) < 1.0 else 1.0
                self.limit = min(float(self.most), self.limit + step / self.limit)
                if self.limit == self.most:
                    self._log(now, "back at its maximum", logging.INFO, force=True)
        if self.waiting:
            self._wake()

    def _cut(self, began: float, now: float, why: str, load: float) -> None:
        """Lower the limit to DECREASE x `load`, if lower: for a refusal the calls in flight
        with it, as TCP's ssthresh comes from its flight size (an app that refuses 6 calls at
        once gets fewer than 6, not 70 % of a 64 never used); for a slow answer, the limit."""
        if began < self.cut_at:
            return  # sent before the last decrease: that round trip has lowered the limit already
        self.ceiling = min(self.limit, load)
        self.limit = max(FLOOR, self.ceiling * DECREASE)
        self.cut_at = now
        self._log(now, f"lowered: {why}", logging.WARNING)

    def _log(self, now: float, what: str, level: int, force: bool = False) -> None:
        if force or now - self.logged_at >= LOG_EVERY_S:
            self.logged_at = now
            log.log(level, f"calls to {self.name}: limit {what}", extra={
                "origin": self.name, "limit": int(self.limit), "max": self.most, "in_flight": self.in_flight,
                "waiting": len(self.waiting)})

    def _wake(self) -> None:
        """Hand places to the waiters in order, as far as the limit, the rate and a hold allow."""
        while self.waiting and self.in_flight < self.limit:
            slot, arrival, waiter = self.waiting[0]
            if waiter.done():
                heapq.heappop(self.waiting)
                continue
            now = self.clock() if self.paced else 0.0
            later = max(self.hold_until, self.next_at) - now if self.paced else 0.0
            if later > 0:
                self._wake_in(later)
                return
            heapq.heappop(self.waiting)
            self._started(now if self.paced else self.clock())
            waiter.set_result(None)

    def _wake_in(self, delay: float) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.ensure_future(self._sleep_then_wake(delay))

    async def _sleep_then_wake(self, delay: float) -> None:
        await self.sleep(delay)
        self._timer = None
        self._wake()

    def state(self) -> dict:
        return {"origin": self.name, "limit": int(self.limit), "max": self.most, "in_flight": self.in_flight,
                "waiting": sum(1 for *_, w in self.waiting if not w.done()),
                "held_s": round(max(0.0, self.hold_until - self.clock()), 3)}


class Origins:
    """The lanes, one per origin, found by a job's URL in one dict lookup."""

    def __init__(self, most: int, rate: float | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.most, self.rate = most, rate
        self.clock, self.sleep = clock, sleep
        self._by_url: dict[str, Lane] = {}
        self._lanes: dict[str, Lane] = {}

    def lane(self, url: str) -> Lane:
        found = self._by_url.get(url)
        if found is None:
            parsed = origin(url)
            name = show_origin(parsed) if parsed is not None else url
            found = self._lanes.get(name)
            if found is None:
                found = self._lanes[name] = Lane(name, self.most, self.rate, self.clock, self.sleep)
            if len(self._by_url) >= 100_000:
                self._by_url.clear()  # URLs of jobs long gone: the lanes stay
            self._by_url[url] = found
        return found

    def states(self) -> list[dict]:
        """Each origin's limit, maximum, calls in flight and waiting, and Retry-After hold left."""
        return [lane.state() for lane in list(self._lanes.values())]
