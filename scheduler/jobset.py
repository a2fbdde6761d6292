"""The jobs a leader fires from, and changes to them while it runs (SPEC 6, rules 2 and 4).

The environment's enabled jobs are fixed for the process; the sources' (a file, the app's
URL) arrive as whole new sets. A new set waits here until the leader's loop applies it
between two claims, so a slot is never claimed under a half-applied set, and applying it
touches only the jobs that differ: their heap entries and metric children.
"""

from __future__ import annotations

import logging

from .config import JobSpec, Settings
from .model import Claim
from .plan import Plan
from .sources import diff

log = logging.getLogger("scheduler.engine")


class JobSet:
    def __init__(self, settings: Settings):
        self.env: dict[str, JobSpec] = {j.name: j for j in settings.jobs if j.enabled}
        self.jobs: dict[str, JobSpec] = dict(self.env)  # env and source jobs, enabled: the plan's view
        self.pending: dict[str, JobSpec] | None = None

    def offer(self, source_jobs: dict[str, JobSpec]) -> None:
        """The sources' new set of valid jobs; the environment's win a name clash."""
        self.pending = {**{n: j for n, j in source_jobs.items() if j.enabled}, **self.env}

    def take_pending(self) -> None:
        """Before a leadership starts (no plan to edit yet): the new set becomes the set."""
        if self.pending is not None:
            self.jobs.clear()
            self.jobs.update(self.pending)
            self.pending = None

    def apply(self, plan: Plan, now: float, forget, first_seen: dict[str, float]) -> list[Claim]:
        """Apply the pending set to a running plan. Returns the claims an added job needs
        (its first sighting, and an `at` whose instant has just passed). `forget(name)`
        drops a removed job's metric children."""
        new, self.pending = self.pending, None
        if new is None:
            return []
        added, changed, removed = diff(self.jobs, new)
        claims: list[Claim] = []
        for name in removed:
            del self.jobs[name]
            plan.remove(name)
            forget(name)
        for name in changed:
            self.jobs[name] = new[name]
            plan.replace(new[name], now)
        names = sorted(added)
        for name in names:
            self.jobs[name] = new[name]
            first_seen.setdefault(name, now)
        claims += plan.add_many([new[name] for name in names], now)
        if added or changed or removed:
            log.info("job set changed", extra={"added": len(added), "changed": len(changed), "removed": len(removed),
                                               "jobs": len(self.jobs)})
        return claims
