"""The ledger's views (SPEC 8): a job's runs by page with the pending and running ones merged
in, one run by slot or manual id, and `explain`: one sentence for any slot. The CLI and the
control API render what these return; they read the store and never take the lease."""

from __future__ import annotations

import time
from datetime import datetime

from ..config.loader import JobSpec, Settings
from ..model import request_id_problem
from ..schedule import slots as sched
from ..store.ledger import MANUAL, RUNS_LIMIT, RUNS_MAX, encode_cursor, entry_id
from ..store.protocol import Store
from .explain import Facts, explain_slot
from .operations import BadRequest, find_job, iso

EARLIER = 20  # entries before a slot that explain looks through for the fire it overlapped


def parse_time(text: str, what: str) -> int:
    """An RFC 3339 instant (`2026-12-07T03:00:00Z`) in whole Unix seconds; BadRequest otherwise."""
    try:
        # A '+' of an offset in a query string arrives as a space.
        dt = datetime.fromisoformat(text.strip().replace(" ", "+").replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        dt = None
    if dt is None or dt.tzinfo is None or not 0 <= dt.timestamp() <= sched.MAX_SLOT:
        raise BadRequest(f"{what}: expected an RFC 3339 time with its offset, like 2026-12-07T03:00:00Z; got {text[:60]!r}")
    return int(dt.timestamp())


def parse_run_id(text: str) -> tuple[int | None, str]:
    """A run's name as the API and CLI take it (an RFC 3339 slot or `manual:<id>`): its slot
    (None for a manual run) and the store's entry id."""
    if text.startswith(MANUAL):
        problem = request_id_problem(text[len(MANUAL):])
        if problem is not None:
            raise BadRequest(problem)
        return None, text
    slot = parse_time(text, "slot")
    return slot, str(slot)


def parse_limit(text: str | None) -> int:
    if text is None or text == "":
        return RUNS_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= RUNS_MAX:
        raise BadRequest(f"limit: expected a whole number from 1 to {RUNS_MAX}; got {text[:20]!r}")
    return int(text)


PAGE_RUNS = 20  # a job's ledger entries on the status page


def readable(entry: dict) -> dict:
    """A stored or live entry as the API shows it: `id` and `slot` in RFC 3339 (or
    `manual:<id>`), `fate` named, times in RFC 3339."""
    out = dict(entry)
    slot = entry["slot"]
    out["id"] = MANUAL + entry["trigger"] if entry.get("trigger") else sched.format_slot(slot)
    out["slot"] = sched.format_slot(slot)
    out["fate"] = entry.get("outcome")
    if out["fate"] == "cancelled":  # CONCURRENCY=replace cancelled it for a newer slot
        out.update(fate="skipped", reason=entry.get("reason") or "replaced", policy=entry.get("policy") or "replace")
    for key in ("finished_at", "claimed_at", "requested_at"):
        if isinstance(entry.get(key), (int, float)):
            out[key] = iso(entry[key])
    return out


async def recent(store: Store, job: str, limit: int = PAGE_RUNS) -> list[dict]:
    """The job's newest ledger entries as the API shows them (skipped and dropped slots too),
    for the page: one read of the ledger, without the live entries' status read per job."""
    entries, _ = await store.runs(job, limit=limit)
    return [readable(e) for e in entries]


async def _live(store: Store, job: str) -> tuple[list[dict], dict]:
    """The job's pending and running entries from the live state (nothing written for
    them), newest first, and the status read they came from."""
    info = await store.status([job])
    live = [{"id": entry_id(f.slot, f.trigger), "slot": f.slot, "trigger": f.trigger, "outcome": "running", "attempts": f.attempt,
             "fencing_token": f.epoch} for f in info["inflight"] if f.job == job]
    live += [{"id": MANUAL + t["id"], "slot": int(t["requested_at"]), "trigger": t["id"], "outcome": "pending", "attempts": 0,
              "requested_at": t["requested_at"]} for t in info["pending_triggers"] if t["job"] == job]
    live.sort(key=lambda e: (e["slot"], e["id"]), reverse=True)
    return live, info


async def runs_view(settings: Settings, store: Store, job: str, before: str | None = None, after: str | None = None,
                    limit: str | None = None, cursor: str | None = None) -> dict:
    """`GET /api/v1/jobs/<name>/runs`: newest first, by page; the first page leads with what
    is pending and running now."""
    find_job(settings, job)
    lo = parse_time(after, "after") if after else None
    hi = parse_time(before, "before") if before else None
    count = parse_limit(limit)
    try:
        entries, more = await store.runs(job, hi, lo, count, cursor or None)
    except ValueError as exc:
        raise BadRequest(f"cursor: {exc}") from None
    if not cursor:
        # The first page holds the live entries too, in their place, still `count` long.
        live, _ = await _live(store, job)
        live = [e for e in live if (hi is None or e["slot"] < hi) and (lo is None or e["slot"] > lo)]
        ids = {e["id"] for e in live}
        merged = sorted(live + [e for e in entries if e["id"] not in ids], key=lambda e: (e["slot"], e["id"]),
                        reverse=True)
        if len(merged) > count:
            more = encode_cursor(merged[count - 1]["slot"], merged[count - 1]["id"])
        entries = merged[:count]
    return {"job": job, "runs": [readable(e) for e in entries], "next_cursor": more}


async def run_view(settings: Settings, store: Store, job: str, name: str, now: float | None = None) -> dict:
    """`GET /api/v1/jobs/<name>/runs/<slot | manual:id>`: the run, live or from the ledger,
    with the sentence that explains it (for a slot that never ran, only that)."""
    spec = find_job(settings, job)
    slot, run_id = parse_run_id(name)
    facts = await gather(settings, store, spec, slot, run_id)
    sentence = explain_slot(facts, time.time() if now is None else now)
    if facts.entry is None:
        shown = {"id": name if slot is None else sched.format_slot(slot), "fate": None}
        if slot is not None:
            shown["slot"] = sched.format_slot(slot)
    else:
        shown = readable(facts.entry)
    return {"job": job, **shown, "explanation": sentence}


async def explain(settings: Settings, store: Store, job: str, name: str, now: float | None = None) -> str:
    """`explain JOB SLOT`: one sentence for any slot or manual run."""
    return (await run_view(settings, store, job, name, now))["explanation"]


async def gather(settings: Settings, store: Store, job: JobSpec, slot: int | None, run_id: str) -> Facts:
    """What explain needs, read from the store: the entry (live first), the job's record and
    watermark, the runs just before the slot and the log of leaderships."""
    live, info = await _live(store, job.name)
    entry = next((e for e in live if e["id"] == run_id), None)
    if entry is None:
        entry = await store.run(job.name, run_id)
    earlier: list[dict] = []
    if slot is not None:  # what ran before the slot, the fire still running included
        stored, _ = await store.runs(job.name, before=slot, limit=EARLIER)
        earlier = sorted([e for e in live if e["slot"] < slot] + stored, key=lambda e: (e["slot"], e["id"]),
                         reverse=True)
    record = info["jobs"].get(job.name) or {}
    return Facts(
        job=job, slot=slot, entry=entry, earlier=earlier, leaderships=await store.leaderships(),
        watermark=info["watermarks"].get(job.name), paused=job.name in info["paused"],
        first_seen_at=record.get("first_seen_at"), keep=settings.history, age_s=settings.history_age_s,
    )
