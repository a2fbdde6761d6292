"""Operator commands: status, history, runs, explain, audit, pause, resume, trigger, retry, backfill, sources. Each calls the one
implementation in `operations` (which the control API calls too) and prints its result.
They read and write the state store directly and never take the lease, so they work from
any replica or a laptop; the ones that change state are recorded in the audit log as
`cli:<OS user>`."""

from __future__ import annotations

import json
import sys
import time

from . import audit
from . import ledger
from . import operations as ops
from . import redrive
from ..config.loader import Settings
from ..model import format_slot
from ..store.protocol import Store


STEERING = ("sources", "pause", "resume", "trigger", "retry", "backfill")  # the commands that change state: audited


async def run_control(settings: Settings, store: Store, command: str, args) -> int:
    if command in STEERING:
        code = await steer(settings, store, command, args)
        what = f"sources {args.sources_command}" if command == "sources" else command
        await audit.record(store, audit.entry(audit.cli_who(), "CLI", what, getattr(args, "job", None), code,
                                              getattr(args, "reason", None)))
        return code
    if command == "audit":
        entries = await store.audit(args.limit, args.before)
        print(json.dumps(entries, indent=2) if args.json else audit.render(entries))
        return 0
    if command in ("runs", "explain"):
        return await ledger_command(settings, store, command, args)
    if command == "history":
        entries = await ops.history(settings, store, args.job)
        print(json.dumps(entries, indent=2) if args.json else render_history(args.job, entries, settings.history))
        return 0
    report = await ops.status_report(settings, store, time.time())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render_status(report))
    return 0


async def steer(settings: Settings, store: Store, command: str, args) -> int:
    if command == "sources":
        await store.request_sources(args.sources_command)
        what = "read their sources again" if args.sources_command == "refresh" else "apply their held reads"
        print(f"asked every replica to {what}; each does within a second")
        return 0
    if command == "trigger":
        return await trigger(settings, store, args.job, args.id, args.json)
    if command in ("retry", "backfill"):
        return await redo(settings, store, command, args)
    changed = await ops.set_paused(settings, store, args.job, command == "pause")
    if args.json:
        print(json.dumps({"job": args.job, "paused": command == "pause", "changed": changed}))
    elif command == "pause":
        print(f"paused {args.job}" if changed else f"{args.job} was already paused")
    else:
        print(f"resumed {args.job}" if changed else f"{args.job} was not paused")
    return 0


async def trigger(settings: Settings, store: Store, job: str, request_id: str | None, as_json: bool = False) -> int:
    if job in settings.source_of:
        # The job may be a moment old in the app: the leader reads its sources first.
        await store.request_sources("refresh")
    try:
        done = await ops.trigger(settings, store, job, request_id)
    except ops.BadRequest as exc:
        print(f"trigger: {exc}; not queued", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps({"job": job, "id": done.id, "result": done.result, "leader": done.leader}))
    elif done.result == "queued":
        print(f"queued trigger {done.id} for {job}")
    elif done.result == "taken":
        print(f"trigger {done.id} for {job} was already taken; it fires once")
    else:
        print(f"{job} already has trigger {done.id} queued or running; not queued again")
    if done.unsaid is not None:
        print(f"note: queued, but the leader was not told at once ({done.unsaid}); it finds the trigger at its next "
              "look at the queue, within SCHEDULER_LEASE_RENEW", file=sys.stderr)
    if done.leader is None:
        print("note: could not read whether a leader is running now; the trigger fires when one does", file=sys.stderr)
    elif not done.leader:
        print("note: no leader is running now; the trigger fires when one starts", file=sys.stderr)
    return 0


async def redo(settings: Settings, store: Store, command: str, args) -> int:
    """`retry JOB SLOT` and `backfill JOB FROM TO`: exit 2 for a mistake, 1 for a conflict."""
    try:
        reason = redrive.reason_value(args.reason)
        if command == "retry":
            sent = await redrive.redrive(settings, store, args.job, args.slot, reason)
            if args.json:
                print(json.dumps({"job": sent.job, "slot": format_slot(sent.slot), "key": sent.key, "attempt": sent.attempt,
                                  "result": "queued"}))
            else:
                print(f"queued {sent.key} again as attempt {sent.attempt}")
            unsaid = sent.unsaid
        else:
            done = await redrive.backfill(settings, store, args.job, args.start, args.end, reason)
            if args.json:
                print(json.dumps({"job": done.job, "queued": [format_slot(s) for s in done.queued]}))
            elif done.queued:
                print(f"queued {len(done.queued)} slot(s) of {done.job}, oldest first: "
                      f"{format_slot(done.queued[0])} .. {format_slot(done.queued[-1])}")
            else:
                print(f"nothing queued: every slot of {done.job} in the range is ok, in flight, queued already "
                      "or not reached by the schedule yet")
            unsaid = done.unsaid
    except ops.BadRequest as exc:
        print(f"{command}: {exc}; not queued", file=sys.stderr)
        return 2
    except ops.Conflict as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    if unsaid is not None:
        print(f"note: queued, but the leader was not told at once ({unsaid}); it finds the request at its next look, "
              "within SCHEDULER_LEASE_RENEW", file=sys.stderr)
    return 0


