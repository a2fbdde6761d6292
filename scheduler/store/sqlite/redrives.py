"""Queued fires of named slots (redrive, backfill) in the standalone store: the same rules as
the Redis store's REQUEST_SLOTS script and CLAIM's `redrive` branch, inside the caller's
transaction.

The `redrive` table is created by the first request, not by a migration: a table alone
changes the meaning of nothing else, and a release that does not know it never reads it
(schema.py's rule), so the file's format version stays as it is."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ...model import CLAIMED, STALE, Claim, SlotRequest
from .records import Bad, Quarantine
from .transactions import Transactions

Db = sqlite3.Connection

TABLE = """CREATE TABLE IF NOT EXISTS redrive (
  field TEXT PRIMARY KEY, job TEXT NOT NULL, slot INTEGER NOT NULL, attempt INTEGER NOT NULL, reason TEXT,
  requested_at INTEGER NOT NULL)"""


def _exists(db: Db) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'redrive'").fetchone() is not None


def _watermark(db: Db, job: str) -> int | None:
    found = db.execute("SELECT slot FROM slots WHERE job = ?", (job,)).fetchone()
    return found[0] if found and type(found[0]) is int else None


def request(db: Db, job: str, requests: Sequence[SlotRequest]) -> list[int]:
    """Queue each slot not in flight, not queued already and not past the job's watermark."""
    mark = _watermark(db, job)
    out: list[int] = []
    if mark is None:
        return out
    db.execute(TABLE)
    for r in requests:
        if r.slot > mark or db.execute("SELECT 1 FROM inflight WHERE field = ?", (r.field,)).fetchone():
            continue
        added = db.execute("INSERT OR IGNORE INTO redrive VALUES (?, ?, ?, ?, ?, ?)",
                           (r.field, r.job, r.slot, r.attempt, r.reason, r.requested_at))
        if added.rowcount == 1:
            out.append(r.slot)
    return out


def pending(db: Db, q: Quarantine, bad: list[Bad]) -> list[SlotRequest]:
    return q.rows(db, "redrive", bad, "ORDER BY job, slot") if _exists(db) else []


def claim(db: Db, c: Claim, epoch: int, now: float) -> int:
    """Take a queued slot request once and record the slot in flight under its own field; a
    request already taken answers for a claim sent again (ours if in flight under `epoch`)."""
    if not _exists(db) or db.execute("DELETE FROM redrive WHERE field = ?", (c.field,)).rowcount == 0:
        mine = db.execute("SELECT 1 FROM inflight WHERE field = ? AND epoch = ?", (c.field, epoch)).fetchone()
        return CLAIMED if mine else STALE
    mark = _watermark(db, c.job)
    if mark is None or c.slot > mark:
        return STALE
    added = db.execute("INSERT OR IGNORE INTO inflight VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (c.field, c.job, c.slot, epoch, c.attempt, None, now))
    return CLAIMED if added.rowcount == 1 else STALE


class Redrives:
    """The store's calls for queued slots over its transactions."""

    def __init__(self, tx: Transactions):
        self.tx = tx

    async def pending(self) -> list[SlotRequest]:
        return await self.tx.reading(lambda db, bad: pending(db, self.tx.quarantine, bad))

    async def request(self, job: str, requests: Sequence[SlotRequest]) -> list[int]:
        return await self.tx.writing(lambda db, _: request(db, job, requests))
