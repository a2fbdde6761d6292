"""`explain`: one sentence for any slot of a job (SPEC 8), worked out from its ledger entry (or
the lack of one), the job's schedule, when it was first seen, and the log of leaderships.
Pure: the facts are read by `ledger.gather`; nothing here touches the store or the clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, UTC

from ..config.loader import JobSpec
from ..schedule import slots as sched

LATE_S = 2.0  # a fire this late after its slot was made up, not fired on time


@dataclass(frozen=True)
class Facts:
    job: JobSpec
    slot: int | None  # None for a manual run
    entry: dict | None  # the ledger's (or the live state's) entry, if any
    earlier: list[dict] = field(default_factory=list)  # ledger entries just before the slot, newest first
    leaderships: list[dict] = field(default_factory=list)  # newest first (Store.leaderships)
    watermark: int | None = None
    paused: bool = False
    first_seen_at: float | None = None
    keep: int = 20
    age_s: float | None = None


def when(ts: float, slot: int | None = None) -> str:
    """A time in a sentence: `03:00:09` on the slot's own day (UTC), else in full."""
    dt = datetime.fromtimestamp(ts, UTC)
    if slot is not None and datetime.fromtimestamp(slot, UTC).date() == dt.date():
        return dt.strftime("%H:%M:%S")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def slot_name(slot: int, ref: int | None = None) -> str:
    """A slot in a sentence: `03:00` (seconds when it has them) on the reference slot's day."""
    dt = datetime.fromtimestamp(slot, UTC)
    if ref is not None and datetime.fromtimestamp(ref, UTC).date() == dt.date():
        return dt.strftime("%H:%M" if dt.second == 0 else "%H:%M:%S")
    return sched.format_slot(slot)


def gap(f: Facts, slot: int) -> tuple[float, float] | None:
    """(from, to) in Unix seconds when no replica led over the slot: the previous leader's
    last sign of life before it and the next acquisition after it."""
    for lead in f.leaderships:  # newest first: the first acquisition after the slot wins
        acquired, seen = lead.get("acquired_at"), lead.get("previous_seen_at")
        if not isinstance(acquired, (int, float)) or acquired / 1000 < slot:
            continue
        if isinstance(seen, (int, float)) and seen / 1000 <= slot:
            return seen / 1000, acquired / 1000
    return None


def _finished(f: Facts, e: dict, slot: int | None) -> str:
    fate = e.get("outcome")
    if fate in ("running", "pending"):
        if fate == "pending":
            return "pending: the manual run is queued for the leader to take"
        return f"running: attempt {e.get('attempts')} under fencing token {e.get('fencing_token')}"
    if fate == "expired":
        return f"expired: {e.get('error') or 'a one-time job first seen too long after its instant'}"
    if fate == "skipped":
        return _skipped(f, e, slot)
    if fate == "cancelled":
        return f"skipped: replaced by a newer slot while it ran (CONCURRENCY={f.job.concurrency})"
    if fate == "dropped":
        return (f"dropped: missed while the scheduler's loop was behind (CATCHUP={e.get('policy') or f.job.catchup})")
    detail = [f"{e.get('attempts')} attempt{'s' if e.get('attempts') != 1 else ''}"]
    if e.get("http_status"):
        detail.append(f"HTTP {e['http_status']}")
    if isinstance(e.get("duration_ms"), (int, float)):
        detail.append(f"{e['duration_ms']} ms")
    head = f"{fate}: " + ", ".join(detail)
    if e.get("error") and fate != "ok":
        head += f" ({e['error']})"
    late = e.get("lateness_ms")
    if slot is not None and isinstance(late, (int, float)) and late / 1000 >= LATE_S:
        made = slot + late / 1000
        span = gap(f, slot)
        if span is not None:
            return (f"no replica led from {when(span[0], slot)} to {when(span[1], slot)}; made up at "
                    f"{when(made, slot)} by CATCHUP={f.job.catchup}; {head}")
        return f"{head}; fired {late / 1000:.1f} s after its slot"
    return head


def _skipped(f: Facts, e: dict, slot: int | None) -> str:
    reason = e.get("reason")
    if reason == "paused":
        return "skipped: the job was paused"
    if reason == "overlap" and slot is not None:
        policy = e.get("policy") or f.job.concurrency
        # The fire that was still running: the newest earlier one that ended after this slot.
        running = next((r for r in f.earlier if r.get("outcome") == "running" or (
            r.get("outcome") not in ("skipped", "dropped", "pending")
            and isinstance(r.get("finished_at"), (int, float)) and r["finished_at"] >= slot)), None)
        if running is None:
            previous, _ = sched.recent_slots(f.job.schedule, 0, slot - 1, 1)
            running = {"slot": previous[0]} if previous else None
        if running is not None:
            return (f"skipped: the fire of {slot_name(running['slot'], slot)} was still running "
                    f"(CONCURRENCY={policy})")
        return f"skipped: the previous fire was still running (CONCURRENCY={policy})"
    return f"skipped: {reason or 'not fired'}"


def explain_slot(f: Facts, now: float) -> str:
    slot = f.slot
    if f.entry is not None:
        return _finished(f, f.entry, slot)
    if slot is None:
        return "no such manual run: not queued, not running, and not in the ledger"
    job = f.job
    if sched.next_after(job.schedule, slot - 1) != slot:
        before, _ = sched.recent_slots(job.schedule, 0, slot, 1)
        after = sched.next_after(job.schedule, slot)
        near = [sched.format_slot(s) for s in (*before, *([after] if after is not None else []))]
        return (f"not a slot of {job.schedule_text!r}" + (f"; the nearest are {' and '.join(near)}" if near else ""))
    if not job.enabled:
        return "the job is disabled (ENABLED=false): its slots are not fired"
    if f.watermark is None or slot > f.watermark:
        if slot > now - 1:
            return f"not due yet: fires at {sched.format_slot(slot)}" + (", but the job is paused" if f.paused else "")
    if f.first_seen_at is not None and slot < f.first_seen_at:
        return f"before the job was first seen ({sched.format_slot(int(f.first_seen_at))}): not a slot it owed"
    if f.keep == 0:
        return "not recorded: the ledger is off (SCHEDULER_HISTORY=0)"
    if f.age_s is not None and slot < now - f.age_s:
        return f"older than the ledger keeps (SCHEDULER_HISTORY_AGE={f.age_s:g}s)"
    span = gap(f, slot)
    if span is not None:
        head = f"missed while no replica led from {when(span[0], slot)} to {when(span[1], slot)}"
        if job.catchup == "none":
            return f"dropped: {head} (CATCHUP=none)"
        newest, _ = sched.recent_slots(job.schedule, slot, span[1], 1)
        if job.catchup == "latest" and newest:
            return f"dropped: {head}; CATCHUP=latest made up only the newest, {slot_name(newest[-1], slot)}"
        return f"dropped: {head}, further back than the catch-up allows (CATCHUP={job.catchup})"
    if f.watermark is None or slot > f.watermark:
        return "not claimed yet: the leader has not reached this slot"
    if not f.earlier:
        return (f"no longer in the ledger: it keeps the newest {f.keep} entries per job (SCHEDULER_HISTORY), "
                "or none was written for this slot")
    return "no record of this slot in the ledger: claimed, but its outcome was never written"
