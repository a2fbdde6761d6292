"""Jobs: the fields of a job, the frozen `JobSpec`, and the rules that read one job from
its fields, shared by SCHEDULER_JOB_<NAME>_<FIELD> variables and documents of jobs
(scheduler/sources/document.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from ..schedule import slots as sched
from .reader import Reader
from .parsers import boolean, choice, duration, int_range, json_headers, job_url, positive_duration, zone

JOB_PREFIX = "SCHEDULER_JOB_"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CATCHUP = ("latest", "all", "none")
CONCURRENCY = ("forbid", "allow", "replace", "queue")
JOB_FIELDS: dict[str, str | None] = {
    "SCHEDULE": None,
    "URL": None,
    "METHOD": "POST",
    "TIMEOUT": "30s",
    "RETRIES": "3",
    "RETRY_FOR": None,  # the smaller of half the period and 1 hour (retry_for_s)
    "BODY": None,
    "HEADERS": None,
    "TIMEZONE": None,  # SCHEDULER_TIMEZONE
    "JITTER": "0",
    "CATCHUP": "latest",
    "CATCHUP_WINDOW": None,  # unlimited
    "CONCURRENCY": "forbid",
    "ENABLED": "true",
}
TIMEZONE_DEFAULT = "UTC"  # SCHEDULER_TIMEZONE's (config/settings.py): a job's without TIMEZONE
# The optional fields: FIELD -> (its JobSpec attribute, its parser).
_OPTIONAL: dict[str, tuple[str, Callable[[str], Any]]] = {
    "METHOD": ("method", choice(METHODS, upper=True)),
    "TIMEOUT": ("timeout_s", positive_duration),
    "RETRIES": ("retries", int_range(0, 100)),
    "RETRY_FOR": ("retry_for_s", positive_duration),
    "BODY": ("body", str),
    "HEADERS": ("headers", json_headers),
    "TIMEZONE": ("timezone", zone),
    "JITTER": ("jitter_s", duration),
    "CATCHUP": ("catchup", choice(CATCHUP)),
    "CATCHUP_WINDOW": ("catchup_window_s", positive_duration),
    "CONCURRENCY": ("concurrency", choice(CONCURRENCY)),
    "ENABLED": ("enabled", boolean),
}
# A field left out: its default of JOB_FIELDS, parsed once for all jobs (None: no default).
_PARSED: dict[str, Any] = {
    fld: None if (text := JOB_FIELDS[fld]) is None else parse(text) for fld, (_, parse) in _OPTIONAL.items()
}
# JobSpec's defaults, attribute -> value: the same values, so a JobSpec made in code is the
# job of a configuration that leaves those fields out (with SCHEDULER_TIMEZONE unset).
JOB_DEFAULTS: dict[str, Any] = {attr: _PARSED[fld] for fld, (attr, _) in _OPTIONAL.items()}
JOB_DEFAULTS.update(headers=(), timezone=TIMEZONE_DEFAULT)


@dataclass(frozen=True)
class JobSpec:
    """One job. Every default comes from JOB_DEFAULTS (tests/test_config.py checks that no
    other is written here)."""

    name: str
    schedule_text: str
    schedule: sched.Schedule
    url: str
    method: str = JOB_DEFAULTS["method"]
    timeout_s: float = JOB_DEFAULTS["timeout_s"]
    retries: int = JOB_DEFAULTS["retries"]
    retry_for_s: float | None = JOB_DEFAULTS["retry_for_s"]  # None: retry_for_s(job, period)
    body: str | None = JOB_DEFAULTS["body"]
    headers: tuple[tuple[str, str], ...] = JOB_DEFAULTS["headers"]
    timezone: str = JOB_DEFAULTS["timezone"]
    jitter_s: float = JOB_DEFAULTS["jitter_s"]
    catchup: str = JOB_DEFAULTS["catchup"]
    catchup_window_s: float | None = JOB_DEFAULTS["catchup_window_s"]
    concurrency: str = JOB_DEFAULTS["concurrency"]
    enabled: bool = JOB_DEFAULTS["enabled"]


def load_job(key: str, fields: dict[str, str], g: Reader, default_tz: str, api_url: str | None,
              var: Callable[[str], str] | None = None) -> JobSpec | None:
    """One job from its fields (FIELD -> text). `var` names a field in messages and in
    `g.values`: SCHEDULER_JOB_<KEY>_<FIELD> by default; a document of jobs names it as its
    own field (scheduler/sources/document.py), so both kinds of job share every rule."""
    name = key.lower().replace("_", "-")
    var = var or f"{JOB_PREFIX}{key}_".__add__
    before = len(g.problems)
    for required in ("SCHEDULE", "URL"):
        if required not in fields:
            why = " (other variables of the job are set)" if var(required).startswith(JOB_PREFIX) else ""
            g.problems.append(f"{var(required)}: required for job {name!r}{why}")

    def get(fld: str):
        if fld not in fields:
            return _PARSED[fld]
        return g.get(var(fld), _OPTIONAL[fld][1], JOB_FIELDS[fld])

    tz = get("TIMEZONE") or default_tz
    spec = None
    if "SCHEDULE" in fields and fields["SCHEDULE"] != "":
        try:
            spec = parse_schedule(fields["SCHEDULE"], tz, name)
        except sched.ScheduleError as exc:
            g.problems.append(f"{var('SCHEDULE')}: {exc}")
    url = g.get(var("URL"), job_url(api_url)) if "URL" in fields else None
    method = get("METHOD")
    headers = get("HEADERS")
    job = dict(
        method=method,
        timeout_s=get("TIMEOUT"),
        retries=get("RETRIES"),
        retry_for_s=get("RETRY_FOR"),
        body=get("BODY"),
        headers=headers or (),
        timezone=tz,
        jitter_s=get("JITTER"),
        catchup=get("CATCHUP"),
        catchup_window_s=get("CATCHUP_WINDOW"),
        concurrency=get("CONCURRENCY"),
        enabled=get("ENABLED"),
    )
    if len(g.problems) > before or spec is None or url is None:
        return None
    return JobSpec(name=name, schedule_text=fields["SCHEDULE"], schedule=spec, url=url, **job)


RETRY_FOR_MAX_DEFAULT_S = 3600.0


def retry_for_s(job: JobSpec, period_s: float | None) -> float:
    """How long after its slot (a manual run: after its request) a failed fire is retried:
    the job's RETRY_FOR, else the smaller of half its period and 1 hour (a one-time `at`
    job, with no period: 1 hour); with RETRIES=0 and no RETRY_FOR, none. Half the period keeps
    a slot's retries clear of the next."""
    if job.retry_for_s is not None:
        return job.retry_for_s
    if job.retries == 0:
        return 0.0  # RETRIES=0 without a RETRY_FOR: no retry at all, as documented
    return RETRY_FOR_MAX_DEFAULT_S if period_s is None else min(period_s / 2, RETRY_FOR_MAX_DEFAULT_S)


_SCHEDULES: dict[tuple[str, str], sched.Schedule | sched.ScheduleError] = {}


def parse_schedule(text: str, tz: str, name: str) -> sched.Schedule:
    """sched.parse, remembered per (expression, zone), errors too: 100,000 jobs share few
    expressions, and parsing one (with croniter's checks) costs about 30 us. An expression
    with an `H` (or `h`, which a macro or a duration may hold too) is parsed for the job's
    name each time: sched.parse remembers its shared part and its Cron, so that costs
    about 3 us."""
    if "h" in text or "H" in text:
        return sched.parse(text, tz, name)
    key = (text, tz)
    found = _SCHEDULES.get(key)
    if found is None:
        if len(_SCHEDULES) > 50_000:
            _SCHEDULES.clear()
        try:
            found = sched.parse(text, tz, name)
        except sched.ScheduleError as exc:
            found = exc
        _SCHEDULES[key] = found
    if isinstance(found, sched.ScheduleError):
        raise sched.ScheduleError(str(found))
    return found
