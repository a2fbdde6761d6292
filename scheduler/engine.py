"""The leader loop: stand by until the lease is ours, then claim and fire due slots.

The loop sleeps until the next due slot (no polling tick), keeps every job's next slot in
a heap, claims everything due at one moment in one store call, and dispatches the claimed
fires under a global concurrency limit. Time on the lease is measured on the monotonic
clock from the start of the last successful renewal (SPEC 3, rule 3).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable

from .config import JobSpec, Settings
from .dispatch import Dispatcher, Fire
from .observe import Health, Metrics
from .plan import CATCHUP_ALL_LIMIT, Plan, claim_ahead_s, fire_at, jitter_offset_s  # noqa: F401  (public names)
from .schedule import format_slot
from .model import CLAIMED, FIRE, INIT, PAUSED, REDELIVER, SKIP, TRIGGER, Claim, Finished, Outcome
from .store import LeaseLost, Store, StoreUnavailable

REFUSED = 3  # the store refused a slot too far ahead of its clock (SPEC 3, rule 7)

log = logging.getLogger("scheduler.engine")

CLAIM_CHUNK = 500  # claims per store call when many are due at once
RETRY_BASE_S = 0.25  # store-outage backoff: base and cap
RETRY_CAP_S = 5.0
STANDBY_LOG_EVERY_S = 300.0  # a standby says it still stands by this often


class Clock:
    """Wall time for slots, monotonic time for the lease. Replaced in tests."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class Lease:
    ttl_s: float
    renewed_at: float  # monotonic time at the start of the last successful acquire/renew
    lost: bool = False

    @property
    def claim_deadline(self) -> float:
        """Claims stop, and the leader steps down, once two thirds of the TTL have passed."""
        return self.renewed_at + self.ttl_s * 2 / 3

    def valid(self, now_mono: float) -> bool:
        return not self.lost and now_mono < self.claim_deadline


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        dispatcher: Dispatcher,
        *,
        metrics: Metrics | None = None,
        health: Health | None = None,
        clock: Clock = Clock(),
    ):
        self.settings = settings
        self.jobs: dict[str, JobSpec] = {j.name: j for j in settings.jobs if j.enabled}
        self.store = store
        self.dispatcher = dispatcher
        self.metrics = metrics or Metrics()
        self.health = health or Health()
        self.clock = clock
        if hasattr(store, "on_malformed"):
            store.on_malformed = lambda key: self.metrics.malformed.inc()
        self.stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(settings.max_concurrency)
        self.running: dict[str, tuple[Claim, asyncio.Task]] = {}  # by in-flight field
        self._replaced: set[asyncio.Task] = set()
        self._backlog: set[asyncio.Task] = set()  # fires claimed at leadership start
        # job -> {in-flight field: task} of fires whose HTTP call is under way (not those
        # only recording their outcome): what CONCURRENCY looks at, in O(1) per job.
        self._active: dict[str, dict[str, asyncio.Task]] = {}
        self._plan = Plan(self.jobs, 0.0)
        self._gates: dict[float, asyncio.Event] = {}  # moment -> set when it comes (claimed ahead)
        self.epoch: int | None = None
        self.lease: Lease | None = None
        self.is_leader = False
        self.period_s: dict[str, float] = {}  # time between a job's current slots
        self.last_success: dict[str, float] = {}
        self.first_seen: dict[str, float] = {}  # persisted: overdue counts from it before any success
        self.watch_since: float | None = None  # when this replica began leading
        self._warned = False
        self._outcomes: list[tuple[Finished, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None
        self._standby_since: float | None = None

    def overdue_source(self) -> list[tuple[str, float | None, float | None]]:
        """(job, period, last success or start of leadership) for the overdue gauge; a
        standby knows nothing of the fires and reports no job."""
        if not self.is_leader:
            return []
        return [
            (job, self.period_s.get(job), self.last_success.get(job) or self.first_seen.get(job) or self.watch_since)
            for job in list(self.jobs)
        ]

    def stop(self) -> None:
        """Called from a signal handler: only flips state; the loops notice at once."""
        self.stopping.set()
        self._wake.set()

    # -- standby ---------------------------------------------------------------------------

    async def run(self) -> None:
        ticker = asyncio.create_task(self._heartbeat())
        failures = 0
        try:
            while not self.stopping.is_set():
                started = self.clock.monotonic()
                try:
                    epoch = await self.store.acquire()
                except StoreUnavailable as exc:
                    self.health.store_ok = False
                    failures += 1
                    delay = _backoff(failures)
                    log.warning("state store unreachable; retrying", extra={"error": str(exc), "retry_in_s": round(delay, 2)})
                    await self._sleep(delay)
                    continue
                self.health.store_ok = True
                failures = 0
                if not self._warned:
                    self._warned = True
                    for warning in await self._store_warnings():
                        log.warning(warning)
                if epoch is None:
                    self._note_refusal()
                    await self._standby_wait()
                    continue
                self._standby_since = None
                self.health.clock_ok = self.health.format_ok = True
                if getattr(self.store, "clock_skew_s", None) is not None:
                    self.metrics.clock_skew.set(self.store.clock_skew_s)
                await self._lead(epoch, started)
            await self._finish_in_flight()
        finally:
            ticker.cancel()

    def _note_refusal(self) -> None:
        """Why acquire said no: another holder (a standby waits), or this replica may not lead
        (its clock is off, or the state is of a newer format); the latter fail /readyz."""
        skew = getattr(self.store, "clock_skew_s", None)
        if skew is not None:
            self.metrics.clock_skew.set(skew)
        problem = getattr(self.store, "format_problem", None)
        clock_ok = getattr(self.store, "clock_ok", lambda: True)()
        self.health.clock_ok, self.health.format_ok = clock_ok, problem is None
        if problem:
            self.metrics.format_refused.set(1)
            log.error("not leading: the state store holds a newer state format", extra={"problem": problem})
        elif not clock_ok:
            log.error("not leading: this replica's clock is off from the Redis server's",
                      extra={"skew_s": round(skew, 3), "max_skew_s": self.settings.max_clock_skew_s})
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
        await _cancel(waiter, stopper)

    async def _sleep(self, seconds: float) -> None:
        """Sleep that SIGTERM, a lost lease or new work cuts short."""
        if seconds > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), seconds)
            except TimeoutError:
                pass
        self._wake.clear()
        if self.stopping.is_set():
            self._wake.set()

    async def _heartbeat(self) -> None:
        # Several beats per staleness window, so one late tick never reads as a stall.
        interval = self.health.stale_after_s / 4
        while True:
            self.health.beat()
            await asyncio.sleep(interval)

    # -- leader ----------------------------------------------------------------------------

    async def _lead(self, epoch: int, acquired_at: float) -> None:
        self.epoch = epoch
        self.lease = Lease(self.settings.lease_ttl_s, acquired_at)
        log.info("became leader", extra={"epoch": epoch, "replica": self.store.replica_id})
        self.is_leader = True
        self.watch_since = self.clock.time()
        self.metrics.leader.set(1)
        self.metrics.epoch.set(epoch)
        self.metrics.transitions.labels("acquired").inc()
        renewer = asyncio.create_task(self._renew_loop(self.lease))
        watcher = asyncio.create_task(self._supervise(self._watch_triggers, epoch, self.lease))
        try:
            await self._leader_loop(epoch, self.lease)
            await _cancel(watcher)
            if self.stopping.is_set():
                # Keep renewing while in-flight fires finish, so no standby redelivers them.
                await self._finish_in_flight()
        finally:
            await _cancel(renewer, watcher)
            self.is_leader = False
            self.metrics.leader.set(0)
            self.metrics.transitions.labels("released" if self.stopping.is_set() else "lost").inc()
        if self.stopping.is_set():
            try:
                await self.store.release()
                log.info("released the lease", extra={"epoch": epoch})
            except StoreUnavailable as exc:
                log.warning("could not release the lease; it expires by itself", extra={"error": str(exc)})
        else:
            log.warning("stepped down", extra={"epoch": epoch, "reason": "lease lost" if self.lease.lost else "lease not renewed in time"})

    async def _renew_loop(self, lease: Lease) -> None:
        renew_s = self.settings.lease_renew_s
        while True:
            await asyncio.sleep(max(0.0, lease.renewed_at + renew_s - self.clock.monotonic()))
            while True:
                started = self.clock.monotonic()
                try:
                    held = await self.store.renew()
                except StoreUnavailable as exc:
                    self.health.store_ok = False
                    log.warning("lease renewal failed; retrying", extra={"error": str(exc)})
                    if not lease.valid(self.clock.monotonic()):
                        self._wake.set()
                        return
                    await asyncio.sleep(min(0.5, renew_s / 4))
                    continue
                self.health.store_ok = True
                skew = getattr(self.store, "clock_skew_s", None)
                if skew is not None:
                    self.metrics.clock_skew.set(skew)
                if not held:
                    lease.lost = True
                    if not getattr(self.store, "clock_ok", lambda: True)():
                        self.health.clock_ok = False
                        log.error("stepping down: this replica's clock is off from the Redis server's",
                                  extra={"epoch": self.epoch, "skew_s": round(skew, 3),
                                         "max_skew_s": self.settings.max_clock_skew_s})
                    else:
                        log.warning("lease no longer ours (expired, taken, or the Redis master moved)", extra={"epoch": self.epoch})
                    self._wake.set()
                    return
                lease.renewed_at = started
                break

    async def _leader_loop(self, epoch: int, lease: Lease) -> None:
        state = await self._retry(lambda: self.store.load(list(self.jobs)), lease)
        if state is None:
            return
        for job, health in state.health.items():
            if health.first_seen_at is not None:
                self.first_seen[job] = health.first_seen_at
            self.metrics.job(job).failures.set(health.consecutive_failures)
            if health.last_success_at is not None:
                self.last_success[job] = health.last_success_at
                self.metrics.job(job).last_success.set(health.last_success_at)
        now = self.clock.time()
        plan = self._plan = Plan(self.jobs, claim_ahead_s(lease.ttl_s))
        first = plan.start(state, now, self.running)
        for claim in first:
            if claim.kind == INIT:
                self.first_seen.setdefault(claim.job, now)
        self.period_s = plan.period_s
        if first and not await self._claim_and_fire(epoch, lease, first, backlog=True):
            return
        while not self.stopping.is_set() and lease.valid(self.clock.monotonic()):
            now = self.clock.time()
            claims = plan.due(now, busy=lambda job: job in self._active, overlapping=self._overlapping)
            if not claims:
                until_deadline = lease.claim_deadline - self.clock.monotonic()
                await self._sleep(min(plan.wake_in(now), until_deadline))
                continue
            if not await self._claim_and_fire(epoch, lease, claims):
                return

    def _overlapping(self, job: str) -> bool:
        """A fire of the job started by the loop still runs. The backlog made up at
        leadership start does not count: a slot due behind it waits its turn instead of
        being lost to a burst the outage caused."""
        return any(t not in self._backlog for t in self._running_of(job))

    def _running_of(self, job: str) -> list[asyncio.Task]:
        """The job's fires whose HTTP call is still under way, oldest first."""
        active = self._active.get(job)
        return list(active.values()) if active else []

    async def _claim_and_fire(self, epoch: int, lease: Lease, claims: list[Claim], backlog: bool = False) -> bool:
        """Claim and start the claimed fires; False when leadership ended. A large batch goes
        in chunks, each started before the next is claimed, so the first calls of ten
        thousand due jobs leave at once rather than after every claim is written."""
        chained: dict[str, asyncio.Task] = {}
        for start in range(0, len(claims), CLAIM_CHUNK):
            if not await self._claim_chunk(epoch, lease, claims[start:start + CLAIM_CHUNK], backlog, chained):
                return False
            if start + CLAIM_CHUNK < len(claims):
                await asyncio.sleep(0)
        return True

    async def _claim_chunk(
        self, epoch: int, lease: Lease, claims: list[Claim], backlog: bool, chained: dict[str, asyncio.Task]
    ) -> bool:
        """Claim in one store call and start the claimed fires."""
        if not lease.valid(self.clock.monotonic()):
            return False
        try:
            results = await self._retry(lambda: self.store.claim(epoch, claims), lease)
        except LeaseLost as exc:
            lease.lost = True
            log.warning("claim refused: the lease is not ours", extra={"epoch": epoch, "reason": str(exc) or "lease not held"})
            return False
        if results is None:
            return False
        for claim, result in zip(claims, results):
            job = self.jobs[claim.job]
            slot = format_slot(claim.slot)
            if result == PAUSED:
                self.metrics.job(job.name).skipped("paused")
                log.info("skipped: job is paused", extra={"job": job.name, "slot": slot})
                continue
            if claim.kind == INIT:
                continue
            if result == REFUSED:
                log.warning("claim refused: the slot lies ahead of the Redis server's clock",
                            extra={"job": job.name, "slot": slot, "kind": claim.kind})
                continue
            if result != CLAIMED:
                log.debug("already claimed", extra={"job": job.name, "slot": slot, "kind": claim.kind})
                continue
            if claim.kind == SKIP:
                reason = claim.reason or "overlap"
                self.metrics.job(job.name).skipped(reason)
                what = "previous fire still running" if reason == "overlap" else "missed while the loop was behind"
                log.info(f"skipped: {what}", extra={"job": job.name, "slot": slot, "policy": job.catchup})
                continue
            if job.concurrency == "replace" and claim.kind == FIRE:
                for task in self._running_of(job.name):
                    if task is not chained.get(job.name):
                        self._replaced.add(task)
                        task.cancel()
            if claim.kind == REDELIVER:
                log.info("redelivering a fire left in flight", extra={"job": job.name, "slot": slot, "attempt": claim.attempt})
            elif claim.kind == TRIGGER:
                log.info("manual trigger", extra={"job": job.name, "trigger": claim.trigger})
            # Retries stop at the job's next slot still to come (for a made-up slot too).
            deadline = self._plan.deadline(claim)
            fire = Fire(job, claim.slot, epoch, claim.attempt, deadline=deadline, trigger=claim.trigger)
            # Several fires of one job claimed together (redeliveries, catch-up) go out one
            # after another, oldest first.
            after = chained.get(job.name)
            if after is None and job.concurrency == "forbid" and claim.kind == FIRE:
                after = next(reversed(self._running_of(job.name)), None)  # the backlog's last
            # A slot claimed ahead of its moment waits for it.
            at = fire_at(job, claim.slot) if claim.kind == FIRE else None
            gate = self._gate(at) if at is not None and at > self.clock.time() else None
            task = asyncio.create_task(self._fire(claim, fire, lease, after=after, gate=gate))
            chained[job.name] = task
            if backlog:
                self._backlog.add(task)
            self.running[claim.field] = (claim, task)
            self._active.setdefault(job.name, {})[claim.field] = task
        self.metrics.inflight.set(len(self.running))
        return True

    async def _supervise(self, loop: Callable, epoch: int, lease: Lease) -> None:
        """Run a leader's side loop; if it dies of an error, log it and start it again."""
        while True:
            try:
                await loop(epoch, lease)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the trigger watcher failed; restarting it", extra={"epoch": epoch})
                await asyncio.sleep(1.0)

    async def _watch_triggers(self, epoch: int, lease: Lease) -> None:
        """Take manual fire requests as they come (woken by the trigger command)."""
        while True:
            try:
                requests = await self.store.pending_triggers()
            except StoreUnavailable:
                requests = []
            except Exception:  # never let the watcher die quietly: log, and look again later
                log.exception("reading manual triggers failed")
                requests = []
            claims = [
                Claim(r.job, r.requested_at, TRIGGER, 1, r.id)
                for r in requests
                if r.job in self.jobs and Claim(r.job, r.requested_at, trigger=r.id).field not in self.running
            ]
            if claims and not await self._claim_and_fire(epoch, lease, claims):
                self._wake.set()
                return
            await self.store.wait_wake(self.settings.lease_renew_s)

    async def _retry(self, call: Callable, lease: Lease):
        """Run a store call, retrying outages while the lease lasts; None once it has run out."""
        failures = 0
        while True:
            try:
                result = await call()
                self.health.store_ok = True
                return result
            except StoreUnavailable as exc:
                self.health.store_ok = False
                failures += 1
                delay = min(_backoff(failures), lease.claim_deadline - self.clock.monotonic())
                if delay <= 0 or self.stopping.is_set():
                    log.warning("state store unreachable until the lease ran out; giving up this step",
                                extra={"error": str(exc), "epoch": self.epoch})
                    return None
                log.warning("state store call failed; retrying", extra={"error": str(exc)})
                await asyncio.sleep(delay)

    # -- one fire --------------------------------------------------------------------------

    def _gate(self, at: float) -> asyncio.Event:
        """An event set when the wall clock reaches `at`: one timer for all fires of a moment."""
        gate = self._gates.get(at)
        if gate is None:
            gate = self._gates[at] = asyncio.Event()
            asyncio.get_running_loop().call_later(at - self.clock.time(), self._open_gate, at)
        return gate

    def _open_gate(self, at: float) -> None:
        early = at - self.clock.time()
        if early > 0:  # loop timers may round to the millisecond: never fire before the slot
            asyncio.get_running_loop().call_later(early, self._open_gate, at)
            return
        gate = self._gates.pop(at, None)
        if gate is not None:
            gate.set()

    async def _fire(
        self, claim: Claim, fire: Fire, lease: Lease, after: asyncio.Task | None = None, gate: asyncio.Event | None = None
    ) -> None:
        job = fire.job
        try:
            if after is not None:
                await asyncio.wait({after})  # its outcome, even a cancellation, is its own
            if gate is not None:
                await gate.wait()
                if not lease.valid(self.clock.monotonic()):
                    # The lease ran out between the claim and the moment (a paused process):
                    # the fire stays in flight in the store and the next leader delivers it.
                    log.warning("lease ran out before the moment; leaving the fire to the next leader",
                                extra={"job": job.name, "slot": format_slot(fire.slot), "epoch": fire.epoch})
                    return
            async with self._limit:
                lateness = self.clock.time() - fire.slot
                if not fire.trigger:
                    self.metrics.job(job.name).lateness.observe(max(0.0, lateness))

                async def on_attempt(attempt: int) -> None:
                    if attempt > fire.attempt:  # the claim itself recorded the first attempt
                        self.metrics.job(job.name).retries.inc()
                        try:
                            await self.store.note_attempt(fire.epoch, claim, attempt)
                        except StoreUnavailable:
                            pass  # a redelivery then reuses an attempt number; the key is what matters

                try:
                    outcome = await self.dispatcher.send(fire, on_attempt)
                except Exception as exc:  # a bug in a fire ends that fire, with its error, never the loop
                    log.exception("the fire failed unexpectedly", extra={"job": job.name, "slot": format_slot(fire.slot)})
                    outcome = Outcome("failed", fire.attempt, 0.0, self.clock.time(), None, f"{type(exc).__name__}: {exc}")
            self._call_ended(claim)  # for CONCURRENCY the fire is over; only its record remains
            await self._record(claim, fire, outcome, None if fire.trigger else lateness)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task in self._replaced:
                self._replaced.discard(task)
                now = self.clock.time()
                await self._record(claim, fire, Outcome("cancelled", fire.attempt, 0.0, now, None, "replaced by a newer slot"), None)
            # Cancelled by shutdown: the fire stays in flight in the store and the next leader
            # redelivers it with the same idempotency key.
            raise
        finally:
            self._backlog.discard(asyncio.current_task())
            self._call_ended(claim)
            self.running.pop(claim.field, None)
            self.metrics.inflight.set(len(self.running))

    def _call_ended(self, claim: Claim) -> None:
        active = self._active.get(claim.job)
        if active is not None:
            active.pop(claim.field, None)
            if not active:
                del self._active[claim.job]

    async def _record(self, claim: Claim, fire: Fire, outcome: Outcome, lateness: float | None) -> None:
        job = fire.job
        metrics = self.metrics.job(job.name)
        metrics.fired(outcome.status)
        metrics.duration.observe(outcome.duration_s)
        if outcome.status == "ok":
            self.last_success[job.name] = outcome.finished_at
            metrics.last_success.set(outcome.finished_at)
        level = logging.INFO if outcome.status == "ok" else logging.WARNING
        if log.isEnabledFor(level):  # the record's fields cost more than a skipped call
            log.log(level, "fired", extra={
                "job": job.name, "slot": format_slot(fire.slot), "attempt": outcome.attempts,
                "outcome": outcome.status, "http_status": outcome.http_status,
                "duration_ms": round(outcome.duration_s * 1000, 1),
                "lateness_ms": None if lateness is None else round(lateness * 1000, 1),
                "epoch": fire.epoch, **({"trigger": fire.trigger} if fire.trigger else {}),
                **({"error": outcome.error} if outcome.error else {}),
                **({"excerpt": outcome.excerpt} if outcome.excerpt else {}),
            })
        for attempt in range(5):
            try:
                metrics.failures.set(await self._write_outcome(Finished(claim, fire.epoch, outcome, lateness)))
                return
            except StoreUnavailable as exc:
                if attempt == 4:
                    log.warning("could not record the outcome; the fire may be redelivered", extra={"job": job.name, "error": str(exc)})
                    return
                await asyncio.sleep(_backoff(attempt + 1))

    async def _write_outcome(self, item: Finished) -> int:
        """Outcomes go to the store in batches: one is written at once; those that finish
        while a write is under way go together in the next one. No delay at low rates, one
        store call for many fires at high ones."""
        done = asyncio.get_running_loop().create_future()
        self._outcomes.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_outcomes())
        return await done

    async def _write_outcomes(self) -> None:
        """Every waiter gets an answer, whatever goes wrong: a result, or the error."""
        batch: list[tuple[Finished, asyncio.Future]] = []
        try:
            while self._outcomes:
                batch, self._outcomes = self._outcomes, []
                try:
                    results = await self.store.finish([item for item, _ in batch])
                except Exception as exc:
                    error = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(f"{type(exc).__name__}: {exc}")
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(error)
                    continue
                for (_, done), fails in zip(batch, results):
                    if not done.done():
                        done.set_result(fails)
        except BaseException:  # cancelled with the loop: no waiter is left pending
            for _, done in batch + self._outcomes:
                if not done.done():
                    done.set_exception(StoreUnavailable("the outcome writer stopped"))
            self._outcomes = []
            raise

    async def _finish_in_flight(self) -> None:
        """Wait up to SHUTDOWN_GRACE for fires in flight, then cancel the rest."""
        tasks = {task for _, task in self.running.values()}
        if not tasks:
            return
        log.info("waiting for fires in flight", extra={"count": len(tasks), "grace_s": self.settings.shutdown_grace_s})
        done, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_s)
        if pending:
            log.warning(f"cancelling {len(pending)} running fires", extra={"count": len(pending)})
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def _cancel(*tasks: asyncio.Future) -> None:
    """Cancel and wait until each has stopped, so none is still reading a connection that
    the next step uses."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _backoff(failures: int) -> float:
    """Capped exponential backoff with full jitter."""
    return random.uniform(0, min(RETRY_CAP_S, RETRY_BASE_S * 2 ** failures)) + 0.05
