"""What the standalone store does inside one SQLite transaction: the claim rules (the same
as the Redis claim script), outcomes, control commands, reads, and the cleanup of removed
jobs. Each function gets the connection, the quarantine and a list to note unreadable rows
in; it runs on the store's worker thread, never on the event loop.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import defaultdict
from collections.abc import Sequence

from ...model import (
    CLAIMED, EXPIRE, EXPIRED, FIRE, HELD, INIT, PAUSED, REDELIVER, REDRIVE, SKIP, STALE, TRIGGER, Claim, JobHealth, Outcome,
    State, TriggerRequest,
)
from . import redrives
from . import ledger
from .ledger import Retention
from . import holds
from .records import Bad, Quarantine

NO_LEDGER = Retention()

log = logging.getLogger("scheduler.sqlite")

Db = sqlite3.Connection


def read_state(db: Db, q: Quarantine, bad: list[Bad], jobs: Sequence[str]) -> tuple[State, dict[str, dict]]:
    """The state a leader starts from, and every readable job record."""
    records = dict(q.rows(db, "jobs", bad))
    state = State(
        watermarks=dict(q.rows(db, "slots", bad)),
        inflight=holds.attach(db, q.rows(db, "inflight", bad)),
        paused=set(q.rows(db, "paused", bad)),
        health={job: _health(records[job]) for job in jobs if job in records},
    )
    return state, records


def _health(rec: dict) -> JobHealth:
    ok, seen = rec.get("last_success_at"), rec.get("first_seen_at")
    return JobHealth(
        None if ok is None else float(ok), rec.get("consecutive_failures") or 0, None if seen is None else float(seen),
    )


def status(db: Db, q: Quarantine, bad: list[Bad], jobs: Sequence[str], leader_alive: bool) -> dict:
    meta = dict(q.rows(db, "meta", bad))
    state, records = read_state(db, q, bad, jobs)
    return {
        "leader": meta.get("leader") if leader_alive else None,
        "lease_left_s": None,  # a file lock does not expire; it dies with its holder
        "epoch": meta.get("epoch"),
        "watermarks": state.watermarks,
        "inflight": state.inflight,
        "paused": state.paused,
        "pending_triggers": [
            {"id": t.id, "job": t.job, "requested_at": t.requested_at}
            for t in q.rows(db, "trigger", bad, "ORDER BY seq")
        ],
        "jobs": {job: records.get(job, {}) for job in jobs},
    }


def pending_triggers(db: Db, q: Quarantine, bad: list[Bad]) -> list[TriggerRequest]:
    return q.rows(db, "trigger", bad, "ORDER BY seq")


def take_lead(db: Db, q: Quarantine, bad: list[Bad], replica_id: str, lock: str, now: float) -> tuple[int, bool]:
    """Record this replica, and the lock file it holds, as the leader under the next epoch.
    Returns the epoch and whether the last leader may still be running: it did not release
    the lease, and the lock file it held is not this one (deleted or replaced under it, so
    its lock no longer excluded anyone)."""
    ledger.ensure(db)
    meta = dict(q.rows(db, "meta", bad))
    q.move(db, bad)
    # A new (or unreadable) counter starts from the clock in ms, as the Redis store's does,
    # so tokens keep growing even if the file is lost.
    epoch = meta.get("epoch", int(now * 1000)) + 1
    last = meta.get("leader")
    alive = last is not None and last != replica_id and meta.get("lock") not in (None, lock)
    db.execute("INSERT OR REPLACE INTO meta VALUES ('epoch', ?)", (str(epoch),))
    db.execute("INSERT OR REPLACE INTO meta VALUES ('leader', ?)", (replica_id,))
    db.execute("INSERT OR REPLACE INTO meta VALUES ('lock', ?)", (lock,))
    ledger.note_leadership(db, epoch, replica_id, now)
    return epoch, alive


def leads(db: Db, replica_id: str, epoch: int) -> bool:
    """Whether the file still names this replica the leader under this epoch: the check
    every claim makes first, in its own transaction, as the Redis claim script does."""
    found = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('leader', 'epoch')").fetchall())
    return found.get("leader") == replica_id and found.get("epoch") == str(epoch)


def _watermark(db: Db, q: Quarantine, job: str) -> int | None:
    bad: list[Bad] = []
    found = q.rows(db, "slots", bad, "WHERE job = ?", (job,))
    q.move(db, bad)  # an unreadable watermark counts as none: the claim writes a good one
    return found[0][1] if found else None


def _record(db: Db, q: Quarantine, job: str) -> dict:
    bad: list[Bad] = []
    found = q.rows(db, "jobs", bad, "WHERE name = ?", (job,))
    q.move(db, bad)
    return found[0][1] if found else {}


def _save_record(db: Db, job: str, rec: dict) -> None:
    db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?)", (job, json.dumps(rec)))


def claim_one(db: Db, q: Quarantine, epoch: int, c: Claim, now: float, keep: Retention = NO_LEDGER, replica: str = "") -> int:
    """The same rules as the Redis claim script; `keep`: the ledger's retention; `replica`: the
    claiming one (a fire it holds itself is not held from it)."""
    record = (c.field, c.job, c.slot, epoch, c.attempt, c.trigger, now)
    if c.kind == REDELIVER:
        if holds.blocks(db, c.field, replica, now):
            return HELD  # its owner, which handed the lease over, still runs it
        cur = db.execute("UPDATE inflight SET epoch = ?, attempt = ?, claimed_at = ? WHERE field = ?",
                         (epoch, c.attempt, now, c.field))
        return CLAIMED if cur.rowcount == 1 else STALE
    if c.kind == REDRIVE:
        return redrives.claim(db, c, epoch, now)
    if c.kind == TRIGGER:
        db.execute("DELETE FROM trigger WHERE id = ?", (c.trigger,))
        if db.execute("INSERT OR IGNORE INTO triggered VALUES (?, ?)", (c.trigger, now)).rowcount != 1:
            return STALE
        db.execute("INSERT OR REPLACE INTO triggered_job VALUES (?, ?)", (c.trigger, c.job))
        db.execute("INSERT OR REPLACE INTO inflight VALUES (?, ?, ?, ?, ?, ?, ?)", record)
        return CLAIMED
    mark = _watermark(db, q, c.job)
    if c.kind == INIT:
        rec = _record(db, q, c.job)
        if rec.get("first_seen_at") is None:
            rec["first_seen_at"] = now
            _save_record(db, c.job, rec)
        if mark is not None:
            return STALE
        db.execute("INSERT OR REPLACE INTO slots VALUES (?, ?)", (c.job, c.slot))
        return CLAIMED
    if c.kind == EXPIRE:
        # Only at a first sighting, as INIT; a pause does not matter, since nothing fires.
        if mark is not None:
            return STALE
        db.execute("INSERT OR REPLACE INTO slots VALUES (?, ?)", (c.job, c.slot))
        _record_expired(db, q, c, epoch, now, keep)
        return CLAIMED
    if mark is not None and c.slot <= mark:
        if c.kind == FIRE and c.slot == mark:
            # A retry of a claim whose reply was lost: it is ours if recorded under our epoch.
            mine = db.execute("SELECT 1 FROM inflight WHERE field = ? AND epoch = ?", (c.field, epoch)).fetchone()
            return CLAIMED if mine else STALE
        return CLAIMED if c.kind == SKIP and c.slot == mark else STALE
    db.execute("INSERT OR REPLACE INTO slots VALUES (?, ?)", (c.job, c.slot))
    if db.execute("SELECT 1 FROM paused WHERE name = ?", (c.job,)).fetchone():
        ledger.record_passed(db, c, epoch, "skipped", "paused", keep, now)
        return PAUSED
    if c.kind == FIRE:
        db.execute("INSERT OR REPLACE INTO inflight VALUES (?, ?, ?, ?, ?, ?, ?)", record)
    else:
        reason = c.reason or "overlap"
        ledger.record_passed(db, c, epoch, "dropped" if reason == "missed" else "skipped", reason, keep, now)
    return CLAIMED


def finish_one(db: Db, q: Quarantine, claim: Claim, epoch: int | None, outcome: Outcome,
               lateness_s: float | None, keep: Retention = NO_LEDGER) -> int:
    """Drop the fire from the in-flight set while it is still this epoch's, and record its
    outcome unless a newer epoch already recorded one. `epoch` None: unfenced (a
    (Claim, Outcome) pair). Returns the job's failure streak as it then stands."""
    rec = _record(db, q, claim.job)
    if epoch is None:
        db.execute("DELETE FROM inflight WHERE field = ?", (claim.field,))
    elif db.execute("DELETE FROM inflight WHERE field = ? AND epoch = ?", (claim.field, epoch)).rowcount == 0:
        # Not in flight under this epoch: a newer leader redelivers it (its outcome is that
        # leader's to write), or it finished already; as the Redis finish script decides.
        stored = rec.get("epoch")
        running = db.execute("SELECT 1 FROM inflight WHERE field = ?", (claim.field,)).fetchone()
        if running or (stored is not None and stored > epoch):
            return rec.get("consecutive_failures") or 0
    if outcome.status == "ok":
        rec["consecutive_failures"] = 0
        rec["last_success_at"] = outcome.finished_at
    else:
        rec["consecutive_failures"] = (rec.get("consecutive_failures") or 0) + 1
    rec.update(
        status=outcome.status, slot=claim.slot, finished_at=outcome.finished_at,
        duration_ms=int(outcome.duration_s * 1000), http_status=outcome.http_status, error=outcome.error,
        attempts=outcome.attempts, excerpt=outcome.excerpt,
        lateness_ms=None if lateness_s is None else int(lateness_s * 1000),
    )
    if epoch is not None:
        rec["epoch"] = epoch
    _save_record(db, claim.job, rec)
    ledger.record_outcome(db, claim, epoch, outcome, lateness_s, keep, time.time())
    return rec["consecutive_failures"]


