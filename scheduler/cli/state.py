"""Deleting state on purpose: the state of jobs no longer configured, and records set aside.

`state gc` deletes, for each job that is not configured, has no fire in flight and no manual
fire queued, and whose last activity is older than the window: its watermark, its last
outcome, its history, and (SQLite, where spent trigger ids are kept per job) its spent
trigger ids. A pause is never deleted, nor anything of a configured job. On Redis the
deletion of each job is one script that checks again, at the moment of deleting, that
nothing was claimed for it since it was read, so a replica still running an older
configuration can go on firing the job meanwhile.

`state quarantine` lists the records set aside as unreadable, and with purge deletes them.
Every item deleted (or, in a dry run, that would be) is logged and returned.
"""

from __future__ import annotations

import json
import logging

log = logging.getLogger("scheduler")


async def quarantine(store, purge: bool = False, dry_run: bool = False) -> list[dict]:
    """What was set aside as unreadable: one dict per record (where, what, and when known, why
    and when). With purge (and not dry_run), each is deleted and logged."""
    out = await store.quarantined(delete=purge and not dry_run)
    if purge:
        for item in out:
            log.info("state quarantine: would delete" if dry_run else "state quarantine: deleted",
                     extra={"item": item["record"]})
    return out


def older_than(text: str) -> float:
    """argparse type of `--older-than`: a duration as the configuration writes it (1d, 12h)."""
    import argparse

    from ..schedule.slots import ScheduleError, parse_duration_s

    try:
        seconds = parse_duration_s(text)
    except (ScheduleError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"expected a duration such as 1d, 12h or 90m ({exc})") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError("expected a duration of 0 or more")
    return seconds


async def run_state(settings, args) -> int:
    """`state gc` and `state quarantine`: print what was (or would be) deleted or set aside."""
    import sys

    from . import daemon
    from ..store.protocol import StoreForbidden, StoreUnavailable

    try:
        store = daemon.make_store(settings)
    except StoreUnavailable as exc:
        print(f"state: cannot open the state store: {exc}", file=sys.stderr)
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    try:
        await store.open()
        problem = await store.check_format()  # a state newer than this version reads is never cleaned up by it
        if problem:
            print(f"state: {problem}; nothing was deleted", file=sys.stderr)
            return 1
        if args.state_command == "gc":
            deleted = await store.gc([j.name for j in settings.jobs], args.older_than, args.dry_run)
            if args.json:
                print(json.dumps({"dry_run": args.dry_run, "older_than_s": args.older_than, "deleted": deleted}))
                return 0
            for line in deleted:
                print(f"{verb} {line}")
            print(f"state gc: {verb} {len(deleted)} item(s) of jobs no longer configured")
        else:
            found = await quarantine(store, purge=args.purge, dry_run=args.dry_run)
            for item in found:
                print(json.dumps(item) if args.json else f"{item['record']}  ({item.get('reason') or item['where']})")
            tail = f", {verb} {len(found)}" if args.purge else ""
            # Under --json stdout is JSON lines only: the count is a note, on stderr.
            print(f"state quarantine: {len(found)} record(s) set aside{tail}", file=sys.stderr if args.json else sys.stdout)
        return 0
    except (StoreUnavailable, OSError, *_redis_errors()) as exc:  # type: ignore[misc]  # a tuple of classes built at run time
        what = "the state store refused the call" if isinstance(exc, StoreForbidden) else "cannot reach the state store"
        print(f"state: {what} ({daemon.store_target(settings)}): {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()


def _redis_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover
        return ()
    return (RedisError,)
