"""Redrive and backfill (SPEC section 8): a finished slot sent again under its own
Idempotency-Key, the attempt count going on, and every slot of a range with no `ok` run
sent, oldest first. Both only queue slot requests in the store (Store.request_slots); the
leader takes them as it takes manual triggers, fenced like every claim, and sends them
through the same limits as every fire."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from ..config.loader import Settings
from ..model import SlotRequest, fire_key
from ..schedule import slots as sched
from ..store.protocol import Store
from .operations import BadRequest, Conflict, find_job, slot_runs

MAX_BACKFILL = 1000  # slots one backfill may queue: a longer range is split by the caller
MAX_REASON = 1000  # characters of an operator's reason


@dataclass(frozen=True)
class Redriven:
    job: str
    slot: int
    attempt: int  # the attempt the slot goes out as: the last one on record + 1
    unsaid: str | None  # why the leader could not be told at once (it finds the request at its next look)

    @property
    def key(self) -> str:
        return fire_key(self.job, self.slot, None)


@dataclass(frozen=True)
class Backfilled:
    job: str
    queued: list[int]  # oldest first
    unsaid: str | None


def parse_slot(text: str, what: str = "slot") -> int:
    """An RFC 3339 instant with an offset (2026-12-01T03:00:00Z) as a whole second."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{what} must be an RFC 3339 instant like 2026-12-01T03:00:00Z, got {text[:60]!r}") from None
    if dt.tzinfo is None:
        raise BadRequest(f"{what} needs a UTC offset or Z, got {text[:60]!r}")
    slot = dt.timestamp()
    if not 0 <= slot <= sched.MAX_SLOT or slot != int(slot):
        raise BadRequest(f"{what} must be a whole second between 1970 and 9000, got {text[:60]!r}")
    return int(slot)


def _enabled(settings: Settings, job: str) -> None:
    if not find_job(settings, job).enabled:
        raise BadRequest(f"job {job!r} is disabled (SCHEDULER_JOB_..._ENABLED=false); not queued")


def reason_value(reason: object) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise BadRequest(f"reason must be a string of at most {MAX_REASON} characters")
    return reason


async def redrive(settings: Settings, store: Store, job: str, slot_text: str, reason: str | None = None) -> Redriven:
    """Queue a finished slot of `job` again, as its last attempt on record + 1. Conflict when
    the slot is in flight or already queued, or no finished run of it is on record."""
    _enabled(settings, job)
    slot = parse_slot(slot_text)
    shown = sched.format_slot(slot)
    run = (await slot_runs(store, job, [slot])).get(slot)
    if run is None:
        raise Conflict(f"slot {shown} of {job} has no finished run on record; `backfill` sends a slot that never ran")
    attempt = run.attempts + 1
    queued = await store.request_slots(job, [SlotRequest(job, slot, attempt, reason, int(time.time()))])
    if not queued:
        raise Conflict(f"slot {shown} of {job} is in flight or already queued; not queued again")
    return Redriven(job, slot, attempt, await store.wake_leader())


async def backfill(settings: Settings, store: Store, job: str, start_text: str, end_text: str,
                   reason: str | None = None, now: float | None = None) -> Backfilled:
    """Queue every slot of the job's schedule in [start, end] (up to now) with no `ok` run on
    record, oldest first, each under its own key; those in flight or queued already are left
    out, so the same backfill sent twice queues nothing the second time."""
    _enabled(settings, job)
    spec = find_job(settings, job)
    start, end = parse_slot(start_text, "from"), parse_slot(end_text, "to")
    if end < start:
        raise BadRequest(f"from ({sched.format_slot(start)}) is later than to ({sched.format_slot(end)})")
    now = time.time() if now is None else now
    until = min(end, int(now))
    slots: list[int] = []
    for slot in sched.iter_slots(spec.schedule, start - 1):
        if slot > until:
            break
        slots.append(slot)
        if len(slots) > MAX_BACKFILL:
            raise BadRequest(f"the range holds more than {MAX_BACKFILL} slots of {job}; backfill it in parts")
    runs = await slot_runs(store, job, slots)
    requests = [SlotRequest(job, slot, runs[slot].attempts + 1 if slot in runs else 1, reason, int(now))
                for slot in slots if not (slot in runs and runs[slot].ok)]
    queued = await store.request_slots(job, requests)
    return Backfilled(job, queued, await store.wake_leader() if queued else None)
