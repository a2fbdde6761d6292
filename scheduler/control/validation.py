"""`POST /api/v1/validate` and `check --document FILE` (SPEC section 8, "Validate"): a
document of jobs checked exactly as the sources check it, each job with the same sentence
`check` gives, and its next slots in UTC and in its own zone. Nothing changes anywhere."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..config.loader import Settings
from ..schedule import slots as sched
from ..sources.document import DocumentError, validate

NEXT_SLOTS = 3


class BadDocument(ValueError):
    """The document as a whole cannot be checked (not {"jobs": [...]})."""


def validate_document(settings: Settings, data: Any, now: float | None = None, count: int = NEXT_SLOTS) -> dict:
    """{"jobs": [{"name", "ok", "problem"?, "next": [{"utc", "local"}]}]}, in document order."""
    try:
        parsed = validate(data, "document", settings)
    except DocumentError as exc:
        raise BadDocument(str(exc)) from None
    start = time.time() if now is None else now
    env = {j.name for j in settings.jobs if j.name not in settings.source_of}
    rejections = iter(parsed.rejected)
    seen: set[str] = set()
    out: list[dict] = []
    # Each item of the list became exactly one valid job or one rejection, in order.
    for item in data["jobs"]:
        name = item.get("name") if isinstance(item, dict) else None
        job = parsed.jobs.get(name) if isinstance(name, str) and name not in seen else None
        if job is None:
            r = next(rejections)
            out.append({"name": r.name, "ok": False, "problem": r.problem, "next": []})
            continue
        seen.add(job.name)
        if job.name in env:
            out.append({"name": job.name, "ok": False, "next": [],
                        "problem": "also defined in the environment; the environment's definition applies"})
            continue
        zone = ZoneInfo(job.timezone)
        slots = []
        for slot in sched.iter_slots(job.schedule, start):
            slots.append({"utc": sched.format_slot(slot), "local": datetime.fromtimestamp(slot, zone).isoformat()})
            if len(slots) >= count:
                break
        out.append({"name": job.name, "ok": True, "timezone": job.timezone, "next": slots})
    return {"jobs": out}
