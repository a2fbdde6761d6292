"""Configuration: the only reader of the environment.

Everything is read, every problem is collected, and `load` either returns frozen settings
or raises one `ConfigError` listing all of them. A secret's value never enters a message.
"""

from __future__ import annotations

import difflib
import functools
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from dotenv import dotenv_values

from . import schedule as sched
from .http1_url import check_url, proxy_target

PREFIX = "SCHEDULER_"
JOB_PREFIX = "SCHEDULER_JOB_"
SECRETS = ("SCHEDULER_API_TOKEN", "SCHEDULER_SIGNING_SECRET", "SCHEDULER_REDIS_URL")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CATCHUP = ("latest", "all", "none")
CONCURRENCY = ("forbid", "allow", "replace")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Headers the scheduler owns; a job's HEADERS may not replace them.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Authorization", "Idempotency-Key", "X-Scheduler-Job", "X-Scheduler-Slot",
        "X-Scheduler-Attempt", "X-Scheduler-Fencing-Token", "webhook-id",
        "webhook-timestamp", "webhook-signature", "Content-Length", "Host",
    )
)
_NAME_RE = re.compile(r"[A-Z0-9]+(?:_[A-Z0-9]+)*")  # used with fullmatch: no trailing newline
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# name -> default (None: unset). Secrets also accept NAME_FILE.
GLOBAL_DEFAULTS: dict[str, str | None] = {
    "SCHEDULER_API_URL": "http://localhost:8000",
    "SCHEDULER_API_TOKEN": None,
    "SCHEDULER_SIGNING_SECRET": None,
    "SCHEDULER_CONTROL_TOKEN": None,
    "SCHEDULER_REDIS_URL": None,
    "SCHEDULER_REDIS_SENTINELS": None,
    "SCHEDULER_REDIS_SENTINEL_MASTER": None,
    "SCHEDULER_NAMESPACE": "scheduler",
    "SCHEDULER_STATE_FILE": "./scheduler-state.db",
    "SCHEDULER_LEASE_TTL": "4s",
    "SCHEDULER_LEASE_RENEW": "1s",
    "SCHEDULER_TIMEZONE": "UTC",
    "SCHEDULER_MAX_CONCURRENCY": "64",
    "SCHEDULER_SHUTDOWN_GRACE": "30s",
    "SCHEDULER_HTTP_PORT": "9464",
    "SCHEDULER_HTTP_HOST": "0.0.0.0",
    "SCHEDULER_LOG_FORMAT": None,  # json when stderr is not a TTY, else text
    "SCHEDULER_LOG_LEVEL": "INFO",
    "SCHEDULER_TLS_VERIFY": "true",
    "SCHEDULER_MAX_CLOCK_SKEW": "1s",
    "SCHEDULER_HISTORY": "20",
}
# ---- the HTTP client: a TLS client certificate, an explicit proxy, trace context --------
# The certificate and key are paths to PEM files (the key may sit in the certificate's
# file); the key's passphrase and the proxy URL (it may hold user:password@) are secrets.
HTTP_CLIENT_DEFAULTS: dict[str, str | None] = {
    "SCHEDULER_TLS_CLIENT_CERT": None,
    "SCHEDULER_TLS_CLIENT_KEY": None,
    "SCHEDULER_TLS_CLIENT_KEY_PASSWORD": None,
    "SCHEDULER_HTTP_PROXY": None,  # never taken from HTTP_PROXY/HTTPS_PROXY: opt in here
    "SCHEDULER_NO_PROXY": None,  # hosts reached directly, with NO_PROXY's syntax
    "SCHEDULER_TRACEPARENT": "false",
}
GLOBAL_DEFAULTS.update(HTTP_CLIENT_DEFAULTS)
SECRETS += ("SCHEDULER_TLS_CLIENT_KEY_PASSWORD", "SCHEDULER_HTTP_PROXY", "SCHEDULER_CONTROL_TOKEN")
RESERVED_HEADERS |= {"x-scheduler-trigger", "traceparent"}  # a manual fire's id; trace context
# ---- end of the HTTP client's settings --------------------------------------------------
# ---- job sources: a file and the app's URL, re-read while running (scheduler/sources.py) --
JOB_SOURCE_DEFAULTS: dict[str, str | None] = {
    "SCHEDULER_JOBS_FILE": None,  # .json, .yaml or .yml
    "SCHEDULER_JOBS_URL": None,  # a path joined to SCHEDULER_API_URL, or an absolute URL
    "SCHEDULER_JOBS_REFRESH": "30s",
}
GLOBAL_DEFAULTS.update(JOB_SOURCE_DEFAULTS)
JOBS_FILE_SUFFIXES = (".json", ".yaml", ".yml")
# ---- end of the job sources' settings -------------------------------------------------
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
# Longest first, so CATCHUP_WINDOW is never read as field WINDOW of job X_CATCHUP.
_FIELDS_BY_LENGTH = sorted(JOB_FIELDS, key=len, reverse=True)


