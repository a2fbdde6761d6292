"""The jobs a leader fires from, and changes to them while it runs (SPEC 6, rules 2 and 4).

The environment's enabled jobs are fixed for the process; the sources' (a file, the app's
URL) arrive as whole new sets. A new set waits here until the leader's loop applies it
between two claims, so a slot is never claimed under a half-applied set, and applying it
touches only the jobs that differ: their heap entries and metric children.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config.loader import JobSpec, Settings
from .. import background, collector
from ..model import INIT, Claim
from .next_slots import Entries, next_entries
from .plan import Plan

log = logging.getLogger("scheduler.engine")


class JobSet:
    def __init__(self, settings: Settings):
        self.env: dict[str, JobSpec] = {j.name: j for j in settings.jobs if j.enabled}
        self.at_grace_s = settings.at_grace_s
        self.jobs: dict[str, JobSpec] = dict(self.env)  # env and source jobs, enabled: the plan's view
        self.pending: dict[str, JobSpec] | None = None  # the sources' newest set, not applied yet
        self._names: set[str] | None = None  # its names that may differ from the applied set; None: any

    def offer(self, source_jobs: dict[str, JobSpec], names: set[str] | None = None) -> None:
        """The sources' new set of valid jobs (a dict they replace, never edit), and the names
        whose job may differ from the set offered before (None: any). Offers that come
        before the loop applies one add up."""
        if names is None or (self.pending is not None and self._names is None):
            self._names = None
        elif self.pending is None:
            self._names = set(names)
        else:
            assert self._names is not None
            self._names |= names
        self.pending = source_jobs

    def pending_size(self) -> int:
        """How many jobs the pending change may touch."""
        if self.pending is None:
            return 0
        return len(self.pending) if self._names is None else len(self._names)

    def take_pending(self) -> None:
        """Before a leadership starts (no plan to edit yet): the new set becomes the set."""
        if self.pending is not None:
            self.jobs.clear()
            self.jobs.update({n: j for n, j in self.pending.items() if j.enabled})
            self.jobs.update(self.env)  # the environment's win a name clash
            self.pending = self._names = None

    def snapshot(self) -> tuple[dict[str, JobSpec], set[str] | None] | None:
        """The pending set and its names as they stand, for prepare() in another thread."""
        if self.pending is None:
            return None
        return self.pending, None if self._names is None else set(self._names)

    def prepare(self, now: float, snapshot: tuple[dict[str, JobSpec], set[str] | None] | None = None) -> Change | None:
        """What applying the pending set (or a snapshot of it) changes, with the next slots
        of its added and changed jobs worked out. Reads the applied set one name at a time
        and changes nothing, so a worker thread may run it while the loop claims (a set of
        100,000 jobs takes 0.5 s here, which on the loop made every fire due meanwhile that
        late); commit() then applies it between two claims."""
        snapshot = snapshot or self.snapshot()
        if snapshot is None:
            return None
        new, names = snapshot
        began = time.perf_counter()
        jobs, env = self.jobs, self.env
        with collector.paused():
            added, changed, removed, same = [], [], [], []
            if len(jobs) == len(env):
                # No source job applied yet (a leadership's first read): each enabled one is
                # added, in the order the sources gave them; one pass, not a comparison each.
                added = [n for n, job in new.items() if job.enabled and n not in env]
            else:
                if names is None:
                    names = (jobs.keys() - env.keys()) | new.keys()
                for name in names:
                    if name in env:
                        continue
                    job = new.get(name)
                    if job is not None and not job.enabled:
                        job = None
                    old = jobs.get(name)
                    if job is old:
                        continue
                    if job is None:
                        removed.append(name)
                    elif old is None:
                        added.append(name)
                    elif job != old:
                        changed.append(name)
                    else:
                        same.append(name)  # an equal definition: nothing to plan again
            taken = {n: new[n] for n in (*same, *changed, *added)}  # into the applied set, at commit
            return Change(new, now, added, changed, removed, same,
                          next_entries([taken[n] for n in added], now, True, self.at_grace_s),
                          next_entries([taken[n] for n in changed], now, False), began, taken)

    def commit(self, change: Change, plan: Plan, forget, first_seen: dict[str, float],
               sighted: list[str] | None = None) -> list[Claim]:
        """Apply a prepared change to a running plan, whole. Returns the claims an added job
        needs (an `at` whose instant has passed: its fire or its expiry; and its first sighting: into `sighted`
        as a name when given). `forget(name)` drops a removed job's metric children. A
        change prepared from a set that a newer one replaced meanwhile leaves that one pending."""
        if self.pending is change.new:
            self.pending = self._names = None
        jobs = self.jobs
        for name in change.removed:
            del jobs[name]
            plan.remove(name)
            forget(name)
        jobs.update(change.taken)  # added ones last, in the order the sources gave them
        first_seen.update({name: change.now for name in change.added if name not in first_seen})
        plan.take(change.for_changed)
        plan.take(change.for_added)
        claims = change.for_added.claims
        if sighted is None:
            claims = claims + [Claim(name, math.floor(change.now), INIT) for name in change.for_added.sighted]
        else:
            sighted += change.for_added.sighted
        if change.added or change.changed or change.removed:
            log.info("job set changed", extra={"added": len(change.added), "changed": len(change.changed),
                                               "removed": len(change.removed), "jobs": len(jobs),
                                               "seconds": round(time.perf_counter() - change.began, 3)})
        return claims

    def apply(self, plan: Plan, now: float, forget, first_seen: dict[str, float],
              sighted: list[str] | None = None) -> list[Claim]:
        """prepare() and commit() at once, on the loop: for a small change."""
        change = self.prepare(now)
        return [] if change is None else self.commit(change, plan, forget, first_seen, sighted)


BESIDE_FROM = 100  # jobs a change touches from which it is prepared beside the loop


@dataclass
class Change:
    """A pending set's difference from the applied one, and what the plan needs for it."""

    new: dict[str, JobSpec]
    now: float
    added: list[str]
    changed: list[str]
    removed: list[str]
    same: list[str]
    for_added: Entries
    for_changed: Entries
    began: float
    taken: dict[str, JobSpec]  # the same, changed and added jobs, to go into the applied set


