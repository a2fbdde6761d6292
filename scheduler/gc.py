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

from .redis_gc import glob_escape, number, scan

log = logging.getLogger("scheduler")


async def quarantine(store, purge: bool = False, dry_run: bool = False) -> list[dict]:
    """What was set aside as unreadable: one dict per record (where, what, and when known, why
    and when). With purge (and not dry_run), each is deleted and logged."""
    delete = purge and not dry_run
    if hasattr(store, "k_quarantine"):
        r, out = store.redis, []
        for name, raw in sorted((await r.hgetall(store.k_quarantine)).items()):
            out.append({"where": store.k_quarantine, "record": name, "size": len(raw)})
        pattern = glob_escape("{" + store.namespace + "}:") + "*:quarantined:*"
        for key in await scan(r, pattern):
            out.append({"where": "key", "record": key, "set_aside_at_ms": int(key.rsplit(":", 1)[1] or 0)
                        if key.rsplit(":", 1)[1].isdigit() else None})
        if delete:
            for item in out:
                if item["where"] == "key":
                    await r.delete(item["record"])
                else:
                    await r.hdel(store.k_quarantine, item["record"])
    else:
        def step(db, bad):
            rows = db.execute("SELECT seq, source, key, reason, at FROM quarantine ORDER BY seq").fetchall()
            if delete:
                db.execute("DELETE FROM quarantine WHERE seq <= ?", (rows[-1][0],)) if rows else None
            bad.clear()
            return [{"where": "quarantine", "record": f"{src} {key}", "reason": reason, "at": at, "seq": seq}
                    for seq, src, key, reason, at in rows]

        out = await store._run(store._write, step)
    if purge:
        for item in out:
            log.info("state quarantine: would delete" if dry_run else "state quarantine: deleted",
                     extra={"item": item["record"]})
    return out


def older_than(text: str) -> float:
    """argparse type of `--older-than`: a duration as the configuration writes it (1d, 12h)."""
    import argparse

    from .schedule import ScheduleError, parse_duration_s

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
    from .store import StoreUnavailable

    try:
        store = daemon.make_store(settings)
    except StoreUnavailable as exc:
        print(f"state: cannot open the state store: {exc}", file=sys.stderr)
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    try:
        problem = await _format_problem(store)
        if problem:
            print(f"state: {problem}; nothing was deleted", file=sys.stderr)
            return 1
        if args.state_command == "gc":
            deleted = await store.gc([j.name for j in settings.jobs], args.older_than, args.dry_run)
            for line in deleted:
                print(f"{verb} {line}")
            print(f"state gc: {verb} {len(deleted)} item(s) of jobs no longer configured")
        else:
            found = await quarantine(store, purge=args.purge, dry_run=args.dry_run)
            for item in found:
                print(json.dumps(item) if args.json else f"{item['record']}  ({item.get('reason') or item['where']})")
            tail = f", {verb} {len(found)}" if args.purge else ""
            print(f"state quarantine: {len(found)} record(s) set aside{tail}")
        return 0
    except (StoreUnavailable, OSError, *_redis_errors()) as exc:  # type: ignore[misc]  # a tuple of classes built at run time
        print(f"state: cannot reach the state store ({daemon.store_target(settings)}): {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def _format_problem(store) -> str | None:
    """A store newer than this version reads is never cleaned up by it."""
    if hasattr(store, "k_meta"):
        from .redis_scripts import FORMAT

        found = number(await store.redis.hget(store.k_meta, "format"))
        if found is not None and found > FORMAT:
            return f"the state has format {found:g}; this version reads format {FORMAT} and older"
        return None
    await store._run(store._read, lambda db, bad: None)
    return store.format_problem


def _redis_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover
        return ()
    return (RedisError,)