class ConfigError(Exception):
    """Every configuration problem found, one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class Secret(str):
    """A string that never shows itself in a repr, a log record or a traceback's locals."""

    def __repr__(self) -> str:
        return "Secret('***')"


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


@dataclass(frozen=True)
class Settings:
    api_url: str = "http://localhost:8000"
    api_token: Secret | None = None
    signing_secret: Secret | None = None
    control_token: Secret | None = None  # the control API and status page exist only with it
    redis_url: Secret | None = None
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str | None = None
    namespace: str = "scheduler"
    state_file: str = "./scheduler-state.db"
    lease_ttl_s: float = 4.0
    lease_renew_s: float = 1.0
    timezone: str = "UTC"
    max_concurrency: int = 64
    shutdown_grace_s: float = 30.0
    http_port: int = 9464
    http_host: str = "0.0.0.0"
    log_format: str = "text"
    log_level: str = "INFO"
    tls_verify: bool | str = True
    max_clock_skew_s: float = 1.0
    history: int = 20
    # the HTTP client (HTTP_CLIENT_DEFAULTS)
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    tls_client_key_password: Secret | None = None
    http_proxy: Secret | None = None
    no_proxy: str = ""
    traceparent: bool = False
    # job sources (JOB_SOURCE_DEFAULTS)
    jobs_file: str | None = None
    jobs_url: str | None = None
    jobs_refresh_s: float = 30.0
    jobs: tuple[JobSpec, ...] = field(default_factory=tuple)
    # Filled from SCHEDULER_JOBS_FILE/URL by the daemon and the commands (catalog.py), not
    # read from the environment: where each non-env job came from, and the refused ones.
    source_of: Mapping[str, str] = field(default_factory=dict)
    rejected: tuple[Mapping[str, str], ...] = ()

    @property
    def standalone(self) -> bool:
        return self.redis_url is None and not self.redis_sentinels


