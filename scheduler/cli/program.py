"""Command line: the command chosen, the configuration read, and the daemon or a command
run with its exit code. The parser is in parser.py, the daemon in daemon.py."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from ..config import loader as config
from . import daemon
from .exits import EX_CONFIG, EX_FAILURE, EX_OK, EX_USAGE
from .healthcheck import healthcheck
from .parser import build_parser

__all__ = ["EX_CONFIG", "EX_FAILURE", "EX_OK", "EX_USAGE", "build_parser", "healthcheck", "main"]


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
