"""`check`: validate the configuration and show each job's next slots, changing nothing."""

from __future__ import annotations

import json
import sys
import time
from itertools import islice
from datetime import datetime
from zoneinfo import ZoneInfo

from ..config import loader as config
from ..config.reader import show
from ..schedule import slots as sched

EX_OK, EX_FAILURE, EX_CONFIG = 0, 1, 78


def say_warnings(settings: config.Settings, strict: bool) -> bool:
    """Each warning on stderr; with --strict, those of the ignored names are errors. True
    when one was."""
    ignored = tuple(show(n, quote=False) + ": " for n in settings.ignored)
    failed = False
    for line in settings.warnings:
        as_error = strict and line.startswith(ignored)
        failed |= as_error
        print(f"{'config error' if as_error else 'warning'}: {line}", file=sys.stderr)
    return failed


def check(settings: config.Settings, args) -> int:
    if args.document:
        return check_document(settings, args.document, args.json)
    unknown = say_warnings(settings, args.strict)
    start = time.time() if args.from_ is None else args.from_
    listed, source_of, rejected, states = _with_sources(settings)
    jobs = [(job, list(islice(sched.iter_slots(job.schedule, start), args.count))) for job in listed]
    failed = [s for s in states if not s["ok"]]
    # A source that cannot be read is not "OK: 0 jobs": the daemon would start without its
    # jobs. What a readable source holds is the app's users' business: only --strict fails on it.
    code = EX_FAILURE if failed else EX_CONFIG if args.strict and (rejected or unknown) else EX_OK
    for s in failed:
        print(f"check: jobs {s['source']} {s['location']} cannot be read: {s['error']}", file=sys.stderr)
    if args.json:
        out = {"jobs": [
            {"name": j.name, "source": source_of.get(j.name, "env"), "schedule": j.schedule_text,
             "timezone": j.timezone, "url": j.url, "enabled": j.enabled, "state": _state(j, nxt),
             "next": [sched.format_slot(s) for s in nxt], **_policy(j)}
            for j, nxt in jobs
        ], "rejected": rejected, "sources": [
            {k: s[k] for k in ("source", "location", "ok", "error", "jobs", "rejected")} for s in states
        ]}
        print(json.dumps(out, indent=2))
        return code
    mode = "standalone (SQLite: " + settings.state_file + ")" if settings.standalone else "redis"
    verdict = (f"configuration valid, but {len(failed)} jobs source(s) cannot be read (see below); {len(jobs)} job(s) listed "
               "without them" if failed else f"configuration OK: {len(jobs)} job(s)")
    print(f"{verdict}, state: {mode}, namespace {settings.namespace}")
    for s in states:
        read = f"{s['jobs']} job(s), {s['rejected']} rejected" if s["ok"] else f"cannot be read: {s['error']}"
        print(f"jobs {s['source']:<4}  {s['location']}: {read}")
    for r in rejected:
        print(f"rejected  {r['name']} ({r['source']}): {r['problem']}")
    for j, nxt in jobs:
        _describe(j, nxt, source_of.get(j.name, "env"))
    if code == EX_CONFIG:
        print(f"--strict: {len(rejected)} rejected job(s), {len(settings.ignored)} SCHEDULER_* name(s) "
              "not read by cron-sidecar", file=sys.stderr)
    return code


def _describe(j: config.JobSpec, nxt: list[int], source: str) -> None:
    """One job in `check`'s text: its call, attempts, policies and next slots in its zone."""
    zone = ZoneInfo(j.timezone)
    state = _state(j, nxt)
    flag = "" if state == "active" else f"  [{state}]"
    print(f"\n{j.name}{flag}  (from {source})"
          f"\n  schedule  {j.schedule_text}  ({j.timezone})\n  call      {j.method} {j.url}")
    retries = "no retries" if j.retries == 0 else f"{j.retries} retr{'y' if j.retries == 1 else 'ies'}"
    window = "unlimited" if j.catchup_window_s is None else _span(j.catchup_window_s)
    after = sched.next_after(j.schedule, nxt[0]) if nxt else None
    period = after - nxt[0] if after is not None else None
    retry_for = config.retry_for_s(j, period)
    longer = "  (longer than the period: retries stop at the next slot)" if period and retry_for > period else ""
    print(f"  attempts  timeout {_span(j.timeout_s)} each, {retries}, "
          f"retried for {_span(retry_for)}{'' if j.retry_for_s is not None else ' (default)'}{longer}")
    print(f"  catch-up  {j.catchup}, window {window}")
    print(f"  overlap   concurrency {j.concurrency}, jitter {_span(j.jitter_s)}")
    if not nxt:
        print("  next      (none: a one-shot whose time has passed)")
    for s in nxt:
        local = datetime.fromtimestamp(s, zone).isoformat()
        print(f"  next      {local}  ({sched.format_slot(s)})")


def check_document(settings: config.Settings, path: str, as_json: bool) -> int:
    """`check --document FILE`: what POST /api/v1/validate answers, for a file."""
    from ..control.validation import BadDocument, validate_document
    from ..sources.document import DocumentError, kind_of, parse_bytes

    try:
        with open(path, "rb") as f:
            data = parse_bytes(f.read(), kind_of(path))
        answer = validate_document(settings, data)
    except OSError as exc:
        print(f"check --document: cannot read {path!r}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return EX_FAILURE
    except (DocumentError, BadDocument) as exc:
        print(f"check --document: {path}: {exc}", file=sys.stderr)
        return EX_FAILURE
    if as_json:
        print(json.dumps(answer, indent=2))
    else:
        for job in answer["jobs"]:
            if job["ok"]:
                nxt = ", ".join(s["local"] for s in job["next"]) or "(none: a one-shot whose time has passed)"
                print(f"ok        {job['name']}  next {nxt}")
            else:
                print(f"rejected  {job['name']}: {job['problem']}")
    return EX_OK if all(j["ok"] for j in answer["jobs"]) else EX_CONFIG


def _state(job: config.JobSpec, nxt: list[int]) -> str:
    """The job's state as `status` and the API name it, from the configuration alone (check
    reads no store, so knows no pause): a one-shot with no slot ahead is done, fired or
    expired by the leader that saw it."""
    from ..control.operations import job_state

    return job_state(job, False, isinstance(job.schedule, sched.At) and not nxt)


def _with_sources(settings: config.Settings):
    """The env jobs and those of SCHEDULER_JOBS_FILE/URL, read once as the daemon would:
    (jobs, source_of, rejected, source states)."""
    from ..sources.catalog import read_once

    view, states = read_once(settings)
    return list(view.jobs), dict(view.source_of), [dict(r) for r in view.rejected], states


def _policy(job: config.JobSpec) -> dict:
    """How a job is fired, for `check --json`: the fields beside SPEC's name/schedule/next."""
    return {
        "method": job.method, "timeout_s": job.timeout_s, "retries": job.retries, "retry_for_s": job.retry_for_s,
        "catchup": job.catchup, "catchup_window_s": job.catchup_window_s,
        "concurrency": job.concurrency, "jitter_s": job.jitter_s,
    }


def _span(seconds: float) -> str:
    """A duration as the configuration writes it: 30s, 1h30m, 250ms."""
    ms = round(seconds * 1000)
    if ms % 1000:
        return f"{ms}ms" if ms < 1000 else f"{ms / 1000:g}s"
    whole, out = ms // 1000, ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            out += f"{whole // size}{unit}"
            whole %= size
    return out or "0s"


