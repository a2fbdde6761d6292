"""What a claim and a fire came to: metrics, log lines and the store's record, batched.

The recorder decides nothing: the engine hands it the claims that start no fire, and the
registry (fires.py) each fire's outcome."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from .clock import Clock, backoff
from ..config.loader import JobSpec
from ..dispatch import Fire, trace_id
from ..model import CLAIMED, EXPIRE, INIT, PAUSED, REPLACED, SKIP, Claim, Finished, Outcome, State
from ..observe import Metrics
from ..schedule.slots import format_slot
from ..store.protocol import Store, StoreUnavailable

REFUSED = 3  # the store refused a slot too far ahead of its clock (SPEC 3, rule 7)
WRITE_TRIES = 5  # an outcome is written this many times before it is left to redelivery

log = logging.getLogger("scheduler.engine")


class Notices(Protocol):
    """Told each recorded outcome with its job's failure streak before and after it
    (scheduler.notify.events.FireNotices); it must not wait: the fire's task calls it."""

    def finished(self, fire: Fire, outcome: Outcome, before: int, streak: int) -> None: ...


class Recorder:
    def __init__(self, store: Store, metrics: Metrics, clock: Clock, traceparent: bool = False,
                 notices: Notices | None = None):
        self.store = store
        self.notices = notices
        self.traceparent = traceparent  # the calls carry a traceparent: name its trace in the log line
        self.metrics = metrics
        self.clock = clock
        # What the overdue gauge counts from: a job's last success, else when a leader
        # first saw it (persisted), per job.
        self.last_success: dict[str, float] = {}
        self.first_seen: dict[str, float] = {}
        self._outcomes: list[tuple[Finished, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    def loaded(self, state: State, new_jobs: set[str], now: float) -> None:
        """Take each job's health from the state read at leadership start; jobs seen for
        the first time (`new_jobs`) count from `now`. A job that has neither failed nor
        succeeded yet gets its series when it first fires, as under the leader that first
        saw it (100,000 sighted jobs: 0.03 s here instead of 0.3 s of metrics objects)."""
        first_seen, last_success = self.first_seen, self.last_success
        for job, health in state.health.items():
            if health.first_seen_at is not None:
                first_seen[job] = health.first_seen_at
            if health.consecutive_failures or health.last_success_at is not None:
                metrics = self.metrics.job(job)
                metrics.failures.set(health.consecutive_failures)
                if health.last_success_at is not None:
                    last_success[job] = health.last_success_at
                    metrics.last_success.set(health.last_success_at)
        for job in new_jobs:
            self.first_seen.setdefault(job, now)

    def passed(self, claim: Claim, result: int, job: JobSpec) -> None:
        """Note a claim that starts no fire: a first sighting, or a slot paused, refused,
        claimed already, expired or skipped (the registry starts the others)."""
        if claim.kind == INIT:
            return
        slot = format_slot(claim.slot)
        if result == PAUSED:
            self.metrics.job(job.name).skipped("paused")
            log.info("skipped: job is paused", extra={"job": job.name, "slot": slot})
        elif result == REFUSED:
            log.warning("claim refused: the slot lies ahead of the Redis server's clock",
                        extra={"job": job.name, "slot": slot, "kind": claim.kind})
        elif result != CLAIMED:
            log.debug("already claimed", extra={"job": job.name, "slot": slot, "kind": claim.kind})
        elif claim.kind == EXPIRE:  # the store recorded it as expired with the claim
            self.metrics.job(job.name).skipped("expired")
            # INFO, not a warning: an app that hands over all its triggers, old ones included,
            # expects each that already ran to expire.
            log.info("expired: a one-time job first seen too late never fires",
                     extra={"job": job.name, "slot": slot, "reason": claim.reason})
        elif claim.kind == SKIP:
            reason = claim.reason or "overlap"
            self.metrics.job(job.name).skipped("replaced" if reason == REPLACED else reason)
            what = {"overlap": "previous fire still running", REPLACED: "a newer slot took its place in the queue"}.get(
                reason, "missed while the loop was behind")
            log.info(f"skipped: {what}", extra={"job": job.name, "slot": slot, "policy": job.catchup})

    async def record(self, fire: Fire, outcome: Outcome, lateness: float | None) -> None:
        """A fire's outcome: its metrics and log line, then the store's record (batched)."""
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
                "job": job.name, "slot": format_slot(fire.claim.slot), "attempt": outcome.attempts,
                "outcome": outcome.status, "http_status": outcome.http_status,
                "duration_ms": round(outcome.duration_s * 1000, 1),
                "lateness_ms": None if lateness is None else round(lateness * 1000, 1),
                "epoch": fire.epoch, **({"trigger": fire.claim.trigger} if fire.claim.trigger else {}),
                **({"trace_id": trace_id(fire.key)} if self.traceparent else {}),
                **({"error": outcome.error} if outcome.error else {}),
                **({"excerpt": outcome.excerpt} if outcome.excerpt else {}),
            })
        item = Finished(fire.claim, fire.epoch, outcome, lateness)
        for attempt in range(WRITE_TRIES):
            # Outcomes go to the store in batches: one is written at once; those that finish
            # while a write is under way go together in the next one. No delay at low rates,
            # one store call for many fires at high ones. (Inline, not a coroutine of its own:
            # one frame less to resume per fire.)
            done = asyncio.get_running_loop().create_future()
            self._outcomes.append((item, done))
            if self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self._write_outcomes())
            try:
                before, streak = metrics.failures.value, await done
                metrics.failures.set(streak)
                if self.notices is not None:
                    self.notices.finished(fire, outcome, int(before), streak)
                return
            except StoreUnavailable as exc:
                if attempt == WRITE_TRIES - 1:
                    log.warning("could not record the outcome; the fire may be redelivered", extra={"job": job.name, "error": str(exc)})
                    return
                await self.clock.sleep(backoff(attempt + 1))

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