async def ledger_command(settings: Settings, store: Store, command: str, args) -> int:
    """`runs JOB` and `explain JOB SLOT`; a bad slot, time, limit or cursor is exit 2."""
    try:
        if command == "explain":
            view = await ledger.run_view(settings, store, args.job, args.slot)
            print(json.dumps(view, indent=2) if args.json else view["explanation"])
            return 0
        page = await ledger.runs_view(settings, store, args.job, args.before, args.after, args.limit, args.cursor)
    except ops.BadRequest as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(page, indent=2) if args.json else render_runs(args.job, page))
    return 0


def render_runs(job: str, page: dict) -> str:
    if not page["runs"]:
        return f"{job}: no runs recorded"
    header = ("SLOT", "FATE", "WHY", "HTTP", "ATTEMPTS", "MS", "LATE MS", "TOKEN")
    rows: list[tuple[str, ...]] = [header]
    for e in page["runs"]:
        why = e.get("reason") and f"{e['reason']}" + (f" ({e['policy']})" if e.get("policy") else "")
        rows.append(tuple(str(v if v is not None else "-") for v in (
            e["id"], e.get("fate"), why or None, e.get("http_status"), e.get("attempts"), e.get("duration_ms"),
            e.get("lateness_ms"), e.get("fencing_token"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if page["next_cursor"]:
        lines.append(f"more: --cursor {page['next_cursor']}")
    return "\n".join(lines)


def render_sources(noted: list[dict]) -> list[str]:
    """Each replica's word on its job sources that needs a look: held, unreadable, unread."""
    lines = []
    for replica in noted:
        for s in replica["sources"]:
            held = s.get("held")
            if held:
                lines.append(f"jobs {s.get('source')} HELD on {replica['replica']}: its last read would remove "
                             f"{held.get('dropped')} of {held.get('in_force')} jobs; `sources accept` applies it")
            if s.get("ok") is None:
                lines.append(f"jobs {s.get('source')} not read yet on {replica['replica']}")
            elif s.get("ok") is False:
                lines.append(f"jobs {s.get('source')} unreadable on {replica['replica']}: {s.get('error')}")
    return lines


def render_history(job: str, entries: list[dict], keep: int) -> str:
    if keep == 0:
        return "no history is kept (SCHEDULER_HISTORY=0)"
    if not entries:
        return f"{job}: no finished fires recorded yet"
    header = ("FINISHED", "SLOT", "OUTCOME", "HTTP", "ATTEMPTS", "MS", "EPOCH")
    rows: list[tuple[str, ...]] = [header]
    for e in entries:
        rows.append(tuple(str(v if v is not None else "-") for v in (
            e.get("finished_at"), e.get("slot"), e.get("outcome"), e.get("http_status"), e.get("attempts"),
            e.get("duration_ms"), e.get("fencing_token"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for e in entries:
        why = e.get("error")
        if why or e.get("excerpt"):
            lines.append(f"  {e.get('finished_at')}: {why or ''}" + (f"; the app said: {e['excerpt']}" if e.get("excerpt") else ""))
    return "\n".join(lines)


def render_status(report: dict) -> str:
    if report["leader"]:
        lease = f", lease {report['lease_left_s']:.1f}s left" if report["lease_left_s"] is not None else ""
        lines = [f"leader   {report['leader']} (epoch {report['epoch']}{lease})"]
    else:
        lines = [f"leader   none (last epoch {report['epoch'] or '-'})"]
    lines.append(f"mode     {report['mode']}, namespace {report['namespace']}")
    header = ("JOB", "SOURCE", "STATE", "LAST SLOT", "OUTCOME", "HTTP", "FAILS", "NEXT SLOT")
    rows = [header]
    for j in report["jobs"]:
        # The state as the API and the page name it, then what is going on now.
        state = ", ".join([j["state"]] + ["running"] * bool(j["in_flight"]) + ["overdue"] * bool(j["overdue"]))
        rows.append((
            j["name"], j.get("source", "env"), state, j["last_slot"] or "-", j["last_outcome"] or "-",
            str(j["last_http_status"] or "-"), str(j["consecutive_failures"]), j["next_slot"] or "-",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines.append("")
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for j in report["jobs"]:
        if j["last_error"]:
            what = "expired, never fired" if j["last_outcome"] == "expired" else "last error"
            lines.append(f"  {j['name']}: {what}: {j['last_error']}")
        if j.get("last_excerpt"):
            lines.append(f"  {j['name']}: the app said: {j['last_excerpt']}")
    for r in report.get("rejected", []):
        lines.append(f"rejected {r['name']} ({r['source']}): {r['problem']}")
    lines += render_sources(report.get("sources", []))
    if report["pending_triggers"]:
        lines.append(f"pending triggers: {', '.join(t['job'] + ' ' + t['id'] for t in report['pending_triggers'])}")
    return "\n".join(lines)

