"""The job sources' records both stores keep, read back the same way: the refresh and accept
request counters, and each replica's noted view of its sources (one JSON record per replica,
for `status`). A record that is not what a replica writes is skipped, and a view older than
NOTED_FRESH_S (a replica gone) is left out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

NOTED_FRESH_S = 300.0


def noted(records: Iterable[tuple[Any, Any]], now: float | None = None) -> list[dict]:
    now = time.time() if now is None else now
    out = []
    for replica, raw in records:
        try:
            value = json.loads(raw)
            at, sources = float(value["at"]), value["sources"]
        except (ValueError, TypeError, KeyError, RecursionError):
            continue
        if not isinstance(sources, list) or now - at > NOTED_FRESH_S:
            continue
        name = replica.decode(errors="replace") if isinstance(replica, bytes) else str(replica)
        out.append({"replica": name, "at": at, "sources": [s for s in sources if isinstance(s, dict)]})
    return sorted(out, key=lambda r: r["replica"])


def request_count(raw: Any) -> int:
    """A request counter; an unreadable one reads as -1, which differs from every count, so
    a replica acts on it once rather than never."""
    if raw is None:
        return 0
    try:
        return int(raw.decode() if isinstance(raw, bytes) else str(raw))
    except (TypeError, ValueError, UnicodeDecodeError):
        return -1