def read_environment(env_file: str | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The merged SCHEDULER_* view: defaults < dotenv file < process environment."""
    environ = os.environ if environ is None else environ
    merged: dict[str, str] = {}
    if env_file is not None:
        if not Path(env_file).is_file():
            raise ConfigError([f"--env-file: cannot read {env_file!r}: no such file"])
        path: str | None = env_file
    else:
        path = ".env" if Path(".env").is_file() else None
    if path is not None:
        text = _read_env_text(path, "--env-file" if env_file is not None else "./.env")
        values = _simple_dotenv(text)
        if values is None:
            # Interpolation costs time quadratic in the number of variables (10,000 jobs:
            # half a minute); a file with no ${...} has nothing to interpolate.
            values = dotenv_values(stream=io.StringIO(text), interpolate="${" in text)
        for key, value in values.items():
            if key.startswith(PREFIX):
                merged[key] = "" if value is None else value
    merged.update({k: v for k, v in environ.items() if k.startswith(PREFIX)})
    return merged


def _read_env_text(path: str, label: str) -> str:
    """The file's text as python-dotenv would read it from disk (universal newlines, a
    leading byte order mark dropped), or a ConfigError naming the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{label}: cannot read {path!r}: {exc.strerror or type(exc).__name__}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([
            f"{label}: {path!r} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ]) from None
    return text.replace("\r\n", "\n").replace("\r", "\n").removeprefix("\ufeff")


# One line of the plainest dotenv form: KEY=value, KEY="value" or KEY='value' with nothing
# to unescape, interpolate or strip, optionally after `export`, or a blank or comment line.
# No `$` in any value: python-dotenv expands ${...} in every form of value, single-quoted
# ones included, so such a file is always left to it.
_SIMPLE_LINE = re.compile(
    r"""[ \t]*(?:(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)="""
    r"""(?:(?:"([^"\\$\r\n]*)"|'([^'\\$\r\n]*)')[ \t]*(?:#[^\r\n]*)?|([^\s"'#\\$]*)(?:[ \t]+#[^\r\n]*|[ \t]*))|#[^\r\n]*|)"""
)


def _simple_dotenv(text: str) -> dict[str, str] | None:
    """What python-dotenv reads from a file made only of the plainest lines, ten times
    faster (10,000 jobs: 0.4 s -> 0.04 s); None when any line is not that plain, and
    python-dotenv reads the file instead."""
    out: dict[str, str] = {}
    for line in text.split("\n"):
        m = _SIMPLE_LINE.fullmatch(line.removesuffix("\r"))
        if m is None:
            return None
        key = m.group(1)
        if key is not None:
            double, single, bare = m.group(2, 3, 4)
            out[key] = double if double is not None else single if single is not None else bare
    return out


def load(env: Mapping[str, str], *, stderr_is_tty: bool = False) -> Settings:
    """Validate a SCHEDULER_* mapping into Settings, or raise ConfigError with every problem."""
    problems: list[str] = []
    values = dict(env)
    from_files = _resolve_secret_files(values, problems)
    job_vars, unknown = _split_names(values)

    for name in unknown:
        problems.append(_unknown_message(name, job_vars))
    for name, value in values.items():
        if value == "" and name not in unknown:
            problems.append(f"{name}: is empty; set a value or remove the variable to use the default")
    g = _Reader(values, problems, from_files)

    api_url = g.setting("SCHEDULER_API_URL", _http_url)
    token = g.secret("SCHEDULER_API_TOKEN", _non_blank)
    signing = g.secret("SCHEDULER_SIGNING_SECRET", _signing_secret)
    control = g.secret("SCHEDULER_CONTROL_TOKEN", _non_blank)
    redis_url = g.secret("SCHEDULER_REDIS_URL", _redis_url)
    sentinels = g.setting("SCHEDULER_REDIS_SENTINELS", _host_ports)
    master = g.setting("SCHEDULER_REDIS_SENTINEL_MASTER", _non_blank)
    if bool(sentinels) != bool(master):
        problems.append(
            "SCHEDULER_REDIS_SENTINELS and SCHEDULER_REDIS_SENTINEL_MASTER: set both to use "
            "Sentinel discovery, or neither"
        )
    namespace = g.setting("SCHEDULER_NAMESPACE", _namespace)
    state_file = g.setting("SCHEDULER_STATE_FILE", _non_blank)
    ttl = g.setting("SCHEDULER_LEASE_TTL", _positive_duration)
    renew = g.setting("SCHEDULER_LEASE_RENEW", _positive_duration)
    if ttl and renew and not renew < ttl / 2:
        problems.append(
            "SCHEDULER_LEASE_RENEW: must be less than half of SCHEDULER_LEASE_TTL "
            f"(TTL is {ttl:g}s, so at most {ttl / 2:g}s exclusive)"
        )
    tz = g.setting("SCHEDULER_TIMEZONE", _zone)
    settings = dict(
        api_url=api_url,
        api_token=token,
        signing_secret=signing,
        control_token=control,
        redis_url=redis_url,
        redis_sentinels=sentinels or (),
        redis_sentinel_master=master,
        namespace=namespace,
        state_file=state_file,
        lease_ttl_s=ttl,
        lease_renew_s=renew,
        timezone=tz,
        max_concurrency=g.setting("SCHEDULER_MAX_CONCURRENCY", _int_range(1, 100_000)),
        shutdown_grace_s=g.setting("SCHEDULER_SHUTDOWN_GRACE", _duration),
        http_port=g.setting("SCHEDULER_HTTP_PORT", _int_range(0, 65535)),
        http_host=g.setting("SCHEDULER_HTTP_HOST", _non_blank),
        log_format=g.setting("SCHEDULER_LOG_FORMAT", _choice(("json", "text")))
        or ("text" if stderr_is_tty else "json"),
        log_level=g.setting("SCHEDULER_LOG_LEVEL", _choice(LOG_LEVELS, upper=True)),
        tls_verify=g.setting("SCHEDULER_TLS_VERIFY", _tls_verify),
        max_clock_skew_s=g.setting("SCHEDULER_MAX_CLOCK_SKEW", _positive_duration),
        history=g.setting("SCHEDULER_HISTORY", _int_range(0, 1000)),
        **_http_client_settings(g),
        **_job_source_settings(g, api_url),
    )
    jobs = [_load_job(name, fields, g, tz or "UTC", api_url) for name, fields in sorted(job_vars.items())]
    if not job_vars and not (settings["jobs_file"] or settings["jobs_url"]) and not (
        "SCHEDULER_JOBS_FILE" in values or "SCHEDULER_JOBS_URL" in values  # set, but wrong: said already
    ):
        problems.append(
            "SCHEDULER_JOB_<NAME>_SCHEDULE: no jobs configured; define at least one job, "
            "or a source of jobs (SCHEDULER_JOBS_FILE, SCHEDULER_JOBS_URL)"
        )
    if problems:
        raise ConfigError(problems)
    return Settings(**settings, jobs=tuple(j for j in jobs if j is not None))


class _Reader:
    """Reads one variable with a parser; a parser raises ValueError saying what is expected.

    Parsers of secrets never put the value in that message, so every message can be shown.
    """

    def __init__(self, values: dict[str, str], problems: list[str], from_files: set[str] = frozenset()):
        self.values = values
        self.problems = problems
        self.from_files = from_files  # secrets read from NAME_FILE: problems name that variable

    def get(self, name: str, parse: Callable[[str], object], default: str | None = None):
        raw = self.values.get(name, default)
        if raw is None or raw == "":  # unset without a default, or empty (reported already)
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            where = f"{name}_FILE: the file's content" if name in self.from_files else name
            self.problems.append(f"{where}: {exc}")
            return None

    def setting(self, name: str, parse: Callable[[str], object]):
        return self.get(name, parse, GLOBAL_DEFAULTS[name])

    def secret(self, name: str, parse: Callable[[str], object]) -> Secret | None:
        value = self.get(name, parse)
        return None if value is None else Secret(value)


def _resolve_secret_files(values: dict[str, str], problems: list[str]) -> set[str]:
    """Replace NAME_FILE by NAME with the file's content; returns the names read so."""
    read: set[str] = set()
    for name in SECRETS:
        file_name = f"{name}_FILE"
        if file_name not in values:
            continue
        path = values.pop(file_name)
        if name in values:
            problems.append(f"{name} and {file_name}: both are set; set only one")
            continue
        if path == "":
            problems.append(f"{file_name}: is empty; expected the path of a file holding the secret")
            continue
        try:
            values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            problems.append(f"{file_name}: the file {path!r} is not UTF-8 text")
            continue
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            problems.append(f"{file_name}: cannot read {path!r}: {getattr(exc, 'strerror', None) or exc}")
            continue
        if values[name] == "":
            del values[name]
            problems.append(f"{file_name}: the file {path!r} is empty; expected it to hold the secret")
            continue
        read.add(name)
    return read


def _split_names(values: dict[str, str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    jobs: dict[str, dict[str, str]] = {}
    unknown: list[str] = []
    for name in sorted(values):
        if name in GLOBAL_DEFAULTS:
            continue
        if name.startswith(JOB_PREFIX):
            rest = name[len(JOB_PREFIX):]
            for fld in _FIELDS_BY_LENGTH:
                if rest.endswith("_" + fld) and _NAME_RE.fullmatch(rest[: -len(fld) - 1]):
                    jobs.setdefault(rest[: -len(fld) - 1], {})[fld] = values[name]
                    break
            else:
                unknown.append(name)
            continue
        unknown.append(name)
    for name in unknown:
        values.pop(name, None)
    return jobs, unknown


def _unknown_message(name: str, job_vars: dict[str, dict[str, str]]) -> str:
    candidates = list(GLOBAL_DEFAULTS) + [f"{n}_FILE" for n in SECRETS]
    candidates += [f"{JOB_PREFIX}{job}_{fld}" for job in job_vars for fld in JOB_FIELDS]
    if name.startswith(JOB_PREFIX):
        # A job variable with an unknown field: suggest the closest field on the same job.
        rest = name[len(JOB_PREFIX):]
        if "_" in rest:
            job, _, tail = rest.rpartition("_")
            close = difflib.get_close_matches(tail, list(JOB_FIELDS), n=1, cutoff=0.5)
            if close:
                candidates.insert(0, f"{JOB_PREFIX}{job}_{close[0]}")
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    hint = f"; did you mean {_show(match[0], quote=False)}?" if match else ""
    name = _show(name, quote=False)
    if name.startswith(JOB_PREFIX):
        return (
            f"{name}: unknown job variable; expected SCHEDULER_JOB_<NAME>_<FIELD> with NAME of "
            f"A-Z, 0-9 and single underscores and FIELD one of {', '.join(JOB_FIELDS)}{hint}"
        )
    return f"{name}: unknown setting{hint}"


def _load_job(key: str, fields: dict[str, str], g: _Reader, default_tz: str, api_url: str | None,
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
                _PARSED_DEFAULTS[fld] = None if JOB_FIELDS[fld] is None else parse(JOB_FIELDS[fld])
            return _PARSED_DEFAULTS[fld]
        return g.get(var(fld), parse, JOB_FIELDS[fld])

    tz = get("TIMEZONE", _zone) or default_tz
    spec = None
    if "SCHEDULE" in fields and fields["SCHEDULE"] != "":
        try:
            spec = parse_schedule(fields["SCHEDULE"], tz, name)
        except sched.ScheduleError as exc:
            g.problems.append(f"{var('SCHEDULE')}: {exc}")
    url = get("URL", _job_url(api_url))
    method = get("METHOD", _choice(METHODS, upper=True))
    headers = get("HEADERS", _headers)
    job = dict(
        method=method,
        timeout_s=get("TIMEOUT", _positive_duration),
        retries=get("RETRIES", _int_range(0, 100)),
        body=get("BODY", str),
        headers=headers or (),
        timezone=tz,
        jitter_s=get("JITTER", _duration),
        catchup=get("CATCHUP", _choice(CATCHUP)),
        catchup_window_s=get("CATCHUP_WINDOW", _positive_duration),
        concurrency=get("CONCURRENCY", _choice(CONCURRENCY)),
        enabled=get("ENABLED", _bool),
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


def _job_source_settings(g: "_Reader", api_url: str | None) -> dict[str, object]:
    return dict(
        jobs_file=g.setting("SCHEDULER_JOBS_FILE", _jobs_file),
        jobs_url=g.setting("SCHEDULER_JOBS_URL", _job_url(api_url)),
        jobs_refresh_s=g.setting("SCHEDULER_JOBS_REFRESH", _refresh),
    )


def _jobs_file(text: str) -> str:
    # The file need not exist yet: a source that cannot be read is retried, never fatal.
    path = text.strip()
    if not path:
        raise ValueError("expected the path of a .json, .yaml or .yml file")
    if not path.lower().endswith(JOBS_FILE_SUFFIXES):
        raise ValueError(f"expected a path ending in .json, .yaml or .yml, got {_show(text)}")
    return path


def _refresh(text: str) -> float:
    value = _duration(text)
    if value < 1:
        raise ValueError(f"expected a duration of at least 1s, got {text!r}")
    return value


# Parsers: each returns the parsed value or raises ValueError saying what is expected.

def _non_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("expected a non-blank value")
    return text


def _duration(text: str) -> float:
    return sched.parse_duration_s(text)


def _positive_duration(text: str) -> float:
    value = _duration(text)
    if value <= 0:
        raise ValueError(f"expected a duration greater than zero, got {text!r}")
    return value


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"expected a whole number from {lo} to {hi}, got {text!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"expected a whole number from {lo} to {hi}, got {value}")
        return value

    return parse


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().upper() if upper else text.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {text!r}")
        return value

    return parse


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _zone(text: str) -> str:
    try:
        ZoneInfo(text.strip())
    except Exception:
        raise ValueError(f"expected an IANA time zone name like UTC or Europe/Berlin, got {text!r}") from None
    return text.strip()


def _http_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {text!r}")
    _sendable(text.strip())
    return text.strip()


def _sendable(url: str) -> None:
    """The HTTP client's own test, so a URL accepted here never fails in a fire."""
    problem = check_url(url)
    if problem is not None:
        raise ValueError(f"the HTTP client cannot send to this URL: {problem}")


def _http_client_settings(g: "_Reader") -> dict[str, object]:
    cert = g.setting("SCHEDULER_TLS_CLIENT_CERT", _pem_file)
    key = g.setting("SCHEDULER_TLS_CLIENT_KEY", _pem_file)
    password = g.secret("SCHEDULER_TLS_CLIENT_KEY_PASSWORD", _non_blank)
    if key and not cert:
        g.problems.append("SCHEDULER_TLS_CLIENT_KEY: set SCHEDULER_TLS_CLIENT_CERT too (the certificate it belongs to)")
    elif cert:
        from .http1 import tls_context  # ssl only when a client certificate is configured

        try:
            tls_context(True, cert, key, password)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            reason = getattr(exc, "reason", None) or type(exc).__name__
            g.problems.append(
                f"SCHEDULER_TLS_CLIENT_CERT: cannot load the certificate {cert!r} with its key"
                f"{f' {key!r}' if key else ''}: {reason} (expected PEM files; is the key the "
                "certificate's, and SCHEDULER_TLS_CLIENT_KEY_PASSWORD right for an encrypted key?)"
            )
    return dict(
        tls_client_cert=cert,
        tls_client_key=key,
        tls_client_key_password=password,
        http_proxy=g.secret("SCHEDULER_HTTP_PROXY", _proxy_url),
        no_proxy=g.setting("SCHEDULER_NO_PROXY", str.strip) or "",
        traceparent=g.setting("SCHEDULER_TRACEPARENT", _bool),
    )


def _pem_file(text: str) -> str:
    path = text.strip()
    try:
        found = Path(path).is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise ValueError(f"expected the path of a PEM file, got {_show(text)}: no such file")
    return path


def _proxy_url(text: str) -> str:
    # The value may hold a password: the message never shows it.
    try:
        proxy_target(text.strip())
    except ValueError as exc:
        raise ValueError(f"expected a proxy URL like http://proxy:3128: {exc}") from None
    return text.strip()


# A path (and query) of characters that never need quoting: joined to a valid base, it is
# always sendable, so the URL is not split and checked again (100,000 jobs: 2.5 s -> 0.1 s).
_PLAIN_PATH = re.compile(r"(?!//)[A-Za-z0-9._~!$&'()*+,;=:@/-]*(?:\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?")


@functools.lru_cache(maxsize=16)  # one parser per base, not one per job
def _job_url(api_url: str | None) -> Callable[[str], str]:
    prefix = None
    if api_url is not None:
        base = urlsplit(api_url)
        prefix = urlunsplit((base.scheme, base.netloc, base.path.rstrip("/"), "", ""))

    def parse(text: str) -> str:
        text = text.strip()
        if prefix is not None and _PLAIN_PATH.fullmatch(text) and ":" not in text.partition("/")[0]:
            path, _, query = text.partition("?")
            return f"{prefix}/{path.lstrip('/')}" + (f"?{query}" if query else "")
        parts = urlsplit(text)
        if parts.scheme:
            return _http_url(text)
        if parts.netloc or text.startswith("//"):
            raise ValueError(f"expected a path like /tasks/x or an absolute http(s) URL, got {text!r}")
        if api_url is None:
            raise ValueError("cannot be joined to SCHEDULER_API_URL, which is invalid")
        # The base's path is kept: /api + tasks/x -> /api/tasks/x (what operators expect,
        # unlike urljoin, which would drop the base's last segment).
        base = urlsplit(api_url)
        path = base.path.rstrip("/") + "/" + parts.path.lstrip("/")
        joined = urlunsplit((base.scheme, base.netloc, path, parts.query, ""))
        _sendable(joined)
        return joined

    return parse


def _headers(text: str) -> tuple[tuple[str, str], ...]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ValueError('expected a JSON object of header names to strings, like {"X-Team": "ops"}') from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError('expected a JSON object of header names to strings, like {"X-Team": "ops"}')
    bad = [k for k in data if k.lower() in RESERVED_HEADERS]
    if bad:
        raise ValueError(f"may not set {', '.join(bad)}: the scheduler sets these headers itself")
    invalid = [k for k in data if not _TOKEN_RE.fullmatch(k)]
    if invalid:
        raise ValueError(f"invalid header name {invalid[0]!r}")
    if any(_CONTROL_RE.search(v) for v in data.values()):
        raise ValueError("header values may not contain line breaks or other control characters")
    return tuple(data.items())


def _signing_secret(text: str) -> str:
    import base64
    import binascii

    if not text.startswith("whsec_"):
        raise ValueError("expected a Standard Webhooks secret of the form whsec_<base64>")
    try:
        raw = base64.b64decode(text[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected base64 after the whsec_ prefix") from None
    if len(raw) < 16:
        raise ValueError("expected at least 16 bytes of key after the whsec_ prefix")
    return text


def _redis_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("expected a host in the URL, like redis://redis:6379/0")
    if parts.scheme == "unix" and not parts.path:
        raise ValueError("expected a socket path, like unix:///run/redis.sock")
    try:
        _ = parts.port  # urllib checks the port only when asked
    except ValueError:
        raise ValueError("expected a numeric port in the URL") from None
    return text.strip()


def _host_ports(text: str) -> tuple[tuple[str, int], ...]:
    out = []
    for item in text.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port[,host:port...], got {item.strip()!r}")
        out.append((host, int(port)))
    return tuple(out)


def _namespace(text: str) -> str:
    if not _NAMESPACE_RE.fullmatch(text):
        raise ValueError(f"expected 1-64 characters of A-Z a-z 0-9 _ . : -, got {text!r}")
    return text


def _tls_verify(text: str) -> bool | str:
    value = text.strip()
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        found = Path(value).is_file()
    except (OSError, ValueError):  # a name too long, a NUL
        found = False
    if not found:
        raise ValueError(f"expected true, false or the path of a CA bundle file, got {_show(text)}")
    return value


def secret_values(settings: Settings) -> list[str]:
    """Every secret string, and the parts of one that could show up alone, for redaction."""
    out: list[str] = []
    for value in (settings.api_token, settings.signing_secret, settings.control_token,
                  settings.tls_client_key_password, settings.http_proxy):
        if value:
            out.append(str(value))
    if settings.http_proxy:
        password = urlsplit(str(settings.http_proxy)).password
        if password:
            out.append(password)
    if settings.signing_secret:
        out.append(str(settings.signing_secret)[len("whsec_"):])
    if settings.redis_url:
        # Only the password of a Redis URL is secret: a URL without one is logged whole.
        parts = urlsplit(str(settings.redis_url))
        passwords = [parts.password] + [v for k, v in parse_qsl(parts.query) if k.lower() == "password"]
        if any(passwords):
            out.append(str(settings.redis_url))
        out += [p for p in passwords if p]
    return out


def mask_url(url: str) -> str:
    """A URL with its password (user:password@ or ?password=) replaced by ***, for logs."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _show(text: str, quote: bool = True) -> str:
    """Text fit for a one-line message: control characters escaped; a value (quoted) is
    also cut when long, a variable name (unquoted) never is."""
    shown = text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
    if quote and len(shown) > 80:
        shown = shown[:77] + "..."
    return repr(shown) if quote else shown
