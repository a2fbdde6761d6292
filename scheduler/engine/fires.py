"""The fires in flight: one registry for what runs, what waits, and what CONCURRENCY sees.

A fire is a task that waits for the fire it is chained behind (fires of one job claimed
together go out one after another), then for its moment (a slot claimed ahead waits at a
gate), then sends (each HTTP call taking a place under SCHEDULER_MAX_CONCURRENCY while it is
under way, once its origin lets it go); and hands its outcome to
the recorder. One `Fire` (it carries its claim) travels the whole way, and the registry
reaches the dispatcher, the store's attempt notes and the metrics itself: nothing on the
way calls back into the engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

from .clock import Clock
from ..dispatch import Fire
from ..model import FIRE, REDELIVER, REDRIVE, TRIGGER, Claim, Outcome
from ..observe import Metrics
from .places import Places
from .plan import fire_at
from ..schedule.slots import format_slot
from ..store.protocol import StoreUnavailable

log = logging.getLogger("scheduler.engine")

STARTS = frozenset({FIRE, REDELIVER, TRIGGER, REDRIVE})  # the kinds of claim that, claimed, start a fire
NoteAttempt = Callable[[int, Claim, int], Awaitable[None]]  # Store.note_attempt(epoch, claim, attempt)
Record = Callable[[Fire, Outcome, float | None], Awaitable[None]]  # the outcome and lateness (None: manual)
Chain = dict[str, asyncio.Task]  # job -> its last fire started by one claim call


class Sender(Protocol):
    """What sends a fire (dispatch.Dispatcher): its outcome, whatever goes wrong inside;
    `on_retry(attempt)` is awaited before each attempt after the first; each HTTP call holds
    one of `places` (SCHEDULER_MAX_CONCURRENCY) while it is under way, and only then."""

    async def send(self, fire: Fire, on_retry: Callable[[int], Awaitable[None]] | None = None,
                   places: Places | None = None, /) -> Outcome: ...


class Fires:
    def __init__(self, clock: Clock, max_concurrency: int, metrics: Metrics, sender: Sender,
                 note_attempt: NoteAttempt, record: Record):
        self.clock = clock
        self.metrics = metrics
        self.sender = sender
        self._note_attempt = note_attempt
        self._record = record
        self._places = Places(max_concurrency)
        self.running: dict[str, asyncio.Task] = {}  # by in-flight field
        # job -> {in-flight field: task} of fires whose HTTP call is under way (not those
        # only recording their outcome): what CONCURRENCY looks at, in O(1) per job.
        self._calls: dict[str, dict[str, asyncio.Task]] = {}
        self._backlog: set[asyncio.Task] = set()  # fires claimed at leadership start
        self._replaced: set[asyncio.Task] = set()
        self._waiting: set[asyncio.Task] = set()  # fires still waiting for their turn or moment
        self._called: dict[asyncio.Task, asyncio.Event] = {}  # set once a fire's HTTP call is over
        self._gates: dict[float, asyncio.Event] = {}  # moment -> set when it comes
        self.on_idle: Callable[[str], None] = lambda job: None  # told when a job's last call under way ends
        metrics.inflight.set_function(self.__len__)  # read at each scrape, not set per fire

    def __contains__(self, field: object) -> bool:
        return field in self.running

    def __len__(self) -> int:
        return len(self.running)

    def busy(self, job: str) -> bool:
        """An HTTP call of the job is under way."""
        return job in self._calls

    def overlapping(self, job: str) -> bool:
        """A call of the job started by the loop is under way. The backlog made up at
        leadership start does not count: a slot due behind it waits its turn instead of
        being lost to a burst the outage caused."""
        return any(t not in self._backlog for t in self._calls_of(job))

    def _calls_of(self, job: str) -> list[asyncio.Task]:
        """The job's fires whose HTTP call is still under way, oldest first."""
        calls = self._calls.get(job)
        return list(calls.values()) if calls else []

    def start(self, fire: Fire, valid: Callable[[], bool], chain: Chain, backlog: bool = False) -> None:
        """Start a claimed fire (a claim of a kind in STARTS that the store granted), unless
        it runs here already. `valid()`: the lease still lets this leader send."""
        job, claim = fire.job, fire.claim
        if claim.kind == REDELIVER:
            log.info("redelivering a fire left in flight",
                     extra={"job": job.name, "slot": format_slot(claim.slot), "attempt": claim.attempt})
        elif claim.kind == TRIGGER:
            log.info("manual trigger", extra={"job": job.name, "trigger": claim.trigger})
        elif claim.kind == REDRIVE:
            log.info("sending a slot again", extra={"job": job.name, "slot": format_slot(claim.slot), "attempt": claim.attempt,
                                                    **({"reason": claim.reason} if claim.reason else {})})
        if claim.field in self.running:
            return  # a claim sent again answers for what this leadership already holds: not started twice
        if job.concurrency == "replace" and claim.kind == FIRE:
            for task in self._calls_of(job.name):
                if task is not chain.get(job.name):
                    self._replaced.add(task)
                    task.cancel()
        after = chain.get(job.name)
        if after is None and job.concurrency == "forbid" and claim.kind == FIRE:
            calls = self._calls.get(job.name)
            after = next(reversed(calls.values())) if calls else None  # the backlog's last
        elif after is None and job.concurrency == "queue":
            calls = self._calls.get(job.name)  # never two calls of a queue job at once, whatever started them
            after = next(reversed(calls.values())) if calls else None
        # A slot claimed ahead of its moment waits for it; so does one an earlier leader
        # claimed ahead and left in flight (its redelivery may come before the moment).
        at = fire_at(job, claim.slot) if claim.kind == FIRE or (claim.kind == REDELIVER and not claim.trigger) else None
        gate = self._gate(at) if at is not None and at > self.clock.time() else None
        behind = None  # set when the call of the fire this one goes out after is over
        if after is not None and after in self._calls.get(job.name, {}).values():
            behind = self._called.setdefault(after, asyncio.Event())
        task = asyncio.create_task(self._fire(fire, valid, behind, gate))
        chain[job.name] = task
        if gate is not None or behind is not None:
            self._waiting.add(task)
        if backlog:
            self._backlog.add(task)
        self.running[claim.field] = task
        self._calls.setdefault(job.name, {})[claim.field] = task

    def _gate(self, at: float) -> asyncio.Event:
        """An event set when the wall clock reaches `at`: one timer for all fires of a moment."""
        gate = self._gates.get(at)
        if gate is None:
            gate = self._gates[at] = asyncio.Event()
            self.clock.call_at(at, self._open_gate, at)
        return gate

    def _open_gate(self, at: float) -> None:
        if at - self.clock.time() > 0:  # loop timers may round to the millisecond: never before the slot
            self.clock.call_at(at, self._open_gate, at)
            return
        gate = self._gates.pop(at, None)
        if gate is not None:
            gate.set()

    async def _fire(self, fire: Fire, valid: Callable[[], bool], behind: asyncio.Event | None, gate: asyncio.Event | None) -> None:
        task = asyncio.current_task()
        assert task is not None  # a fire always runs as a task of its own (start)
        claim = fire.claim
        try:
            if behind is not None:
                # Its call, not its record: an outcome slow to be written (a slow store) holds
                # up no later fire. Its outcome, even a cancellation, is its own.
                await behind.wait()
            if gate is not None:
                await gate.wait()
            if not valid():
                # The lease ran out between the claim and the moment, or while the fire waited
                # its turn (a paused process), or the wall clock jumped since the claim (a fire
                # already due by it would go out early): the fire stays in flight in the store
                # and the next leader delivers it.
                log.warning("lease ran out before the moment; leaving the fire to the next leader",
                            extra={"job": fire.job.name, "slot": format_slot(fire.claim.slot), "epoch": fire.epoch})
                return
            self._waiting.discard(task)
            lateness = None
            try:
                if not claim.trigger and claim.kind != REDRIVE:  # a manual fire or a redrive has no moment to be late for
                    lateness = self.clock.time() - claim.slot
                    self.metrics.job(fire.job.name).lateness.observe(max(0.0, lateness))
                # The sender takes a place for each HTTP call, once the origin lets it go: a
                # fire waiting for a throttled origin or between retries holds none.
                outcome = await self.sender.send(fire, partial(self._retrying, fire), self._places)
            except Exception as exc:  # a bug in a fire ends that fire, with its error, never the loop
                log.exception("the fire failed unexpectedly", extra={"job": fire.job.name, "slot": format_slot(fire.claim.slot)})
                outcome = Outcome("failed", fire.claim.attempt, 0.0, self.clock.time(), None, f"{type(exc).__name__}: {exc}")
            called = self._called.get(task)
            if called is not None:
                called.set()
            self._call_ended(claim)  # for CONCURRENCY the fire is over; only its record remains
            await self._record(fire, outcome, lateness)
        except asyncio.CancelledError:
            if task in self._replaced:
                self._replaced.discard(task)
                now = self.clock.time()
                await self._record(fire, Outcome("cancelled", fire.claim.attempt, 0.0, now, None, "replaced by a newer slot"), None)
            # Cancelled by shutdown: the fire stays in flight in the store and the next leader
            # redelivers it with the same idempotency key.
            raise
        finally:
            self._backlog.discard(task)
            self._waiting.discard(task)
            called = self._called.pop(task, None)
            if called is not None:
                called.set()
            self._call_ended(claim)
            self.running.pop(claim.field, None)

    async def _retrying(self, fire: Fire, attempt: int) -> None:
        """Before each attempt after the first (the claim itself recorded the first)."""
        self.metrics.job(fire.job.name).retries.inc()
        try:
            await self._note_attempt(fire.epoch, fire.claim, attempt)
        except StoreUnavailable:
            pass  # a redelivery then reuses an attempt number; the key is what matters

    def _call_ended(self, claim: Claim) -> None:
        calls = self._calls.get(claim.job)
        if calls is not None:
            calls.pop(claim.field, None)
            if not calls:
                del self._calls[claim.job]
                self.on_idle(claim.job)

    async def drop_waiting(self) -> None:
        """A leadership ended: its fires still waiting for their turn or moment would find the
        lease gone there and send nothing. They are dropped now, so the next leadership (this
        replica's own, if it takes the lease again before the moment) sees them as left in
        flight and redelivers them, instead of taking them for fires still running here."""
        waiting = list(self._waiting)
        if waiting:
            log.warning("leadership ended before fires waiting for their turn or moment went out; leaving them to the next leader",
                        extra={"count": len(waiting)})
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    async def drain(self, grace_s: float) -> None:
        """Wait up to `grace_s` for fires in flight, then cancel the rest."""
        tasks = set(self.running.values())
        if not tasks:
            return
        log.info("waiting for fires in flight", extra={"count": len(tasks), "grace_s": grace_s})
        everything = asyncio.ensure_future(asyncio.wait(tasks))
        grace = asyncio.ensure_future(self.clock.sleep(grace_s))
        await asyncio.wait({everything, grace}, return_when=asyncio.FIRST_COMPLETED)
        everything.cancel()
        grace.cancel()
        pending = {task for task in tasks if not task.done()}
        if pending:
            log.warning(f"cancelling {len(pending)} running fires", extra={"count": len(pending)})
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
