"""The moment a slot goes out, and the next slots of many jobs worked out apart from a plan.

Pure functions of their arguments: next_entries may run in a worker thread while the
leader's loop claims (engine.py), and Plan.take puts what it found in between two claims.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from ..schedule import slots as sched
from ..config.loader import JobSpec
from ..model import EXPIRE, FIRE, Claim

AT_GRACE_S = 3600.0  # SCHEDULER_AT_GRACE's default, for a plan made without settings


def jitter_offset_s(job: str, slot: int, jitter_s: float) -> float:
    """How long after its slot a jittered fire goes out: derived from job and slot, never
    from a random source, so every replica (and every restart) picks the same moment."""
    digest = hashlib.sha256(f"{job}@{slot}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") % (int(jitter_s * 1000) + 1)) / 1000


def fire_at(job: JobSpec, slot: int) -> float:
    """The moment a slot's fire goes out: the slot, plus the job's jitter."""
    return slot + jitter_offset_s(job.name, slot, job.jitter_s) if job.jitter_s else float(slot)


def shared_next(nexts: dict[tuple[int, int], int | None], schedule: sched.Schedule, after: int) -> int | None:
    """sched.next_after, remembered in `nexts` per (schedule object, instant). parse() gives
    every job of an expression and zone the same Cron (and an interval's text the same
    Interval), so tenants who share a few expressions share their answers. Keyed by
    identity, not by value: hashing a Cron hashes its fields; the caller keeps every
    schedule alive while `nexts` is in use."""
    key = (id(schedule), after)
    nxt = nexts.get(key, -1)
    if nxt == -1:
        nxt = nexts[key] = sched.next_after(schedule, after)
    return nxt


def passed_at(job: JobSpec, slot: int, now: float, grace_s: float) -> Claim:
    """The claim for an `at` job first seen at `now`, after its instant `slot` (SPEC 6 rule
    2): it fires once if the instant has just passed, where "just" is its CATCHUP_WINDOW or,
    without one, SCHEDULER_AT_GRACE (a trigger imported long after it ran must not run
    again); else, or with CATCHUP=none, it expires, which the store records."""
    if job.catchup == "none":
        return Claim(job.name, slot, EXPIRE, reason="first seen after its instant, and its CATCHUP is none")
    window = job.catchup_window_s
    bound, named = (grace_s, "SCHEDULER_AT_GRACE") if window is None else (window, "its CATCHUP_WINDOW")
    late = now - slot
    if late <= bound:
        return Claim(job.name, slot, FIRE)
    return Claim(job.name, slot, EXPIRE,
                 reason=f"first seen {_span(late)} after its instant, more than {named} ({_span(bound)})")


def _span(seconds: float) -> str:
    """A whole-second duration as a reader takes it in: 705d2h, 3m20s."""
    rest, out = int(seconds), list[str]()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size or (unit == "s" and not out):
            out.append(f"{rest // size}{unit}")
            rest %= size
        if len(out) == 2:
            break
    return "".join(out)


@dataclass
class Entries:
    """Heap entries of many jobs, worked out apart from the plan (see next_entries)."""

    entries: list[tuple[float, int, str]] = field(default_factory=list)
    upcoming: dict[str, int] = field(default_factory=dict)  # job -> next slot
    ended: list[str] = field(default_factory=list)  # jobs with no slot ahead
    claims: list[Claim] = field(default_factory=list)  # an added `at` whose instant passed: fire or expire
    sighted: list[str] = field(default_factory=list)  # added jobs: their INIT is due at floor(now)


def next_entries(jobs: list[JobSpec], now: float, added: bool, grace_s: float = AT_GRACE_S) -> Entries:
    """Each job's next slot after floor(now) and its heap entry, for jobs added (SPEC 6 rule
    2: from the next slot on; an `at` whose instant has passed fires once or expires, see
    passed_at; a first sighting each) or changed (`added=False`: the next slot under the new definition, nothing else),
    without touching a plan: a worker thread may do it while the leader's loop claims, and
    Plan.take puts them in between two claims. One next slot is worked out per distinct
    schedule, not per job (tenants share a few expressions)."""
    found = Entries()
    cursor = math.floor(now)
    nexts: dict[tuple[int, int], int | None] = {}  # see shared_next; `jobs` keeps the schedules alive
    entries, upcoming, ended = found.entries, found.upcoming, found.ended
    at_type = sched.At
    for job in jobs:
        schedule = job.schedule
        if type(schedule) is at_type:  # its own slot; an added one whose instant passed fires or expires
            nxt = schedule.slot if schedule.slot > cursor else None
            if added and nxt is None:
                found.claims.append(passed_at(job, schedule.slot, now, grace_s))
        else:
            nxt = shared_next(nexts, schedule, cursor)
        if nxt is None:
            ended.append(job.name)
            continue
        name = job.name
        upcoming[name] = nxt
        entries.append((fire_at(job, nxt), nxt, name))
    if added:
        found.sighted = [job.name for job in jobs]
    return found


