"""Reading the Redis store's records, which are untrusted input (SPEC 3, rule 8).

Each reader returns a value or raises `MalformedRecord`; the store moves what cannot be
read into its quarantine hash and skips it. Nothing here touches Redis.
"""

from __future__ import annotations

import json
import math

from ...model import FireId, InFlight, MalformedRecord, SlotRequest, TriggerRequest, request_id_problem

_INT_FIELDS = frozenset(("slot", "duration_ms", "http_status", "attempts", "consecutive_failures", "epoch"))
_FLOAT_FIELDS = frozenset(("finished_at", "last_success_at", "first_seen_at"))
MAX_SLOT = 253402300799  # 9999-12-31T23:59:59Z


def whole(value: object, what: str) -> int:
    """A non-negative whole number that fits a slot, from a stored string."""
    try:
        number = int(str(value), 10)
    except (TypeError, ValueError):
        raise MalformedRecord(f"{what} is not a whole number: {str(value)[:40]!r}") from None
    if not 0 <= number <= 10 ** 16:
        raise MalformedRecord(f"{what} is out of range: {number}")
    return number


def watermark(value: str) -> int:
    slot = whole(value, "watermark")
    if slot > MAX_SLOT:
        raise MalformedRecord(f"watermark past year 9999: {slot}")
    return slot


def inflight(field: str, value: str) -> InFlight:
    job, slot, trigger = FireId.parse_field(field)
    try:
        rec = json.loads(value)
    except (ValueError, RecursionError):
        raise MalformedRecord(f"in-flight record is not JSON: {value[:40]!r}") from None
    if not isinstance(rec, dict):
        raise MalformedRecord("in-flight record is not an object")
    if slot is None:
        slot = whole(rec.get("slot"), "in-flight slot")
    if slot > MAX_SLOT:
        raise MalformedRecord(f"in-flight slot past year 9999: {slot}")
    attempt = whole(rec.get("attempt"), "in-flight attempt")
    if attempt < 1 or attempt > 10 ** 6:
        raise MalformedRecord(f"in-flight attempt out of range: {attempt}")
    epoch = whole(rec.get("epoch"), "in-flight epoch")
    owner, until = rec.get("owner"), rec.get("until")
    # A hold that cannot be read holds nothing, as CLAIM reads it (handover.py).
    if isinstance(owner, str) and isinstance(until, int | float) and math.isfinite(until):
        return InFlight(job, slot, epoch, attempt, trigger, owner, until / 1000)
    return InFlight(job, slot, epoch, attempt, trigger)


def trigger(raw: str) -> TriggerRequest:
    try:
        rec = json.loads(raw)
    except (ValueError, RecursionError):
        raise MalformedRecord(f"trigger request is not JSON: {raw[:40]!r}") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("id"), str) or not isinstance(rec.get("job"), str):
        raise MalformedRecord("trigger request without a string id and job")
    if request_id_problem(rec["id"]) is not None:
        raise MalformedRecord(f"trigger request with an invalid id: {rec['id'][:40]!r}")
    return TriggerRequest(rec["id"], rec["job"], whole(rec.get("requested_at"), "trigger time"))


def slot_request(field: str, raw: str) -> SlotRequest:
    """A queued fire of a named slot, whose field is the slot's in-flight name."""
    job, slot, trigger = FireId.parse_field(field)
    if slot is None or trigger is not None:
        raise MalformedRecord(f"slot request not named job@slot: {field[:80]!r}")
    try:
        rec = json.loads(raw)
    except (ValueError, RecursionError):
        raise MalformedRecord(f"slot request is not JSON: {raw[:40]!r}") from None
    if not isinstance(rec, dict) or rec.get("job") != job or rec.get("slot") != slot or slot > MAX_SLOT:
        raise MalformedRecord("slot request disagrees with its name")
    attempt = whole(rec.get("attempt"), "slot request attempt")
    reason = rec.get("reason")
    if attempt < 1 or attempt > 10 ** 6 or not (reason is None or isinstance(reason, str)):
        raise MalformedRecord("slot request with an attempt out of range or a reason that is not text")
    return SlotRequest(job, slot, attempt, reason, whole(rec.get("requested_at"), "slot request time"))


def slot_request_raw(request: SlotRequest) -> str:
    """How a slot request is stored (slot_request reads it back)."""
    return json.dumps({"job": request.job, "slot": request.slot, "attempt": request.attempt, "reason": request.reason,
                       "requested_at": request.requested_at})


def job_record(record: dict[str, str]) -> tuple[dict, list[str]]:
    """A job's last-outcome hash, typed; and the fields that could not be read."""
    out: dict = {}
    bad = []
    for key, value in record.items():
        try:
            if key in _INT_FIELDS:
                out[key] = whole(value, key) if value else None
            elif key in _FLOAT_FIELDS:
                number = float(value) if value else None
                if number is not None and not math.isfinite(number):
                    raise ValueError
                out[key] = number
            else:
                out[key] = value or None
        except (MalformedRecord, ValueError):
            bad.append(key)
    return out, bad
