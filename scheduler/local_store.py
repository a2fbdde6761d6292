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

from .store import (
    CLAIMED, FIRE, INIT, PAUSED, REDELIVER, SKIP, STALE, TRIGGER, Claim, Finished, InFlight, JobHealth, LeaseLost, Outcome, State,
    StoreUnavailable, TriggerRequest, new_replica_id,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slots (job TEXT PRIMARY KEY, slot INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS inflight (
  field TEXT PRIMARY KEY, job TEXT NOT NULL, slot INTEGER NOT NULL, epoch INTEGER NOT NULL,
  attempt INTEGER NOT NULL, trigger TEXT, claimed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (name TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS paused (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS trigger (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, job TEXT NOT NULL, requested_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS triggered (id TEXT PRIMARY KEY, at REAL NOT NULL);
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
            # A new state file starts from the clock in ms, as the Redis store does, so
            # tokens keep growing even if the file is lost.
            epoch = (int(row[0]) if row else int(time.time() * 1000)) + 1
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

    async def load(self, jobs: Sequence[str]) -> State:
        db = self.db
        records = {name: json.loads(rec) for name, rec in db.execute("SELECT name, record FROM jobs")}
        return State(
            watermarks=dict(db.execute("SELECT job, slot FROM slots").fetchall()),
            inflight=[InFlight(*row) for row in db.execute("SELECT job, slot, epoch, attempt, trigger FROM inflight")],
            paused={r[0] for r in db.execute("SELECT name FROM paused")},
            health={
                job: JobHealth(records[job].get("last_success_at"), int(records[job].get("consecutive_failures", 0)))
                for job in jobs if job in records
            },
        )

    async def claim(self, epoch: int, claims: Sequence[Claim]) -> list[int]:
        if self._lock_fd is None:
            raise LeaseLost()
        out = []
        now = time.time()
        with self._tx() as db:
            for c in claims:
                out.append(self._claim_one(db, epoch, c, now))
        return out

    def _claim_one(self, db: sqlite3.Connection, epoch: int, c: Claim, now: float) -> int:
        """The same rules as the Redis claim script."""
        record = (c.field, c.job, c.slot, epoch, c.attempt, c.trigger, now)
        if c.kind == REDELIVER:
            cur = db.execute("UPDATE inflight SET epoch = ?, attempt = ?, claimed_at = ? WHERE field = ?",
                             (epoch, c.attempt, now, c.field))
            return CLAIMED if cur.rowcount == 1 else STALE
        if c.kind == INIT:
            return db.execute("INSERT OR IGNORE INTO slots VALUES (?, ?)", (c.job, c.slot)).rowcount
        if c.kind == TRIGGER:
            db.execute("DELETE FROM trigger WHERE id = ?", (c.trigger,))
            if db.execute("INSERT OR IGNORE INTO triggered VALUES (?, ?)", (c.trigger, now)).rowcount != 1:
                return STALE
            db.execute("INSERT OR REPLACE INTO inflight VALUES (?, ?, ?, ?, ?, ?, ?)", record)
            return CLAIMED
        row = db.execute("SELECT slot FROM slots WHERE job = ?", (c.job,)).fetchone()
        if row is not None and c.slot <= row[0]:
            if c.kind == FIRE and c.slot == row[0]:
                mine = db.execute("SELECT 1 FROM inflight WHERE field = ? AND epoch = ?", (c.field, epoch)).fetchone()
                return CLAIMED if mine else STALE
            return CLAIMED if c.kind == SKIP and c.slot == row[0] else STALE
        db.execute("INSERT OR REPLACE INTO slots VALUES (?, ?)", (c.job, c.slot))
        if db.execute("SELECT 1 FROM paused WHERE name = ?", (c.job,)).fetchone():
            return PAUSED
        if c.kind == FIRE:
            db.execute("INSERT OR REPLACE INTO inflight VALUES (?, ?, ?, ?, ?, ?, ?)", record)
        return CLAIMED

    async def note_attempt(self, epoch: int, claim: Claim, attempt: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE inflight SET attempt = ? WHERE field = ? AND epoch = ?", (attempt, claim.field, epoch))

    async def finish(self, outcomes: Sequence[Finished]) -> list[int]:
        out = []
        with self._tx() as db:
            for item in outcomes:
                claim, outcome = item.claim, item.outcome
                db.execute("DELETE FROM inflight WHERE field = ?", (claim.field,))
                row = db.execute("SELECT record FROM jobs WHERE name = ?", (claim.job,)).fetchone()
                rec = json.loads(row[0]) if row else {}
                if outcome.status == "ok":
                    rec["consecutive_failures"] = 0
                    rec["last_success_at"] = outcome.finished_at
                else:
                    rec["consecutive_failures"] = int(rec.get("consecutive_failures", 0)) + 1
                rec.update(
                    status=outcome.status, slot=claim.slot, finished_at=outcome.finished_at,
                    duration_ms=int(outcome.duration_s * 1000), http_status=outcome.http_status, error=outcome.error,
                    attempts=outcome.attempts,
                )
                db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?)", (claim.job, json.dumps(rec)))
                out.append(rec["consecutive_failures"])
        return out

    async def warnings(self) -> list[str]:
        return []

    async def pending_triggers(self) -> list[TriggerRequest]:
        rows = self.db.execute("SELECT id, job, requested_at FROM trigger ORDER BY seq").fetchall()
        return [TriggerRequest(*row) for row in rows]

    async def wait_wake(self, timeout_s: float) -> None:
        await asyncio.sleep(min(timeout_s, POLL_S))

    async def set_paused(self, job: str, paused: bool) -> bool:
        with self._tx() as db:
            if paused:
                return db.execute("INSERT OR IGNORE INTO paused VALUES (?)", (job,)).rowcount == 1
            return db.execute("DELETE FROM paused WHERE name = ?", (job,)).rowcount == 1

    async def request_trigger(self, request: TriggerRequest) -> TriggerRequest | None:
        with self._tx() as db:
            if db.execute("SELECT 1 FROM triggered WHERE id = ?", (request.id,)).fetchone():
                return TriggerRequest(request.id, request.job, 0)
            row = db.execute("SELECT id, job, requested_at FROM trigger WHERE job = ?", (request.job,)).fetchone()
            if row is None:
                row = db.execute("SELECT trigger, job, slot FROM inflight WHERE job = ? AND trigger IS NOT NULL",
                                 (request.job,)).fetchone()
            if row is not None:
                return TriggerRequest(*row)
            db.execute("INSERT INTO trigger (id, job, requested_at) VALUES (?, ?, ?)",
                       (request.id, request.job, request.requested_at))
        return None

    async def status(self, jobs: Sequence[str]) -> dict:
        db = self.db
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        state = await self.load(jobs)
        records = {name: json.loads(rec) for name, rec in db.execute("SELECT name, record FROM jobs")}
        return {
            "leader": meta.get("leader") if self._lock_is_held() else None,
            "lease_left_s": None,  # a file lock does not expire; it dies with its holder
            "epoch": int(meta["epoch"]) if "epoch" in meta else None,
            "watermarks": state.watermarks,
            "inflight": state.inflight,
            "paused": state.paused,
            "pending_triggers": [
                {"id": i, "job": j, "requested_at": t}
                for i, j, t in db.execute("SELECT id, job, requested_at FROM trigger ORDER BY seq")
            ],
            "jobs": {job: records.get(job, {}) for job in jobs},
        }

    def _lock_is_held(self) -> bool:
        """Whether some process holds the lease lock (probed without taking it for long)."""
        if self._lock_fd is not None:
            return True
        try:
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

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
