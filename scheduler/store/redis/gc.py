"""`state gc` and `state quarantine` on the Redis store (gc.py has what they delete and why):
the script that deletes one job's state if nothing changed since it was read, the scan that
finds the jobs, and the records set aside as unreadable."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from .keys import Keys
from .scripts import FORMAT

log = logging.getLogger("scheduler")

# KEYS: slots inflight trigger job_record history runs runs_at  ARGV: job, watermark as read ('' if none),
# the record's finished_at as read ('' if none). Deletes the job's watermark, record,
# history and ledger only if nothing changed since they were read and the job has nothing in flight or
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
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6] or KEYS[5], KEYS[7] or KEYS[5])
return 1
"""


def glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None  # NaN is no time


async def scan(r, pattern: str) -> list[str]:
    return sorted({key async for key in r.scan_iter(match=pattern, count=500)})


async def redis_gc(r: Any, keys: Keys, keep_jobs: Sequence[str], older_than_s: float,
                   dry_run: bool = False) -> list[str]:
    """`state gc` through the client `r`; see the module's text."""
    keep, before = set(keep_jobs), time.time() - older_than_s
    marks = await r.hgetall(keys.slots)
    inflight = await r.hkeys(keys.inflight)
    queued = set()
    for raw in await r.lrange(keys.trigger, 0, -1):
        try:
            queued.add(json.loads(raw)["job"])
        except (ValueError, KeyError, TypeError):
            continue
    busy = {f.split("@", 1)[0] for f in inflight} | queued
    records = {k[len(keys.job_prefix):] for k in await scan(r, glob_escape(keys.job_prefix) + "*")}
    histories = {k[len(keys.history_prefix):] for k in await scan(r, glob_escape(keys.history_prefix) + "*")}
    ledgers = {k[len(keys.runs_prefix):] for k in await scan(r, glob_escape(keys.runs_prefix) + "*")}
    ledgers |= {k[len(keys.runs_at_prefix):] for k in await scan(r, glob_escape(keys.runs_at_prefix) + "*")}
    # A name with ':' is a key set aside (`...:quarantined:<ms>`), never a job: job names have none.
    known = {j for j in set(marks) | records | histories | ledgers if ":" not in j}
    gc_job = r.register_script(GC_JOB)
    out: list[str] = []
    for job in sorted(known - keep - busy):
        rec = await r.hgetall(keys.job(job)) if job in records else {}
        times = [number(marks.get(job)), *(number(rec.get(f)) for f in ("finished_at", "first_seen_at", "last_success_at"))]
        if job in histories:
            head = await r.lindex(keys.history(job), 0)
            try:
                times.append(number(json.loads(head).get("finished_at")))
            except (ValueError, TypeError, AttributeError):
                pass
        if job in ledgers:
            try:  # the newest slot in the ledger
                times += [number(score) for _, score in await r.zrevrange(keys.runs_at(job), 0, 0, withscores=True)]
            except Exception:  # a key of the wrong type: no time from it
                pass
        last = max((t for t in times if t is not None), default=None)
        if last is not None and last >= before:
            continue
        items = ([f"watermark {job}"] * (job in marks) + [f"job record {job}"] * (job in records)
                 + [f"history {job}"] * (job in histories) + [f"ledger {job}"] * (job in ledgers))
        if not dry_run:
            names = [keys.slots, keys.inflight, keys.trigger, keys.job(job), keys.history(job), keys.runs(job),
                     keys.runs_at(job)]
            done = await gc_job(keys=names, args=[job, marks.get(job, ""), rec.get("finished_at", "")])
            if not done:
                log.info("state gc: kept, it changed while being read", extra={"job": job})
                continue
        for item in items:
            log.info("state gc: would delete" if dry_run else "state gc: deleted", extra={"item": item})
        out += items
    return out


async def redis_quarantined(r: Any, keys: Keys, delete: bool) -> list[dict]:
    """The records set aside: fields of the quarantine hash, and keys moved aside whole."""
    out: list[dict] = []
    for name, raw in sorted((await r.hgetall(keys.quarantine)).items()):
        out.append({"where": keys.quarantine, "record": name, "size": len(raw)})
    pattern = glob_escape(keys.prefix) + "*:quarantined:*"
    for key in await scan(r, pattern):
        out.append({"where": "key", "record": key, "set_aside_at_ms": int(key.rsplit(":", 1)[1] or 0)
                    if key.rsplit(":", 1)[1].isdigit() else None})
    if delete:
        for item in out:
            if item["where"] == "key":
                await r.delete(item["record"])
            else:
                await r.hdel(keys.quarantine, item["record"])
    return out


async def redis_format_problem(r: Any, keys: Keys) -> str | None:
    found = number(await r.hget(keys.meta, "format"))
    if found is not None and found > FORMAT:
        return f"the state has format {found:g}; this version reads format {FORMAT} and older"
    return None
