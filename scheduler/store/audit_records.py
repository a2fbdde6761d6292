"""The audit log both stores keep (SPEC section 8, "Audit and roles"): who changed what,
through the control API or the CLI. Each entry is a JSON object the caller builds
(control/audit.py); the store gives it an `id` that grows with each entry, keeps the newest
AUDIT_KEEP, and reads them back newest first, `before` an id for the next page.

An entry that does not read as a JSON object (a stray write) is skipped, never fatal."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

AUDIT_KEEP = 10_000  # entries kept, oldest dropped first: about 3 MB at ~300 bytes an entry
AUDIT_MAX_LIMIT = 1000  # the most entries one read returns


def read_entries(rows: Iterable[tuple[Any, Any]], before: int | None) -> list[dict]:
    """(id, raw JSON) rows to entries with their id, newest first, only ids below `before`."""
    out = []
    for ident, raw in rows:
        try:
            entry = json.loads(raw)
            number = int(ident)
        except (ValueError, TypeError, RecursionError):
            continue
        if not isinstance(entry, dict) or (before is not None and number >= before):
            continue
        entry["id"] = number
        out.append(entry)
    return sorted(out, key=lambda e: e["id"], reverse=True)
