"""Operator commands: status, pause, resume, trigger. They read and write the state store
directly and never take the lease, so they work from any replica or a laptop."""

from __future__ import annotations

import json
import secrets
import sys
import time
from datetime import datetime, timezone

from . import schedule as sched
from .config import Settings
from .model import request_id_problem
from .observe import is_overdue
from .store import Store, TriggerRequest


async def run_control(settings: Settings, store: Store, command: str, args) -> int:
    if command == "pause":
        changed = await store.set_paused(args.job, True)
        print(f"paused {args.job}" if changed else f"{args.job} was already paused")
        return 0
    if command == "resume":
        changed = await store.set_paused(args.job, False)
        print(f"resumed {args.job}" if changed else f"{args.job} was not paused")
        return 0
    if command == "trigger":
        return await trigger(settings, store, args.job, args.id)
    report = await status_report(settings, store, time.time())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render_status(report))
    return 0


async def trigger(settings: Settings, store: Store, job: str, request_id: str | None) -> int:
    spec = next(j for j in settings.jobs if j.name == job)
    if not spec.enabled:
        print(f"trigger: job {job!r} is disabled (SCHEDULER_JOB_..._ENABLED=false); not queued", file=sys.stderr)
        return 2
    # The command line refuses a bad id already; this holds for any other caller too, since
    # the id becomes part of a store field name and of the idempotency key.
    problem = request_id_problem(request_id) if request_id is not None else None
    if problem is not None:
        print(f"trigger: --id: {problem}; not queued", file=sys.stderr)
        return 2
    request = TriggerRequest(request_id or secrets.token_hex(6), job, int(time.time()))
    existing = await store.request_trigger(request)
    if existing is None:
        print(f"queued trigger {request.id} for {job}")
    elif existing.id == request.id:
        print(f"trigger {request.id} for {job} was already taken; it fires once")
    else:
        print(f"{job} already has trigger {existing.id} queued or running; not queued again")
    info = await store.status([])
    if not info["leader"]:
        print("note: no leader is running now; the trigger fires when one starts", file=sys.stderr)
    return 0


async def status_report(settings: Settings, store: Store, now: float) -> dict:
    names = [j.name for j in settings.jobs]
    info = await store.status(names)
    inflight = {}
    for f in info["inflight"]:
        inflight.setdefault(f.job, []).append(
            {"slot": sched.format_slot(f.slot), "attempt": f.attempt, "epoch": f.epoch, "trigger": f.trigger}
        )
    jobs = []
    for job in settings.jobs:
        mark = info["watermarks"].get(job.name)
        nxt = sched.next_after(job.schedule, max(mark or 0, now)) if job.enabled else None
        last = info["jobs"].get(job.name) or {}
        after = sched.next_after(job.schedule, nxt) if nxt else None
        period = after - nxt if after and nxt else None
        fails = last.get("consecutive_failures") or 0
        # The same rule as the scheduler_job_overdue gauge: two periods without a success,
        # counted from the last success or, before any, from when a leader first saw the job.
        overdue = job.enabled and job.name not in info["paused"] and is_overdue(
            now, period, last.get("last_success_at"), last.get("first_seen_at"))
        jobs.append({
            "name": job.name,
            "schedule": job.schedule_text,
            "enabled": job.enabled,
            "paused": job.name in info["paused"],
            "watermark": sched.format_slot(mark) if mark else None,
            "last_slot": sched.format_slot(last["slot"]) if last.get("slot") else None,
            "next_slot": sched.format_slot(nxt) if nxt else None,
            "last_outcome": last.get("status"),
            "last_http_status": last.get("http_status"),
            "last_finished_at": _iso(last.get("finished_at")),
            "last_success_at": _iso(last.get("last_success_at")),
            "last_error": last.get("error"),
            "last_excerpt": last.get("excerpt"),
            "consecutive_failures": fails,
            "period_s": period,
            "overdue": bool(overdue),
            "in_flight": inflight.get(job.name, []),
        })
    return {
        "mode": "standalone" if settings.standalone else "redis",
        "namespace": settings.namespace,
        "leader": info["leader"],
        "epoch": info["epoch"],
        "lease_left_s": info["lease_left_s"],
        "pending_triggers": info["pending_triggers"],
        "jobs": jobs,
    }


def render_status(report: dict) -> str:
    if report["leader"]:
        lease = f", lease {report['lease_left_s']:.1f}s left" if report["lease_left_s"] is not None else ""
        lines = [f"leader   {report['leader']} (epoch {report['epoch']}{lease})"]
    else:
        lines = [f"leader   none (last epoch {report['epoch'] or '-'})"]
    lines.append(f"mode     {report['mode']}, namespace {report['namespace']}")
    header = ("JOB", "STATE", "LAST SLOT", "OUTCOME", "HTTP", "FAILS", "NEXT SLOT")
    rows = [header]
    for j in report["jobs"]:
        state = (
            "disabled" if not j["enabled"] else "paused" if j["paused"] else "running" if j["in_flight"]
            else "overdue" if j["overdue"] else "done" if j["next_slot"] is None else "active"
        )
        rows.append((
            j["name"], state, j["last_slot"] or "-", j["last_outcome"] or "-",
            str(j["last_http_status"] or "-"), str(j["consecutive_failures"]), j["next_slot"] or "-",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines.append("")
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for j in report["jobs"]:
        if j["last_error"]:
            lines.append(f"  {j['name']}: last error: {j['last_error']}")
        if j.get("last_excerpt"):
            lines.append(f"  {j['name']}: the app said: {j['last_excerpt']}")
    if report["pending_triggers"]:
        lines.append(f"pending triggers: {', '.join(t['job'] + ' ' + t['id'] for t in report['pending_triggers'])}")
    return "\n".join(lines)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
