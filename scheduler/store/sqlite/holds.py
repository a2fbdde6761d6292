"""The standalone store's handover holds (SPEC 8): a leader that stops releases the lock at
once, and its fires still running stay its own until a deadline, as the Redis store's
HANDOVER script records them (store/redis/handover.py).

A table of its own, made the first time a leader hands over, rather than columns of
`inflight`: an older release writes its rows positionally and never looks at a table it does
not know (schema.py), so the state format stays the same. A hold belongs to the epoch of the
in-flight row it was written for: a redelivery (a newer epoch) or a finish (no row) ends it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence

from ...model import InFlight, fire_field

TABLE = """CREATE TABLE IF NOT EXISTS held (
  field TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch INTEGER NOT NULL, until REAL NOT NULL)"""


def _exists(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'held'").fetchone() is not None


def hold(db: sqlite3.Connection, owner: str, epoch: int, fields: Sequence[str], until: float, now: float) -> None:
    """In the caller's write transaction: each of `fields` still in flight under `epoch` is
    `owner`'s until `until`; holds that ran out are dropped."""
    db.execute(TABLE)
    db.execute("DELETE FROM held WHERE until <= ?", (now,))
    for field in fields:
        db.execute("INSERT OR REPLACE INTO held SELECT field, ?, epoch, ? FROM inflight WHERE field = ? AND epoch = ?",
                   (owner, until, field, epoch))


def holding(owner: str, epoch: int, fields: list[str], hold_s: float,
            leads: Callable[[sqlite3.Connection, str, int], bool]) -> Callable[[sqlite3.Connection], None]:
    """The step of a handover, run with the release: while the file still names `owner` the
    leader under `epoch` (`leads`, state.leads), its fires `fields` are its own for hold_s
    from now."""
    def step(db: sqlite3.Connection) -> None:
        now = time.time()
        if leads(db, owner, epoch):
            hold(db, owner, epoch, fields, now + hold_s, now)
    return step


def blocks(db: sqlite3.Connection, field: str, replica: str, now: float) -> bool:
    """Whether a redelivery of `field` by `replica` must wait: another replica holds it, for
    the epoch it is still in flight under, until after `now`."""
    if not _exists(db):
        return False
    return db.execute(
        "SELECT 1 FROM held JOIN inflight USING (field, epoch) WHERE field = ? AND owner != ? AND until > ?",
        (field, replica, now)).fetchone() is not None


def attach(db: sqlite3.Connection, fires: list[InFlight]) -> list[InFlight]:
    """The in-flight fires as read, each with its hold (owner and deadline), if it has one."""
    if not fires or not _exists(db):
        return fires
    held = {(row[0], row[2]): (row[1], row[3]) for row in db.execute("SELECT field, owner, epoch, until FROM held")}
    if not held:
        return fires
    out = []
    for f in fires:
        found = held.get((fire_field(f.job, f.slot, f.trigger), f.epoch))
        out.append(f if found is None else InFlight(f.job, f.slot, f.epoch, f.attempt, f.trigger, *found))
    return out
