"""What both stores share about the ledger (SPEC 8): entry ids, the opaque page cursor and the
reading of a stored entry, which is untrusted input (SPEC 3, rule 8).

A ledger entry's id is its slot in Unix seconds for a scheduled slot, `manual:<request id>`
for a manual run; entries are ordered by slot, then by id, newest first.
"""

from __future__ import annotations

import base64
import json

MANUAL = "manual:"
RUNS_LIMIT = 50  # entries per page when no limit is asked for
PASSED = frozenset(("skipped", "dropped"))  # fates of slots that were never fired
RUNS_MAX = 1000  # the most entries one page holds


def entry_id(slot: int, trigger: str | None) -> str:
    return MANUAL + trigger if trigger else str(slot)


def encode_cursor(slot: int, run_id: str) -> str:
    """Where the next page starts: after (slot, id), going back in time."""
    return base64.urlsafe_b64encode(f"{slot} {run_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (slot, id) a cursor names; ValueError for one this code did not make."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        slot, run_id = text.split(" ", 1)
        return int(slot, 10), run_id
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the cursor is not one a runs page gave") from None


def read_entry(run_id: str, raw: object) -> dict | None:
    """A stored entry, with its id; None when it is not a JSON object with a whole slot."""
    try:
        entry = json.loads(raw) if isinstance(raw, (str, bytes)) else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("slot"), int):
        return None
    entry["id"] = run_id
    return entry


def page(entries: list[dict], limit: int) -> tuple[list[dict], str | None]:
    """The first `limit` of entries (newest first, one more than a page when there are more),
    and the cursor of the next page."""
    if len(entries) <= limit:
        return entries, None
    kept = entries[:limit]
    return kept, encode_cursor(kept[-1]["slot"], kept[-1]["id"])
