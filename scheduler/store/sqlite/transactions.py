"""The standalone store's one way of making a call: the file's connection, on one worker
thread of the store's own (never the event loop), and the two transactions every part runs
its SQL in: a write (BEGIN IMMEDIATE ... COMMIT) and a read on one snapshot. Unreadable rows
met in either are moved aside (records.Quarantine); a damaged file is reported once and
never read or written again."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .records import Bad, Quarantine
from .schema import VERSION, StateDamaged, damage, newer_problem, open_db, user_version
from ..protocol import LeaseLost, StoreUnavailable

log = logging.getLogger("scheduler.sqlite")

Step = Callable[[sqlite3.Connection, list[Bad]], Any]


class Transactions:
    def __init__(self, path: str, busy_timeout_s: float, quarantine: Quarantine,
                 on_damaged: Callable[[StateDamaged], None] | None = None):
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.quarantine = quarantine
        # Set once the file is found damaged: from then on nothing reads or writes it, and
        # `on_damaged` (the daemon's exit) is told once.
        self.damaged: StateDamaged | None = None
        self.on_damaged = on_damaged
        # Set when the file is of a newer format than this release knows: then this store
        # neither leads nor writes.
        self.format_problem: str | None = None
        self.read_only = False  # a dry run's view: unreadable rows are skipped, never moved aside
        self._db: sqlite3.Connection | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-state")

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
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

    async def writing(self, step: Step) -> Any:
        """`step` in one write transaction, on the worker thread."""
        return await self.run(self.write, step)

    async def reading(self, step: Step) -> Any:
        """`step` on one snapshot, on the worker thread."""
        return await self.run(self.read, step)

    def _found_damaged(self, found: StateDamaged) -> None:
        if self.damaged is None:
            self.damaged = found
            log.error("the state file is damaged; not reading or writing it again", extra={"problem": str(found)})
            if self.on_damaged is not None:
                self.on_damaged(found)

    def conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db, self.format_problem = open_db(self.path, self.busy_timeout_s)
        return self._db

    def write(self, step: Step) -> Any:
        """One BEGIN IMMEDIATE ... COMMIT around `step`, unreadable rows moved aside in it."""
        db = self.conn()
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

    def read(self, step: Step) -> Any:
        """`step` on one snapshot; then, if it met unreadable rows, a short write to move them
        aside. That write may fail (the file is locked, or newer than this release): the
        rows are skipped all the same, and found again on the next read."""
        db = self.conn()
        bad: list[Bad] = []
        db.execute("BEGIN")
        try:
            result = step(db, bad)
        finally:
            db.execute("COMMIT")
        if bad and not self.format_problem and not self.read_only:
            try:
                self.write(lambda db, _: self.quarantine.move(db, bad))
            except (sqlite3.Error, StoreUnavailable) as exc:
                log.debug("could not set unreadable rows aside yet", extra={"error": str(exc)})
        return result

    async def close(self, last: Callable[[], None]) -> None:
        """Close the connection on the worker thread after `last` (the lock let go), then stop
        the thread."""
        def close_db() -> None:
            last()
            if self._db is not None:
                db, self._db = self._db, None
                db.close()
        await asyncio.get_running_loop().run_in_executor(self._worker, close_db)
        self._worker.shutdown(wait=False)
