"""The standalone store's audit log (store/audit_records.py): one table, the entry's id its
row's AUTOINCREMENT key, the newest AUDIT_KEEP kept by each append.

The table is made by the first append, not by a format migration: like every table added so
far it is one an older release never reads, so the file's format version does not change,
and a file that never had an entry reads as an empty log."""

from __future__ import annotations

import json
import sqlite3

from ..audit_records import AUDIT_KEEP, read_entries
from .transactions import Transactions

TABLE = "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, entry TEXT NOT NULL)"


def append(db: sqlite3.Connection, entry: dict, keep: int = AUDIT_KEEP) -> int:
    db.execute(TABLE)
    seq = db.execute("INSERT INTO audit (entry) VALUES (?)", (json.dumps(entry, ensure_ascii=False),)).lastrowid
    assert seq is not None
    db.execute("DELETE FROM audit WHERE seq <= ?", (seq - keep,))
    return seq


def read(db: sqlite3.Connection, limit: int, before: int | None) -> list[dict]:
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'").fetchone() is None:
        return []
    rows = db.execute("SELECT seq, entry FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                      (before if before is not None else 2**62, limit)).fetchall()
    return read_entries(rows, before)


class Audit:
    """The store's audit calls over its transactions."""

    def __init__(self, tx: Transactions, keep: int = AUDIT_KEEP):
        self.tx, self.keep = tx, keep

    async def append(self, entry: dict) -> int:
        return await self.tx.writing(lambda db, _: append(db, entry, self.keep))

    async def read(self, limit: int, before: int | None = None) -> list[dict]:
        return await self.tx.reading(lambda db, _: read(db, limit, before))