class Preparer:
    """The leader loop's way to a change: ready(now) gives one to commit now, or None. One of
    BESIDE_FROM jobs or more is prepared in the worker thread (background.py) while the loop
    goes on claiming, and is ready on a later turn (`wake` is called then); a smaller one is
    prepared at once. A changed job whose schedule no other shares costs a slot computation
    of 30-70 us: 1,000 of them took 77 ms, on the loop a late second for 100 fires."""

    def __init__(self, jobset: JobSet, wake: Callable[[], None]):
        self.jobset, self.wake = jobset, wake
        self._task: asyncio.Future | None = None
        self._failed: object = None  # the pending set whose preparing failed: not tried again

    def ready(self, now: float) -> Change | None:
        task = self._task
        if task is not None:
            if not task.done():
                return None
            self._task = None
            try:
                return task.result()
            except Exception:  # a fault here; the set stays pending until a newer one comes
                self._failed = self.jobset.pending
                log.exception("preparing a change of the job set failed")
                return None
        pending = self.jobset.pending
        if pending is None or pending is self._failed:
            return None
        if self.jobset.pending_size() < BESIDE_FROM:
            return self.jobset.prepare(now)
        snapshot = self.jobset.snapshot()
        self._task = task = asyncio.ensure_future(background.beside(self.jobset.prepare, now, snapshot))
        task.add_done_callback(lambda _: self.wake())
        return None

    async def end(self) -> None:
        """At the end of a leadership: a thread under way is let finish (its result is of no
        use now; the set stays pending for the next leadership)."""
        if self._task is not None:
            await asyncio.wait([self._task])
            self._task = None
