"""Settings that load but look wrong: said as warnings at start and by `check`, one line each
naming its variable, never a secret's value."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..schedule import slots as sched
from .jobs import JOB_PREFIX, JobSpec


def setting_warnings(settings: Mapping[str, Any], jobs: tuple[JobSpec, ...],
                     job_vars: Mapping[str, Mapping[str, str]]) -> tuple[str, ...]:
    out: list[str] = []
    if settings["api_token"] is None and settings["signing_secret"] is None:
        out.append(
            "SCHEDULER_API_TOKEN and SCHEDULER_SIGNING_SECRET: neither is set, so the app cannot tell the "
            "scheduler's calls from anyone else's; set one or both"
        )
    by_name = {key.lower().replace("_", "-"): key for key in job_vars}
    periods: dict[tuple[str, str], float | None] = {}  # thousands of jobs share few schedules
    for job in jobs:
        key = by_name.get(job.name)
        # Only a TIMEOUT or RETRY_FOR the operator wrote: the default's 30s on `every 10s` is no mistake of theirs.
        if key is None or ("TIMEOUT" not in job_vars[key] and job.retry_for_s is None):
            continue
        shared = (job.schedule_text, job.timezone)
        if "h" in job.schedule_text or "H" in job.schedule_text:  # an H is the job's own
            period = _period_s(job.schedule)
        else:
            period = periods[shared] if shared in periods else periods.setdefault(shared, _period_s(job.schedule))
        if period is not None and job.retry_for_s is not None and job.retry_for_s > period:
            out.append(
                f"{JOB_PREFIX}{key}_RETRY_FOR: {job.retry_for_s:g}s is longer than the job's period of {period:g}s "
                f"({job.schedule_text.strip()[:40]}); a slot's retries stop at the next slot all the same"
            )
        if period is not None and "TIMEOUT" in job_vars[key] and job.timeout_s > period:
            out.append(
                f"{JOB_PREFIX}{key}_TIMEOUT: {job.timeout_s:g}s is longer than the job's period of {period:g}s "
                f"({job.schedule_text.strip()[:40]}); a call can still be running when the next slot comes due "
                f"(CONCURRENCY={job.concurrency} decides what then happens)"
            )
    return tuple(out)


def _period_s(schedule: sched.Schedule) -> float | None:
    """The shortest time between two slots: an interval's period, or for cron the least gap
    among the next few slots; None for a one-shot."""
    if isinstance(schedule, sched.Interval):
        return float(schedule.period_s)
    if isinstance(schedule, sched.At):
        return None
    slots = []
    for slot in sched.iter_slots(schedule, time.time()):
        slots.append(slot)
        if len(slots) >= 5:
            break
    gaps = [b - a for a, b in zip(slots, slots[1:])]
    return float(min(gaps)) if gaps else None
