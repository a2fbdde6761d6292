"""Replicas' noted views of their job sources, as both stores keep them (one JSON record per
replica), read back for `status`: a record that is not what a replica writes is skipped, and
one older than NOTED_FRESH_S (a replica gone) is left out."""

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
