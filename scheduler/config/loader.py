"""Configuration: the only reader of the environment.

Everything is read, every problem is collected, and `load` either returns frozen settings
or raises one `ConfigError` listing all of them. A secret's value never enters a message.
The parts live in modules of their own: env_file (the dotenv file), parsers (one value),
settings (the table of global settings), jobs_config (one job); their names used elsewhere
are also importable from here.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .reader import ConfigError, Reader, Secret, show
from .env_file import PREFIX, _simple_dotenv, read_environment
from .names import split_job_name, sort_unknown
from .advice import setting_warnings
from .jobs import (
    CATCHUP, CONCURRENCY, JOB_FIELDS, JOB_PREFIX, METHODS, TIMEZONE_DEFAULT, JobSpec, load_job, parse_schedule,
    retry_for_s,
)
from .parsers import JOBS_FILE_SUFFIXES, PLAIN_PATH, RESERVED_HEADERS, job_url
from .settings import (
    GLOBAL_DEFAULTS, HTTP_CLIENT_DEFAULTS, JOB_SOURCE_DEFAULTS, LOG_LEVELS, SECRETS, SETTINGS, Settings,
    read_settings,
)

__all__ = [
    "CATCHUP", "CONCURRENCY", "ConfigError", "GLOBAL_DEFAULTS", "HTTP_CLIENT_DEFAULTS", "JOBS_FILE_SUFFIXES",
    "JOB_FIELDS", "JOB_PREFIX", "JOB_SOURCE_DEFAULTS", "JobSpec", "LOG_LEVELS", "METHODS", "PREFIX",
    "RESERVED_HEADERS", "SECRETS", "SETTINGS", "Secret", "Settings", "load", "mask_url", "parse_schedule",
    "read_environment", "retry_for_s", "secret_values",
    "_PLAIN_PATH", "_Reader", "_job_url", "_load_job", "_show", "_simple_dotenv",
]
# Names of the parts as they were when they lived here (job_document.py and tests use them).
_Reader, _load_job, _show, _job_url, _PLAIN_PATH = Reader, load_job, show, job_url, PLAIN_PATH


def load(env: Mapping[str, str], *, stderr_is_tty: bool = False) -> Settings:
    """Validate a SCHEDULER_* mapping into Settings, or raise ConfigError with every problem."""
    problems: list[str] = []
    values = dict(env)
    from_files = _resolve_secret_files(values, problems)
    raw = dict(values)
    job_vars, unknown = _split_names(values)
    known = list(GLOBAL_DEFAULTS) + [f"{n}_FILE" for n in SECRETS]
    sorted_out = sort_unknown(unknown, raw, known, job_vars)
    problems += sorted_out.problems
    for name, value in values.items():
        if value == "" and name not in unknown:
            problems.append(f"{name}: is empty; set a value or remove the variable to use the default")
    g = Reader(values, problems, from_files)
    settings = read_settings(g, stderr_is_tty)
    tz, api_url = settings["timezone"], settings["api_url"]
    jobs = [load_job(name, fields, g, tz or TIMEZONE_DEFAULT, api_url) for name, fields in sorted(job_vars.items())]
    if not job_vars and not (settings["jobs_file"] or settings["jobs_url"]) and not (
        "SCHEDULER_JOBS_FILE" in values or "SCHEDULER_JOBS_URL" in values  # set, but wrong: said already
    ):
        problems.append(
            "SCHEDULER_JOB_<NAME>_SCHEDULE: no jobs configured; define at least one job, "
            "or a source of jobs (SCHEDULER_JOBS_FILE, SCHEDULER_JOBS_URL)"
        )
    if problems:
        raise ConfigError(problems)
    loaded = tuple(j for j in jobs if j is not None)
    warnings = sorted_out.warnings + setting_warnings(settings, loaded, job_vars)
    return Settings(**settings, jobs=loaded, warnings=warnings, ignored=sorted_out.ignored)


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
        parsed = split_job_name(name)
        if parsed is None:
            unknown.append(name)
        else:
            jobs.setdefault(parsed[0], {})[parsed[1]] = values[name]
    for name in unknown:
        values.pop(name, None)
    return jobs, unknown


def secret_values(settings: Settings) -> list[str]:
    """Every secret string, and the parts of one that could show up alone, for redaction."""
    out: list[str] = []
    for value in (settings.api_token, settings.signing_secret, settings.control_token,
                  settings.tls_client_key_password, settings.http_proxy):
        if value:
            out.append(str(value))
    out += [str(t.secret) for t in settings.control_tokens]
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