def _record_expired(db: Db, q: Quarantine, c: Claim, epoch: int, now: float, keep: Retention) -> None:
    """An expired slot's outcome, where finish_one puts one, without counting a failure."""
    outcome = Outcome(EXPIRED, 0, 0.0, now, error=c.reason or None)
    rec = _record(db, q, c.job)
    rec.update(status=EXPIRED, slot=c.slot, finished_at=now, duration_ms=0, http_status=None, error=outcome.error,
               attempts=0, excerpt=None, lateness_ms=None, epoch=epoch)
    _save_record(db, c.job, rec)
    ledger.record_outcome(db, c, epoch, outcome, None, keep, now)


def request_trigger(db: Db, q: Quarantine, bad: list[Bad], request: TriggerRequest) -> TriggerRequest | None:
    if db.execute("SELECT 1 FROM triggered WHERE id = ?", (request.id,)).fetchone():
        return TriggerRequest(request.id, request.job, 0)
    joined = q.rows(db, "trigger", bad, "WHERE job = ? ORDER BY seq", (request.job,)) or [
        TriggerRequest(f.trigger or "", f.job, f.slot)
        for f in q.rows(db, "inflight", bad, "WHERE job = ? AND trigger IS NOT NULL", (request.job,))
    ]
    if joined:
        return joined[0]
    db.execute("INSERT INTO trigger (id, job, requested_at) VALUES (?, ?, ?)",
               (request.id, request.job, request.requested_at))
    return None


