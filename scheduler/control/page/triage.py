"""What the page puts first and counts at the top: failing jobs, then overdue ones, then those
held back (paused, or from a source the guard holds), then the rest, by name within each.

A job is failing when its last fire failed or its consecutive failures are above zero. The
same words are the filter's states and the classes the script filters on (`data-states`)."""

from __future__ import annotations

FILTERS = ("all", "failing", "overdue", "paused", "held", "disabled", "done")


def held_sources(sources: list[dict]) -> set[str]:
    """The sources whose last read the guard holds (their last good set stays in force)."""
    return {str(s.get("source")) for s in sources if s.get("held")}


def failing(job: dict) -> bool:
    last = job.get("last") or {}
    return (job.get("consecutive_failures") or 0) > 0 or last.get("outcome") == "failed"


def states(job: dict, held: set[str]) -> list[str]:
    """Every filter word that applies to the job, its own state first."""
    out = [str(job.get("state"))]
    if failing(job):
        out.append("failing")
    if job.get("overdue"):
        out.append("overdue")
    if job.get("source") in held:
        out.append("held")
    if job.get("running"):
        out.append("running")
    return out


def group(job: dict, held: set[str]) -> int:
    """0 failing, 1 overdue, 2 paused or held, 3 the rest."""
    if failing(job):
        return 0
    if job.get("overdue"):
        return 1
    if job.get("state") == "paused" or job.get("source") in held:
        return 2
    return 3


def ordered(jobs: list[dict], held: set[str]) -> list[dict]:
    return sorted(jobs, key=lambda j: (group(j, held), str(j.get("name"))))


def summary(view: dict) -> dict[str, int]:
    """The counts of the summary line: failing, overdue, paused and held jobs' sources, and
    the rejected job definitions."""
    jobs = view.get("jobs") or []
    held = held_sources(view.get("sources") or [])
    return {
        "failing": sum(failing(j) for j in jobs),
        "overdue": sum(bool(j.get("overdue")) for j in jobs),
        "paused": sum(j.get("state") == "paused" for j in jobs),
        "held": len(held),
        "rejected": len(view.get("rejected") or []),
    }
