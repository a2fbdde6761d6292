"""The job sources' rows of `meta`: the refresh and accept request counters, and each replica's
noted view of its sources (for `status`). Functions of a connection, run in the store's
worker thread inside its transactions."""

from __future__ import annotations

import json
import sqlite3
import time

from ..sources_records import noted, request_count

_STATE = "sources_state:"


def request(db: sqlite3.Connection, what: str) -> None:
    db.execute("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE SET "
               "value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)", (f"sources_{what}",))


def requests(db: sqlite3.Connection) -> tuple[int, int]:
    found = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('sources_refresh', 'sources_accept')"))
    return request_count(found.get("sources_refresh")), request_count(found.get("sources_accept"))


def note(db: sqlite3.Connection, replica: str, sources: list[dict]) -> None:
    raw = json.dumps({"at": time.time(), "sources": sources})
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_STATE + replica, raw))


def noted_all(db: sqlite3.Connection) -> list[dict]:
    rows = db.execute("SELECT substr(key, ?), value FROM meta WHERE substr(key, 1, ?) = ?",
                      (len(_STATE) + 1, len(_STATE), _STATE))
    return noted(rows.fetchall())

