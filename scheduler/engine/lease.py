"""The lease: acquire it, keep it renewed, notice losing it, retry store calls while it lasts.

Time on the lease is measured on the monotonic clock from the start of the last successful
renewal (SPEC 3, rule 3); claims stop two thirds of the way through the TTL.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from collections.abc import Awaitable, Callable, Sequence

from .clock import Clock, backoff
from ..config.loader import Settings
from ..observe import Health, Metrics
from ..store.protocol import Store, StoreForbidden, StoreUnavailable

log = logging.getLogger("scheduler.engine")

STANDBY_LOG_EVERY_S = 300.0  # a standby says it still stands by this often
# The wall clock may move against the monotonic one by this much between two renewals (NTP
# slews at most 0.5 ms a second); a larger move is a jump (a VM resumed, a clock set by
# hand), and the skew measured at the last renewal no longer holds.
CLOCK_JUMP_S = 0.05
# A fire handed over at a stop is its replica's for SHUTDOWN_GRACE (the drain, which then
# cancels it) and this much more: the cancellation and the last outcome's write.
HOLD_MARGIN_S = 1.0


@dataclass
class Lease:
    ttl_s: float
    renewed_at: float  # monotonic time at the start of the last successful acquire/renew
    lost: bool = False
    wall_offset: float | None = None  # wall minus monotonic time when the skew was last checked
    ended: str | None = None  # why this leadership ended, when the engine ended it

    @property
    def claim_deadline(self) -> float:
        """Claims stop, and the leader steps down, once two thirds of the TTL have passed."""
        return self.renewed_at + self.ttl_s * 2 / 3

    def valid(self, now_mono: float) -> bool:
        return not self.lost and now_mono < self.claim_deadline

    def steady(self, clock: Clock) -> bool:
        """Whether the wall clock kept pace with the monotonic one since the last check
        against the store's clock (a jump would make slots fire early or late)."""
        if self.wall_offset is None:
            return True
        return abs(clock.time() - clock.monotonic() - self.wall_offset) <= CLOCK_JUMP_S


