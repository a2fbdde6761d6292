"""The standalone store: the same state in one SQLite file, an exclusive file lock as lease.

A second replica on the same file cannot take the lock and waits as a standby. The lock is
held by the open file description, so it dies with the process: a crash hands over at once.
The leader's replica id and epoch are recorded in the file when it takes the lock, and every
claim checks them in its own transaction, as the Redis claim script checks the lease key: a
replica that another one took over from (its lock file was deleted under it) can no longer
claim, and steps down (local_lease.py).

Every sqlite call runs on one worker thread of the store's own, never on the event loop:
a command holding the file's write lock (the CLI, or `sqlite3 state.db "BEGIN IMMEDIATE"`)
makes a call wait there for at most the busy timeout and then fail as StoreUnavailable,
which the engine retries like any outage, while the loop keeps renewing and firing.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from collections.abc import Callable, Sequence

from . import audit as audit_table
from . import redrives
from . import holds, sources_meta
from . import ledger
from . import state as ops
from ..ledger import PASSED, RUNS_LIMIT, decode_cursor
from .ledger import Retention
from ...model import Claim, Finished, SlotRequest, State, TriggerRequest
from .lease import LocalLease
from ..audit_records import AUDIT_KEEP
from .records import Bad, Quarantine
from .schema import VERSION, StateDamaged, damage, newer_problem, open_db, user_version
from ..protocol import LeaseLost, StoreUnavailable, new_replica_id

log = logging.getLogger("scheduler.sqlite")

# How often a standby tries the lock; a lock has no release notification to wait on.
POLL_S = 0.1
# How long a call waits for another process's write lock before it counts as an outage.
BUSY_TIMEOUT_S = 2.0
GC_AGE_S = 86400.0
LEASE_TTL_S = 4.0  # SCHEDULER_LEASE_TTL's default


class LocalStore:
    # No reference clock in standalone mode: the host's clock is trusted (see docs/guarantees.md, Clocks).
    clock_skew_s: float | None = None
    dry_run = False
    read_only = False  # a dry run's view: unreadable rows are skipped, never moved aside

    def clock_ok(self) -> bool:
        return True

    def __init__(self, path: str, replica_id: str | None = None, *, busy_timeout_s: float = BUSY_TIMEOUT_S,
                 on_malformed: Callable[[str], None] | None = None, history: int = 20, history_age_s: float | None = None,
                 lease_ttl_s: float = LEASE_TTL_S, on_damaged: Callable[[StateDamaged], None] | None = None,
                 audit_keep: int = AUDIT_KEEP):
        self.replica_id = replica_id or new_replica_id()
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.lease = LocalLease(path, self.replica_id, lease_ttl_s)
        # Set once the file is found damaged: from then on nothing reads or writes it, and
        # `on_damaged` (the daemon's exit) is told once.
        self.damaged: StateDamaged | None = None
        self.on_damaged = on_damaged
        self.history_keep = history  # ledger entries kept per job (SCHEDULER_HISTORY); 0: none
        self.retention = Retention(history, history_age_s)
        self.audit_keep = audit_keep
        # Set when the file is of a newer format than this release knows: then this store
        # neither leads nor writes.
        self.format_problem: str | None = None
        self.quarantine = Quarantine(on_malformed)
        self._db: sqlite3.Connection | None = None
        self._told_format = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-state")

    @property
    def on_malformed(self) -> Callable[[str], None] | None:
        return self.quarantine.on_malformed

    @on_malformed.setter
    def on_malformed(self, hook: Callable[[str], None] | None) -> None:
        self.quarantine.on_malformed = hook

    @property
    def malformed(self) -> int:
        """Unreadable rows found (and set aside, when this store may write) so far."""
        return self.quarantine.count

    # -- the worker thread -----------------------------------------------------------

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.damaged is not None:
            raise self.damaged
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)
        except (LeaseLost, StoreUnavailable):
            raise
        except Exception as exc:  # sqlite3.Error, OSError, or a file in a state nothing expects
            found = damage(self.path, exc) if isinstance(exc, sqlite3.Error) else None
            if found is None:
                raise StoreUnavailable(f"sqlite {self.path}: {type(exc).__name__}: {exc}") from None
            self._found_damaged(found)
            raise found from None

    def _found_damaged(self, found: StateDamaged) -> None:
        if self.damaged is None:
            self.damaged = found
            log.error("the state file is damaged; not reading or writing it again", extra={"problem": str(found)})
            if self.on_damaged is not None:
                self.on_damaged(found)

    async def open(self) -> None:
        """Open the file now (the daemon's start checks it can, and exits 78 if not)."""
        await self._run(self._conn)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db, self.format_problem = open_db(self.path, self.busy_timeout_s)
        return self._db

    def _write(self, step: Callable[[sqlite3.Connection, list[Bad]], Any]) -> Any:
        """One BEGIN IMMEDIATE ... COMMIT around `step`, unreadable rows moved aside in it."""
        db = self._conn()
        if self.format_problem:
            raise StoreUnavailable(self.format_problem)
        db.execute("BEGIN IMMEDIATE")
        try:
            found = user_version(db)
            if found > VERSION:  # a newer release migrated the file since it was opened
                self.format_problem = newer_problem(self.path, found)
                raise StoreUnavailable(self.format_problem)
            bad: list[Bad] = []
            result = step(db, bad)
            self.quarantine.move(db, bad)
            db.execute("COMMIT")
            return result
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _read(self, step: Callable[[sqlite3.Connection, list[Bad]], Any]) -> Any:
        """`step` on one snapshot; then, if it met unreadable rows, a short write to move them
        aside. That write may fail (the file is locked, or newer than this release): the
        rows are skipped all the same, and found again on the next read."""
        db = self._conn()
        bad: list[Bad] = []
        db.execute("BEGIN")
        try:
            result = step(db, bad)
        finally:
            db.execute("COMMIT")
        if bad and not self.format_problem and not self.read_only:
            try:
                self._write(lambda db, _: self.quarantine.move(db, bad))
            except (sqlite3.Error, StoreUnavailable) as exc:
                log.debug("could not set unreadable rows aside yet", extra={"error": str(exc)})
        return result

    # -- the lease ---------------------------------------------------------------------

    async def acquire(self) -> int | None:
        return await self._run(self._acquire)

    def _acquire(self) -> int | None:
        self._conn()
        try:
            if self.format_problem is None:
                if not self.lease.ready():
                    return None
                return self._write(lambda db, bad: self.lease.lead(db, self.quarantine, bad))
        except StoreUnavailable:
            if self.format_problem is None:
                raise
        self.lease.let_go()
        if not self._told_format:
            self._told_format = True
            log.error("not leading: the state file is of a newer format", extra={"problem": self.format_problem})
        return None

    async def renew(self) -> bool:
        return self.format_problem is None and self.lease.renew()

    async def release(self) -> str | None:
        if self.lease.lock.held:
            await self._run(self._release)
        return None  # a standby tries the lock every POLL_S: there is no one to tell

    def _release(self, first: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """`first`: run in the same transaction (a handover's holds)."""
        def step(db: sqlite3.Connection, _: list[Bad]) -> None:
            if first is not None:
                first(db)
            db.execute("DELETE FROM meta WHERE key = 'leader' AND value = ?", (self.replica_id,))
        try:
            if self.format_problem is None:
                self._write(step)
        finally:
            self.lease.let_go()  # whatever the file says, the lock goes: the next replica takes over

    async def hand_over(self, epoch: int, fields: Sequence[str], hold_s: float) -> str | None:
        if self.lease.lock.held:
            await self._run(self._release, holds.holding(self.replica_id, epoch, list(fields), hold_s, ops.leads))
        return None  # as release: a standby tries the lock every POLL_S

    async def wait_released(self, timeout_s: float) -> None:
        await asyncio.sleep(min(timeout_s, POLL_S))

    async def wait_wake(self, timeout_s: float) -> None:
        await asyncio.sleep(min(timeout_s, POLL_S))

    async def wake_leader(self) -> str | None:
        return None  # the leader looks at the queue every POLL_S

    # -- the leader's calls ------------------------------------------------------------

    async def load(self, jobs: Sequence[str]) -> State:
        return await self._run(self._read, lambda db, bad: ops.read_state(db, self.quarantine, bad, jobs)[0])

    async def claim(self, epoch: int, claims: Sequence[Claim]) -> list[int]:
        if not self.lease.lock.held:
            raise LeaseLost()
        claims = list(claims)

        def step(db: sqlite3.Connection, bad: list[Bad]) -> list[int]:
            if not ops.leads(db, self.replica_id, epoch):
                raise LeaseLost("the state file names another leader or a newer epoch")
            now = time.time()
            ledger.note_alive(db, epoch, now)
            return [ops.claim_one(db, self.quarantine, epoch, c, now, self.retention, self.replica_id) for c in claims]

        # Refused, the engine steps down and acquires again: the lock is kept if the path still
        # names its file (the file was edited, not taken over), else let go (_acquire).
        return await self._run(self._write, step)

    async def note_attempt(self, epoch: int, claim: Claim, attempt: int) -> None:
        await self._run(self._write, lambda db, _: db.execute(
            "UPDATE inflight SET attempt = ? WHERE field = ? AND epoch = ?", (attempt, claim.field, epoch)))

    async def finish(self, outcomes: Sequence[Finished]) -> list[int]:
        """Each outcome is fenced by the epoch that ran it."""
        if not outcomes:
            return []
        keep = self.retention
        return await self._run(self._write, lambda db, _: [
            ops.finish_one(db, self.quarantine, f.claim, f.epoch, f.outcome, f.lateness_s, keep) for f in outcomes])

    async def pending_triggers(self) -> list[TriggerRequest]:
        return await self._run(self._read, lambda db, bad: ops.pending_triggers(db, self.quarantine, bad))

    async def pending_slots(self) -> list[SlotRequest]:
        return await self._run(self._read, lambda db, bad: redrives.pending(db, self.quarantine, bad))

    async def request_slots(self, job: str, requests: Sequence[SlotRequest]) -> list[int]:
        return await self._run(self._write, lambda db, _: redrives.request(db, job, requests))

    async def warnings(self) -> list[str]:
        await self._run(self._conn)
        return [self.format_problem] if self.format_problem else []

    # -- control commands (any replica, or the CLI) ------------------------------------

    async def set_paused(self, job: str, paused: bool) -> bool:
        return await self._run(self._write, lambda db, _: ops.set_paused(db, job, paused))

    async def request_sources(self, what: str) -> None:
        await self._run(self._write, lambda db, _: sources_meta.request(db, what))

    async def note_sources(self, sources: list[dict]) -> None:
        await self._run(self._write, lambda db, _: sources_meta.note(db, self.replica_id, sources))

    async def noted_sources(self) -> list[dict]:
        return await self._run(self._read, lambda db, _: sources_meta.noted_all(db))

    async def sources_requests(self) -> tuple[int, int]:
        return await self._run(self._read, lambda db, _: sources_meta.requests(db))

    async def drop_pauses(self, jobs: Sequence[str]) -> int:
        if not jobs:
            return 0
        names = list(jobs)
        return await self._run(self._write, lambda db, _: ops.drop_pauses(db, names))

    async def request_trigger(self, request: TriggerRequest) -> TriggerRequest | None:
        return await self._run(self._write, lambda db, bad: ops.request_trigger(db, self.quarantine, bad, request))

    async def status(self, jobs: Sequence[str]) -> dict:
        return await self._run(self._read, lambda db, bad: ops.status(db, self.quarantine, bad, jobs, self.lease.held_anywhere()))

    async def audit_append(self, entry: dict) -> int:
        return await self._run(self._write, lambda db, _: audit_table.append(db, entry, self.audit_keep))

    async def audit(self, limit: int, before: int | None = None) -> list[dict]:
        return await self._run(self._read, lambda db, _: audit_table.read(db, limit, before))

    async def history(self, job: str, limit: int | None = None) -> list[dict]:
        """The job's last finished fires, newest first (at most `limit`, or all that are kept)."""
        # As before the ledger: finished fires only, without the ledger's ids.
        entries = (await self.runs(job, limit=limit or self.history_keep or 1))[0]
        return [{k: v for k, v in e.items() if k != "id"} for e in entries if e["outcome"] not in PASSED]

    async def runs(self, job: str, before: int | None = None, after: int | None = None, limit: int = RUNS_LIMIT,
                   cursor: str | None = None) -> tuple[list[dict], str | None]:
        if cursor:
            decode_cursor(cursor)  # a bad one is the caller's ValueError, not the store's failure
        return await self._run(self._read, lambda db, _: ledger.runs(db, job, before, after, limit, cursor))

    async def run(self, job: str, run_id: str) -> dict | None:
        return await self._run(self._read, lambda db, _: ledger.run(db, job, run_id))

    async def leaderships(self) -> list[dict]:
        return await self._run(self._read, lambda db, _: ledger.leaderships(db))

    async def gc(self, keep_jobs: Sequence[str], older_than_s: float = GC_AGE_S, dry_run: bool = False) -> list[str]:
        """Delete (or with dry_run, only list) the state of jobs not in `keep_jobs` whose last
        activity is older than `older_than_s`: watermark, job record, spent trigger ids."""
        keep, before = set(keep_jobs), time.time() - older_than_s
        return await self._run(self._write, lambda db, bad: ops.gc(db, self.quarantine, bad, keep, before, dry_run))

    async def quarantined(self, delete: bool = False) -> list[dict]:
        return await self._run(self._write, lambda db, bad: ops.quarantined(db, delete))

    async def check_format(self) -> str | None:
        await self._run(self._read, lambda db, bad: None)
        return self.format_problem

    async def ping(self) -> bool:
        try:
            return await self._run(lambda: self._conn().execute("SELECT 1").fetchone() is not None)
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        try:
            await self.release()
        except StoreUnavailable as exc:
            log.warning("could not mark the lease released in the state file", extra={"error": str(exc)})
        finally:
            await asyncio.get_running_loop().run_in_executor(self._worker, self._close_db)
            self._worker.shutdown(wait=False)

    def _close_db(self) -> None:
        self.lease.let_go()  # released already, unless the file could not be written (damaged)
        if self._db is not None:
            db, self._db = self._db, None
            db.close()

