"""The global settings: one table, from which the defaults, the known names, the secrets and
the reading of every SCHEDULER_* setting derive, so each default is written once.

An entry's default is the text an operator would write (None: unset), parsed by the entry's
own parser; the frozen `Settings` takes each field's default from that parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable, Mapping
from typing import Any

from .reader import Reader, Secret
from .tokens import NamedToken, control_tokens, tokens_apart
from .jobs import TIMEZONE_DEFAULT, JobSpec
from .redis_parsers import host_ports, redis_url
from .parsers import (
    boolean, choice, duration, http_url, int_range, job_url, jobs_file, namespace,
    non_blank, origins, pem_file, share, positive_duration, proxy_url, rate, refresh, signing_secret,
    tls_verify, zone,
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
Check = Callable[[dict[str, Any], list[str]], None]


@dataclass(frozen=True)
class Setting:
    env: str  # the variable
    default: str | None  # as an operator would write it; None: unset
    parse: Callable  # text -> value, raising ValueError; with `joined`, SCHEDULER_API_URL -> that
    field: str  # of Settings
    secret: bool = False  # a Secret, also read from NAME_FILE
    unset: object = None  # the field when unset without a default
    joined: bool = False  # `parse` takes SCHEDULER_API_URL's value and returns the parser
    check: Check | None = None  # a rule across settings, run once this one is read

    def default_value(self) -> object:
        return self.unset if self.default is None else self.parse(self.default)


def _sentinels_and_master(got: dict[str, Any], problems: list[str]) -> None:
    if bool(got["redis_sentinels"]) != bool(got["redis_sentinel_master"]):
        problems.append(
            "SCHEDULER_REDIS_SENTINELS and SCHEDULER_REDIS_SENTINEL_MASTER: set both to use "
            "Sentinel discovery, or neither"
        )


def _renew_under_half_ttl(got: dict[str, Any], problems: list[str]) -> None:
    ttl, renew = got["lease_ttl_s"], got["lease_renew_s"]
    if ttl and renew and not renew < ttl / 2:
        problems.append(
            "SCHEDULER_LEASE_RENEW: must be less than half of SCHEDULER_LEASE_TTL "
            f"(TTL is {ttl:g}s, so at most {ttl / 2:g}s exclusive)"
        )


def _client_certificate_loads(got: dict[str, Any], problems: list[str]) -> None:
    cert, key, password = got["tls_client_cert"], got["tls_client_key"], got["tls_client_key_password"]
    if key and not cert:
        problems.append("SCHEDULER_TLS_CLIENT_KEY: set SCHEDULER_TLS_CLIENT_CERT too (the certificate it belongs to)")
    elif cert:
        from ..http.client.client import tls_context  # ssl only when a client certificate is configured

        try:
            tls_context(True, cert, key, password)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            reason = getattr(exc, "reason", None) or type(exc).__name__
            problems.append(
                f"SCHEDULER_TLS_CLIENT_CERT: cannot load the certificate {cert!r} with its key"
                f"{f' {key!r}' if key else ''}: {reason} (expected PEM files; is the key the "
                "certificate's, and SCHEDULER_TLS_CLIENT_KEY_PASSWORD right for an encrypted key?)"
            )


# In the order they are read (and their problems listed).
GLOBAL = (
    Setting("SCHEDULER_API_URL", "http://localhost:8000", http_url, "api_url"),
    Setting("SCHEDULER_API_TOKEN", None, non_blank, "api_token", secret=True),
    Setting("SCHEDULER_SIGNING_SECRET", None, signing_secret, "signing_secret", secret=True),
    # the control API and status page exist only with it
    Setting("SCHEDULER_CONTROL_TOKEN", None, non_blank, "control_token", secret=True),
    # named tokens with a role, name:role:secret (config/tokens.py); either one turns the API on
    Setting("SCHEDULER_CONTROL_TOKENS", None, control_tokens, "control_tokens", secret=True, unset=(),
            check=tokens_apart),
    Setting("SCHEDULER_REDIS_URL", None, redis_url, "redis_url", secret=True),
    Setting("SCHEDULER_REDIS_SENTINELS", None, host_ports, "redis_sentinels", unset=()),
    Setting("SCHEDULER_REDIS_SENTINEL_MASTER", None, non_blank, "redis_sentinel_master",
            check=_sentinels_and_master),
    Setting("SCHEDULER_NAMESPACE", "scheduler", namespace, "namespace"),
    Setting("SCHEDULER_STATE_FILE", "./scheduler-state.db", non_blank, "state_file"),
    Setting("SCHEDULER_LEASE_TTL", "4s", positive_duration, "lease_ttl_s"),
    Setting("SCHEDULER_LEASE_RENEW", "1s", positive_duration, "lease_renew_s", check=_renew_under_half_ttl),
    Setting("SCHEDULER_TIMEZONE", TIMEZONE_DEFAULT, zone, "timezone"),
    # HTTP calls in flight at once, all origins together; fires waiting for their origin's
    # limit, a Retry-After or a retry's backoff are not counted
    Setting("SCHEDULER_MAX_CONCURRENCY", "64", int_range(1, 100_000), "max_concurrency"),
    # calls to one origin (scheme, host, port): the most in flight (unset: SCHEDULER_MAX_CONCURRENCY,
    # so a healthy app sees what the global cap alone gave), and per second (unset: no rate)
    Setting("SCHEDULER_TARGET_MAX_IN_FLIGHT", None, int_range(1, 100_000), "target_max_in_flight"),
    Setting("SCHEDULER_TARGET_RATE", None, rate, "target_rate"),
    Setting("SCHEDULER_SHUTDOWN_GRACE", "30s", duration, "shutdown_grace_s"),
    Setting("SCHEDULER_HTTP_PORT", "9464", int_range(0, 65535), "http_port"),
    Setting("SCHEDULER_HTTP_HOST", "0.0.0.0", non_blank, "http_host"),
    # unset: json when stderr is not a TTY, else text (load decides; "text" outside load)
    Setting("SCHEDULER_LOG_FORMAT", None, choice(("json", "text")), "log_format", unset="text"),
    Setting("SCHEDULER_LOG_LEVEL", "INFO", choice(LOG_LEVELS, upper=True), "log_level"),
    Setting("SCHEDULER_TLS_VERIFY", "true", tls_verify, "tls_verify"),
    Setting("SCHEDULER_MAX_CLOCK_SKEW", "1s", positive_duration, "max_clock_skew_s"),
    Setting("SCHEDULER_HISTORY", "20", int_range(0, 1000), "history"),
    # how long a ledger entry is kept after its slot (SPEC 8): the age bound beside the count
    Setting("SCHEDULER_HISTORY_AGE", "7d", positive_duration, "history_age_s"),
    # how long after its instant a one-time `at` job first seen late still fires (SPEC 6 rule 2)
    Setting("SCHEDULER_AT_GRACE", "1h", positive_duration, "at_grace_s"),
)
# The HTTP client: a TLS client certificate, an explicit proxy, trace context. The certificate
# and key are paths to PEM files (the key may sit in the certificate's file); the key's
# passphrase and the proxy URL (it may hold user:password@) are secrets.
HTTP_CLIENT = (
    Setting("SCHEDULER_TLS_CLIENT_CERT", None, pem_file, "tls_client_cert"),
    Setting("SCHEDULER_TLS_CLIENT_KEY", None, pem_file, "tls_client_key"),
    Setting("SCHEDULER_TLS_CLIENT_KEY_PASSWORD", None, non_blank, "tls_client_key_password", secret=True,
            check=_client_certificate_loads),
    # never taken from HTTP_PROXY/HTTPS_PROXY: opt in here
    Setting("SCHEDULER_HTTP_PROXY", None, proxy_url, "http_proxy", secret=True),
    # hosts reached directly, with NO_PROXY's syntax
    Setting("SCHEDULER_NO_PROXY", None, str.strip, "no_proxy", unset=""),
    Setting("SCHEDULER_TRACEPARENT", "false", boolean, "traceparent"),
)
# Job sources: a file and the app's URL, re-read while running (scheduler/sources/).
JOB_SOURCES = (
    Setting("SCHEDULER_JOBS_FILE", None, jobs_file, "jobs_file"),  # .json, .yaml or .yml
    # a path joined to SCHEDULER_API_URL, or an absolute URL
    Setting("SCHEDULER_JOBS_URL", None, job_url, "jobs_url", joined=True),
    Setting("SCHEDULER_JOBS_REFRESH", "30s", refresh, "jobs_refresh_s"),
    # origins besides SCHEDULER_API_URL's that a source's job may call (never with the token)
    Setting("SCHEDULER_JOBS_ALLOWED_ORIGINS", None, origins, "jobs_allowed_origins", unset=()),
    # a read removing more than this share of a source's jobs (and 10 or more), or all, is held
    Setting("SCHEDULER_JOBS_MAX_DROP", "50%", share, "jobs_max_drop"),
)
# Notifications (scheduler/notify/): the leader's events, POSTed and signed like the fires.
NOTIFY = (
    # a secret: a chat service's webhook URL holds its token (also read from _FILE)
    Setting("SCHEDULER_NOTIFY_URL", None, http_url, "notify_url", secret=True),
    # failed fires in a row that make a job `job.failing`
    Setting("SCHEDULER_NOTIFY_AFTER", "3", int_range(1, 1000), "notify_after"),
)
SETTINGS = GLOBAL + HTTP_CLIENT + JOB_SOURCES + NOTIFY

# name -> default (None: unset). Secrets also accept NAME_FILE.
GLOBAL_DEFAULTS: dict[str, str | None] = {s.env: s.default for s in SETTINGS}
HTTP_CLIENT_DEFAULTS: dict[str, str | None] = {s.env: s.default for s in HTTP_CLIENT}
JOB_SOURCE_DEFAULTS: dict[str, str | None] = {s.env: s.default for s in JOB_SOURCES}
SECRETS = tuple(s.env for s in SETTINGS if s.secret)
_DEFAULT: dict[str, Any] = {s.field: s.default_value() for s in SETTINGS}  # each default text parsed once


@dataclass(frozen=True)
class Settings:
    api_url: str = _DEFAULT["api_url"]
    api_token: Secret | None = _DEFAULT["api_token"]
    signing_secret: Secret | None = _DEFAULT["signing_secret"]
    control_token: Secret | None = _DEFAULT["control_token"]
    control_tokens: tuple[NamedToken, ...] = _DEFAULT["control_tokens"]
    redis_url: Secret | None = _DEFAULT["redis_url"]
    redis_sentinels: tuple[tuple[str, int], ...] = _DEFAULT["redis_sentinels"]
    redis_sentinel_master: str | None = _DEFAULT["redis_sentinel_master"]
    namespace: str = _DEFAULT["namespace"]
    state_file: str = _DEFAULT["state_file"]
    lease_ttl_s: float = _DEFAULT["lease_ttl_s"]
    lease_renew_s: float = _DEFAULT["lease_renew_s"]
    timezone: str = _DEFAULT["timezone"]
    max_concurrency: int = _DEFAULT["max_concurrency"]
    target_max_in_flight: int | None = _DEFAULT["target_max_in_flight"]  # None: max_concurrency
    target_rate: float | None = _DEFAULT["target_rate"]
    shutdown_grace_s: float = _DEFAULT["shutdown_grace_s"]
    http_port: int = _DEFAULT["http_port"]
    http_host: str = _DEFAULT["http_host"]
    log_format: str = _DEFAULT["log_format"]
    log_level: str = _DEFAULT["log_level"]
    tls_verify: bool | str = _DEFAULT["tls_verify"]
    max_clock_skew_s: float = _DEFAULT["max_clock_skew_s"]
    history: int = _DEFAULT["history"]
    history_age_s: float = _DEFAULT["history_age_s"]
    at_grace_s: float = _DEFAULT["at_grace_s"]
    # the HTTP client (HTTP_CLIENT)
    tls_client_cert: str | None = _DEFAULT["tls_client_cert"]
    tls_client_key: str | None = _DEFAULT["tls_client_key"]
    tls_client_key_password: Secret | None = _DEFAULT["tls_client_key_password"]
    http_proxy: Secret | None = _DEFAULT["http_proxy"]
    no_proxy: str = _DEFAULT["no_proxy"]
    traceparent: bool = _DEFAULT["traceparent"]
    # job sources (JOB_SOURCES)
    jobs_file: str | None = _DEFAULT["jobs_file"]
    jobs_url: str | None = _DEFAULT["jobs_url"]
    jobs_refresh_s: float = _DEFAULT["jobs_refresh_s"]
    jobs_allowed_origins: tuple[tuple[str, str, int], ...] = _DEFAULT["jobs_allowed_origins"]
    jobs_max_drop: float = _DEFAULT["jobs_max_drop"]
    # notifications (NOTIFY)
    notify_url: Secret | None = _DEFAULT["notify_url"]
    notify_after: int = _DEFAULT["notify_after"]
    jobs: tuple[JobSpec, ...] = field(default_factory=tuple)
    # Filled from SCHEDULER_JOBS_FILE/URL by the daemon and the commands (catalog.py), not
    # read from the environment: where each non-env job came from, and the refused ones.
    source_of: Mapping[str, str] = field(default_factory=dict)
    rejected: tuple[Mapping[str, str], ...] = ()
    # Said at start and by `check`, one line each naming its variable: what loads but looks
    # wrong. `ignored`: the SCHEDULER_* names not the scheduler's (check --strict fails on them).
    warnings: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    @property
    def standalone(self) -> bool:
        return self.redis_url is None and not self.redis_sentinels


def read_settings(g: Reader, stderr_is_tty: bool) -> dict[str, Any]:
    """Every setting of the table, field -> value, in table order; problems go to g.problems."""
    got: dict[str, object] = {}
    for s in SETTINGS:
        parse = s.parse(got["api_url"]) if s.joined else s.parse
        value = g.get(s.env, parse, s.default)
        # A secret parsed into a structure (the named control tokens) holds its own Secrets.
        got[s.field] = Secret(value) if s.secret and isinstance(value, str) else value
        if s.check is not None:
            s.check(got, g.problems)
    if got["log_format"] is None:
        got["log_format"] = "text" if stderr_is_tty else "json"
    return {s.field: s.unset if got[s.field] is None else got[s.field] for s in SETTINGS}
