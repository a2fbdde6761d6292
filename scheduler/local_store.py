"""The standalone store: the same state in one SQLite file, an exclusive file lock as lease.

A second replica on the same file cannot take the lock and waits as a standby. The lock is
held by the open file description, so it dies with the process: a crash hands over at once.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sqlite3
import time
from typing import Sequence

from .store import FIRE, REDELIVER, Claim, InFlight, LeaseLost, Outcome, State, StoreUnavailable, new_replica_id

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slots (job TEXT PRIMARY KEY, slot INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS inflight (
  job TEXT NOT NULL, slot INTEGER NOT NULL, epoch INTEGER NOT NULL, attempt INTEGER NOT NULL,
  claimed_at REAL NOT NULL, PRIMARY KEY (job, slot));
CREATE TABLE IF NOT EXISTS jobs (name TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS paused (name TEXT PRIMARY KEY);
"""

# How often a standby tries the lock; a lock has no release notification to wait on.
POLL_S = 0.1


class LocalStore:
    def __init__(self, path: str, replica_id: str | None = None):
        self.replica_id = replica_id or new_replica_id()
        self.path = path
        self._lock_fd: int | None = None
        try:
            self.db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite {path}: {exc}") from None

    def _tx(self):
        return _Transaction(self.db)

    async def acquire(self) -> int | None:
        if self._lock_fd is None:
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            os.ftruncate(fd, 0)
            os.write(fd, self.replica_id.encode())
            self._lock_fd = fd
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
            epoch = (int(row[0]) if row else 0) + 1
            db.execute("INSERT OR REPLACE INTO meta VALUES ('epoch', ?)", (str(epoch),))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('leader', ?)", (self.replica_id,))
        return epoch

    async def renew(self) -> bool:
        return self._lock_fd is not None

    async def release(self) -> None:
        if self._lock_fd is None:
            return
        with self._tx() as db:
            db.execute("DELETE FROM meta WHERE key = 'leader' AND value = ?", (self.replica_id,))
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._lock_fd = None

    async def wait_released(self, timeout_s: float) -> None:
        await asyncio.sleep(min(timeout_s, POLL_S))

    async def load(self) -> State:
        db = self.db
        state = State(
            watermarks=dict(db.execute("SELECT job, slot FROM slots").fetchall()),
            paused={r[0] for r in db.execute("SELECT name FROM paused")},
        )
        for job, slot, epoch, attempt in db.execute("SELECT job, slot, epoch, attempt FROM inflight"):
            state.inflight.append(InFlight(job, slot, epoch, attempt))
        return state

    async def claim(self, epoch: int, claims: Sequence[Claim]) -> list[bool]:
        if self._lock_fd is None:
            raise LeaseLost()
        out = []
        now = time.time()
        with self._tx() as db:
            for c in claims:
                if c.kind == REDELIVER:
                    cur = db.execute(
                        "UPDATE inflight SET epoch = ?, attempt = ?, claimed_at = ? WHERE job = ? AND slot = ?",
                        (epoch, c.attempt, now, c.job, c.slot),
                    )
                    out.append(cur.rowcount == 1)
                    continue
                row = db.execute("SELECT slot FROM slots WHERE job = ?", (c.job,)).fetchone()
                if row is not None and c.slot <= row[0]:
                    out.append(False)
                    continue
                db.execute("INSERT OR REPLACE INTO slots VALUES (?, ?)", (c.job, c.slot))
                if c.kind == FIRE:
                    db.execute("INSERT OR REPLACE INTO inflight VALUES (?, ?, ?, ?, ?)", (c.job, c.slot, epoch, c.attempt, now))
                out.append(True)
        return out

    async def note_attempt(self, epoch: int, job: str, slot: int, attempt: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE inflight SET attempt = ? WHERE job = ? AND slot = ? AND epoch = ?", (attempt, job, slot, epoch))

    async def finish(self, job: str, slot: int, outcome: Outcome) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM inflight WHERE job = ? AND slot = ?", (job, slot))
            row = db.execute("SELECT record FROM jobs WHERE name = ?", (job,)).fetchone()
            rec = json.loads(row[0]) if row else {}
            if outcome.status == "ok":
                rec["consecutive_failures"] = 0
                rec["last_success_at"] = outcome.finished_at
            else:
                rec["consecutive_failures"] = int(rec.get("consecutive_failures", 0)) + 1
            rec.update(
                status=outcome.status, slot=slot, finished_at=outcome.finished_at,
                duration_ms=int(outcome.duration_s * 1000), http_status=outcome.http_status,
                error=outcome.error, attempts=outcome.attempts,
            )
            db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?)", (job, json.dumps(rec)))

    async def ping(self) -> bool:
        try:
            self.db.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    async def close(self) -> None:
        await self.release()
        self.db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error; sqlite errors become StoreUnavailable."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from None
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailable(f"sqlite: {exc}") from None
