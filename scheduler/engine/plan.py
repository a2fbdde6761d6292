"""What to claim, and when: a pure planner over the enabled jobs.

Nothing here waits or asks what time it is; every instant is an argument. The engine asks
the planner what to claim at leadership start and what is due at an instant, sleeps until
the planner's next wake-up, and runs what the store let it claim.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable, Container, Mapping

from ..schedule import slots as sched
from ..config.loader import JobSpec, retry_for_s
from ..model import FIRE, INIT, REDELIVER, REPLACED, SKIP, Claim, State
from .next_slots import (  # noqa: F401  (public names)
    AT_GRACE_S, Entries, fire_at, jitter_offset_s, next_entries, passed_at, shared_next,
)

log = logging.getLogger("scheduler.engine")

CATCHUP_ALL_LIMIT = 100  # like Kubernetes CronJob's limit on missed schedules
# Slots are claimed this long before their moment (at most a tenth of the lease TTL), so
# the store's round trips are over when the moment comes and the calls leave on time.
CLAIM_AHEAD_S = 0.25
IDLE_WAKE_S = 3600.0  # with no slot ahead at all, look again this often


def claim_ahead_s(lease_ttl_s: float) -> float:
    """How long before its moment a slot is claimed: at most a tenth of the lease TTL."""
    return min(CLAIM_AHEAD_S, lease_ttl_s / 10)


def missed(job: JobSpec, mark: int, now: float) -> list[int]:
    """Slots after the watermark and not after now that CATCHUP says to make up."""
    if job.catchup == "none":
        return []
    after = mark
    if job.catchup_window_s is not None:
        after = max(after, math.ceil(now - job.catchup_window_s) - 1)
    limit = CATCHUP_ALL_LIMIT if job.catchup == "all" else 1
    slots, more = sched.recent_slots(job.schedule, after, now, limit)
    if more and job.catchup == "all":
        log.warning("more missed slots than the catch-up limit; making up the newest only",
                    extra={"job": job.name, "limit": CATCHUP_ALL_LIMIT})
    if slots:
        log.info("catching up", extra={"job": job.name, "slots": len(slots), "policy": job.catchup})
    return slots


def redeliveries(state: State, jobs: Container[str], running: Container[str] = (),
                 now: float | None = None) -> list[Claim]:
    """Fires of `jobs` left in flight by an earlier leader (not those `running` here), oldest
    first: each is sent again, as the next attempt. With `now`, not those their owner still
    holds (handed over while they ran: engine/held.py redelivers them at their deadline)."""
    return [
        Claim(f.job, f.slot, REDELIVER, f.attempt + 1, f.trigger)
        for f in sorted(state.inflight, key=lambda f: f.slot)
        if f.job in jobs and Claim(f.job, f.slot, trigger=f.trigger).field not in running
        and (now is None or not f.held(now))
    ]


def made_up(job: JobSpec, mark: int, cursor: float) -> list[Claim]:
    """The claims of the slots after the watermark and not after `cursor` that CATCHUP makes up."""
    return [Claim(job.name, slot, FIRE) for slot in missed(job, mark, cursor)]


def claims_for(job: JobSpec, slots: list[int], now: float, overlapping: bool) -> list[Claim]:
    """Claims for the slots of one job due now, oldest first. The newest is the one due;
    older ones were missed while the loop was behind and follow CATCHUP. `overlapping`: a
    fire of the job started in this leadership's loop still runs (forbid skips then)."""
    if job.concurrency == "forbid" and overlapping:
        return [Claim(job.name, slot, SKIP, reason="overlap", policy=job.concurrency) for slot in slots]
    # A loop behind by most of a period also takes the next slot, ahead of its moment: that
    # one is no missed slot, and the newest before it is the one due.
    ahead = [Claim(job.name, slot, FIRE) for slot in slots if fire_at(job, slot) > now]
    if len(ahead) == len(slots):
        return ahead
    *older, newest = slots[:len(slots) - len(ahead)]
    oldest_kept = now - job.catchup_window_s if job.catchup_window_s is not None else -math.inf
    claims = [
        Claim(job.name, slot, FIRE) if job.catchup == "all" and slot >= oldest_kept
        else Claim(job.name, slot, SKIP, reason="missed", policy=job.catchup)
        for slot in older
    ]
    return claims + [Claim(job.name, newest, FIRE)] + ahead


