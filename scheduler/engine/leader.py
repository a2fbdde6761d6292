"""The leader loop: stand by until the lease is ours, then claim and fire due slots.

The engine wires four parts for each leadership: the lease keeper (lease.py) acquires and
renews; the planner (plan.py) says what is due and when to wake; the registry (fires.py)
runs what was claimed; the recorder (record.py) turns outcomes into metrics, logs and the
store's record. The loop sleeps until the planner's next wake-up (no polling tick) and
claims everything due at one moment in one store call.
"""

from __future__ import annotations

import asyncio
import logging
import math
from functools import partial

from .. import collector
from .clock import Clock
from ..config.loader import JobSpec, Settings
from ..dispatch import Fire
from .fires import STARTS, Chain, Fires, Sender
from .held import Held
from .lease import Lease, LeaseKeeper
from ..model import CLAIMED, INIT, REDRIVE, TRIGGER, Claim
from ..observe import Health, Metrics
from .plan import CATCHUP_ALL_LIMIT, Plan, claim_ahead_s, jitter_offset_s  # noqa: F401  (public names)
from .record import Notices, Recorder
from .resume import Resumer
from .sightings import Sightings
from .tasks import cancel as _cancel, supervise
from .jobset import JobSet, Preparer
from ..store.protocol import LeaseLost, Store, StoreUnavailable

log = logging.getLogger("scheduler.engine")

