"""The standalone store's ledger (SPEC 8) and its log of leaderships, in tables of their own.

`runs` holds one row per ledger entry, keyed by (job, id) so a slot written again replaces
its entry, with an index by (job, slot, id) for pages and for trimming the oldest end. The
entry is the same JSON object the Redis store keeps. `leaderships` holds the last
acquisitions of the lease, for explain.

Both tables are created when the file is opened, without raising the format version: a
release before them never reads them (COMPATIBILITY.md: tables only a newer release adds).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from ..ledger import decode_cursor, entry_id, page, read_entry
from ...model import Claim, Outcome

Db = sqlite3.Connection
LEADERSHIPS_KEPT = 100  # as the Redis store's list

TABLES = (
    """CREATE TABLE IF NOT EXISTS runs (
      job TEXT NOT NULL, id TEXT NOT NULL, slot INTEGER NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (job, id))""",
    "CREATE INDEX IF NOT EXISTS runs_slot ON runs (job, slot, id)",
    """CREATE TABLE IF NOT EXISTS leaderships (
      epoch INTEGER PRIMARY KEY, replica TEXT NOT NULL, acquired_at INTEGER NOT NULL, previous TEXT,
      previous_seen_at INTEGER, seen_at INTEGER)""",
)


@dataclass(frozen=True)
class Retention:
    keep: int = 0  # entries per job (SCHEDULER_HISTORY); 0: no ledger
    age_s: float | None = None  # SCHEDULER_HISTORY_AGE; None: no age bound


def ensure(db: Db) -> None:
    for statement in TABLES:
        db.execute(statement)


def write(db: Db, job: str, run_id: str, slot: int, entry: dict, retention: Retention, now: float) -> None:
    """Put the entry in (replacing one of the same id), then trim the job's oldest end: past
    `keep` entries, and slots older than the age bound (both through the slot index)."""
    if retention.keep <= 0:
        return
    db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)", (job, run_id, slot, json.dumps(entry)))
    if retention.age_s is not None:
        # Never the entry just written (an `at` job's expiry, an old slot sent again): it stays
        # until the job's next write, as in the Redis store.
        db.execute("DELETE FROM runs WHERE job = ? AND slot < ? AND id != ?", (job, int(now - retention.age_s), run_id))
    edge = db.execute("SELECT slot, id FROM runs WHERE job = ? ORDER BY slot DESC, id DESC LIMIT 1 OFFSET ?",
                      (job, retention.keep)).fetchone()
    if edge is not None:
        db.execute("DELETE FROM runs WHERE job = ? AND (slot, id) <= (?, ?)", (job, *edge))


def outcome_entry(claim: Claim, epoch: int | None, o: Outcome, lateness_s: float | None) -> dict:
    return {
        "slot": claim.slot, "trigger": claim.trigger, "attempts": o.attempts, "outcome": o.status,
        "http_status": o.http_status, "duration_ms": int(o.duration_s * 1000),
        "lateness_ms": None if lateness_s is None else round(lateness_s * 1000, 1),
        "finished_at": round(o.finished_at, 3), "fencing_token": epoch, "error": o.error, "excerpt": o.excerpt,
    }


def record_outcome(db: Db, claim: Claim, epoch: int | None, o: Outcome, lateness_s: float | None,
                   retention: Retention, now: float) -> None:
    write(db, claim.job, entry_id(claim.slot, claim.trigger), claim.slot, outcome_entry(claim, epoch, o, lateness_s),
          retention, now)


def record_passed(db: Db, c: Claim, epoch: int, outcome: str, reason: str, retention: Retention, now: float) -> None:
    """A slot passed over: skipped (overlap, paused) or dropped (missed), with its policy."""
    entry = {"slot": c.slot, "trigger": None, "attempts": 0, "outcome": outcome, "reason": reason,
             "policy": c.policy if reason != "paused" else None, "finished_at": round(now, 3), "fencing_token": epoch}
    write(db, c.job, str(c.slot), c.slot, entry, retention, now)


def _missing(exc: sqlite3.OperationalError) -> bool:
    """A file no leader of this release has acquired yet has no ledger tables: nothing to read."""
    return "no such table" in str(exc)


def runs(db: Db, job: str, before: int | None, after: int | None, limit: int,
         cursor: str | None) -> tuple[list[dict], str | None]:
    where: list[str] = ["job = ?"]
    args: list[object] = [job]
    if before is not None:
        where.append("slot < ?")
        args.append(before)
    if after is not None:
        where.append("slot > ?")
        args.append(after)
    if cursor:
        slot, run_id = decode_cursor(cursor)
        where.append("(slot, id) < (?, ?)")
        args += [slot, run_id]
    try:
        rows = db.execute(f"SELECT id, entry FROM runs WHERE {' AND '.join(where)} ORDER BY slot DESC, id DESC "
                          "LIMIT ?", (*args, limit + 1)).fetchall()
    except sqlite3.OperationalError as exc:
        if _missing(exc):
            return [], None
        raise
    return page([e for run_id, raw in rows if (e := read_entry(run_id, raw)) is not None], limit)


def run(db: Db, job: str, run_id: str) -> dict | None:
    try:
        row = db.execute("SELECT entry FROM runs WHERE job = ? AND id = ?", (job, run_id)).fetchone()
    except sqlite3.OperationalError as exc:
        if _missing(exc):
            return None
        raise
    return read_entry(run_id, row[0]) if row else None


def newest_slots(db: Db) -> dict[str, int]:
    """Each job in the ledger, with its newest slot: what `state gc` looks at."""
    try:
        rows = db.execute("SELECT job, MAX(slot) FROM runs GROUP BY job").fetchall()
    except sqlite3.OperationalError as exc:
        if _missing(exc):
            return {}
        raise
    return {job: slot for job, slot in rows if isinstance(job, str) and isinstance(slot, int)}


def note_leadership(db: Db, epoch: int, replica: str, now: float) -> None:
    """Log an acquisition, with the previous leader and when it was last seen alive: its last
    claim or acquisition, kept in its own row (the lock file is renewed without writing the
    file)."""
    last = db.execute("SELECT replica, seen_at FROM leaderships ORDER BY epoch DESC LIMIT 1").fetchone()
    previous, seen_at = last if last else (None, None)
    at = int(now * 1000)
    db.execute("INSERT OR REPLACE INTO leaderships VALUES (?, ?, ?, ?, ?, ?)",
               (epoch, replica, at, previous, seen_at if isinstance(seen_at, int) else None, at))
    db.execute("DELETE FROM leaderships WHERE epoch <= (SELECT epoch FROM leaderships ORDER BY epoch DESC "
               "LIMIT 1 OFFSET ?)", (LEADERSHIPS_KEPT,))


def note_alive(db: Db, epoch: int, now: float) -> None:
    """The leader of `epoch` was alive now (it claims): what the next acquisition logs."""
    db.execute("UPDATE leaderships SET seen_at = ? WHERE epoch = ?", (int(now * 1000), epoch))


def leaderships(db: Db) -> list[dict]:
    try:
        rows = db.execute("SELECT epoch, replica, acquired_at, previous, previous_seen_at FROM leaderships "
                          "ORDER BY epoch DESC").fetchall()
    except sqlite3.OperationalError as exc:
        if _missing(exc):
            return []
        raise
    return [{"epoch": e, "replica": r, "acquired_at": a, "previous": p, "previous_seen_at": s}
            for e, r, a, p, s in rows if isinstance(a, int)]