class Plan:
    """Every enabled job's next slot in a heap, keyed by the moment it fires (slot + jitter).

    Slots of forbid/replace/queue jobs whose previous fire still runs wait in `held` until
    their moment rather than being claimed ahead: CONCURRENCY decides on what runs then. A
    queue job's slot due while a call of the job runs waits in `queued`, unclaimed, one per
    job: it is claimed and fired once the job has no call under way (the engine wakes the
    loop then), and a newer slot due meanwhile takes its place (the older one is skipped).
    """

    def __init__(self, jobs: Mapping[str, JobSpec], ahead_s: float, at_grace_s: float = AT_GRACE_S):
        self.jobs = jobs
        self.ahead_s = ahead_s
        self.at_grace_s = at_grace_s  # SCHEDULER_AT_GRACE: see passed_at
        self.heap: list[tuple[float, int, str]] = []  # (moment to fire, slot, job)
        self.held: list[tuple[float, int, str]] = []
        self.queued: dict[str, int] = {}  # CONCURRENCY=queue: job -> the slot waiting for its call to end
        self.upcoming: dict[str, int] = {}  # job -> its next slot in the heap: the retry deadline
        self.period_s: dict[str, float] = {}  # time between a job's current slots, once asked (see period)

    def start(self, state: State, now: float, running: Container[str] = ()) -> list[Claim]:
        """What to claim at leadership start: fires left in flight by an earlier leader
        (not those `running` here already), then each job's first sighting or the slots
        missed since its watermark, oldest first. Fills the heap with the next slots."""
        first = redeliveries(state, self.jobs, running, now)
        marks, floor_now = state.watermarks, math.floor(now)
        # Next slots shared by (schedule object, instant): the jobs of an expression and zone
        # share one schedule and their watermarks mostly agree, so 100,000 jobs cost a few
        # thousand slot computations here, on the loop, not 200,000 (a second).
        nexts: dict[tuple[int, int], int | None] = {}
        entries = []
        for job in self.jobs.values():
            schedule, name = job.schedule, job.name
            mark = marks.get(name)
            if mark is None:
                # First sight of this job: nothing in the past fires (but an `at` whose
                # instant has just passed, as for a job added later), and from now on an
                # outage is made up according to CATCHUP.
                if type(schedule) is sched.At and schedule.slot <= floor_now:
                    first.append(passed_at(job, schedule.slot, now, self.at_grace_s))
                first.append(Claim(name, floor_now, INIT))
                cursor = after = floor_now
            else:
                # A slot whose jittered moment may still be ahead is not missed yet.
                cursor, after = max(mark, math.floor(now - job.jitter_s)), mark
            nxt = shared_next(nexts, schedule, after)
            if nxt is not None and nxt <= cursor:  # slots after the watermark have passed
                first += made_up(job, after, cursor)
                nxt = sched.next_after(schedule, cursor)
            if nxt is not None:
                entries.append((fire_at(job, nxt), nxt, name))
                self.upcoming[name] = nxt
        self.heap.extend(entries)
        heapq.heapify(self.heap)
        return first

    def add_many(self, jobs: list[JobSpec], now: float) -> list[Claim]:
        """Jobs that joined the running set (SPEC 6, rule 2), planned at once: next_entries
        and take, with each job's first sighting (INIT) at floor(now). The leader's loop
        does the same in two steps (jobset.py), the first in a worker thread."""
        found = next_entries(jobs, now, added=True, grace_s=self.at_grace_s)
        self.take(found)
        at = {c.job: c for c in found.claims}  # an `at` whose instant passed: fired or expired before its sighting
        cursor = math.floor(now)
        return [c for name in found.sighted for c in ((at[name],) if name in at else ()) + (Claim(name, cursor, INIT),)]

    def take(self, found: Entries) -> None:
        """Next slots worked out by next_entries (maybe in another thread), into the plan."""
        upcoming, period_s = self.upcoming, self.period_s
        upcoming.update(found.upcoming)
        for name in found.ended:
            upcoming.pop(name, None)
        if period_s:
            for name in (*found.upcoming, *found.ended):
                period_s.pop(name, None)
        if len(found.entries) * 8 < len(self.heap):
            for entry in found.entries:
                heapq.heappush(self.heap, entry)
        else:  # a large addition rebuilds the heap once instead of pushing each entry
            self.heap.extend(found.entries)
            heapq.heapify(self.heap)

    def remove(self, name: str) -> None:
        """No new slot of a removed job: its heap entry is dropped when it comes up."""
        self.upcoming.pop(name, None)
        self.period_s.pop(name, None)

    def period(self, name: str) -> float | None:
        """Time between the job's next slot and the one after (the overdue gauge's unit), or
        None. Worked out when first asked, not when the job is planned: planning 100,000
        jobs at once then costs one slot computation each, not two."""
        period = self.period_s.get(name)
        if period is None and (nxt := self.upcoming.get(name)) is not None and (job := self.jobs.get(name)) is not None:
            after = sched.next_after(job.schedule, nxt)
            if after is not None:
                self.period_s[name] = period = after - nxt
        return period

    def _live(self, slot: int, name: str) -> bool:
        """Whether a heap entry is still the job's next slot: entries of a removed or
        changed job are left in the heap and dropped here (no search through the heap)."""
        return name in self.jobs and self.upcoming.get(name) == slot

    def due(self, now: float, busy: Callable[[str], bool], overlapping: Callable[[str], bool]) -> list[Claim]:
        """What to claim at `now`. `busy(job)`: an HTTP call of the job is under way;
        `overlapping(job)`: one started by this leadership's loop (not its start backlog)."""
        due: dict[str, list[int]] = {}
        out = self._unqueued(busy) if self.queued else []
        heap, held = self.heap, self.held
        while (heap and heap[0][0] - self.ahead_s <= now) or (held and held[0][0] <= now):
            if held and held[0][0] <= now:
                at, slot, name = heapq.heappop(held)
                if not self._live(slot, name):
                    continue
            else:
                at, slot, name = heapq.heappop(heap)
                if not self._live(slot, name):
                    continue
                if at > now and self.jobs[name].concurrency != "allow" and busy(name):
                    heapq.heappush(held, (at, slot, name))
                    continue
            # A loop behind by most of a period meets a job twice in one pass: its slot past,
            # then the next one within claim-ahead. Both are claimed.
            slots = due.get(name)
            if slots is None:
                due[name] = slots = [slot]
            else:
                slots.append(slot)
            self._take(self.jobs[name], slot, now, slots)
        for name, slots in due.items():
            job = self.jobs[name]
            if job.concurrency == "queue" and busy(name):
                out += self._queue(job, slots)
            else:
                out += claims_for(job, slots, now, overlapping(name))
        return out

    def _queue(self, job: JobSpec, slots: list[int]) -> list[Claim]:
        """A queue job's slots due while its call runs: the newest waits; the one it replaces,
        and older ones due with it, are skipped."""
        older = slots[:-1]
        waiting = self.queued.get(job.name)
        if waiting is not None and waiting < slots[0]:
            older.insert(0, waiting)
        self.queued[job.name] = slots[-1]
        return [Claim(job.name, slot, SKIP, reason=REPLACED) for slot in older]

    def _unqueued(self, busy: Callable[[str], bool]) -> list[Claim]:
        """The queued slots whose job has no call under way any more: claimed now."""
        out = []
        for name, slot in list(self.queued.items()):
            if name not in self.jobs:
                del self.queued[name]
            elif not busy(name):
                del self.queued[name]
                out.append(Claim(name, slot, FIRE))
        return out

    def _take(self, job: JobSpec, slot: int, now: float, slots: list[int]) -> None:
        """Take a due slot, and any later ones already past; push the job's next slot."""
        nxt = sched.next_after(job.schedule, slot)
        if nxt is not None and nxt <= now - job.jitter_s:
            # A loop that fell behind (a paused process, a blocked loop) finds several
            # slots of a job due at once: take them together, not one per pass.
            late, more = sched.recent_slots(job.schedule, slot, now - job.jitter_s, CATCHUP_ALL_LIMIT)
            if more:
                log.warning("more overdue slots than the catch-up limit; taking the newest",
                            extra={"job": job.name, "limit": CATCHUP_ALL_LIMIT})
                slots[:] = late
            else:
                slots += late
            nxt = sched.next_after(job.schedule, slots[-1])
        if nxt is not None:
            heapq.heappush(self.heap, (fire_at(job, nxt), nxt, job.name))
            self.upcoming[job.name] = nxt
            self.period_s[job.name] = nxt - slots[-1]
        else:
            self.upcoming.pop(job.name, None)

    def wake_in(self, now: float) -> float:
        while self.heap and not self._live(self.heap[0][1], self.heap[0][2]):
            heapq.heappop(self.heap)
        """Seconds from `now` until something may be due (claimed ahead, or held)."""
        ahead = self.heap[0][0] - self.ahead_s if self.heap else now + IDLE_WAKE_S
        return min(ahead, self.held[0][0] if self.held else math.inf) - now

    def deadline(self, claim: Claim) -> int | None:
        """Retries stop at the job's next slot still to come (for a made-up slot too), whatever
        RETRY_FOR says: a slot's call never lands after the next slot's; a manual fire has none."""
        return None if claim.trigger else self.upcoming.get(claim.job)

    def retry_until(self, claim: Claim, job: JobSpec) -> float:
        """Until when a failed fire is retried once its RETRIES are used up: RETRY_FOR after
        its slot (a manual run's: after its request, the claim's slot too)."""
        return claim.slot + retry_for_s(job, self.period(claim.job))
