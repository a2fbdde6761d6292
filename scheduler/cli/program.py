"""Command line: argument parsing, wiring, process lifecycle and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from .. import __version__
from ..config import loader as config
from . import daemon
from ..schedule import slots as sched
from ..model import request_id_problem

EX_OK, EX_FAILURE, EX_USAGE, EX_CONFIG = 0, 1, 2, 78


def request_id(text: str) -> str:
    """argparse type of `trigger --id`: a bad id is a usage error (exit 2) with the rule."""
    problem = request_id_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def build_parser() -> argparse.ArgumentParser:
    # --env-file is accepted before and after the command; SUPPRESS keeps the subcommand's
    # copy from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env-file", metavar="PATH", default=argparse.SUPPRESS,
                        help="dotenv file to read (default: ./.env if present)")
    parser = argparse.ArgumentParser(
        prog="python -m scheduler", parents=[common],
        description="cron-sidecar: fires scheduled HTTP calls, one leader among replicas.",
    )
    parser.add_argument("--version", action="version", version=f"cron-sidecar {__version__}")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", parents=[common], help="run the daemon (the default)")
    run.add_argument("--dry-run", action="store_true", help="do everything but the HTTP call, which is logged")
    check = sub.add_parser("check", parents=[common], help="validate the configuration and show the next slots")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.add_argument("--from", dest="from_", metavar="TIME", help="list slots strictly after this RFC 3339 instant")
    check.add_argument("--count", type=int, default=3, metavar="N", help="slots per job (default 3)")
    check.add_argument("--strict", action="store_true",
                       help="exit 78 when a job from SCHEDULER_JOBS_FILE/URL is rejected (a source that "
                            "cannot be read is exit 1 either way)")
    check.add_argument("--document", metavar="FILE",
                       help="check a document of jobs (JSON or YAML) as the sources would, changing nothing; "
                            "exit 78 when a job is rejected")
    sub.add_parser("healthcheck", parents=[common], help="exit 0 when the local /healthz answers")
    sub.add_parser("demo", help="see it work: the daemon firing two jobs at a built-in app (no setup)")
    status = sub.add_parser("status", parents=[common], help="leader, lease, and each job's last outcome and next slot")
    status.add_argument("--json", action="store_true", help="print JSON")
    history = sub.add_parser("history", parents=[common], help="a job's last finished fires, newest first")
    history.add_argument("job")
    history.add_argument("--json", action="store_true", help="print JSON")
    for name, what in (("pause", "stop firing a job (its slots are skipped)"), ("resume", "fire a paused job again")):
        sub.add_parser(name, parents=[common], help=what).add_argument("job")
    trigger = sub.add_parser("trigger", parents=[common], help="ask the leader to fire a job now, once")
    trigger.add_argument("job")
    trigger.add_argument("--id", type=request_id, metavar="ID",
                         help="request id, 1-128 of A-Z a-z 0-9 . _ -; an id fires at most once (default: a new one)")
    sources = sub.add_parser("sources", parents=[common], help="steer the job sources of every replica")
    sources_sub = sources.add_subparsers(dest="sources_command", required=True)
    sources_sub.add_parser("refresh", parents=[common], help="every replica reads SCHEDULER_JOBS_FILE/URL now")
    sources_sub.add_parser("accept", parents=[common],
                           help="apply the reads held by the guard (SCHEDULER_JOBS_MAX_DROP) on every replica")
    state = sub.add_parser("state", parents=[common], help="delete state on purpose: removed jobs, records set aside")
    state_sub = state.add_subparsers(dest="state_command", required=True)
    from .state import older_than

    state_gc = state_sub.add_parser("gc", parents=[common], help="delete the state of jobs no longer configured")
    state_gc.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    state_gc.add_argument("--older-than", type=older_than, default=86400.0, metavar="DURATION",
                          help="only jobs whose last activity is older than this (default 1d)")
    state_q = state_sub.add_parser("quarantine", parents=[common], help="list the records set aside as unreadable")
    state_q.add_argument("--purge", action="store_true", help="delete them")
    state_q.add_argument("--dry-run", action="store_true", help="with --purge: only list what would be deleted")
    state_q.add_argument("--json", action="store_true", help="one JSON object a line")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    if command == "run":
        # Until the daemon handles SIGHUP (daemon.Hangup), one would end the process at once;
        # ignored until then: the sources it would make read again are not read yet.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if command == "demo":
        from . import demo

        return demo.main()
    if command == "healthcheck":  # reads only the port and host: it runs every 30 s
        return healthcheck(getattr(args, "env_file", None))
    try:
        environment = config.read_environment(getattr(args, "env_file", None))
        settings = config.load(environment, stderr_is_tty=sys.stderr.isatty())
    except config.ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} configuration problem(s); nothing was started", file=sys.stderr)
        return EX_CONFIG
    if command == "check":
        return check(settings, args)
    if command == "state":
        from .state import run_state

        return asyncio.run(run_state(settings, args))
    if command == "sources":
        return asyncio.run(control(settings, command, args))
    if command in ("status", "history", "pause", "resume", "trigger"):
        from ..sources.catalog import read_once

        # The jobs of SCHEDULER_JOBS_FILE/URL are jobs too: read them as the daemon does.
        return asyncio.run(control(read_once(settings)[0], command, args))
    from ..observe import setup_logging

    setup_logging(settings.log_format, settings.log_level, config.secret_values(settings))
    try:
        with daemon.event_loop_runner() as runner:
            return runner.run(daemon.run(settings, dry_run=getattr(args, "dry_run", False)))
    except KeyboardInterrupt:
        return EX_OK


def check(settings: config.Settings, args) -> int:
    if args.document:
        return check_document(settings, args.document, args.json)
    if args.count < 1:
        print("--count: expected a whole number >= 1", file=sys.stderr)
        return EX_CONFIG
    start = time.time()
    if args.from_:
        try:
            start = sched.parse("at " + args.from_).slot  # type: ignore[union-attr]
        except sched.ScheduleError as exc:
            print(f"--from: {exc}", file=sys.stderr)
            return EX_CONFIG
    listed, source_of, rejected, states = _with_sources(settings)
    jobs = []
    for job in listed:
        nxt = []
        for slot in sched.iter_slots(job.schedule, start):
            nxt.append(slot)
            if len(nxt) >= args.count:
                break
        jobs.append((job, nxt))
    failed = [s for s in states if not s["ok"]]
    # A source that cannot be read is not "OK: 0 jobs": the daemon would start without its
    # jobs. What a readable source holds is the app's users' business: only --strict fails on it.
    code = EX_FAILURE if failed else EX_CONFIG if args.strict and rejected else EX_OK
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
        zone = ZoneInfo(j.timezone)
        state = _state(j, nxt)
        flag = "" if state == "active" else f"  [{state}]"
        print(f"\n{j.name}{flag}  (from {source_of.get(j.name, 'env')})"
              f"\n  schedule  {j.schedule_text}  ({j.timezone})\n  call      {j.method} {j.url}")
        retries = "no retries" if j.retries == 0 else f"{j.retries} retr{'y' if j.retries == 1 else 'ies'}"
        window = "unlimited" if j.catchup_window_s is None else _span(j.catchup_window_s)
        print(f"  attempts  timeout {_span(j.timeout_s)} each, {retries}")
        print(f"  catch-up  {j.catchup}, window {window}")
        print(f"  overlap   concurrency {j.concurrency}, jitter {_span(j.jitter_s)}")
        if not nxt:
            print("  next      (none: a one-shot whose time has passed)")
        for s in nxt:
            local = datetime.fromtimestamp(s, zone).isoformat()
            print(f"  next      {local}  ({sched.format_slot(s)})")
    if code == EX_CONFIG:
        print(f"--strict: {len(rejected)} rejected job(s)", file=sys.stderr)
    return code


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
        "method": job.method, "timeout_s": job.timeout_s, "retries": job.retries,
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


_HTTP_LINE = re.compile(r"^[ \t]*(?:export[ \t]+)?SCHEDULER_HTTP_(?:PORT|HOST)[ \t]*=.*$", re.MULTILINE)


def healthcheck(env_file: str | None) -> int:
    """GET the local /healthz. Reads only SCHEDULER_HTTP_PORT and SCHEDULER_HTTP_HOST (process
    environment, else the env file), not the whole configuration: this runs every 30 s."""
    import http.client
    import io

    from dotenv import dotenv_values

    names = ("SCHEDULER_HTTP_PORT", "SCHEDULER_HTTP_HOST")
    values = {"SCHEDULER_HTTP_PORT": config.GLOBAL_DEFAULTS["SCHEDULER_HTTP_PORT"],
              "SCHEDULER_HTTP_HOST": config.GLOBAL_DEFAULTS["SCHEDULER_HTTP_HOST"]}
    path = env_file if env_file is not None else (".env" if os.path.isfile(".env") else None)
    if path is not None and not all(n in os.environ for n in names):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror
            print(f"config error: --env-file: cannot read {path!r}: {why}", file=sys.stderr)
            return EX_CONFIG
        lines = "\n".join(_HTTP_LINE.findall(text))
        if "${" in lines:  # it may refer to other names in the file: python-dotenv reads it all
            found = dotenv_values(stream=io.StringIO(text), interpolate=True)
        else:
            found = dotenv_values(stream=io.StringIO(lines), interpolate=False)
        values.update({n: found[n] or "" for n in names if n in found})
    values.update({n: os.environ[n] for n in names if n in os.environ})
    port_text, host = (values["SCHEDULER_HTTP_PORT"] or "").strip(), (values["SCHEDULER_HTTP_HOST"] or "").strip()
    if not port_text.isdigit() or int(port_text) > 65535:
        print("config error: SCHEDULER_HTTP_PORT: expected a port number 0-65535", file=sys.stderr)
        return EX_CONFIG
    if not host:
        print("config error: SCHEDULER_HTTP_HOST: expected an address, got an empty value", file=sys.stderr)
        return EX_CONFIG
    port = int(port_text)
    if port == 0:
        print("healthcheck: SCHEDULER_HTTP_PORT is 0, so there is no endpoint to ask", file=sys.stderr)
        return EX_FAILURE
    host = "127.0.0.1" if host == "0.0.0.0" else "::1" if host == "::" else host
    connection = http.client.HTTPConnection(host, port, timeout=3.0)
    try:
        connection.request("GET", "/healthz")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        print(f"healthcheck: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EX_FAILURE
    finally:
        connection.close()
    if status != 200:
        print(f"healthcheck: /healthz answered {status}", file=sys.stderr)
    return EX_OK if status == 200 else EX_FAILURE


async def control(settings: config.Settings, command: str, args) -> int:
    """status, history, pause, resume, trigger: talk to the state store directly, never take the lease."""
    from ..control.cli import run_control
    from ..store.protocol import StoreForbidden, StoreUnavailable

    names = [j.name for j in settings.jobs]
    job = getattr(args, "job", None)
    if job is not None and job not in names:
        close = ", ".join(names)
        print(f"{command}: no job named {job!r}; configured jobs: {close}", file=sys.stderr)
        return EX_USAGE
    try:
        store = daemon.make_store(settings)
    except StoreUnavailable as exc:
        print(f"{command}: cannot open the state store: {exc}", file=sys.stderr)
        return EX_FAILURE
    try:
        await store.open()
        return await run_control(settings, store, command, args)
    except StoreUnavailable as exc:
        target = daemon.store_target(settings)
        what = "the state store refused the call" if isinstance(exc, StoreForbidden) else "cannot reach the state store"
        print(f"{command}: {what} ({target}): {exc}", file=sys.stderr)
        return EX_FAILURE
    finally:
        await store.close()