class LeaseKeeper:
    """`pause(seconds)` is the engine's sleep that a stop cuts short; `wake()` tells the
    leader loop to look again (the lease is gone)."""

    def __init__(self, settings: Settings, store: Store, clock: Clock, metrics: Metrics, health: Health,
                 stopping: asyncio.Event, pause: Callable[[float], Awaitable[None]], wake: Callable[[], None]):
        self.settings, self.store, self.clock = settings, store, clock
        self.metrics, self.health = metrics, health
        self.stopping, self._pause, self._wake = stopping, pause, wake
        self.epoch: int | None = None
        self._warned = False
        self._standby_since: float | None = None
        self._named: set[str] = set()  # each refusal of the store's, as logged once
        # The calls being retried after a refusal (acquire, renew, one retried step each):
        # not ready while any is, though other calls succeed meanwhile.
        self._refused_calls: set[object] = set()

    async def acquire(self) -> Lease | None:
        """Stand by until the lease is ours (a new Lease, `self.epoch` set) or we are stopped (None)."""
        failures = 0
        while not self.stopping.is_set():
            started = self.clock.monotonic()
            offset = self.clock.time() - started  # as the store's skew check saw them
            try:
                epoch = await self.store.acquire()
            except StoreUnavailable as exc:
                failures += 1
                delay = backoff(failures)
                self.failed("state store unreachable; retrying", exc, "acquire", retry_in_s=round(delay, 2))
                await self._pause(delay)
                continue
            self.settled("acquire")
            failures = 0
            if not self._warned:
                self._warned = True
                for warning in await self._store_warnings():
                    log.warning(warning)
            if epoch is None:
                self.note_refusal()
                await self._standby_wait()
                continue
            self._standby_since = None
            self.health.clock_ok = self.health.format_ok = True
            self._note_skew()
            self.epoch = epoch
            return Lease(self.settings.lease_ttl_s, started, wall_offset=offset)
        return None

    def usable(self, lease: Lease) -> bool:
        """Whether this leadership may still claim and send. Once it may not, it ends: a fire
        left in flight at its moment is redelivered by the next leadership (this replica's
        own, with a new epoch, if it takes the lease again), never forgotten while the
        same leadership goes on."""
        if lease.valid(self.clock.monotonic()) and lease.steady(self.clock):
            return True
        if not lease.lost:
            lease.lost = True
            if lease.steady(self.clock):
                lease.ended = "lease not renewed in time"
            else:
                lease.ended = "the wall clock jumped"
                log.error("the wall clock jumped; stepping down until it is checked against the store's again",
                          extra={"epoch": self.epoch})
            self._wake()
        return False

    def _note_skew(self) -> float | None:
        skew = self.store.clock_skew_s
        if skew is not None:
            self.metrics.clock_skew.set(skew)
        return skew

    def note_refusal(self) -> None:
        """Why acquire said no: another holder (a standby waits), or this replica may not lead
        (its clock is off, or the state is of a newer format); the latter fail /readyz."""
        skew = self._note_skew()
        problem = self.store.format_problem
        clock_ok = self.store.clock_ok()
        self.health.clock_ok, self.health.format_ok = clock_ok, problem is None
        if problem:
            self.metrics.format_refused.set(1)
            log.error("not leading: the state store holds a newer state format", extra={"problem": problem})
        elif not clock_ok:
            log.error("not leading: this replica's clock is off from the Redis server's",
                      extra={"skew_s": round(skew or 0.0, 3), "max_skew_s": self.settings.max_clock_skew_s})
        else:
            self.metrics.format_refused.set(0)
            now = self.clock.monotonic()
            if self._standby_since is None or now - self._standby_since >= STANDBY_LOG_EVERY_S:
                self._standby_since = now
                log.info("standing by: another replica holds the lease", extra={"replica": self.store.replica_id})

    async def _store_warnings(self) -> list[str]:
        try:
            return await self.store.warnings()
        except StoreUnavailable:
            return []

    async def _standby_wait(self) -> None:
        """Until the holder releases the lease, one renew period passes, or we are stopped."""
        waiter = asyncio.ensure_future(self.store.wait_released(self.settings.lease_renew_s))
        stopper = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, stopper):
            task.cancel()
        await asyncio.gather(waiter, stopper, return_exceptions=True)

    async def renew_loop(self, lease: Lease) -> None:
        """Renew every SCHEDULER_LEASE_RENEW; return (and wake the leader) once it is lost
        or has run out while the store could not be reached."""
        renew_s = self.settings.lease_renew_s
        while True:
            await self.clock.sleep(lease.renewed_at + renew_s - self.clock.monotonic())
            while True:
                started = self.clock.monotonic()
                # The clocks as the store will judge them: a jump during the call is then a
                # change from this offset, caught before the next fire (Lease.steady).
                offset = self.clock.time() - started
                try:
                    held = await self.store.renew()
                except StoreUnavailable as exc:
                    self.failed("lease renewal failed; retrying", exc, "renew")
                    if not lease.valid(self.clock.monotonic()):
                        self._wake()
                        return
                    await self.clock.sleep(min(0.5, renew_s / 4))
                    continue
                self.settled("renew")
                skew = self._note_skew()
                if not held:
                    lease.lost = True
                    self._log_lost(skew)
                    self._wake()
                    return
                lease.renewed_at = started
                lease.wall_offset = offset
                break

    def _log_lost(self, skew: float | None) -> None:
        if not self.store.clock_ok():
            self.health.clock_ok = False
            log.error("stepping down: this replica's clock is off from the Redis server's",
                      extra={"epoch": self.epoch, "skew_s": round(skew or 0.0, 3),
                             "max_skew_s": self.settings.max_clock_skew_s})
        else:
            log.warning("lease no longer ours (expired, taken, or the Redis master moved)", extra={"epoch": self.epoch})

    async def retry(self, call: Callable[[], Awaitable[Any]], lease: Lease) -> Any:
        """Run a store call, retrying outages while the lease lasts; None once it has run out."""
        failures, step = 0, object()
        while True:
            try:
                result = await call()
                self.settled(step)
                return result
            except StoreUnavailable as exc:
                failures += 1
                delay = min(backoff(failures), lease.claim_deadline - self.clock.monotonic())
                if delay <= 0 or self.stopping.is_set():
                    self.failed("state store unreachable until the lease ran out; giving up this step", exc, step,
                                epoch=self.epoch)
                    self.settled(step, ok=False)  # given up: no longer retried
                    return None
                self.failed("state store call failed; retrying", exc, step)
                await self.clock.sleep(delay)

    def settled(self, call: object, ok: bool = True) -> None:
        """`call` (see failed) is no longer being retried: it succeeded, or with ok=False,
        was given up."""
        self._refused_calls.discard(call)
        self.health.store_refused = bool(self._refused_calls)
        if ok:
            self.health.store_ok = True

    def failed(self, message: str, exc: StoreUnavailable, call: object, **extra: Any) -> None:
        """A store call failed: not ready. An outage is logged each time it is retried; a
        permission the store refused is named once at ERROR (retrying the same call cannot
        fix it, only an operator can), and only at DEBUG after that. `call` names the call
        being retried: while one refused is, the replica is not ready, whatever else succeeds."""
        self.health.store_ok = False
        refused = isinstance(exc, StoreForbidden)
        (self._refused_calls.add if refused else self._refused_calls.discard)(call)
        self.health.store_refused = bool(self._refused_calls)
        if not refused:
            log.warning(message, extra={"error": str(exc), **extra})
        elif str(exc) in self._named:
            log.debug(message, extra={"error": str(exc), **extra})
        else:
            self._named.add(str(exc))
            log.error("the state store refused a call this replica needs; not ready until the permission is granted",
                      extra={"error": str(exc)})

    async def step_down(self, lease: Lease, stopping: bool, running: Sequence[str] = ()) -> None:
        """Release the lease when stopping, handing over the fires `running` (their
        in-flight fields), which stay this replica's for SHUTDOWN_GRACE + HOLD_MARGIN_S;
        otherwise say why leadership ended."""
        if stopping:
            try:
                if running and self.epoch is not None:
                    hold_s = self.settings.shutdown_grace_s + HOLD_MARGIN_S
                    unsaid = await self.store.hand_over(self.epoch, running, hold_s)
                else:
                    unsaid = await self.store.release()
            except StoreUnavailable as exc:
                log.warning("could not release the lease; it expires by itself", extra={"error": str(exc)})
                return
            log.info("released the lease", extra={"epoch": self.epoch, "fires_kept": len(running)})
            if unsaid is not None:
                log.warning("the standbys were not told of the release; the next one takes the lease at its next try",
                            extra={"error": unsaid})
        else:
            log.warning("stepped down", extra={"epoch": self.epoch,
                                                "reason": lease.ended or ("lease lost" if lease.lost else "lease not renewed in time")})
