"""Rows of the state file read as untrusted input.

SQLite is dynamically typed: any column can hold text, a blob, an integer, a float or NULL
whatever its declared type, and the file can be written by an older release, a bug or a
person with the sqlite3 shell. Each row is checked here before it is used; a row that fails
is logged once (table and key, never the value), counted, copied to `quarantine` and
deleted from its table, and the read goes on without it (SPEC section 3, rule 8).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from ...model import FireId, InFlight, MalformedRecord, SlotRequest, TriggerRequest, request_id_problem

log = logging.getLogger("scheduler.sqlite")

# The last second format_slot can write (9999-12-31T23:59:59Z).
MAX_SLOT = 253402300799
# A leader claims at most a moment ahead of its clock, so a watermark further ahead than
# this was never written by one, and would stop the job until then.
MAX_AHEAD_S = 86400
MAX_ATTEMPT = 1_000_000

# The typed fields of a job record; any other key is kept as it is (a newer release's).
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "consecutive_failures": (int,), "attempts": (int,), "slot": (int,), "duration_ms": (int,),
    "http_status": (int,), "epoch": (int,), "lateness_ms": (int,),
    "last_success_at": (int, float), "first_seen_at": (int, float), "finished_at": (int, float),
    "status": (str,), "error": (str,), "excerpt": (str,),
}


def _int(value: Any, what: str, low: int = 0, high: int = 2**63 - 1) -> int:
    if type(value) is not int or not low <= value <= high:
        raise MalformedRecord(f"{what} is not an integer in [{low}, {high}]")
    return value


def _number(value: Any, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise MalformedRecord(f"{what} is not a finite number")
    return float(value)


def _text(value: Any, what: str) -> str:
    if type(value) is not str or not value:
        raise MalformedRecord(f"{what} is not non-empty text")
    return value


def slot_value(value: Any, what: str = "slot") -> int:
    return _int(value, what, 0, MAX_SLOT)


def check_watermark(job: Any, slot: Any) -> tuple[str, int]:
    job = _text(job, "job")
    mark = slot_value(slot, "watermark")
    if mark > time.time() + MAX_AHEAD_S:
        raise MalformedRecord("watermark more than a day ahead of the clock")
    return job, mark


def check_inflight(field: Any, job: Any, slot: Any, epoch: Any, attempt: Any, trigger: Any, claimed_at: Any) -> InFlight:
    name, named_slot, named_trigger = FireId.parse_field(_text(field, "field"))
    if job != name or trigger != named_trigger:
        raise MalformedRecord("job or trigger columns disagree with the fire's name")
    slot = slot_value(slot)
    if named_slot is not None and slot != named_slot:
        raise MalformedRecord("slot column disagrees with the fire's name")
    _number(claimed_at, "claimed_at")
    return InFlight(name, slot, _int(epoch, "epoch"), _int(attempt, "attempt", 1, MAX_ATTEMPT), named_trigger)


def check_record(name: Any, record: Any) -> tuple[str, dict]:
    name = _text(name, "job name")
    try:
        rec = json.loads(_text(record, "record"))
    except (ValueError, RecursionError):
        raise MalformedRecord("record is not JSON") from None
    if not isinstance(rec, dict):
        raise MalformedRecord("record is not a JSON object")
    for key, types in RECORD_FIELDS.items():
        value = rec.get(key)
        if value is None:
            continue
        if type(value) not in types or (type(value) is float and not math.isfinite(value)):
            raise MalformedRecord(f"record field {key} has the wrong type")
        if key == "consecutive_failures" and value < 0:
            raise MalformedRecord("record field consecutive_failures is negative")
    return name, rec


def check_paused(name: Any) -> str:
    return _text(name, "job name")


def check_trigger(seq: Any, request_id: Any, job: Any, requested_at: Any) -> TriggerRequest:
    if type(request_id) is not str or request_id_problem(request_id) is not None:
        raise MalformedRecord("trigger id does not follow the id grammar")
    return TriggerRequest(request_id, _text(job, "job"), slot_value(requested_at, "requested_at"))


def check_slot_request(field: Any, job: Any, slot: Any, attempt: Any, reason: Any, requested_at: Any) -> SlotRequest:
    name, named_slot, trigger = FireId.parse_field(_text(field, "field"))
    if job != name or trigger is not None or slot_value(slot) != named_slot:
        raise MalformedRecord("job or slot columns disagree with the request's name")
    if reason is not None and type(reason) is not str:
        raise MalformedRecord("reason is not text")
    return SlotRequest(name, slot, _int(attempt, "attempt", 1, MAX_ATTEMPT), reason,
                       slot_value(requested_at, "requested_at"))


def check_triggered(request_id: Any, at: Any) -> tuple[str, float]:
    return _text(request_id, "trigger id"), _number(at, "at")


def check_triggered_job(request_id: Any, job: Any) -> tuple[str, str]:
    return _text(request_id, "trigger id"), _text(job, "job")


def check_epoch(value: Any) -> int:
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    raise MalformedRecord("epoch is not a decimal integer")


def check_meta(key: Any, value: Any) -> tuple[str, Any]:
    key = _text(key, "key")
    if key == "epoch":
        return key, check_epoch(value)
    if key in ("leader", "lock"):
        return key, _text(value, key)
    return key, value  # a newer release's


# table -> (key column, every column, check)
TABLES: dict[str, tuple[str, str, Callable[..., Any]]] = {
    "meta": ("key", "key, value", check_meta),
    "slots": ("job", "job, slot", check_watermark),
    "inflight": ("field", "field, job, slot, epoch, attempt, trigger, claimed_at", check_inflight),
    "jobs": ("name", "name, record", check_record),
    "paused": ("name", "name", check_paused),
    "trigger": ("seq", "seq, id, job, requested_at", check_trigger),
    "triggered": ("id", "id, at", check_triggered),
    "redrive": ("field", "field, job, slot, attempt, reason, requested_at", check_slot_request),
    "triggered_job": ("id", "id, job", check_triggered_job),
}


@dataclass(frozen=True)
class Bad:
    table: str
    rowid: int
    key: Any
    row: tuple
    reason: str


class Quarantine:
    """Counts and logs unreadable rows, and moves them aside when the store may write."""

    def __init__(self, on_malformed: Callable[[str], None] | None = None):
        self.count = 0
        self.on_malformed = on_malformed
        self._seen: set[tuple[str, str]] = set()

    def rows(self, db: sqlite3.Connection, table: str, bad: list[Bad], where: str = "", args: tuple = ()) -> list:
        """The rows of `table` that pass its check (as the check returns them); the others
        are noted in `bad`."""
        key_col, cols, check = TABLES[table]
        out = []
        for rowid, *row in db.execute(f"SELECT rowid, {cols} FROM {table} {where}", args):
            try:
                out.append(check(*row))
            except MalformedRecord as exc:
                found = Bad(table, rowid, row[cols.split(", ").index(key_col)], tuple(row), str(exc))
                self.note(found)
                bad.append(found)
        return out

    def note(self, bad: Bad) -> None:
        ident = (bad.table, _shown(bad.key))
        if ident in self._seen:
            return
        self._seen.add(ident)
        self.count += 1
        log.warning("unreadable record set aside", extra={"table": bad.table, "key": ident[1], "problem": bad.reason})
        if self.on_malformed is not None:
            try:
                self.on_malformed(f"{bad.table} {ident[1]}")  # where, as the Redis store says it
            except Exception:  # a metric hook must never break a read
                log.exception("on_malformed hook failed")

    @staticmethod
    def move(db: sqlite3.Connection, bad: list[Bad]) -> None:
        """Copy each row to `quarantine` and delete it, in the caller's write transaction.
        A row read outside this transaction may have changed since: it is read and checked
        again, and only a row that still fails is moved."""
        now = time.time()
        for b in bad:
            _, cols, check = TABLES[b.table]
            row = db.execute(f"SELECT {cols} FROM {b.table} WHERE rowid = ?", (b.rowid,)).fetchone()
            if row is None:
                continue
            try:
                check(*row)
                continue
            except MalformedRecord:
                pass
            raw = repr(tuple(bytes(v) if isinstance(v, bytes) else v for v in row))
            db.execute(f"DELETE FROM {b.table} WHERE rowid = ?", (b.rowid,))
            db.execute("INSERT INTO quarantine (source, key, raw, reason, at) VALUES (?, ?, ?, ?, ?)",
                       (b.table, _shown(b.key), raw, b.reason, now))


def _shown(key: Any) -> str:
    """A row's key as a log can show it: text as it is (cut short), anything else by repr."""
    text = key if type(key) is str else repr(bytes(key) if isinstance(key, bytes) else key)
    return text[:120]
