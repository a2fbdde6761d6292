"""One implementation of each control operation: the jobs view, history, trigger, pause and
resume. The command line (`control`) and the control API (`api`) both call these, and only
render what they return. They read and write the state store and never take the lease, so
any replica, leader or standby, or a laptop with the store's address, answers alike."""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, UTC
from zoneinfo import ZoneInfo

from ..schedule import slots as sched
from ..config.loader import JobSpec, Settings, retry_for_s
from ..model import request_id_problem
from ..observe import is_overdue
from ..store.ledger import PASSED, RUNS_MAX
from ..store.protocol import Store, StoreUnavailable, TriggerRequest

NEXT_SLOTS = 3  # how many next slots a job view lists


class UnknownJob(LookupError):
    """No configured job has that name."""


class BadRequest(ValueError):
    """The caller asked for something that cannot be done as asked (the message says why)."""


class Conflict(ValueError):
    """What was asked clashes with the state as it stands (a slot in flight or queued): 409."""


@dataclass(frozen=True)
class Triggered:
    """What a trigger came to: `queued` (new), `taken` (this id was already used: it fires
    once), or `joined` (another trigger of the job is queued or running: `id` is that one)."""

    id: str
    result: str
    leader: bool | None  # whether a leader is running now to fire it; None: it could not be read
    unsaid: str | None = None  # why the leader could not be told at once (it finds the request at its next look)


STATES = ("active", "paused", "disabled", "done")  # a job's `state` (SPEC 8), the same in the CLI, API and page


def job_state(job: JobSpec, paused: bool, done: bool) -> str:
    """The app's switch first, then the operator's pause, then whether a one-time job is
    over: `done` is an `at` job whose slot was claimed (fired, or expired: see `at_done`)."""
    if not job.enabled:
        return "disabled"
    if paused:
        return "paused"
    return "done" if done else "active"


def at_done(job: JobSpec, watermark: int | None) -> bool:
    """Whether an `at` job's one slot is behind it: the store's watermark reached it, which a
    fire, an expiry and a slot passed while paused all do."""
    return isinstance(job.schedule, sched.At) and watermark is not None and watermark >= job.schedule.slot


def find_job(settings: Settings, name: str) -> JobSpec:
    for job in settings.jobs:
        if job.name == name:
            return job
    raise UnknownJob(f"no job named {name!r}")


async def trigger(settings: Settings, store: Store, job: str, request_id: str | None = None) -> Triggered:
    """Queue a manual fire. The same id fires once however often it is sent; a trigger while
    one for the job is queued or running joins it."""
    spec = find_job(settings, job)
    if not spec.enabled:
        raise BadRequest(f"job {job!r} is disabled (SCHEDULER_JOB_..._ENABLED=false); not queued")
    # The id becomes part of a store field name and of the idempotency key.
    problem = request_id_problem(request_id) if request_id is not None else None
    if problem is not None:
        raise BadRequest(problem)
    request = TriggerRequest(request_id or secrets.token_hex(6), job, int(time.time()))
    existing = await store.request_trigger(request)
    if existing is None:
        result, rid = "queued", request.id
    elif existing.id == request.id:
        result, rid = "taken", request.id
    else:
        result, rid = "joined", existing.id
    # The request is in the store now: nothing after this may report the trigger as failed,
    # or a caller who sends it again (without an id) fires the job twice.
    unsaid = await store.wake_leader() if result == "queued" else None
    try:
        leader: bool | None = bool((await store.status([]))["leader"])
    except StoreUnavailable:
        leader = None
    return Triggered(rid, result, leader, unsaid)


async def set_paused(settings: Settings, store: Store, job: str, paused: bool) -> bool:
    """Pause or resume; False when the job already was so."""
    find_job(settings, job)
    return await store.set_paused(job, paused)


async def history(settings: Settings, store: Store, job: str, limit: int | None = None) -> list[dict]:
    """The job's last finished fires, newest first, with RFC 3339 times beside the numbers."""
    find_job(settings, job)
    if settings.history == 0:
        return []
    return [_readable_entry(e) for e in await store.history(job, limit or settings.history)]


@dataclass(frozen=True)
class SlotRun:
    """What is on record of a slot's runs: whether one was ok, and the last attempt sent."""

    ok: bool
    attempts: int


async def slot_runs(store: Store, job: str, slots: Collection[int]) -> dict[int, SlotRun]:
    """The finished runs on record of these slots of the job (the ledger, SPEC 8); a slot with
    none is absent. One page of the ledger's slot range at a time, not one read per slot."""
    want = set(slots)
    out: dict[int, SlotRun] = {}
    if not want:
        return out
    cursor: str | None = None
    while True:
        entries, cursor = await store.runs(job, before=max(want) + 1, after=min(want) - 1, limit=RUNS_MAX, cursor=cursor)
        for entry in entries:
            slot, attempts = entry.get("slot"), entry.get("attempts")
            if entry.get("trigger") or type(slot) is not int or slot not in want or entry.get("outcome") in PASSED:
                continue
            out[slot] = SlotRun(entry.get("outcome") == "ok", attempts if type(attempts) is int else 0)
        if cursor is None:
            return out


def _readable_entry(entry: dict) -> dict:
    out = dict(entry)
    slot = entry.get("slot")
    if isinstance(slot, int) and not entry.get("trigger"):
        out["slot"] = sched.format_slot(slot)
    elif entry.get("trigger"):
        out["slot"] = f"manual:{entry['trigger']}"
    at = entry.get("finished_at")
    out["finished_at"] = iso(at) if isinstance(at, (int, float)) else None
    return out


