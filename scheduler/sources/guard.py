"""The guard on a source's job set (SPEC section 8, "Guard").

A read that would remove more than SCHEDULER_JOBS_MAX_DROP of a source's jobs, and at least
MIN_DROPPED of them, or every one of them, is held: the last good set stays in force until
an operator accepts the read (`POST /api/v1/sources/accept`, `sources accept`). A bad
migration or an empty table after a failed restore then unschedules nothing in silence.
Pure: the watcher (watch.py) keeps the hold and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from .document import Parsed

MIN_DROPPED = 10  # below this many removals a change is an ordinary edit, whatever its share


@dataclass(frozen=True)
class Hold:
    parsed: Parsed  # the read that is held
    dropped: int  # jobs in force that it would remove (or reject)
    in_force: int  # jobs of the source in force meanwhile
    since: float  # when the first read of this document was held

    def as_dict(self) -> dict:
        return {"jobs": len(self.parsed.jobs), "dropped": self.dropped, "in_force": self.in_force,
                "since": self.since}


def dropped_if_held(good: Parsed | None, new: Parsed, max_drop: float) -> int | None:
    """How many jobs in force `new` would remove, when that calls for a hold; else None.
    `new` was validated against `good`, so its `gone` names what it removes (or now rejects).
    `max_drop` is a fraction; 1.0 turns the guard off."""
    if good is None or not good.jobs or max_drop >= 1.0:
        return None
    dropped = len(new.gone)
    if dropped == 0:
        return None
    if not new.jobs or (dropped >= MIN_DROPPED and dropped > max_drop * len(good.jobs)):
        return dropped
    return None
