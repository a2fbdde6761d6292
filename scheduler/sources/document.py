"""A document of jobs (SPEC section 6): parse it, and validate each job on its own.

    {"jobs": [{"name": "tenant-42-digest", "schedule": "0 7 * * 1-5", "url": "/api/digest/42"}]}

Each job's fields are mapped to the text of the SCHEDULER_JOB_<NAME>_<FIELD> variables and
checked by the job rules of jobs_config, so a rule and its message exist once. A job that fails
is rejected alone (a `Rejection`); a document that cannot be parsed raises DocumentError and
its source keeps the last good set. Imports the configuration's job rules and schedule; never asyncio or the network.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .. import collector
from ..config.reader import Reader, show
from ..http.client.url import Origin, origin, origin_prefix, show_origin
from .text import MAX_DOCUMENT_BYTES, DocumentError, parse_bytes  # noqa: F401  (public names)
from ..config.jobs import JOB_FIELDS, JobSpec, load_job, parse_schedule
from ..config.parsers import job_url
from ..config.settings import Settings

_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
# document field -> variable field; `name` is the job's identity, not a field of the spec
FIELDS = {f.lower(): f for f in JOB_FIELDS}
_KNOWN = ["name", *FIELDS]
_DURATIONS = ("timeout", "jitter", "catchup_window", "retry_for")


@dataclass(frozen=True)
class Rejection:
    name: str  # the job's name as written, or `jobs[i]` when it has none
    source: str  # file | url
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "source": self.source, "problem": self.problem}


@dataclass(frozen=True)
class Parsed:
    jobs: dict[str, JobSpec]  # valid jobs by name, in document order
    rejected: tuple[Rejection, ...]
    raw: dict[str, dict]  # each valid job's object, to reuse its JobSpec when it is unchanged
    # What differs from the `previous` it was validated against, so that a refresh hands on
    # the jobs that changed, not 100,000 to compare again: names whose JobSpec is new (added
    # or changed), and names no longer valid here (removed, or now rejected).
    fresh: frozenset[str] = frozenset()
    gone: frozenset[str] = frozenset()


def kind_of(path: str) -> str:
    return "json" if path.lower().endswith(".json") else "yaml"


def validate(data: Any, source: str, settings: Settings, previous: Parsed | None = None) -> Parsed:
    """Every job of a parsed document (see _validate). The cyclic garbage collector waits
    meanwhile: 100,000 new jobs would trigger its full passes over every live object
    again and again (a quarter of the time), and a document makes no cycles."""
    with collector.paused():
        return _validate(data, source, settings, previous)


def _validate(data: Any, source: str, settings: Settings, previous: Parsed | None) -> Parsed:
    """Every job of a parsed document, each valid or rejected alone. A job whose object is
    equal to the one in `previous` keeps its JobSpec (a refresh of 100,000 mostly unchanged
    jobs validates only what changed, and the engine sees the same objects)."""
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        got = type(data).__name__ if not isinstance(data, dict) else "an object without a jobs list"
        raise DocumentError(f'expected an object with a "jobs" list, like {{"jobs": [{{"name": ...}}]}}, got {got}')
    jobs: dict[str, JobSpec] = {}
    raw: dict[str, dict] = {}
    rejected: list[Rejection] = []
    first_at: dict[str, int] = {}
    old_raw = previous.raw if previous is not None else {}
    old_jobs = previous.jobs if previous is not None else {}
    alike: dict[tuple, JobSpec] = {}  # see _like
    parse_url = _url_parser(settings.api_url)
    fresh: set[str] = set()  # on a first read (nothing to compare with), every valid job
    allowed = allowed_origins(settings)
    home = origin_prefix(settings.api_url)
    for i, item in enumerate(data["jobs"]):
        if type(item) is not dict:
            label = f"jobs[{i}]"
            rejected.append(Rejection(label, source, f"{label}: expected an object of job fields, got {type(item).__name__}"))
            continue
        name = item.get("name")
        if type(name) is str:
            if name in first_at:
                rejected.append(Rejection(name, source, f"defined again at jobs[{i}] (first at jobs[{first_at[name]}]); the first applies"))
                continue
            first_at[name] = i
        job: JobSpec | None = None
        try:
            if type(name) is str and old_raw and old_raw.get(name) == item:
                jobs[name], raw[name] = old_jobs[name], old_raw[name]
                continue
            job = _like(item, name, parse_url, alike) if alike else None
            if job is None:
                job, problems = _job(item, f"jobs[{i}]", settings)
                _remember(item, job, alike)
        except Exception as exc:  # noqa: BLE001 - a value no rule foresaw rejects its job, never the document
            job, problems = None, [f"a field holds a value that cannot be checked ({type(exc).__name__}); "
                                   "expected the types the job fields document"]
        if job is not None and not job.url.startswith(home) and origin(job.url) not in allowed:
            problems = [_off_origin(job.url, settings)]
            job = None
        if job is None:
            label = f"jobs[{i}]"
            shown = name if isinstance(name, str) and name else label
            rejected.append(Rejection(show(shown, quote=False)[:80], source, _sentence(problems)))
            continue
        jobs[job.name] = job
        raw[job.name] = item
        if old_raw:
            fresh.add(job.name)
    if not old_raw:
        return Parsed(jobs, tuple(rejected), raw, frozenset(jobs), frozenset())
    gone = frozenset(old_jobs.keys() - jobs.keys()) if len(jobs) - len(fresh) != len(old_jobs) else frozenset()
    return Parsed(jobs, tuple(rejected), raw, frozenset(fresh), gone)


# The fields that make a job differ from an alike one without a full validation: its name,
# its URL and its schedule (whose `H` depends on the name) are checked one by one.
_OWN = ("name", "url", "schedule")


def _shape(item: dict) -> tuple | None:
    """The job's other fields with their types (1, 1.0 and True are equal in Python but
    not to the rules), or None when one holds a value that cannot be compared so."""
    if len(item) == 3 and "url" in item and "schedule" in item and "name" in item:
        return ()  # no other field: most jobs of a large document
    try:
        shape = tuple((k, type(v), tuple((hk, type(hv), hv) for hk, hv in v.items()) if type(v) is dict else v)
                      for k, v in item.items() if k not in _OWN)
        hash(shape)  # a list or an object inside a field: no shape, the job is validated alone
    except (TypeError, AttributeError, RecursionError):
        return None
    return shape


def _remember(item: dict, job: JobSpec | None, alike: dict[tuple, JobSpec]) -> None:
    if job is not None and (shape := _shape(item)) is not None:
        alike.setdefault(shape, job)


def _like(item: dict, name: Any, parse_url, alike: dict[tuple, JobSpec]) -> JobSpec | None:
    """The job as _job would make it, from a valid job of the same document whose other
    fields are the same, or None (then _job validates it, and says what is wrong). With
    100,000 jobs that differ by name, URL and schedule, validating each in full costs
    about 15 us, this about 3."""
    if type(name) is not str or not _NAME_RE.fullmatch(name):
        return None
    url, schedule = item.get("url"), item.get("schedule")
    if type(url) is not str or not url or schedule is None:
        return None
    # name, url and schedule are there: with no other field, the shape is ()
    shape = () if len(item) == 3 else _shape(item)
    model = alike.get(shape) if shape is not None else None
    if model is None:
        return None
    if type(schedule) is not str or not schedule:  # what _text gives it
        schedule = _text("schedule", schedule, [])
        if schedule is None:
            return None
    try:
        spec = parse_schedule(schedule, model.timezone, name)
        full = parse_url(url)
    except ValueError:  # ScheduleError too: _job says it with the job's own words
        return None
    # The model's fields with the job's own: a frozen dataclass's __init__ sets each of its
    # 15 fields through object.__setattr__, 5 times the cost of this.
    fields = model.__dict__.copy()
    fields["name"] = name
    fields["schedule_text"] = schedule
    fields["schedule"] = spec
    fields["url"] = full
    job = _new(JobSpec)
    _set(job, "__dict__", fields)
    return job


_new, _set = object.__new__, object.__setattr__


def allowed_origins(settings: Settings) -> frozenset[Origin]:
    """Where a job from a source may send: the app's own origin, and the listed others. The
    app's users write these documents; a URL of their choosing elsewhere would make the
    sidecar call any address the pod reaches."""
    api = origin(settings.api_url) if settings.api_url else None
    return frozenset((*([api] if api else []), *settings.jobs_allowed_origins))


def _off_origin(url: str, settings: Settings) -> str:
    o = origin(url)
    where = show_origin(o) if o else "an origin the client cannot reach"
    return (f"url: {show(where)} is not the origin of SCHEDULER_API_URL; a job from a source may call "
            "another origin only when SCHEDULER_JOBS_ALLOWED_ORIGINS lists it")


_URL_PARSERS: dict[str | None, Any] = {}


def _url_parser(api_url: str | None):
    if api_url not in _URL_PARSERS:
        _URL_PARSERS.clear()  # one base in a process, but tests load many
        _URL_PARSERS[api_url] = job_url(api_url)
    return _URL_PARSERS[api_url]


def _job(item: dict, label: str, settings: Settings) -> tuple[JobSpec | None, list[str]]:
    problems: list[str] = []
    name = item.get("name")
    if name is None:
        problems.append(f"{label}: name: required (1-64 of a-z 0-9 -, not starting or ending with -)")
    elif not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        shown = show(name) if isinstance(name, str) else type(name).__name__
        problems.append(f"name: expected 1-64 of a-z 0-9 -, not starting or ending with -, got {shown}")
    fields: dict[str, str] = {}
    for key, value in item.items():
        if key == "name":
            continue
        fld = FIELDS.get(key) if isinstance(key, str) else None
        if fld is None:
            close = difflib.get_close_matches(str(key).lower(), _KNOWN, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.append(f"{show(str(key), quote=False)[:64]}: unknown field; expected one of {', '.join(_KNOWN)}{hint}")
            continue
        text = _text(key, value, problems)
        if text is not None:
            fields[fld] = text
    if problems:
        return None, problems
    g = Reader({key: text for key, text in ((f.lower(), t) for f, t in fields.items())}, problems)
    job = load_job(str(name).upper().replace("-", "_"), fields, g, settings.timezone, settings.api_url,
                   var=str.lower)
    return job, problems


def _text(key: str, value: Any, problems: list[str]) -> str | None:
    """A field's value as the text its variable would hold, or None with a problem."""
    if value is None:
        problems.append(f"{key}: is null; set a value or leave the field out to use the default")
        return None
    if key == "headers":
        if not isinstance(value, dict):
            problems.append(f'headers: expected an object of header names to strings, like {{"X-Team": "ops"}}, got {_kind(value)}')
            return None
        odd = next((f"{show(k, quote=False)[:64]!s} is {_kind(v)}" if isinstance(k, str) else f"a name is {_kind(k)}"
                    for k, v in value.items() if not isinstance(k, str) or not isinstance(v, str)), None)
        if odd is not None:
            problems.append(f'headers: expected an object of header names to strings, like {{"X-Team": "ops"}}, but {odd}')
            return None
        return json.dumps(value)
    if key == "enabled":
        if not isinstance(value, bool):
            problems.append(f"enabled: expected true or false (a boolean), got {_kind(value)}")
            return None
        return "true" if value else "false"
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        problems.append(f"{key}: expected {'a number or ' if key in _DURATIONS or key == 'retries' else ''}a string, got {_kind(value)}")
        return None
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{key}: expected {'a finite number or ' if key in _DURATIONS or key == 'retries' else ''}a string, got {value}")
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**18:
        problems.append(f"{key}: the number is far too large")
        return None
    if isinstance(value, float) and key in _DURATIONS and value == value and value >= 0:
        return f"{round(value * 1000)}ms" if value != int(value) else str(int(value))
    if isinstance(value, (int, float)) and key not in (*_DURATIONS, "retries", "schedule"):
        problems.append(f"{key}: expected a string, got {_kind(value)}")
        return None
    text = str(value)
    if text == "":
        problems.append(f"{key}: is empty; set a value or leave the field out to use the default")
        return None
    return text


MAX_PROBLEM_CHARS = 600  # a rejection is logged, kept and shown: a user's 5,000-digit value is cut


def _sentence(problems: list[str]) -> str:
    text = "; ".join(problems)
    return text if len(text) <= MAX_PROBLEM_CHARS else text[:MAX_PROBLEM_CHARS - 3] + "..."


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)
