"""What to tell: each event's type and data, from a fire's outcome and its job's failure
streak (job.failed, job.failing, job.recovered) or from the sources' watcher (source.held,
source.unreadable). The engine's recorder and the watcher call in; the Outbox queues."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..model import Outcome, format_slot

if TYPE_CHECKING:
    from ..dispatch import Fire

JOB_FAILED, JOB_FAILING, JOB_RECOVERED = "job.failed", "job.failing", "job.recovered"
SOURCE_HELD, SOURCE_UNREADABLE = "source.held", "source.unreadable"
LEAD_WAIT_S = 10  # how long a source's event waits for this replica to lead


class Outbox(Protocol):
    def put(self, kind: str, data: dict[str, Any]) -> None: ...


class FireNotices:
    """The engine's Notices: a fire's outcome with the job's failure streak before and after
    it (the store's FINISH counts it). `failing` is told once per streak, when the streak
    reaches `after`; `recovered` at the first success after such a streak. A leader that
    takes over reads the streaks from the store, so a streak is not told twice."""

    def __init__(self, outbox: Outbox, after: int):
        self.outbox, self.after = outbox, after

    def finished(self, fire: Fire, outcome: Outcome, before: int, streak: int) -> None:
        if outcome.status == "ok":
            if before >= self.after:
                self.outbox.put(JOB_RECOVERED, {**_fire(fire), "failures": before, "attempts": outcome.attempts})
            return
        self.outbox.put(JOB_FAILED, {
            **_fire(fire), "attempts": outcome.attempts, "http_status": outcome.http_status,
            "error": outcome.error, "excerpt": outcome.excerpt, "failures": streak,
        })
        if streak >= self.after > before:
            self.outbox.put(JOB_FAILING, {**_fire(fire), "failures": streak, "http_status": outcome.http_status,
                                          "error": outcome.error})


def _fire(fire: Fire) -> dict[str, Any]:
    claim = fire.claim
    if claim.trigger:
        return {"job": fire.job.name, "trigger": claim.trigger, "requested_at": format_slot(claim.slot)}
    return {"job": fire.job.name, "slot": format_slot(claim.slot)}


def source_notices(outbox: Outbox, leading: Callable[[], bool],
                   wait_s: int = LEAD_WAIT_S) -> Callable[[str, dict[str, Any]], None]:
    """The watcher's on_event: a source held or unreadable, told once per episode (the watcher
    calls once per episode) by the replica that leads: every replica reads the sources, and
    one should tell. A replica not leading yet (a source unreadable at start, before the
    lease is taken) looks again each second for `wait_s` seconds: the leader elsewhere tells
    it meanwhile, and this one tells it if it takes the lead in that time."""

    def told(kind: str, data: dict[str, Any], waited: int = 0) -> None:
        if leading():
            outbox.put(kind, data)
        elif waited < wait_s:
            asyncio.get_running_loop().call_later(1.0, told, kind, data, waited + 1)

    return told
