"""The command line's parser: the argparse types that make a bad value a usage error
(exit 2), and the subcommands by group: the daemon's (run, check, healthcheck, demo), the
reads (status, history, audit, runs, explain), the changes, audited (pause, resume,
trigger, retry, backfill, sources) and `state`."""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..schedule import slots as sched
from ..model import request_id_problem


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
    daemon_commands(sub, common)
    read_commands(sub, common)
    # Audited: the commands that change state take a reason for the audit log.
    said = argparse.ArgumentParser(add_help=False)
    said.add_argument("--reason", type=reason, metavar="TEXT", help="why, for the audit log (at most 500 characters)")
    change_commands(sub, common, said)
    state_commands(sub, common)
    return parser


def daemon_commands(sub, common: argparse.ArgumentParser) -> None:
    """run, check, healthcheck, demo."""
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


def read_commands(sub, common: argparse.ArgumentParser) -> None:
    """status, history, audit, runs, explain: they read the state, changing nothing."""
    status = sub.add_parser("status", parents=[common], help="leader, lease, and each job's last outcome and next slot")
    status.add_argument("--json", action="store_true", help="print JSON")
    history = sub.add_parser("history", parents=[common], help="a job's last finished fires, newest first")
    history.add_argument("job", help="the job's name")
    history.add_argument("--json", action="store_true", help="print JSON")
    audit = sub.add_parser("audit", parents=[common], help="who changed what through the control API and the CLI")
    audit.add_argument("--limit", type=count, default=50, metavar="N", help="entries to show, newest first (default 50)")
    audit.add_argument("--before", type=count, metavar="ID", help="only entries older than this id (the next page)")
    audit.add_argument("--json", action="store_true", help="print JSON")
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


def change_commands(sub, common: argparse.ArgumentParser, said: argparse.ArgumentParser) -> None:
    """pause, resume, trigger, retry, backfill, sources: each audited, with its --reason (`said`)."""
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


def state_commands(sub, common: argparse.ArgumentParser) -> None:
    """state gc, state quarantine: delete state on purpose."""
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
