"""What the daemons logged: their JSON events, and the warnings and errors among them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def log_events(path: Path) -> list[dict]:
    """The JSON log lines of a daemon (other lines, e.g. tracebacks, as {'raw': line})."""
    out = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"raw": line})
    return out


def log_problems(paths: Iterable[Path], limit: int = 5) -> dict[str, Any]:
    """Warnings, errors and non-JSON lines (tracebacks) the daemons logged."""
    counts: dict[str, int] = {}
    examples: list[str] = []
    for path in paths:
        for ev in log_events(path):
            level = ev.get("level", "raw" if "raw" in ev else "info")
            if level in ("info", "debug"):
                continue
            what = (ev.get("event") or ev.get("raw", "")).strip().splitlines()[0] if (ev.get("event") or ev.get("raw")) else ""
            key = f"{level}: {what}"[:120]
            counts[key] = counts.get(key, 0) + 1
            if len(examples) < limit:
                examples.append(f"{path.name}: {json.dumps(ev)[:300] if 'raw' not in ev else ev['raw'][:300]}")
    return {"counts": counts, "examples": examples}


def summarize_problems(problems: dict[str, Any]) -> str:
    if not problems["counts"]:
        return "none"
    return "; ".join(f"{n}x {k}" for k, n in sorted(problems["counts"].items(), key=lambda kv: -kv[1])[:4])


def log_time(ev: dict) -> float | None:
    """A JSON log event's `ts` as Unix seconds."""
    try:
        return dt.datetime.fromisoformat(ev["ts"]).timestamp()
    except (KeyError, ValueError, TypeError):
        return None