async def status_report(settings: Settings, store: Store, now: float) -> dict:
    """Everything `status` shows: the leader and, per job, its state, last outcome and next slot."""
    names = [j.name for j in settings.jobs]
    info = await store.status(names)
    inflight: dict[str, list] = {}
    for f in info["inflight"]:
        inflight.setdefault(f.job, []).append(
            {"slot": sched.format_slot(f.slot), "attempt": f.attempt, "epoch": f.epoch, "trigger": f.trigger}
        )
    jobs = [_job_row(settings, job, info, inflight, now) for job in settings.jobs]
    return {
        "mode": "standalone" if settings.standalone else "redis",
        "namespace": settings.namespace,
        "leader": info["leader"],
        "epoch": info["epoch"],
        "lease_left_s": info["lease_left_s"],
        "pending_triggers": info["pending_triggers"],
        "jobs": jobs,
        "rejected": [dict(r) for r in settings.rejected],
        "sources": await store.noted_sources() if settings.jobs_file or settings.jobs_url else [],
    }


def _job_row(settings: Settings, job, info: dict, inflight: dict, now: float) -> dict:
    """One job's line of the status report."""
    mark = info["watermarks"].get(job.name)
    start = max(mark or 0, now)
    upcoming = []
    if job.enabled:
        for slot in sched.iter_slots(job.schedule, start):
            upcoming.append(slot)
            if len(upcoming) >= NEXT_SLOTS:
                break
    nxt = upcoming[0] if upcoming else None
    after = upcoming[1] if len(upcoming) > 1 else None
    period = after - nxt if after and nxt else None
    last = info["jobs"].get(job.name) or {}
    paused = job.name in info["paused"]
    # The same rule as the cron_sidecar_job_overdue gauge: two periods without a success,
    # counted from the last success or, before any, from when a leader first saw the job.
    overdue = job.enabled and not paused and is_overdue(
        now, period, last.get("last_success_at"), last.get("first_seen_at"))
    return {
        "name": job.name,
        "state": job_state(job, paused, at_done(job, mark)),
        "source": settings.source_of.get(job.name, "env"),
        "schedule": job.schedule_text,
        "timezone": job.timezone,
        "method": job.method,
        "url": job.url,
        "enabled": job.enabled,
        "paused": paused,
        "watermark": sched.format_slot(mark) if mark else None,
        "last_slot": sched.format_slot(last["slot"]) if last.get("slot") else None,
        "next_slot": sched.format_slot(nxt) if nxt else None,
        "next": [sched.format_slot(s) for s in upcoming],
        "next_local": [local_time(s, job.timezone) for s in upcoming],
        "last_outcome": last.get("status"),
        "last_http_status": last.get("http_status"),
        "last_attempts": last.get("attempts"),
        "last_duration_ms": last.get("duration_ms"),
        "last_finished_at": iso(last.get("finished_at")),
        "last_success_at": iso(last.get("last_success_at")),
        "last_error": last.get("error"),
        "last_excerpt": last.get("excerpt"),
        "consecutive_failures": last.get("consecutive_failures") or 0,
        "period_s": period,
        "retry_for_s": retry_for_s(job, period),  # RETRY_FOR, or its default from the period
        "overdue": bool(overdue),
        "in_flight": inflight.get(job.name, []),
    }


def job_object(row: dict) -> dict:
    """One job of a status report in the control API's shape (SPEC section 7)."""
    last = None
    if row["last_outcome"]:
        last = {
            "slot": row["last_slot"], "outcome": row["last_outcome"], "http_status": row["last_http_status"],
            "attempts": row["last_attempts"], "duration_ms": row["last_duration_ms"],
            "finished_at": row["last_finished_at"], "error": row["last_error"], "excerpt": row["last_excerpt"],
        }
    return {
        "name": row["name"], "source": row["source"], "schedule": row["schedule"], "timezone": row["timezone"],
        "method": row["method"], "url": row["url"],
        "state": row["state"],
        "next": row["next"], "next_local": row["next_local"], "last": last, "overdue": row["overdue"],
        "consecutive_failures": row["consecutive_failures"], "running": bool(row["in_flight"]),
    }


async def jobs_view(settings: Settings, store: Store, now: float | None = None, with_history: bool = False) -> dict:
    """`GET /api/v1/jobs`: the leader and every job (with each one's history, for the page).
    `rejected` lists job definitions that were refused; jobs come only from the environment
    for now, which is checked whole before anything starts, so it is empty."""
    report = await status_report(settings, store, time.time() if now is None else now)
    leader = {"replica": report["leader"], "epoch": report["epoch"]} if report["leader"] else None
    jobs = [job_object(r) for r in report["jobs"]]
    if with_history:
        for job in jobs:
            job["history"] = await history(settings, store, job["name"])
    return {"leader": leader, "jobs": jobs, "rejected": [dict(r) for r in settings.rejected]}


async def job_view(settings: Settings, store: Store, name: str, now: float | None = None) -> dict:
    """`GET /api/v1/jobs/<name>`: one job's object with its history, newest first."""
    find_job(settings, name)
    view = await jobs_view(settings, store, now)
    job = next(j for j in view["jobs"] if j["name"] == name)
    return {**job, "history": await history(settings, store, name)}


def local_time(slot: int, zone: str) -> str:
    """A slot in the job's own zone, with its offset: 2026-03-29T03:30:00+02:00."""
    return datetime.fromtimestamp(slot, ZoneInfo(zone)).isoformat()


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
