"""The standalone state file's layout, its format version and its migrations.

The format version is `PRAGMA user_version`. Versions 0 and 1 are the first layout, which
never set it. Version 2 adds tables only, never a column to an existing one: an older
release writes its rows positionally (`INSERT INTO slots VALUES (?, ?)`), so an added column
would break it on a rollback, while a table it does not know is simply never read. A later
version keeps to the same rule (history, for one, becomes a table of its own).
"""

from __future__ import annotations

import sqlite3

from ..protocol import StoreUnavailable
from .ledger import TABLES as LEDGER_TABLES

VERSION = 3

# The ledger's tables (ledger.py) came later under the same version: a table an older release
# never reads. A file of version 3 made before them gets them at its next acquisition.

# The first layout, unchanged: what versions 0 and 1 hold.
V1_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS slots (job TEXT PRIMARY KEY, slot INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS inflight (
      field TEXT PRIMARY KEY, job TEXT NOT NULL, slot INTEGER NOT NULL, epoch INTEGER NOT NULL,
      attempt INTEGER NOT NULL, trigger TEXT, claimed_at REAL NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS jobs (name TEXT PRIMARY KEY, record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS paused (name TEXT PRIMARY KEY)",
    """CREATE TABLE IF NOT EXISTS trigger (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, job TEXT NOT NULL, requested_at INTEGER NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS triggered (id TEXT PRIMARY KEY, at REAL NOT NULL)",
)

# Version 2: rows set aside because they could not be read, and the job each spent trigger
# id belonged to (so the state of a removed job can be cleaned up with its ids).
V2_TABLES = (
    """CREATE TABLE IF NOT EXISTS quarantine (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, key TEXT NOT NULL, raw TEXT NOT NULL,
      reason TEXT NOT NULL, at REAL NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS triggered_job (id TEXT PRIMARY KEY, job TEXT NOT NULL)",
)

# Version 3: each job's last SCHEDULER_HISTORY finished fires, newest the highest seq; an
# entry is the same JSON object the Redis store keeps in its history lists. A table of its
# own, so a version-2 release still reads and writes the file (it never looks at it).
V3_TABLES = (
    """CREATE TABLE IF NOT EXISTS history (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, entry TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS history_job ON history (job, seq)",
)


def newer_problem(path: str, found: int) -> str:
    return (f"state file {path} has format version {found}, newer than this release knows "
            f"(up to {VERSION}); it was written by a newer release: not leading and not writing")


class StateDamaged(StoreUnavailable):
    """The state file is damaged or is not a SQLite database: no retry mends it."""


def damage(path: str, exc: sqlite3.Error) -> StateDamaged | None:
    """The error to raise for `exc` when it says the file is damaged, else None."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return None
    return StateDamaged(f"the state file {path} is damaged or is not a SQLite database ({exc}): move it aside "
                        "(the scheduler never deletes or rewrites it) and start again, with a backup put in its "
                        "place or with no file, which starts from an empty state")


def open_db(path: str, busy_timeout_s: float) -> tuple[sqlite3.Connection, str | None]:
    """Open the file and bring an older format up to VERSION in one transaction. Returns the
    connection and, for a file newer than this release, what is wrong (then nothing was
    written). Raises sqlite3.Error or OSError."""
    db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    try:
        db.text_factory = decode_text
        found = user_version(db)
        if found > VERSION:
            return db, newer_problem(path, found)
        if found < VERSION:
            # Journal mode cannot change inside a transaction; WAL lets readers (status, the
            # CLI) read while a writer holds the lock.
            db.execute("PRAGMA journal_mode=WAL")
            migrate(db, path)
        db.execute("PRAGMA synchronous=NORMAL")
        return db, None if user_version(db) <= VERSION else newer_problem(path, user_version(db))
    except BaseException:
        db.close()
        raise


def user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, path: str) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        found = user_version(db)  # another process may have migrated it meanwhile
        if found < VERSION:
            for statement in V1_TABLES + V2_TABLES + V3_TABLES + LEDGER_TABLES:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class BadText(bytes):
    """A TEXT value that is not UTF-8: read as bytes, so the row can be set aside instead of
    failing the whole query."""


def decode_text(raw: bytes) -> str | BadText:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return BadText(raw)