CLAIM_CHUNK = 500  # claims per store call when many are due at once


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        dispatcher: Sender,
        *,
        metrics: Metrics | None = None,
        health: Health | None = None,
        clock: Clock | None = None,
        notices: Notices | None = None,
    ):
        self.settings = settings
        self.jobset = JobSet(settings)
        self.jobs = self.jobset.jobs  # env and source jobs, enabled: the one dict the plan reads
        self._claiming = asyncio.Lock()  # a claim and the start of its fires, or a job set change
        self.store = store
        self.metrics = metrics or Metrics()
        self.health = health or Health()
        self.clock = clock = clock or Clock()
        store.on_malformed = lambda where: self.metrics.malformed.inc()
        self.stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self.watch_since: float | None = None  # when this replica began leading
        self.is_leader = False
        self.plan = Plan(self.jobs, 0.0)
        self.recorder = Recorder(store, self.metrics, clock, settings.traceparent, notices)
        self.fires = Fires(clock, settings.max_concurrency, self.metrics, dispatcher, store.note_attempt, self.recorder.record)
        self.fires.on_idle = self._call_over
        self.sightings = Sightings(self._claim_and_fire)
        self.preparer = Preparer(self.jobset, self._wake.set)
        self.held = Held(self.jobs, clock, self._load, self._redeliver, self.fires)
        self.resumer = Resumer(self.jobs, clock.time, self._load, self._redeliver,
                               lambda state, now: self.recorder.loaded(state, set(), now), self.fires, self.held.add)
        self.keeper = LeaseKeeper(settings, store, clock, self.metrics, self.health, self.stopping,
                                  self._sleep, self._wake.set)

    def overdue_source(self) -> list[tuple[str, float | None, float | None]]:
        """(job, period, last success or start of leadership) for the overdue gauge; a
        standby knows nothing of the fires and reports no job."""
        if not self.is_leader:
            return []
        period, success, seen = self.plan.period, self.recorder.last_success, self.recorder.first_seen
        return [(job, period(job), success.get(job) or seen.get(job) or self.watch_since) for job in list(self.jobs)]

    def _call_over(self, job: str) -> None:
        """A job's last call under way ended: a slot queued behind it (CONCURRENCY=queue) goes now."""
        if job in self.plan.queued:
            self._wake.set()

    def apply_source_jobs(self, jobs: dict[str, JobSpec], source_of: dict[str, str] | None = None,
                          names: set[str] | None = None) -> None:
        """The sources' new set of valid jobs (JobSources' on_change), applied between two
        claims by the leader's loop; `names`: those that may differ from the last set (None:
        any)."""
        self.jobset.offer(jobs, names)
        self._wake.set()

    def stop(self) -> None:
        """Called from a signal handler: only flips state; the loops notice at once."""
        self.stopping.set()
        self._wake.set()

    async def run(self) -> None:
        ticker = asyncio.create_task(self._heartbeat())
        try:
            while (lease := await self.keeper.acquire()) is not None:
                await self._lead(lease)
            await self.fires.drain(self.settings.shutdown_grace_s)
        finally:
            ticker.cancel()

    async def _sleep(self, seconds: float) -> None:
        """Sleep that SIGTERM, a lost lease or new work cuts short."""
        await self.clock.wait(self._wake, seconds)
        self._wake.clear()
        if self.stopping.is_set():
            self._wake.set()

    async def _heartbeat(self) -> None:
        # Several beats per staleness window, so one late tick never reads as a stall.
        interval = self.health.stale_after_s / 4
        while True:
            self.health.beat()
            await self.clock.sleep(interval)

    async def _lead(self, lease: Lease) -> None:
        epoch = self.keeper.epoch
        assert epoch is not None  # set by the acquire that began this leadership
        if self.store.dry_run:
            log.info("dry run: planning as the leader would, without taking the lease", extra={"replica": self.store.replica_id})
        else:
            log.info("became leader", extra={"epoch": epoch, "replica": self.store.replica_id})
        self.is_leader = True
        self.watch_since = self.clock.time()
        self.metrics.leader.set(1)
        self.metrics.epoch.set(epoch)
        self.metrics.transitions.labels("acquired").inc()
        renewer = asyncio.create_task(self.keeper.renew_loop(lease))
        watcher = asyncio.create_task(supervise(lambda: self._watch_triggers(lease), self.clock.sleep,
                                                "the trigger watcher", lambda: self.keeper.epoch))
        try:
            await self._leader_loop(lease)
        finally:
            await _cancel(renewer, watcher, *self.sightings.end(), *self.resumer.end(), *self.held.end())
            await self.preparer.end()
            await self.fires.drop_waiting()
            self.is_leader = False
            self.metrics.leader.set(0)
            self.metrics.transitions.labels("released" if self.stopping.is_set() else "lost").inc()
        # Stopping, the lease goes at once: the fires still running stay this replica's in
        # the store until the drain is over (SHUTDOWN_GRACE, run() waits for them), and the
        # next leader claims new slots meanwhile (SPEC 8, "Handover without a stall").
        await self.keeper.step_down(lease, self.stopping.is_set(), list(self.fires.running))

    async def _leader_loop(self, lease: Lease) -> None:
        self.jobset.take_pending()  # a change that came while standing by: no plan to edit yet
        state = await self.keeper.retry(lambda: self.store.load(list(self.jobs)), lease)
        if state is None:
            return
        now = self.clock.time()
        plan = self.plan = Plan(self.jobs, claim_ahead_s(lease.ttl_s), self.settings.at_grace_s)
        first = plan.start(state, now, self.fires)
        self.held.add(lease, state.inflight)
        self.recorder.loaded(state, {c.job for c in first if c.kind == INIT}, now)
        self.resumer.begin(self.jobs)
        first = self.sightings.write_later(lease, first)
        if first and not await self._claim_and_fire(lease, first, backlog=True):
            return
        while not self.stopping.is_set() and self.keeper.usable(lease):
            now = self.clock.time()
            change = self.preparer.ready(now)
            if change is not None:
                sighted: list[str] = []
                async with self._claiming:
                    with collector.paused(freeze=len(change.added) + len(change.changed) >= collector.LARGE):
                        changes = self.jobset.commit(change, plan, self.metrics.forget, self.recorder.first_seen, sighted)
                if self.jobset.pending is not None:
                    self._wake.set()  # a newer set came while this one was prepared: next turn
                changes = self.sightings.write_later(lease, changes, sighted, math.floor(change.now))
                self.resumer.added(lease, change.added)
                if changes and not await self._claim_and_fire(lease, changes):
                    return
            claims = plan.due(now, busy=self.fires.busy, overlapping=self.fires.overlapping)
            if claims:
                if not await self._claim_and_fire(lease, claims):
                    return
                continue
            await self._sleep(min(plan.wake_in(now), lease.claim_deadline - self.clock.monotonic()))

    async def _redeliver(self, lease: Lease, claims: list[Claim]) -> bool:
        """Claims made beside the loop (resume.py, held.py): sent as a backlog."""
        return await self._claim_and_fire(lease, claims, True)

    async def _load(self, lease: Lease, jobs: list[str]):
        return await self.keeper.retry(lambda: self.store.load(jobs), lease)

    async def _claim_and_fire(self, lease: Lease, claims: list[Claim], backlog: bool = False) -> bool:
        """Claim and start the claimed fires; False when leadership ended. A large batch goes
        in chunks, each started before the next is claimed, so the first calls of ten
        thousand due jobs leave at once rather than after every claim is written."""
        chain: Chain = {}  # several fires of one job claimed together go out one after another
        for start in range(0, len(claims), CLAIM_CHUNK):
            if not await self._claim_chunk(lease, claims[start:start + CLAIM_CHUNK], backlog, chain):
                return False
            if start + CLAIM_CHUNK < len(claims):
                await asyncio.sleep(0)  # a yield to the fires just started, not a wait
        return True

    async def _claim_chunk(self, lease: Lease, claims: list[Claim], backlog: bool, chain: Chain) -> bool:
        """Claim in one store call and start the claimed fires; the job set does not change
        in between."""
        async with self._claiming:
            return await self._claim_chunk_locked(lease, [c for c in claims if c.job in self.jobs], backlog, chain)

    async def _claim_chunk_locked(self, lease: Lease, claims: list[Claim], backlog: bool, chain: Chain) -> bool:
        if not self.keeper.usable(lease):  # the lease's time, and a wall clock that has not jumped since its check
            return False
        if not claims:
            return True
        epoch = self.keeper.epoch
        assert epoch is not None  # set by the acquire that began this leadership
        try:
            results = await self.keeper.retry(lambda: self.store.claim(epoch, claims), lease)
        except LeaseLost as exc:
            lease.lost = True
            log.warning("claim refused: the lease is not ours", extra={"epoch": epoch, "reason": str(exc) or "lease not held"})
            return False
        if results is None:
            return False
        valid = partial(self.keeper.usable, lease)
        jobs, plan, fires = self.jobs, self.plan, self.fires
        for claim, result in zip(claims, results):
            # From here one Fire, carrying its claim, goes the whole way: the registry sends
            # it and hands its outcome to the recorder, with no call back into the engine.
            if result == CLAIMED and claim.kind in STARTS:
                job = jobs[claim.job]
                fires.start(Fire(job, claim, epoch, plan.deadline(claim), plan.retry_until(claim, job)), valid, chain, backlog)
            else:
                self.recorder.passed(claim, result, jobs[claim.job])
        return True

    async def _watch_triggers(self, lease: Lease) -> None:
        """Take manual fire requests and queued slots (redrive, backfill) as they come (woken
        by the control commands), while this leadership lasts. A job's queued slots are
        claimed together, oldest first, so they go out one after another."""
        while not self.stopping.is_set() and lease.valid(self.clock.monotonic()):
            try:
                requests = await self.store.pending_triggers()
                slots = await self.store.pending_slots()
            except StoreUnavailable:
                requests, slots = [], []
            except Exception:  # never let the watcher die quietly: log, and look again later
                log.exception("reading manual triggers failed")
                requests, slots = [], []
            claims = [
                Claim(r.job, r.requested_at, TRIGGER, 1, r.id)
                for r in requests
                if r.job in self.jobs and Claim(r.job, r.requested_at, trigger=r.id).field not in self.fires
            ] + [
                Claim(r.job, r.slot, REDRIVE, r.attempt, reason=r.reason)
                for r in slots
                if r.job in self.jobs and r.field not in self.fires
            ]
            if claims and not await self._claim_and_fire(lease, claims):
                self._wake.set()
                return
            await self.store.wait_wake(self.settings.lease_renew_s)
