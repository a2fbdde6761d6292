"""Command line: argument parsing, wiring, process lifecycle and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys

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


def reason(text: str) -> str:
    """argparse type of `--reason`: what the audit log takes, else a usage error (exit 2)."""
    from ..control.audit import reason_problem

    problem = reason_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def count(text: str) -> int:
    """argparse type of `check --count`: a usage error (exit 2) below 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def instant(text: str) -> int:
    """argparse type of `check --from`: an RFC 3339 instant, else a usage error (exit 2)."""
    try:
        return sched.parse("at " + text).slot  # type: ignore[union-attr]
    except sched.ScheduleError:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 instant such as 2026-12-01T03:00:00Z, got {text!r}") from None


def prog_name(argv0: str | None = None) -> str:
    """The name `--help` shows: how the process was started."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    return "cron-sidecar" if os.path.basename(argv0) == "cron-sidecar" else "python -m scheduler"


def build_parser() -> argparse.ArgumentParser:
    # --env-file is accepted before and after the command; SUPPRESS keeps the subcommand's
    # copy from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env-file", metavar="PATH", default=argparse.SUPPRESS,
                        help="dotenv file to read (default: ./.env if present)")
    parser = argparse.ArgumentParser(
        prog=prog_name(), parents=[common],
        description="cron-sidecar: fires scheduled HTTP calls, one leader among replicas.",
    )
    parser.add_argument("--version", action="version", version=f"cron-sidecar {__version__}")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", parents=[common], help="run the daemon (the default)")
    run.add_argument("--dry-run", action="store_true", help="do everything but the HTTP call, which is logged")
    check = sub.add_parser("check", parents=[common], help="validate the configuration and show the next slots")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.add_argument("--from", dest="from_", metavar="TIME", type=instant,
                       help="list slots strictly after this RFC 3339 instant")
    check.add_argument("--count", type=count, default=3, metavar="N", help="slots per job (default 3)")
    check.add_argument("--strict", action="store_true",
                       help="exit 78 when a job from SCHEDULER_JOBS_FILE/URL is rejected or a SCHEDULER_* name is "
                            "not one cron-sidecar reads (a source that cannot be read is exit 1 either way)")
    check.add_argument("--document", metavar="FILE",
                       help="check a document of jobs (JSON or YAML) as the sources would, changing nothing; "
                            "exit 78 when a job is rejected")
    sub.add_parser("healthcheck", parents=[common], help="exit 0 when the local /healthz answers")
    sub.add_parser("demo", help="see it work: the daemon firing two jobs at a built-in app (no setup)")
    status = sub.add_parser("status", parents=[common], help="leader, lease, and each job's last outcome and next slot")
    status.add_argument("--json", action="store_true", help="print JSON")
    history = sub.add_parser("history", parents=[common], help="a job's last finished fires, newest first")
    history.add_argument("job", help="the job's name")
    history.add_argument("--json", action="store_true", help="print JSON")
    audit = sub.add_parser("audit", parents=[common], help="who changed what through the control API and the CLI")
    audit.add_argument("--limit", type=count, default=50, metavar="N", help="entries to show, newest first (default 50)")
    audit.add_argument("--before", type=count, metavar="ID", help="only entries older than this id (the next page)")
    audit.add_argument("--json", action="store_true", help="print JSON")
    # Audited: the commands that change state take a reason for the audit log.
    said = argparse.ArgumentParser(add_help=False)
    said.add_argument("--reason", type=reason, metavar="TEXT", help="why, for the audit log (at most 500 characters)")
    runs = sub.add_parser("runs", parents=[common], help="a job's ledger: every slot and manual run, newest first")
    runs.add_argument("job", help="the job's name")
    runs.add_argument("--limit", help="entries per page (default 50)")
    runs.add_argument("--before", help="only slots before this RFC 3339 time")
    runs.add_argument("--after", help="only slots after this RFC 3339 time")
    runs.add_argument("--cursor", help="the next page, as the previous one named it")
    runs.add_argument("--json", action="store_true", help="print JSON")
    explain = sub.add_parser("explain", parents=[common], help="why a slot ran, or did not: one sentence")
    explain.add_argument("job", help="the job's name")
    explain.add_argument("slot", help="an RFC 3339 slot (2026-12-07T03:00:00Z) or manual:<id>")
    explain.add_argument("--json", action="store_true", help="print JSON")
    for name, what in (("pause", "stop firing a job (its slots are skipped)"), ("resume", "fire a paused job again")):
        steer = sub.add_parser(name, parents=[common, said], help=what)
        steer.add_argument("job", help="the job's name")
        steer.add_argument("--json", action="store_true", help="print what was done as JSON")
    trigger = sub.add_parser("trigger", parents=[common, said], help="ask the leader to fire a job now, once")
    trigger.add_argument("job", help="the job's name")
    trigger.add_argument("--json", action="store_true", help="print what was done as JSON")
    trigger.add_argument("--id", type=request_id, metavar="ID",
                         help="request id, 1-128 of A-Z a-z 0-9 . _ -; an id fires at most once (default: a new one)")
    retry = sub.add_parser("retry", parents=[common, said],
                           help="send a finished slot again under its own Idempotency-Key, as its next attempt")
    retry.add_argument("job", help="the job's name")
    retry.add_argument("slot", help="the slot, RFC 3339 (2026-12-01T03:00:00Z)")
    backfill = sub.add_parser("backfill", parents=[common, said],
                              help="send every slot of a range that has no ok run, oldest first, each under its own key")
    backfill.add_argument("job", help="the job's name")
    backfill.add_argument("start", metavar="FROM", help="first instant of the range, RFC 3339")
    backfill.add_argument("end", metavar="TO", help="last instant of the range, RFC 3339 (inclusive)")
    for redo in (retry, backfill):
        redo.add_argument("--json", action="store_true", help="print what was done as JSON")
    sources = sub.add_parser("sources", parents=[common], help="steer the job sources of every replica")
    sources_sub = sources.add_subparsers(dest="sources_command", required=True)
    sources_sub.add_parser("refresh", parents=[common, said], help="every replica reads SCHEDULER_JOBS_FILE/URL now")
    sources_sub.add_parser("accept", parents=[common, said],
                           help="apply the reads held by the guard (SCHEDULER_JOBS_MAX_DROP) on every replica")
    state = sub.add_parser("state", parents=[common], help="delete state on purpose: removed jobs, records set aside")
    state_sub = state.add_subparsers(dest="state_command", required=True)
    from .state import older_than

    state_gc = state_sub.add_parser("gc", parents=[common], help="delete the state of jobs no longer configured")
    state_gc.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    state_gc.add_argument("--older-than", type=older_than, default=86400.0, metavar="DURATION",
                          help="only jobs whose last activity is older than this (default 1d)")
    state_gc.add_argument("--json", action="store_true", help="print what was (or would be) deleted as JSON")
    state_q = state_sub.add_parser("quarantine", parents=[common], help="list the records set aside as unreadable")
    state_q.add_argument("--purge", action="store_true", help="delete them")
    state_q.add_argument("--dry-run", action="store_true", help="with --purge: only list what would be deleted")
    state_q.add_argument("--json", action="store_true", help="one JSON object a line")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`check | head -1`): end quietly. Python flushes stdout again at
        # exit, so point it at /dev/null first or that flush prints a traceback of its own.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE


def _main(argv: list[str] | None) -> int:
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
        from .check import check

        return check(settings, args)
    if command == "state":
        from .state import run_state

        return asyncio.run(run_state(settings, args))
    if command == "sources":
        return asyncio.run(control(settings, command, args))
    if command == "audit":
        return asyncio.run(control(settings, command, args))
    if command in ("status", "history", "runs", "explain", "pause", "resume", "trigger", "retry", "backfill"):
        from ..sources.catalog import read_once

        # The jobs of SCHEDULER_JOBS_FILE/URL are jobs too: read them as the daemon does.
        return asyncio.run(control(read_once(settings)[0], command, args))
    from ..observe import setup_logging

    setup_logging(settings.log_format, settings.log_level, config.secret_values(settings))
    for line in settings.warnings:  # once, at start: the daemon reads the environment once
        logging.getLogger("scheduler").warning(line, extra={"variable": line.partition(":")[0].split(" ")[0]})
    try:
        with daemon.event_loop_runner() as runner:
            return runner.run(daemon.run(settings, dry_run=getattr(args, "dry_run", False)))
    except KeyboardInterrupt:
        return EX_OK


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
    """status, history, runs, explain, audit, pause, resume, trigger, retry, backfill, sources: talk to the
    state store directly, never take the lease."""
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
