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
which the engine retries like any outage, while the loop keeps renewing and firing
(transactions.py).

The store composes parts over those transactions, as the Redis store does over its caller:
`control`, the operator's commands (control.py); `ledger`, the ledger's reads
(ledger_reads.py); `audit_log` (audit.py); `redrives`, queued slots (redrives.py). The lease,
the handover's holds and the leader's claims and outcomes stay here.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence

from . import holds
from . import ledger
from . import state as ops
from .audit import Audit
from .control import Control
from .ledger import Retention
from .ledger_reads import LedgerReads
from ..ledger import RUNS_LIMIT
from ...model import Claim, Finished, SlotRequest, State, TriggerRequest
from .lease import LocalLease
from ..audit_records import AUDIT_KEEP
from .records import Bad, Quarantine
from .redrives import Redrives
from .schema import StateDamaged
from .transactions import Transactions
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

    def clock_ok(self) -> bool:
        return True

    def __init__(self, path: str, replica_id: str | None = None, *, busy_timeout_s: float = BUSY_TIMEOUT_S,
                 on_malformed: Callable[[str], None] | None = None, history: int = 20, history_age_s: float | None = None,
                 lease_ttl_s: float = LEASE_TTL_S, on_damaged: Callable[[StateDamaged], None] | None = None,
                 audit_keep: int = AUDIT_KEEP):
        self.replica_id = replica_id or new_replica_id()
        self.path = path
        self.lease = LocalLease(path, self.replica_id, lease_ttl_s)
        self.quarantine = Quarantine(on_malformed)
        self.tx = tx = Transactions(path, busy_timeout_s, self.quarantine, on_damaged)
        self.retention = Retention(history, history_age_s)
        self.control = Control(tx, self.replica_id, self.lease.held_anywhere)
        self.ledger = LedgerReads(tx, history)
        self.audit_log = Audit(tx, audit_keep)
        self.redrives = Redrives(tx)
        self._told_format = False

    # What the engine, the CLI and the tests read or set on a store, kept where it lives.

    @property
    def damaged(self) -> StateDamaged | None:
        return self.tx.damaged

    @property
    def format_problem(self) -> str | None:
        return self.tx.format_problem

    @property
    def read_only(self) -> bool:
        return self.tx.read_only

    @read_only.setter
    def read_only(self, value: bool) -> None:
        self.tx.read_only = value

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

    async def open(self) -> None:
        """Open the file now (the daemon's start checks it can, and exits 78 if not)."""
        await self.tx.run(self.tx.conn)

    # -- the lease ---------------------------------------------------------------------

    async def acquire(self) -> int | None:
        return await self.tx.run(self._acquire)

    def _acquire(self) -> int | None:
        self.tx.conn()
        try:
            if self.format_problem is None:
                if not self.lease.ready():
                    return None
                return self.tx.write(lambda db, bad: self.lease.lead(db, self.quarantine, bad))
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
            await self.tx.run(self._release)
        return None  # a standby tries the lock every POLL_S: there is no one to tell

    def _release(self, first: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """`first`: run in the same transaction (a handover's holds)."""
        def step(db: sqlite3.Connection, _: list[Bad]) -> None:
            if first is not None:
                first(db)
            db.execute("DELETE FROM meta WHERE key = 'leader' AND value = ?", (self.replica_id,))
        try:
            if self.format_problem is None:
                self.tx.write(step)
        finally:
            self.lease.let_go()  # whatever the file says, the lock goes: the next replica takes over

    async def hand_over(self, epoch: int, fields: Sequence[str], hold_s: float) -> str | None:
        if self.lease.lock.held:
            await self.tx.run(self._release, holds.holding(self.replica_id, epoch, list(fields), hold_s, ops.leads))
        return None  # as release: a standby tries the lock every POLL_S

    async def wait_released(self, timeout_s: float) -> None:
        await asyncio.sleep(min(timeout_s, POLL_S))

    async def wait_wake(self, timeout_s: float) -> None:
        await asyncio.sleep(min(timeout_s, POLL_S))

    async def wake_leader(self) -> str | None:
        return None  # the leader looks at the queue every POLL_S

    # -- the leader's calls ------------------------------------------------------------

    async def load(self, jobs: Sequence[str]) -> State:
        return await self.tx.reading(lambda db, bad: ops.read_state(db, self.quarantine, bad, jobs)[0])

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
        return await self.tx.writing(step)

    async def note_attempt(self, epoch: int, claim: Claim, attempt: int) -> None:
        await self.tx.writing(lambda db, _: db.execute(
            "UPDATE inflight SET attempt = ? WHERE field = ? AND epoch = ?", (attempt, claim.field, epoch)))

    async def finish(self, outcomes: Sequence[Finished]) -> list[int]:
        """Each outcome is fenced by the epoch that ran it."""
        if not outcomes:
            return []
        keep = self.retention
        return await self.tx.writing(lambda db, _: [
            ops.finish_one(db, self.quarantine, f.claim, f.epoch, f.outcome, f.lateness_s, keep) for f in outcomes])

    async def pending_triggers(self) -> list[TriggerRequest]:
        return await self.tx.reading(lambda db, bad: ops.pending_triggers(db, self.quarantine, bad))

    async def pending_slots(self) -> list[SlotRequest]:
        return await self.redrives.pending()

    async def request_slots(self, job: str, requests: Sequence[SlotRequest]) -> list[int]:
        return await self.redrives.request(job, requests)

    async def warnings(self) -> list[str]:
        await self.tx.run(self.tx.conn)
        return [self.format_problem] if self.format_problem else []

    # -- control commands (any replica, or the CLI): control.py, audit.py, ledger_reads.py --

    async def set_paused(self, job: str, paused: bool) -> bool:
        return await self.control.set_paused(job, paused)

    async def request_sources(self, what: str) -> None:
        await self.control.request_sources(what)

    async def note_sources(self, sources: list[dict]) -> None:
        await self.control.note_sources(sources)

    async def noted_sources(self) -> list[dict]:
        return await self.control.noted_sources()

    async def sources_requests(self) -> tuple[int, int]:
        return await self.control.sources_requests()

    async def drop_pauses(self, jobs: Sequence[str]) -> int:
        return await self.control.drop_pauses(jobs)

    async def request_trigger(self, request: TriggerRequest) -> TriggerRequest | None:
        return await self.control.request_trigger(request)

    async def status(self, jobs: Sequence[str]) -> dict:
        return await self.control.status(jobs)

    async def audit_append(self, entry: dict) -> int:
        return await self.audit_log.append(entry)

    async def audit(self, limit: int, before: int | None = None) -> list[dict]:
        return await self.audit_log.read(limit, before)

    async def history(self, job: str, limit: int | None = None) -> list[dict]:
        return await self.ledger.history(job, limit)

    async def runs(self, job: str, before: int | None = None, after: int | None = None, limit: int = RUNS_LIMIT,
                   cursor: str | None = None) -> tuple[list[dict], str | None]:
        return await self.ledger.runs(job, before, after, limit, cursor)

    async def run(self, job: str, run_id: str) -> dict | None:
        return await self.ledger.run(job, run_id)

    async def leaderships(self) -> list[dict]:
        return await self.ledger.leaderships()

    async def gc(self, keep_jobs: Sequence[str], older_than_s: float = GC_AGE_S, dry_run: bool = False) -> list[str]:
        """Delete (or with dry_run, only list) the state of jobs not in `keep_jobs` whose last
        activity is older than `older_than_s`: watermark, job record, spent trigger ids."""
        keep, before = set(keep_jobs), time.time() - older_than_s
        return await self.tx.writing(lambda db, bad: ops.gc(db, self.quarantine, bad, keep, before, dry_run))

    async def quarantined(self, delete: bool = False) -> list[dict]:
        return await self.tx.writing(lambda db, bad: ops.quarantined(db, delete))

    async def check_format(self) -> str | None:
        await self.tx.reading(lambda db, bad: None)
        return self.format_problem

    async def ping(self) -> bool:
        try:
            return await self.tx.run(lambda: self.tx.conn().execute("SELECT 1").fetchone() is not None)
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        try:
            await self.release()
        except StoreUnavailable as exc:
            log.warning("could not mark the lease released in the state file", extra={"error": str(exc)})
        finally:
            # the lock is released already, unless the file could not be written (damaged)
            await self.tx.close(self.lease.let_go)
