"""Fires that an earlier leader handed over while they ran (SPEC 8, "Handover without a
stall"): each stays that replica's until its deadline, recorded in the store with it. This
leadership leaves them alone until then; a fire still in flight at its deadline (its owner
died while it drained, or gave up at SHUTDOWN_GRACE) is redelivered then, as the next
attempt. The store decides: its claim refuses a redelivery while the hold lasts (HELD), so
a clock a little ahead of the store's only means one more look.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping

from .clock import Clock
from ..config.loader import JobSpec
from .lease import Lease
from ..model import REDELIVER, Claim, InFlight, State, fire_field

RECHECK_S = 0.5  # at a deadline the store's clock has not reached yet, look again this soon


class Held:
    def __init__(self, jobs: Mapping[str, JobSpec], clock: Clock, load: Callable[[Lease, list[str]], Awaitable[State | None]],
                 claim: Callable[[Lease, list[Claim]], Awaitable[bool]], running: Container[str]):
        self.jobs, self.clock, self._load, self._claim, self.running = jobs, clock, load, claim, running
        self._fires: dict[str, InFlight] = {}  # by in-flight field
        self._task: asyncio.Task | None = None

    def add(self, lease: Lease, fires: Iterable[InFlight]) -> None:
        """In-flight fires read from the store; those of this leadership's jobs held by their
        owner are watched (a job added later is looked up then: resume.py)."""
        now = self.clock.time()
        for f in fires:
            if f.held(now) and f.job in self.jobs:
                self._fires[fire_field(f.job, f.slot, f.trigger)] = f
        if self._fires and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(lease), name="held-fires")

    def end(self) -> list[asyncio.Task]:
        task, self._task, self._fires = self._task, None, {}
        return [task] if task is not None else []

    async def _run(self, lease: Lease) -> None:
        while self._fires:
            until = min(f.until or 0.0 for f in self._fires.values())
            await self.clock.sleep(max(until - self.clock.time(), RECHECK_S))
            now = self.clock.time()
            due = {field: f for field, f in self._fires.items() if not f.held(now)}
            if not due:
                continue
            state = await self._load(lease, sorted({f.job for f in due.values()}))
            if state is None:
                return  # the leadership ended
            current = {fire_field(f.job, f.slot, f.trigger): f for f in state.inflight}
            claims = []
            for field, was in due.items():
                f = current.get(field)
                if f is None or f.epoch != was.epoch or field in self.running or f.job not in self.jobs:
                    del self._fires[field]  # it finished, a leader took it over, or its job left
                elif f.held(now):
                    self._fires[field] = f  # held again, for longer
                else:
                    claims.append(Claim(f.job, f.slot, REDELIVER, f.attempt + 1, f.trigger))
            # Claimed, a fire's record takes this leadership's epoch and it leaves the watch
            # at the next look; refused (the store's clock is behind), it is claimed again.
            if claims and not await self._claim(lease, claims):
                return
