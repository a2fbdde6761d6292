"""The standalone lease: the lock file (lock_file.py), and the leader and epoch the state
file records beside it, which every claim checks (state.leads).

A replica that locks a new file while the state file names another leader that did not
release, and a lock file other than this one, takes over from a leader that may still be
running (its lock file was deleted or replaced under it). It records itself as the leader
at once, so the last one's claims are refused from then on; but that one may still send a
fire it claimed before. It checks its lock file at every renewal and sends nothing once two
thirds of the lease TTL passed without a renewal, so after one TTL it has stopped, as after
a lease expiry in Redis: the new holder waits that long before it leads.
"""

from __future__ import annotations

import logging
import sqlite3
import time

from . import state as ops
from .lock_file import LockFile
from .records import Bad, Quarantine
from ..protocol import StoreUnavailable

log = logging.getLogger("scheduler.sqlite")


class LocalLease:
    """Used on the store's worker thread, except `renew` (on the event loop)."""

    def __init__(self, path: str, replica_id: str, ttl_s: float):
        self.lock = LockFile(path + ".lock")
        self.replica_id, self.ttl_s = replica_id, ttl_s
        self._taken = False  # the lock was taken since the last `lead`
        self._wait_until: float | None = None  # the lock is held, the lead not yet

    def ready(self) -> bool:
        """Hold the lock on the file the path names, taking it if it is free; whether this
        replica may now `lead` (not while another holds it, or while a handover waits)."""
        if self.lock.held and not self.lock.intact():
            self.let_go()  # deleted or replaced: no one else locks that file any more
        if not self.lock.held:
            self._taken = self.lock.take(self.replica_id)
            return self._taken
        if self._wait_until is not None:
            if time.monotonic() < self._wait_until:
                return False
            self._wait_until = None
        return True

    def lead(self, db: sqlite3.Connection, q: Quarantine, bad: list[Bad]) -> int | None:
        """In the caller's write transaction, after `ready`: record this replica as the
        leader under the next epoch, and return it; None when it must first wait out a last
        leader that may still be running."""
        lock = self.lock.ident
        assert lock is not None  # ready() holds the lock
        taken, self._taken = self._taken, False
        epoch, alive = ops.take_lead(db, q, bad, self.replica_id, lock, time.time())
        if not (taken and alive):
            return epoch
        self._wait_until = time.monotonic() + self.ttl_s
        log.warning("took the lease lock file, but not the one the last leader locked (it was deleted or replaced): "
                    "waiting one lease TTL for that leader to step down before leading",
                    extra={"replica": self.replica_id, "wait_s": self.ttl_s})
        return None

    def renew(self) -> bool:
        """Whether the lock is held and the path still names its file."""
        try:
            if self.lock.intact():
                return True
        except OSError as exc:
            raise StoreUnavailable(f"lock file {self.lock.path}: {type(exc).__name__}: {exc}") from None
        if self.lock.held:
            log.warning("the lease lock file was deleted or replaced; stepping down", extra={"replica": self.replica_id})
        return False

    def let_go(self) -> None:
        self._taken, self._wait_until = False, None
        self.lock.release()

    def held_anywhere(self) -> bool:
        """Whether some process holds the lock (this one, or another: probed)."""
        return self.lock.held or self.lock.held_elsewhere()
