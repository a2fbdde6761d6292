"""The jobs a leader fires from, and changes to them while it runs (SPEC 6, rules 2 and 4).

The environment's enabled jobs are fixed for the process; the sources' (a file, the app's
URL) arrive as whole new sets. A new set waits here until the leader's loop applies it
between two claims, so a slot is never claimed under a half-applied set, and applying it
touches only the jobs that differ: their heap entries and metric children.
"""

from __future__ import annotations

import logging
import time

from .config import JobSpec, Settings
from .model import Claim
from .plan import Plan

log = logging.getLogger("scheduler.engine")


class JobSet:
    def __init__(self, settings: Settings):
        self.env: dict[str, JobSpec] = {j.name: j for j in settings.jobs if j.enabled}
        self.jobs: dict[str, JobSpec] = dict(self.env)  # env and source jobs, enabled: the plan's view
        self.pending: dict[str, JobSpec] | None = None  # the sources' newest set, not applied yet
        self._names: set[str] | None = None  # its names that may differ from the applied set; None: any
        self.added: list[str] = []  # the jobs the last apply added

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

    def _diff(self, new: dict[str, JobSpec], names: set[str] | None) -> tuple[list[str], list[str], list[str]]:
        """(added, changed, removed) among `names` (None: all) between the applied set and the
        sources' `new` one; the environment's jobs stay as they are."""
        if names is None:
            names = (self.jobs.keys() - self.env.keys()) | new.keys()
        added, changed, removed = [], [], []
        jobs, env = self.jobs, self.env
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
                jobs[name] = job  # an equal definition: nothing to plan again
        return added, changed, removed

    def apply(self, plan: Plan, now: float, forget, first_seen: dict[str, float],
              sighted: list[str] | None = None) -> list[Claim]:
        """Apply the pending set to a running plan. Returns the claims an added job needs
        (its first sighting, and an `at` whose instant has just passed); with `sighted`, a
        large addition's first sightings go there as names instead (Plan.add_many).
        `forget(name)` drops a removed job's metric children."""
        new, self.pending = self.pending, None
        names, self._names = self._names, None
        if new is None:
            return []
        began = time.perf_counter()
        added, changed, removed = self._diff(new, names)
        self.added = added
        for name in removed:
            del self.jobs[name]
            plan.remove(name)
            forget(name)
        for name in changed:
            self.jobs[name] = new[name]
            plan.replace(new[name], now)
        jobs = self.jobs
        for name in added:  # in the order the sources gave them
            jobs[name] = new[name]
        for name in added:
            first_seen.setdefault(name, now)
        claims = plan.add_many([new[name] for name in added], now, sighted)
        if added or changed or removed:
            log.info("job set changed", extra={"added": len(added), "changed": len(changed), "removed": len(removed),
                                               "jobs": len(self.jobs), "seconds": round(time.perf_counter() - began, 3)})
        return claims
