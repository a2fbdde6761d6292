"""Jobs that reach a leadership after it began, but were fired by an earlier one.

A leader plans from its view of the sources when it takes the lease. A sidecar restarted by
a deploy often takes it before its first read of the app's URL has come back (the app is
starting too): then every source job arrives as an addition. To that leadership they are
not new, though: an earlier one fired them, and its in-flight fires and the slots missed
during the deploy are in the store. So an added job that this leadership never had is
looked up there (in calls of LOAD_CHUNK jobs, beside the loop): a fire left in flight is
redelivered and the missed slots are made up by CATCHUP, as at a leadership start (SPEC 6
rule 2, "slots before it was first seen are not made up": a job that has a watermark was
seen). A job with no state is new, and one removed and added back within this leadership
is an addition as the rule says.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping

from ..config.loader import JobSpec
from .lease import Lease
from ..model import Claim, InFlight, State
from .plan import made_up, redeliveries

LOAD_CHUNK = 10_000


def resumed(jobs: Iterable[JobSpec], state: State, now: float, running: Container[str] = ()) -> list[Claim]:
    """What jobs that joined a running leadership take over from an earlier one: their fires
    left in flight, then the slots after their watermark and not after `now` that CATCHUP
    makes up (their next slots are planned already)."""
    jobs = list(jobs)
    claims = redeliveries(state, {j.name for j in jobs}, running, now)
    for job in jobs:
        mark = state.watermarks.get(job.name)
        if mark is not None:
            claims += made_up(job, mark, max(mark, math.floor(now)))
    return claims


class Resumer:
    def __init__(self, jobs: Mapping[str, JobSpec], now: Callable[[], float],
                 load: Callable[[Lease, list[str]], Awaitable[State | None]],
                 claim: Callable[[Lease, list[Claim]], Awaitable[bool]],
                 loaded: Callable[[State, float], None], running: Container[str],
                 held: Callable[[Lease, list[InFlight]], None]):
        self.jobs, self.now, self._load, self._claim, self._loaded, self.running = jobs, now, load, claim, loaded, running
        self._held = held  # fires their owner still holds: redelivered at their deadline (held.py)
        self._known: set[str] = set()
        self._todo: list[str] = []
        self._task: asyncio.Task | None = None

    def begin(self, names: Iterable[str]) -> None:
        """At leadership start: the jobs it has."""
        self._known = set(names)

    def added(self, lease: Lease, names: list[str]) -> None:
        """Jobs just added to the plan; those this leadership never had are looked up."""
        unknown = [n for n in names if n not in self._known]
        self._known.update(names)
        if unknown:
            self._todo += unknown
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run(lease), name="resume-jobs")

    def end(self) -> list[asyncio.Task]:
        task, self._task, self._todo, self._known = self._task, None, [], set()
        return [task] if task is not None else []

    async def _run(self, lease: Lease) -> None:
        while self._todo:
            chunk, self._todo = self._todo[:LOAD_CHUNK], self._todo[LOAD_CHUNK:]
            state = await self._load(lease, chunk)
            if state is None:
                return  # the leadership ended
            now = self.now()
            names = set(chunk)
            self._loaded(State(watermarks={n: m for n, m in state.watermarks.items() if n in names},
                               inflight=[f for f in state.inflight if f.job in names],
                               health={n: h for n, h in state.health.items() if n in names}), now)
            jobs = (self.jobs[n] for n in chunk if n in self.jobs)
            claims = resumed(jobs, state, now, self.running)
            self._held(lease, [f for f in state.inflight if f.job in names])
            if claims and not await self._claim(lease, claims):
                return
