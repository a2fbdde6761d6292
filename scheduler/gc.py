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
import time
from typing import Any
from collections.abc import Sequence

log = logging.getLogger("scheduler")

# KEYS: slots inflight trigger job_record history  ARGV: job, watermark as read ('' if none),
# the record's finished_at as read ('' if none). Deletes the job's watermark, record and
# history only if nothing changed since they were read and the job has nothing in flight or
# queued; returns 1 if it deleted, 0 if it left the job alone.
GC_JOB = """
local job = ARGV[1]
if (redis.call('HGET', KEYS[1], job) or '') ~= ARGV[2] then return 0 end
if (redis.call('HGET', KEYS[4], 'finished_at') or '') ~= ARGV[3] then return 0 end
local prefix = job .. '@'
for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
  if string.sub(field, 1, #prefix) == prefix then return 0 end
end
for _, raw in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  local ok, rec = pcall(cjson.decode, raw)
  if ok and type(rec) == 'table' and rec['job'] == job then return 0 end
end
redis.call('HDEL', KEYS[1], job)
redis.call('DEL', KEYS[4], KEYS[5])
return 1
"""


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None  # NaN is no time


async def _scan(r, pattern: str) -> list[str]:
    return sorted({key async for key in r.scan_iter(match=pattern, count=500)})


async def redis_gc(store, keep_jobs: Sequence[str], older_than_s: float, dry_run: bool = False) -> list[str]:
    """`state gc` on a RedisStore; see the module's text."""
    r, keep, before = store.redis, set(keep_jobs), time.time() - older_than_s
    marks = await r.hgetall(store.k_slots)
    inflight = await r.hkeys(store.k_inflight)
    queued = set()
    for raw in await r.lrange(store.k_trigger, 0, -1):
        try:
            queued.add(json.loads(raw)["job"])
        except (ValueError, KeyError, TypeError):
            continue
    busy = {f.split("@", 1)[0] for f in inflight} | queued
    records = {k[len(store.job_prefix):] for k in await _scan(r, _glob_escape(store.job_prefix) + "*")}
    histories = {k[len(store.history_prefix):] for k in await _scan(r, _glob_escape(store.history_prefix) + "*")}
    # A name with ':' is a key set aside (`...:quarantined:<ms>`), never a job: job names have none.
    known = {j for j in set(marks) | records | histories if ":" not in j}
    gc_job = r.register_script(GC_JOB)
    out: list[str] = []
    for job in sorted(known - keep - busy):
        rec = await r.hgetall(store.job_prefix + job) if job in records else {}
        times = [_number(marks.get(job)), *(_number(rec.get(f)) for f in ("finished_at", "first_seen_at", "last_success_at"))]
        if job in histories:
            head = await r.lindex(store.history_prefix + job, 0)
            try:
                times.append(_number(json.loads(head).get("finished_at")))
            except (ValueError, TypeError, AttributeError):
                pass
        last = max((t for t in times if t is not None), default=None)
        if last is not None and last >= before:
            continue
        items = ([f"watermark {job}"] * (job in marks) + [f"job record {job}"] * (job in records)
                 + [f"history {job}"] * (job in histories))
        if not dry_run:
            keys = [store.k_slots, store.k_inflight, store.k_trigger, store.job_prefix + job, store.history_prefix + job]
            done = await gc_job(keys=keys, args=[job, marks.get(job, ""), rec.get("finished_at", "")])
            if not done:
                log.info("state gc: kept, it changed while being read", extra={"job": job})
                continue
        for item in items:
            log.info("state gc: would delete" if dry_run else "state gc: deleted", extra={"item": item})
        out += items
    return out


async def gc(store, keep_jobs: Sequence[str], older_than_s: float, dry_run: bool = False) -> list[str]:
    if hasattr(store, "k_slots"):
        return await redis_gc(store, keep_jobs, older_than_s, dry_run)
    return await store.gc(keep_jobs, older_than_s, dry_run)


async def quarantine(store, purge: bool = False, dry_run: bool = False) -> list[dict]:
    """What was set aside as unreadable: one dict per record (where, what, and when known, why
    and when). With purge (and not dry_run), each is deleted and logged."""
    delete = purge and not dry_run
    if hasattr(store, "k_quarantine"):
        r, out = store.redis, []
        for name, raw in sorted((await r.hgetall(store.k_quarantine)).items()):
            out.append({"where": store.k_quarantine, "record": name, "size": len(raw)})
        pattern = _glob_escape("{" + store.namespace + "}:") + "*:quarantined:*"
        for key in await _scan(r, pattern):
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
            deleted = await gc(store, [j.name for j in settings.jobs], args.older_than, args.dry_run)
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

        found = _number(await store.redis.hget(store.k_meta, "format"))
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
