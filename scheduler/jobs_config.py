"""Jobs: the fields of a job, the frozen `JobSpec`, and the rules that read one job from
its fields, shared by SCHEDULER_JOB_<NAME>_<FIELD> variables and documents of jobs
(scheduler/job_document.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

from . import schedule as sched
from .config_reader import Reader
from .parsers import boolean, choice, duration, int_range, json_headers, job_url, positive_duration, zone

JOB_PREFIX = "SCHEDULER_JOB_"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CATCHUP = ("latest", "all", "none")
CONCURRENCY = ("forbid", "allow", "replace")
JOB_FIELDS: dict[str, str | None] = {
    "SCHEDULE": None,
    "URL": None,
    "METHOD": "POST",
    "TIMEOUT": "30s",
    "RETRIES": "3",
    "BODY": None,
    "HEADERS": None,
    "TIMEZONE": None,  # SCHEDULER_TIMEZONE
    "JITTER": "0",
    "CATCHUP": "latest",
    "CATCHUP_WINDOW": None,  # unlimited
    "CONCURRENCY": "forbid",
    "ENABLED": "true",
}
_PARSED_DEFAULTS: dict[str, object] = {}


@dataclass(frozen=True)
class JobSpec:
    name: str
    schedule_text: str
    schedule: sched.Schedule
    url: str
    method: str = "POST"
    timeout_s: float = 30.0
    retries: int = 3
    body: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timezone: str = "UTC"
    jitter_s: float = 0.0
    catchup: str = "latest"
    catchup_window_s: float | None = None
    concurrency: str = "forbid"
    enabled: bool = True


def load_job(key: str, fields: dict[str, str], g: Reader, default_tz: str, api_url: str | None,
              var: Callable[[str], str] | None = None) -> JobSpec | None:
    """One job from its fields (FIELD -> text). `var` names a field in messages and in
    `g.values`: SCHEDULER_JOB_<KEY>_<FIELD> by default; a document of jobs names it as its
    own field (scheduler/job_document.py), so both kinds of job share every rule."""
    name = key.lower().replace("_", "-")
    var = var or f"{JOB_PREFIX}{key}_".__add__
    before = len(g.problems)
    for required in ("SCHEDULE", "URL"):
        if required not in fields:
            why = " (other variables of the job are set)" if var(required).startswith(JOB_PREFIX) else ""
            g.problems.append(f"{var(required)}: required for job {name!r}{why}")

    def get(fld: str, parse: Callable[[str], object]):
        if fld not in fields:  # a default: parsed once for all jobs, not once per job
            if fld not in _PARSED_DEFAULTS:
                default = JOB_FIELDS[fld]
                _PARSED_DEFAULTS[fld] = None if default is None else parse(default)
            return _PARSED_DEFAULTS[fld]
        return g.get(var(fld), parse, JOB_FIELDS[fld])

    tz = get("TIMEZONE", zone) or default_tz
    spec = None
    if "SCHEDULE" in fields and fields["SCHEDULE"] != "":
        try:
            spec = parse_schedule(fields["SCHEDULE"], tz, name)
        except sched.ScheduleError as exc:
            g.problems.append(f"{var('SCHEDULE')}: {exc}")
    url = get("URL", job_url(api_url))
    method = get("METHOD", choice(METHODS, upper=True))
    headers = get("HEADERS", json_headers)
    job = dict(
        method=method,
        timeout_s=get("TIMEOUT", positive_duration),
        retries=get("RETRIES", int_range(0, 100)),
        body=get("BODY", str),
        headers=headers or (),
        timezone=tz,
        jitter_s=get("JITTER", duration),
        catchup=get("CATCHUP", choice(CATCHUP)),
        catchup_window_s=get("CATCHUP_WINDOW", positive_duration),
        concurrency=get("CONCURRENCY", choice(CONCURRENCY)),
        enabled=get("ENABLED", boolean),
    )
    if len(g.problems) > before or spec is None or url is None:
        return None
    return JobSpec(name=name, schedule_text=fields["SCHEDULE"], schedule=spec, url=url, **job)


_SCHEDULES: dict[tuple[str, str, str], sched.Schedule | sched.ScheduleError] = {}


def parse_schedule(text: str, tz: str, name: str) -> sched.Schedule:
    """sched.parse, remembered per (expression, zone): 100,000 jobs share few expressions,
    and parsing one (with croniter's checks) costs about 30 us. Only an expression with an
    `H` (or `h`) depends on the job's name; for the others a Cron differs by its hash_id
    alone, which is set to the job's name as sched.parse would."""
    key = (text, tz, name if "h" in text.lower() else "")
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
    if isinstance(found, sched.Cron) and found.hash_id not in ("", name):
        found = sched.Cron(found.exprs, found.tz, found.seconds, found.fixed, name)  # replace(), 3 times faster
    return found