def drop_pauses(db: Db, jobs: Sequence[str]) -> int:
    return sum(db.execute("DELETE FROM paused WHERE name = ?", (job,)).rowcount for job in jobs)


def set_paused(db: Db, job: str, paused: bool) -> bool:
    if paused:
        return db.execute("INSERT OR IGNORE INTO paused VALUES (?)", (job,)).rowcount == 1
    return db.execute("DELETE FROM paused WHERE name = ?", (job,)).rowcount == 1


def gc(db: Db, q: Quarantine, bad: list[Bad], keep: set[str], before: float, dry_run: bool) -> list[str]:
    """Delete the watermark, job record and spent trigger ids of each job not in `keep`
    whose last activity is older than `before`. A job with a fire in flight or a queued
    trigger keeps its state. A dry run moves no unreadable row aside either."""
    marks = dict(q.rows(db, "slots", bad))
    records = dict(q.rows(db, "jobs", bad))
    spent_at = dict(q.rows(db, "triggered", bad))
    spent: dict[str, list[str]] = defaultdict(list)
    for request_id, job in q.rows(db, "triggered_job", bad):
        spent[job].append(request_id)
    busy = {f.job for f in q.rows(db, "inflight", bad)} | {t.job for t in q.rows(db, "trigger", bad)}
    out = []
    ledgers = ledger.newest_slots(db)
    for job in sorted((set(marks) | set(records) | set(spent) | set(ledgers)) - keep - busy):
        rec = records.get(job, {})
        times = [marks.get(job), rec.get("finished_at"), rec.get("first_seen_at"), rec.get("last_success_at"),
                 *(spent_at.get(i) for i in spent[job]), ledgers.get(job)]
        last = max((t for t in times if t is not None), default=None)
        if last is None or last >= before:
            continue
        deleted = [f"watermark {job}"] * (job in marks) + [f"job record {job}"] * (job in records)
        deleted += [f"triggered id {i} ({job})" for i in spent[job]] + [f"ledger {job}"] * (job in ledgers)
        for item in deleted:
            log.info("state gc: would delete" if dry_run else "state gc: deleted", extra={"item": item})
        out += deleted
        if not dry_run:
            db.execute("DELETE FROM slots WHERE job = ?", (job,))
            db.execute("DELETE FROM jobs WHERE name = ?", (job,))
            db.execute("DELETE FROM history WHERE job = ?", (job,))
            if job in ledgers:
                db.execute("DELETE FROM runs WHERE job = ?", (job,))
            for request_id in spent[job]:
                db.execute("DELETE FROM triggered WHERE id = ?", (request_id,))
                db.execute("DELETE FROM triggered_job WHERE id = ?", (request_id,))
    if dry_run:
        bad.clear()
    return out


def quarantined(db: Db, delete: bool) -> list[dict]:
    """The rows set aside as unreadable, oldest first; with delete, they are deleted too."""
    rows = db.execute("SELECT seq, source, key, reason, at FROM quarantine ORDER BY seq").fetchall()
    if delete and rows:
        db.execute("DELETE FROM quarantine WHERE seq <= ?", (rows[-1][0],))
    return [{"where": "quarantine", "record": f"{src} {key}", "reason": reason, "at": at, "seq": seq}
            for seq, src, key, reason, at in rows]
