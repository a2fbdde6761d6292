"""Property-based tests: configuration loading and slot math.

Configuration: any mapping of SCHEDULER_* names to any strings either loads into sane
settings or raises one ConfigError whose every line names a variable of the input.

Slot math: `next_after` is checked against an independent cron implementation (cronsim)
where both agree on the semantics, against the wall clock in every IANA zone, and against
a brute-force reading of the documented (Vixie cron) DST rules around real transitions.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import re
import shutil
import signal
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, UTC
from zoneinfo import ZoneInfo, available_timezones

import pytest
from croniter import croniter
from cronsim import CronSim, CronSimError
from hypothesis import HealthCheck, Phase, assume, example, given, note, settings
from hypothesis import strategies as st

from scheduler.schedule import slots as sched
from scheduler.config.loader import ConfigError, load
from scheduler.dispatch import Dispatcher, Fire
from scheduler.model import Claim

COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# Environments hold values of 100k characters: shrinking one costs minutes. Each bug these
# properties found is pinned below as a small explicit case instead.
NO_SHRINK = dict(COMMON, phases=[Phase.explicit, Phase.generate])

ALL_ZONES = sorted(available_timezones())
FIXED_ZONES = ["UTC", "Etc/UTC"] + [f"Etc/GMT{sign}{n}" for n in range(1, 13) for sign in "+-"] + ["Etc/GMT-13", "Etc/GMT-14"]
MIN_T, MAX_T = 0, 4102444800  # 1970-01-01 .. 2100-01-01


@contextmanager
def time_limit(seconds: float):
    """Fail (TimeoutError) instead of hanging when the code under test does not terminate."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"did not finish within {seconds}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------

# The contract's names (SPEC section 2), spelled out here rather than imported.
GLOBAL_NAMES = [
    "SCHEDULER_API_URL", "SCHEDULER_API_TOKEN", "SCHEDULER_SIGNING_SECRET", "SCHEDULER_REDIS_URL",
    "SCHEDULER_REDIS_SENTINELS", "SCHEDULER_REDIS_SENTINEL_MASTER", "SCHEDULER_NAMESPACE",
    "SCHEDULER_STATE_FILE", "SCHEDULER_LEASE_TTL", "SCHEDULER_LEASE_RENEW", "SCHEDULER_TIMEZONE",
    "SCHEDULER_MAX_CONCURRENCY", "SCHEDULER_SHUTDOWN_GRACE", "SCHEDULER_HTTP_PORT", "SCHEDULER_HTTP_HOST",
    "SCHEDULER_LOG_FORMAT", "SCHEDULER_LOG_LEVEL", "SCHEDULER_TLS_VERIFY",
]
SECRET_NAMES = ["SCHEDULER_API_TOKEN", "SCHEDULER_SIGNING_SECRET", "SCHEDULER_REDIS_URL"]
FIELDS = ["SCHEDULE", "URL", "METHOD", "TIMEOUT", "RETRIES", "BODY", "HEADERS", "TIMEZONE", "JITTER",
          "CATCHUP", "CATCHUP_WINDOW", "CONCURRENCY", "ENABLED"]
JOB_KEYS = ["A", "TICK", "DATA_REFRESH", "X1", "B_CATCHUP", "JOB_2"]
ODD_JOB_KEYS = ["a", "A__B", "_A", "A_", "", "Ä", "A-B", "A B", "A\n", "A\x00", "\uff11", "A\u0301"]
ODD_FIELDS = ["WINDOW", "schedule", "SCHEDULEX", "", "FILE", "URL_FILE", "CATCHUP_", "_URL"]
JOB_NAME_RE = re.compile(r"\A[A-Z0-9]+(?:_[A-Z0-9]+)*\Z")
TOKEN_RE = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
VALID_SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtMTIzNDU2Nzg5MA=="
BASE_JOB = {"SCHEDULER_JOB_A_SCHEDULE": "every 1m", "SCHEDULER_JOB_A_URL": "/tasks/a"}

# Files for *_FILE variables: missing, a directory, empty, a lone newline, binary, valid.
FILES_DIR = tempfile.mkdtemp(prefix="props-files-")
atexit.register(shutil.rmtree, FILES_DIR, ignore_errors=True)


def _file(name: str, content: bytes | None) -> str:
    path = os.path.join(FILES_DIR, name)
    if content is not None:
        with open(path, "wb") as f:
            f.write(content)
    return path


os.mkdir(os.path.join(FILES_DIR, "a-directory"))
FILE_PATHS = [
    _file("missing", None),
    os.path.join(FILES_DIR, "a-directory"),
    _file("empty", b""),
    _file("newline", b"\n"),
    _file("crlf", b"\r\n"),
    _file("token", b"tok-from-file\n"),
    _file("whsec", VALID_SECRET.encode() + b"\n"),
    _file("redis", b"redis://:pw@127.0.0.1:6379/0\n"),
    _file("binary", b"\xff\xfe\x00\x81not utf-8"),
    _file("huge", b"x" * 100_000),
    "",
    " ",
    "/dev/null",
    "relative/path",
    "/" + "d" * 5000,
    os.path.join(FILES_DIR, "with\x00nul"),
]

FIELD_RANGES = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "dom": (1, 31), "month": (1, 12), "dow": (0, 6)}


@st.composite
def ranges(draw, lo: int, hi: int) -> str:
    # a < b: a range from a number to itself is its own test (croniter reads it as `*`).
    a = draw(st.integers(lo, hi - 1))
    b = draw(st.integers(a + 1, hi))
    return f"{a}-{b}"


def cron_field(lo: int, hi: int) -> st.SearchStrategy[str]:
    """*, n, a-b (a < b), */s, a-b/s and lists of numbers and ranges."""
    atom = st.one_of(st.integers(lo, hi).map(str), ranges(lo, hi))
    return st.one_of(
        st.just("*"),
        st.integers(lo, hi).map(str),
        ranges(lo, hi),
        st.integers(1, hi - lo + 1).map(lambda s: f"*/{s}"),
        st.tuples(ranges(lo, hi), st.integers(1, hi - lo + 1)).map(lambda t: f"{t[0]}/{t[1]}"),
        st.lists(atom, min_size=2, max_size=4).map(",".join),
    )


def _day_fields_agree(dom: str, dow: str) -> bool:
    # When both day fields are restricted and one starts with '*' (`*/2`), Vixie cron ANDs
    # them and croniter (which the contract names) ORs them: not compared here.
    return dom == "*" or dow == "*" or not (dom.startswith("*") or dow.startswith("*"))


@st.composite
def cron_exprs(draw, six: bool | None = None, day_star_bias: bool = False, sparse_seconds: bool = False) -> str:
    if six is None:
        six = draw(st.booleans())
    names = (["second"] if six else []) + ["minute", "hour", "dom", "month", "dow"]
    fields = {}
    for name in names:
        lo, hi = FIELD_RANGES[name]
        if sparse_seconds and name == "second":
            fields[name] = ",".join(map(str, draw(st.lists(st.integers(0, 59), min_size=1, max_size=3, unique=True))))
        elif day_star_bias and name in ("dom", "month", "dow") and draw(st.integers(0, 9)) < 7:
            fields[name] = "*"
        else:
            fields[name] = draw(cron_field(lo, hi))
    assume(_day_fields_agree(fields["dom"], fields["dow"]))
    return " ".join(fields[n] for n in names)


def schedule_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        cron_exprs(),
        st.sampled_from(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
                         "@every 1h", "every 15m", "every 1h30m", "900", "daily 03:00", "daily 07:00,13:00",
                         "at 2026-12-01T03:00:00Z", "at 2026-12-01T03:00:00", "H * * * *", "H/15 H * * *",
                         "H H(0-3) * * *", "*/10 * * * * *", "0 0 30 2 *", "61 * * * *", "* * * *",
                         "@reboot", "every 0s", "every 1.5s", "daily 24:00", "at tomorrow", "every",
                         "at 9999-12-31T23:59:59-05:00", "at 0001-01-01T00:00:00+05:00",
                         "every 4000000d", "every " + "9" * 400, "9" * 400, "9" * 5000]),
        st.builds(lambda n, u: f"every {n}{u}", st.integers(0, 10**6), st.sampled_from(["", "s", "m", "h", "d", "ms"])),
    )


def durations() -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda d, h, m, s: "".join(f"{v}{u}" for v, u in zip((d, h, m, s), "dhms") if v is not None) or "0",
                  *[st.none() | st.integers(0, 10**4)] * 4),
        st.sampled_from(["90", "90s", "15m", "1h30m", "2d", "250ms", "0", "0s", "-5s", "1.5h", "5 m", "1h30",
                         "9" * 400, "9" * 400 + "s", "1" * 5000, "\u0661\u0662s", "\u00b2"]),
    )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)


def jsonish() -> st.SearchStrategy[str]:
    return st.one_of(
        JSON_VALUES.map(json.dumps),
        st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=3).map(json.dumps),
        st.sampled_from(['{"X-Team": "ops"}', '{"Authorization": "x"}', '{"X-A\\n": "v"}', '{"X-A": "v\\u0000x"}',
                         '{"X-A": "a\\r\\nb"}', '{"": "v"}', '{"X-A": 1}', "[1, 2]", "{", "[" * 100_000,
                         '{"a": ' * 5000 + "1" + "}" * 5000, "1" * 5000, "{'a': 'b'}"]),
    )


def urls() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["/tasks/x", "tasks/x", "http://app:8000/x", "https://app/x?y=1", "file:///etc/passwd",
                         "ftp://h/x", "//evil.example/x", "javascript:alert(1)", "data:text/plain,hi", "http://",
                         "http:/x", "http://[::1", "https://h:99999/x", "redis://:pw@127.0.0.1:6379/0",
                         "rediss://h/0", "unix:///run/redis.sock", "redis://h:port/0", "redis://", "unix://",
                         "h1:26379,h2:26379", "h1", "h1:0", "h1:\u00b2"]),
        st.builds(lambda s, h, p: f"{s}://{h}{p}", st.sampled_from(["http", "https", "redis", "HTTP", "gopher"]),
                  st.text(max_size=8), st.text(max_size=8)),
    )


def plain_values() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=30),
        st.sampled_from(["", " ", "\t", "\n", "\x00", " \n\t ", "\x00abc", "true", "false", "TRUE", "yes", "off",
                         "json", "text", "JSON", "debug", "verbose", "latest", "all", "none", "forbid", "allow",
                         "replace", "GET", "post", "TRACE", "UTC", "utc", "Europe/Berlin", "Mars/Olympus", "../etc/x",
                         "ns", "ns\n", "a" * 65, "{ns}", "0.0.0.0", VALID_SECRET, "whsec_", "whsec_!!!", "whsec_YQ==",
                         "nan", "inf", "-1", "0", "65535", "65536", "100000", "100001"]),
        st.integers(-(10**6), 10**6).map(str),
        st.floats().map(str),
        st.integers(0, 10**500).map(str),
        st.sampled_from(ALL_ZONES),
        st.builds(lambda c, n: c * n, st.characters(), st.sampled_from([1000, 100_000])),
        st.sampled_from(["x" * 100_000, "9" * 100_000, "[" * 100_000, "*/1 " * 25_000, ",".join(["1"] * 20_000) + " * * * *"]),
    )


def env_values() -> st.SearchStrategy[str]:
    return st.one_of(plain_values(), durations(), schedule_texts(), jsonish(), urls())


def env_names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(GLOBAL_NAMES + [n + "_FILE" for n in SECRET_NAMES]),
        st.builds(lambda k, f: f"SCHEDULER_JOB_{k}_{f}", st.sampled_from(JOB_KEYS), st.sampled_from(FIELDS)),
        st.builds(lambda k, f: f"SCHEDULER_JOB_{k}_{f}", st.sampled_from(JOB_KEYS + ODD_JOB_KEYS),
                  st.sampled_from(FIELDS + ODD_FIELDS)),
        st.text(max_size=16).map(lambda s: "SCHEDULER_" + s),
        st.text(max_size=16).map(lambda s: "SCHEDULER_JOB_" + s),
        st.sampled_from(["SCHEDULER_", "SCHEDULER_JOB_", "SCHEDULER_API_URLS", "SCHEDULER_api_url",
                         "SCHEDULER_LEASE_TTL_FILE", "SCHEDULER_JOB_A_SCHEDULE_FILE", "SCHEDULER_JOB__SCHEDULE",
                         # unknown names: typos (errors with a suggestion) and the app's own (warnings)
                         "SCHEDULER_JOB_a_SCHEDULE", "SCHEDULER_JOB_a_URL", "SCHEDULER_JOBS_A_TIMEOUT",
                         "SCHEDULER_JBO_B_URL", "SCHEDULER_JOB_A_TIMOUT", "SCHEDULER_LEASE_TTLL", "SCHEDULER_Namespace",
                         "SCHEDULER_ENABLED", "SCHEDULER_DATA_REFRESH_INTERVAL", "SCHEDULER_TICK_SECONDS"]),
    )


@st.composite
def environments(draw) -> dict[str, str]:
    env: dict[str, str] = dict(BASE_JOB) if draw(st.booleans()) else {}
    for name, value in draw(st.dictionaries(env_names(), env_values(), max_size=10)).items():
        env[name] = value
    for name in draw(st.lists(st.sampled_from([n + "_FILE" for n in SECRET_NAMES]), max_size=2, unique=True)):
        env[name] = draw(st.sampled_from(FILE_PATHS))
    return env


def job_keys_of(env) -> set[str]:
    """The <NAME>s of job groups, by the contract: the longest known field suffix, and NAME
    of upper-case letters, digits and single underscores."""
    keys = set()
    for name in env:
        if not name.startswith("SCHEDULER_JOB_"):
            continue
        rest = name[len("SCHEDULER_JOB_"):]
        for fld in sorted(FIELDS, key=len, reverse=True):
            if rest.endswith("_" + fld) and JOB_NAME_RE.match(rest[: -len(fld) - 1]):
                keys.add(rest[: -len(fld) - 1])
                break
    return keys


def allowed_subjects(env) -> set[str]:
    """Names a problem line may start with: the input's, plus the documented synthetic ones."""
    allowed = set(env)
    allowed.add("SCHEDULER_JOB_<NAME>_SCHEDULE")  # no jobs at all
    if "SCHEDULER_LEASE_TTL" in env:  # RENEW (maybe its default) checked against TTL
        allowed.add("SCHEDULER_LEASE_RENEW")
    if "SCHEDULER_REDIS_SENTINELS" in env or "SCHEDULER_REDIS_SENTINEL_MASTER" in env:
        allowed.add("SCHEDULER_REDIS_SENTINELS")  # "SENTINELS and SENTINEL_MASTER: set both"
    for key in job_keys_of(env):  # a job group missing a required field
        allowed |= {f"SCHEDULER_JOB_{key}_SCHEDULE", f"SCHEDULER_JOB_{key}_URL"}
    return allowed


def shown(name: str) -> str:
    """A name as a one-line message shows it: control and non-printable characters escaped."""
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


def starts_with_a_name(problem: str, allowed: set[str]) -> bool:
    return any(
        problem.startswith(form + ": ") or problem.startswith(form + " and ")
        for name in allowed for form in {name, shown(name)}
    )


def check_settings(s, env) -> None:
    """Invariants of settings that loaded: nothing that would fail later was let through."""
    assert s.jobs, "loaded without a job"
    assert s.lease_renew_s < s.lease_ttl_s / 2
    assert re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", s.namespace), f"namespace {s.namespace!r}"
    names = {k.lower().replace("_", "-") for k in job_keys_of(env)}
    for job in s.jobs:
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", job.name), f"job name {job.name!r}"
        assert job.name in names
        assert re.match(r"https?://[^/?#\s]", job.url), f"job url {job.url!r}"
        assert job.method in ("GET", "POST", "PUT", "PATCH", "DELETE")
        assert job.timeout_s > 0 and 0 <= job.retries <= 100
        ZoneInfo(job.timezone)
        for name, value in job.headers:
            assert TOKEN_RE.match(name), f"header name {name!r} is not an HTTP token"
            assert not CONTROL_RE.search(value), f"header {name} value {value!r} holds a control character"
        # What `check` does with every job: its next slots, in UTC and in the job's zone.
        slot = sched.next_after(job.schedule, time.time())
        for _ in range(3):
            if slot is None:
                break
            sched.format_slot(slot)
            datetime.fromtimestamp(slot, ZoneInfo(job.timezone)).isoformat()
            slot = sched.next_after(job.schedule, slot)
        # What a fire does first: build its request.
        dispatcher().build(Fire(job, Claim(job.name, 1_800_000_000), 1), 1)


_DISPATCHER: list[Dispatcher] = []


def dispatcher() -> Dispatcher:
    """One Dispatcher (with a token and a signing secret) for every example: making one costs
    a TLS context. A request's job-specific parts all come from the JobSpec it is given."""
    if not _DISPATCHER:
        base = load({**BASE_JOB, "SCHEDULER_API_TOKEN": "tok", "SCHEDULER_SIGNING_SECRET": VALID_SECRET})
        _DISPATCHER.append(Dispatcher(dataclasses.replace(base, tls_verify=False)))
    return _DISPATCHER[0]


def check_env(env, stderr_is_tty: bool = False) -> None:
    try:
        with time_limit(20):
            s = load(env, stderr_is_tty=stderr_is_tty)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError without problems"
        allowed = allowed_subjects(env)
        for problem in exc.problems:
            assert isinstance(problem, str)
            assert starts_with_a_name(problem, allowed), f"problem does not name an input variable: {problem[:300]!r}"
            check_suggestion(problem, env)
    else:
        check_settings(s, env)
        allowed = set(env) | {"SCHEDULER_API_TOKEN"}  # "SCHEDULER_API_TOKEN and SCHEDULER_SIGNING_SECRET: ..."
        for warning in s.warnings:
            assert "\n" not in warning and "\r" not in warning, repr(warning)
            assert starts_with_a_name(warning, allowed), f"warning does not name an input variable: {warning[:300]!r}"
        assert set(s.ignored) <= set(env)


def check_suggestion(problem: str, env) -> None:
    """A "did you mean X?" names a valid name other than the one it is said of: taken, X is
    not an unknown name."""
    m = re.search(r"; did you mean (SCHEDULER_[A-Z0-9_]+)\?$", problem)
    if m is None:
        return
    meant = m.group(1)
    subject = next(n for n in env if problem.startswith(shown(n) + ": "))
    assert meant != subject, problem
    renamed = {k: v for k, v in env.items() if k != subject}
    renamed[meant] = env[subject]
    try:
        load(renamed)
    except ConfigError as exc:
        assert not [p for p in exc.problems if p.startswith(meant + ": unknown")], (problem, exc.problems)


@settings(max_examples=150, **NO_SHRINK)
@given(env=environments(), tty=st.booleans())
def test_any_environment_loads_or_raises_config_error_naming_its_variables(env, tty):
    check_env(env, tty)


# The crashes the property found once, pinned so each shows as its own failure.
CRASHERS = {
    "huge integer duration": {"SCHEDULER_LEASE_TTL": "9" * 400},
    "huge duration with unit": {"SCHEDULER_JOB_A_TIMEOUT": "9" * 400 + "s"},
    "huge interval": {"SCHEDULER_JOB_A_SCHEDULE": "every " + "9" * 400},
    "huge bare-seconds interval": {"SCHEDULER_JOB_A_SCHEDULE": "9" * 400},
    "deeply nested HEADERS": {"SCHEDULER_JOB_A_HEADERS": "[" * 100_000},
    "_FILE path with a NUL": {"SCHEDULER_API_TOKEN_FILE": os.path.join(FILES_DIR, "with\x00nul")},
    "_FILE holding bytes that are not UTF-8": {"SCHEDULER_SIGNING_SECRET_FILE": os.path.join(FILES_DIR, "binary")},
    "TLS_VERIFY path longer than the OS allows": {"SCHEDULER_TLS_VERIFY": "9" * 300},
}


@pytest.mark.parametrize("extra", CRASHERS.values(), ids=CRASHERS.keys())
def test_odd_values_are_config_errors_not_crashes(extra):
    env = {**BASE_JOB, **extra}
    with pytest.raises(ConfigError) as info:
        load(env)
    (name,) = extra
    assert any(p.startswith(name + ": ") for p in info.value.problems), info.value.problems


ACCEPTED_BUT_BROKEN = {
    # Each loads today, then fails at every fire or in `check`.
    "job NAME with a trailing newline": {"SCHEDULER_JOB_A\n_SCHEDULE": "every 1m", "SCHEDULER_JOB_A\n_URL": "/x"},
    "namespace with a trailing newline": {"SCHEDULER_NAMESPACE": "ns\n"},
    "header name with a trailing newline": {"SCHEDULER_JOB_A_HEADERS": '{"X-A\\n": "v"}'},
    "header value with a NUL": {"SCHEDULER_JOB_A_HEADERS": '{"X-A": "v\\u0000x"}'},
    "interval whose next slot is past year 9999": {"SCHEDULER_JOB_A_SCHEDULE": "every 4000000d"},
    "one-shot past year 9999 in UTC": {"SCHEDULER_JOB_A_SCHEDULE": "at 9999-12-31T23:59:59-05:00"},
    "BODY nested too deep to parse": {"SCHEDULER_JOB_A_BODY": "[" * 100_000},
}


@pytest.mark.parametrize("extra", ACCEPTED_BUT_BROKEN.values(), ids=ACCEPTED_BUT_BROKEN.keys())
def test_what_loads_can_be_checked_and_fired(extra):
    check_env({**BASE_JOB, **extra})


def test_every_problem_is_one_line():
    """"one line each": a variable name holding a line break must not split a problem."""
    env = {**BASE_JOB, "SCHEDULER_X\nY": "1", "SCHEDULER_JOB_B\r_URL": "/x", "SCHEDULER_LOG_LEVEL": "a\nb"}
    with pytest.raises(ConfigError) as info:
        load(env)
    for problem in info.value.problems:
        assert "\n" not in problem and "\r" not in problem, repr(problem)
    # An unknown name far from every known one is a warning now, one line too.
    warned = load({**BASE_JOB, "SCHEDULER_X\nY": "1"}).warnings
    assert [w for w in warned if w.startswith("SCHEDULER_X\\nY: ")]
    for warning in warned:
        assert "\n" not in warning and "\r" not in warning, repr(warning)


@st.composite
def secret_shapes(draw, marker: str) -> tuple[str, str]:
    name = draw(st.sampled_from(SECRET_NAMES))
    junk = draw(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8))
    shapes = {
        "SCHEDULER_API_TOKEN": [marker + junk, " ", marker + "\n" + junk],
        "SCHEDULER_SIGNING_SECRET": [marker, "whsec_" + marker + junk, "whsec_" + marker + "==", "whsec_" + junk + marker],
        "SCHEDULER_REDIS_URL": [
            f"redis://:{marker}@127.0.0.1:bad/0", f"redis://user:{marker}@:6379/0", f"http://:{marker}@h/0",
            f"redis://:{marker}@[::1/0", f"redis://u:{marker}{junk}@h:99999999/0", f"unix://:{marker}@",
            f"redis://{marker}", marker,
        ],
    }
    return name, draw(st.sampled_from(shapes[name]))


SMALL_VALUES = st.one_of(st.text(max_size=12), st.sampled_from(["", " ", "true", "json", "15s", "UTC", "ns", "http://h"]))


@settings(max_examples=100, **NO_SHRINK)
@given(data=st.data(), via_file=st.booleans(), others=st.dictionaries(st.sampled_from(GLOBAL_NAMES), SMALL_VALUES, max_size=3))
def test_a_secret_value_never_appears_in_a_problem(data, via_file, others):
    marker = "Zq7SeCrEt" + data.draw(st.text(alphabet="abcdef0123456789", min_size=4, max_size=8))
    name, value = data.draw(secret_shapes(marker))
    env = {**BASE_JOB, **{k: v for k, v in others.items() if k not in SECRET_NAMES}}
    if via_file:
        env[name + "_FILE"] = _file("secret-" + marker, value.encode("utf-8", "surrogatepass") + b"\n")
    else:
        env[name] = value
    note(f"env: {env!r}")
    try:
        load(env)
    except ConfigError as exc:
        text = "\n".join(exc.problems)
        assert marker not in text, text


# ---------------------------------------------------------------------------------------
# slot math
# ---------------------------------------------------------------------------------------

def parse_field(text: str, lo: int, hi: int) -> set[int]:
    """An independent reading of one cron field: *, n, a-b, */s, a-b/s, lists."""
    out: set[int] = set()
    for part in text.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            a, b = lo, hi
        elif "-" in base:
            a, b = (int(x) for x in base.split("-"))
        else:
            a = b = int(base)
        out.update(range(a, b + 1, int(step) if step else 1))
    return out


class Fields:
    """Cron fields as sets, and whether a local wall-clock time matches them."""

    def __init__(self, expr: str):
        parts = expr.split()
        if len(parts) == 5:
            parts = ["0"] + parts
        names = ["second", "minute", "hour", "dom", "month", "dow"]
        self.sets = {n: parse_field(p, *FIELD_RANGES[n]) for n, p in zip(names, parts)}
        self.sets["dow"] = {d % 7 for d in self.sets["dow"]}
        self.day_or = parts[3] != "*" and parts[5] != "*"
        self.fixed = not parts[1].startswith("*") and not parts[2].startswith("*")

    def day(self, d) -> bool:
        dom, dow = d.day in self.sets["dom"], (d.weekday() + 1) % 7 in self.sets["dow"]
        return (dom or dow) if self.day_or else (dom and dow)

    def match(self, local: datetime) -> bool:
        s = self.sets
        return (local.second in s["second"] and local.minute in s["minute"] and local.hour in s["hour"]
                and local.month in s["month"] and self.day(local))


def offset(zone, u: float):
    return datetime.fromtimestamp(u, zone).utcoffset()


def near_transition(zone, u: float, margin: int = 3 * 3600) -> bool:
    return len({offset(zone, u + d) for d in range(-margin, margin + 1, 900)}) > 1


def transition_between(zone, a: float, b: float) -> bool:
    if b - a > 40 * 86400:
        return True  # not worth proving; treated as "maybe"
    step = 1800
    base = offset(zone, a - 3 * 3600)
    return any(offset(zone, u) != base for u in range(int(a) - 3 * 3600, int(b) + 3 * 3600 + step, step))


def cronsim_next(expr: str, tz, after: float) -> int | None:
    try:
        return int(next(CronSim(expr, datetime.fromtimestamp(after, tz))).timestamp())
    except (StopIteration, CronSimError):
        return None


def ours(expr_or_schedule, after: float, tz: str = "UTC", job: str = "job"):
    s = sched.parse(expr_or_schedule, tz, job) if isinstance(expr_or_schedule, str) else expr_or_schedule
    with time_limit(5):
        return sched.next_after(s, after)


instants = st.one_of(st.integers(MIN_T, MAX_T), st.floats(MIN_T, MAX_T, allow_nan=False))


@settings(max_examples=80, **COMMON)
@given(expr=cron_exprs(), tz=st.sampled_from(FIXED_ZONES), after=instants)
def test_cron_next_after_agrees_with_cronsim_in_fixed_offset_zones(expr, tz, after):
    try:
        s = sched.parse(expr, tz, "job")
    except sched.ScheduleError:
        # Only expressions that can never match are refused (a Feb 30th).
        assert cronsim_next(expr, UTC, 0) is None, f"{expr!r} refused but it matches"
        return
    got = ours(s, after)
    assert isinstance(got, int) and got > after
    zone = UTC if tz in ("UTC", "Etc/UTC") else ZoneInfo(tz)
    want = cronsim_next(expr, zone, after)
    assume(want is not None)  # cronsim gives up after 50 years without a match
    assert got == want, f"{expr!r} in {tz} after {after}: {sched.format_slot(got)} != {sched.format_slot(want)}"


@settings(max_examples=80, **COMMON)
@given(expr=cron_exprs(), tz=st.sampled_from(ALL_ZONES), after=instants)
def test_cron_next_after_in_any_zone_is_later_matches_the_wall_clock_and_misses_nothing(expr, tz, after):
    try:
        s = sched.parse(expr, tz, "job")
    except sched.ScheduleError:
        return
    zone = ZoneInfo(tz)
    fields = Fields(expr)
    got = ours(s, after)
    assert isinstance(got, int) and got > after
    local = datetime.fromtimestamp(got, zone)
    if not near_transition(zone, got):
        assert fields.match(local), f"{expr!r} in {tz}: {local} does not match the fields"
    elif not fields.match(local):
        # Only a fixed-time job fires off its fields: right after a gap, at the jump itself.
        assert fields.fixed and offset(zone, got - 1) != offset(zone, got), f"{expr!r} in {tz}: {local}"
    want = cronsim_next(expr, zone, after)
    if want is None:
        return
    if after < want < got and not near_transition(zone, want):
        assert not fields.match(datetime.fromtimestamp(want, zone)), (
            f"{expr!r} in {tz} after {after}: skipped the slot {sched.format_slot(want)}, returned {sched.format_slot(got)}"
        )
    far = not (near_transition(zone, after) or near_transition(zone, got) or near_transition(zone, want))
    if far and not transition_between(zone, after, max(got, want)):
        assert got == want, f"{expr!r} in {tz} after {after}: {sched.format_slot(got)} != {sched.format_slot(want)}"


def test_cron_in_a_zone_with_a_half_hour_dst_shift_is_not_thrown_off_after_the_shift():
    # Lord Howe falls back 30 minutes on 2015-04-05; 14:00 on that Sunday matches "*/36 14 ... 0".
    got = ours("*/36 14 6,11,27 4,8,11 0", 1423099046, "Australia/Lord_Howe")
    assert datetime.fromtimestamp(got, ZoneInfo("Australia/Lord_Howe")).strftime("%F %T") == "2015-04-05 14:00:00"


JOB_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)


@st.composite
def hashed_exprs(draw) -> str:
    six = draw(st.booleans())
    names = (["second"] if six else []) + ["minute", "hour", "dom", "month", "dow"]
    out = []
    for name in names:
        lo, hi = FIELD_RANGES[name]
        if name == "dom":
            hi = 28  # H in the day of month: stay inside every month
        choice = draw(st.integers(0, 5))
        if choice == 0:
            out.append("H")
        elif choice == 1:
            out.append(f"H/{draw(st.integers(2, hi - lo + 1))}")
        elif choice == 2:
            a, b = draw(ranges(lo, hi)).split("-")
            out.append(f"H({a}-{b})")
        else:
            out.append(draw(cron_field(lo, hi)) if name not in ("dom", "dow") else "*")
    return " ".join(out)


def expanded_for_cronsim(expr: str, job: str) -> str:
    """The expression with every H resolved the way croniter resolves it for this job."""
    six = len(expr.split()) == 6
    exp = croniter.expand(expr, hash_id=job.encode(), second_at_beginning=six)[0]
    minute, hour, dom, month, dow = exp[:5]
    second = exp[5] if six else [0]

    def text(values):
        return "*" if values == ["*"] else ",".join(str(v) for v in values)

    return " ".join(text(v) for v in (second, minute, hour, dom, month, dow))


@settings(max_examples=100, **COMMON)
@given(expr=hashed_exprs(), job=JOB_NAMES, tz=st.sampled_from(FIXED_ZONES), after=instants)
def test_hashed_fields_are_stable_per_job_and_otherwise_plain_cron(expr, job, tz, after):
    resolved = expanded_for_cronsim(expr, job)
    zone = UTC if tz in ("UTC", "Etc/UTC") else ZoneInfo(tz)
    want = cronsim_next(resolved, zone, after)
    try:
        got = ours(expr, after, tz, job)
    except sched.ScheduleError:
        # `H H H H(1-2) *` can pick, for one job, a day its months never have (the 30th of
        # February): refused when read, as the reference finds no date either.
        assert want is None and cronsim_next(resolved, zone, 0) is None, f"{expr!r} for {job!r} refused"
        return
    assert got == ours(expr, after, tz, job) and got > after
    assume(want is not None)
    assert got == want, f"{expr!r} for {job!r} (= {resolved!r}): {sched.format_slot(got)} != {sched.format_slot(want)}"
    # The H positions take values inside their range: the slot's wall clock matches the
    # expression with every H read as its whole range.
    parts = [f[2:-1] if f.startswith("H(") else "*" if f.startswith("H") else f for f in expr.split()]
    if any(f.startswith("H") for f in (expr.split()[-3], expr.split()[-1])):
        parts[-3] = parts[-1] = "*"  # a hashed day field may be ORed with the other one
    anyh = " ".join(parts)
    assert Fields(anyh).match(datetime.fromtimestamp(got, zone))


def test_hashed_minute_spreads_jobs_and_is_stable():
    minutes = set()
    for i in range(60):
        slot = ours("H * * * *", 1_700_000_000, "UTC", f"job-{i}")
        assert slot == ours("H * * * *", 1_700_000_000, "UTC", f"job-{i}")
        assert ours("H * * * *", slot, "UTC", f"job-{i}") == slot + 3600
        minutes.add(datetime.fromtimestamp(slot, UTC).minute)
    assert len(minutes) >= 20, f"60 jobs share only {len(minutes)} minutes"


def transition_after(zone, t: int) -> int | None:
    """The first instant after t (within ~400 days) at which the zone's UTC offset changes."""
    base = offset(zone, t)
    for day in range(1, 400):
        if offset(zone, t + day * 86400) != base:
            lo, hi = t + (day - 1) * 86400, t + day * 86400
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(zone, mid) == base else (lo, mid)
            return hi
    return None


def vixie_reference(expr: str, zone, lo: int, hi: int) -> list[int]:
    """Brute force, second by second (or minute by minute) over (lo, hi]: a wall-clock time
    that happens fires there; for fixed-time jobs only its first occurrence, and a skipped
    wall-clock time fires at the instant its gap ends."""
    fields = Fields(expr)
    step = 1 if len(expr.split()) == 6 else 60
    out: set[int] = set()
    u = (lo // step + 1) * step
    prev = offset(zone, u - step)
    while u <= hi:
        local = datetime.fromtimestamp(u, zone)
        off = local.utcoffset()
        if fields.match(local) and not (fields.fixed and local.fold == 1):
            out.add(u)
        if off > prev and fields.fixed:
            # A forward jump at some instant in (u - step, u]: find it, then the skipped times.
            a, b = u - step, u
            while b - a > 1:
                mid = (a + b) // 2
                a, b = (mid, b) if offset(zone, mid) == prev else (a, mid)
            before = datetime.fromtimestamp(b, UTC) + prev
            after_ = datetime.fromtimestamp(b, UTC) + off
            naive = before.replace(tzinfo=None)
            if step == 60 and naive.second:
                naive = naive.replace(second=0) + timedelta(minutes=1)
            end = after_.replace(tzinfo=None)
            while naive < end:
                if fields.match(naive):
                    if lo < b <= hi:
                        out.add(b)
                    break
                naive += timedelta(seconds=step)
        prev = off
        u += step
    return sorted(out)


@settings(max_examples=50, **COMMON)
# From 1972-03 on: no zone has an offset of a fraction of a minute (Monrovia's -0:44:30).
@given(data=st.data(), tz=st.sampled_from(ALL_ZONES), t=st.integers(70_000_000, 2_100_000_000), six=st.booleans())
def test_slots_around_real_dst_transitions_follow_the_vixie_rules(data, tz, t, six):
    zone = ZoneInfo(tz)
    edge = transition_after(zone, t)
    assume(edge is not None)
    # Sparse seconds: dense ones near a fall-back are what test_per_second_jobs_stay_cheap_*
    # is about, and would only make this test slow.
    expr = data.draw(cron_exprs(six=six, day_star_bias=True, sparse_seconds=True), label="expr")
    try:
        s = sched.parse(expr, tz, "job")
    except sched.ScheduleError:
        return
    half = data.draw(st.sampled_from([1800, 4 * 3600]) if six else st.sampled_from([2 * 3600, 12 * 3600, 30 * 3600]), label="half")
    lo, hi = edge - half + data.draw(st.integers(0, 59), label="skew"), edge + half
    want = vixie_reference(expr, zone, lo, hi)
    assume(len(want) <= 300)
    with time_limit(20):
        got = sched.slots_between(s, lo, hi)
    note(f"transition at {sched.format_slot(edge)} ({offset(zone, edge - 1)} -> {offset(zone, edge)})")
    assert got == want, (
        f"{expr!r} in {tz}: only ours {[datetime.fromtimestamp(x, zone).isoformat() for x in sorted(set(got) - set(want))][:5]}, "
        f"only reference {[datetime.fromtimestamp(x, zone).isoformat() for x in sorted(set(want) - set(got))][:5]}"
    )


@settings(max_examples=50, **COMMON)
@given(tz=st.sampled_from(ALL_ZONES), t=st.integers(0, 2_100_000_000), hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_a_daily_fixed_time_job_fires_once_per_wall_clock_day(tz, t, hour, minute):
    zone = ZoneInfo(tz)
    s = sched.parse(f"{minute} {hour} * * *", tz, "job")
    with time_limit(20):
        slots = sched.slots_between(s, t, t + 120 * 86400)
    assert 115 <= len(slots) <= 125
    seen = set()
    for slot in slots:
        local = datetime.fromtimestamp(slot, zone)
        if (local.hour, local.minute, local.second) == (hour, minute, 0):
            assert local.fold == 0, f"{local}: the repeated time fired on its second occurrence"
        else:
            assert offset(zone, slot - 1) != offset(zone, slot), f"{local}: neither {hour:02}:{minute:02} nor a jump"
        assert local.replace(tzinfo=None) not in seen
        seen.add(local.replace(tzinfo=None))


@settings(max_examples=80, **COMMON)
@given(times=st.lists(st.tuples(st.integers(0, 23), st.integers(0, 59)), min_size=1, max_size=4),
       tz=st.sampled_from(FIXED_ZONES + ALL_ZONES[::25]), after=instants)
def test_daily_times_and_macros_are_their_cron_equivalents(times, tz, after):
    daily = sched.parse("daily " + ",".join(f"{h:02}:{m:02}" for h, m in times), tz, "job")
    as_cron = [sched.parse(f"{m} {h} * * *", tz, "job") for h, m in times]
    assert ours(daily, after) == min(ours(c, after) for c in as_cron)
    for macro, cron in (("@yearly", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"), ("@weekly", "0 0 * * 0"),
                        ("@daily", "0 0 * * *"), ("@hourly", "0 * * * *")):
        assert ours(macro, after, tz) == ours(cron, after, tz)


@settings(max_examples=300, **COMMON)
@given(period=st.one_of(st.integers(1, 120), st.integers(1, 10**7)), after=instants,
       form=st.sampled_from(["every {}s", "@every {}s", "{}", "every {}"]))
def test_interval_slots_are_multiples_of_the_period_after_the_input(period, after, form):
    s = sched.parse(form.format(period))
    got = ours(s, after)
    assert isinstance(got, int) and got % period == 0
    assert after < got <= after + period


@settings(max_examples=100, **COMMON)
@given(d=st.integers(0, 3), h=st.integers(0, 30), m=st.integers(0, 90), sec=st.integers(0, 90))
def test_interval_units_add_up(d, h, m, sec):
    assume(d or h or m or sec)
    text = "".join(f"{v}{u}" for v, u in zip((d, h, m, sec), "dhms") if v)
    assert sched.parse("every " + text) == sched.Interval(d * 86400 + h * 3600 + m * 60 + sec)


@st.composite
def any_schedules(draw):
    kind = draw(st.sampled_from(["cron", "interval", "at"]))
    if kind == "cron":
        expr = draw(st.one_of(cron_exprs(), hashed_exprs()))
        try:
            return sched.parse(expr, draw(st.sampled_from(ALL_ZONES)), draw(JOB_NAMES))
        except sched.ScheduleError:
            assume(False)
    if kind == "interval":
        return sched.Interval(draw(st.integers(1, 7 * 86400)))
    return sched.At(draw(st.integers(MIN_T, MAX_T)))


@settings(max_examples=100, **COMMON)
@given(s=any_schedules(), after=st.integers(MIN_T, MAX_T - 10**8), span=st.integers(0, 10**8), limit=st.integers(0, 5))
def test_slots_between_and_recent_slots_equal_iterating_next_after(s, after, span, limit):
    until = after + span
    expected: list[int] = []
    slot = ours(s, after)
    while slot is not None and slot <= until and len(expected) < 200:
        expected.append(slot)
        nxt = ours(s, slot)
        assert nxt is None or nxt > slot
        slot = nxt
    if len(expected) == 200:
        until = expected[-1]  # keep the window small enough to enumerate
    with time_limit(20):
        assert sched.slots_between(s, after, until) == expected
        assert sched.slots_between(s, after, until, limit) == (expected[-limit:] if limit else [])
        assert sched.recent_slots(s, after, until, limit) == (expected[-limit:] if limit else [], len(expected) > limit)
    if isinstance(s, sched.At):
        assert expected == ([s.slot] if after < s.slot <= until else [])
        assert ours(s, s.slot) is None
    else:
        assert ours(s, until) is not None, "only a one-shot ever runs out of slots"


@example(after=1_800_000_000.999)
@settings(max_examples=100, **COMMON)
@given(after=st.floats(MIN_T, MAX_T, allow_nan=False))
def test_fractional_instants_never_yield_a_slot_at_or_before_them(after):
    for s in (sched.parse("* * * * * *"), sched.parse("every 1s"), sched.At(int(after) + 1)):
        got = ours(s, after)
        assert got > after and got - after <= 1


@settings(max_examples=80, **COMMON)
@given(data=st.data(), tz=st.sampled_from(ALL_ZONES), t=st.integers(70_000_000, 2_100_000_000))
def test_a_wall_clock_time_in_a_dst_gap_or_repeat(data, tz, t):
    """Skipped: a fixed-time job fires at the jump itself. Repeated: a fixed-time job fires
    on the first occurrence only, a job with `*` in its hour field on both."""
    zone = ZoneInfo(tz)
    edge = transition_after(zone, t)
    assume(edge is not None)
    old, new = offset(zone, edge - 1), offset(zone, edge)
    at_edge = datetime.fromtimestamp(edge, UTC).replace(tzinfo=None)
    start, end = sorted((at_edge + old, at_edge + new))  # wall-clock times skipped or repeated
    first = start.replace(second=0) + (timedelta(minutes=1) if start.second else timedelta(0))
    minutes = int((end - first).total_seconds() // 60)
    assume(minutes > 0)
    naive = first + timedelta(minutes=data.draw(st.integers(0, min(minutes, 24 * 60) - 1), label="minute"))
    fixed = sched.parse(f"{naive.minute} {naive.hour} {naive.day} {naive.month} *", tz, "job")
    note(f"jump at {sched.format_slot(edge)}: {old} -> {new}; wall clock {naive}")
    if new > old:
        assert ours(fixed, edge - 1) == edge
        hourly = sched.parse(f"{naive.minute} * {naive.day} {naive.month} *", tz, "job")
        assert all(datetime.fromtimestamp(s, zone).replace(tzinfo=None) != naive
                   for s in sched.slots_between(hourly, edge - 86400, edge + 86400))
    else:
        occurrences = [int((naive - o).replace(tzinfo=UTC).timestamp()) for o in (old, new)]
        window = (edge - 2 * 86400, edge + 2 * 86400)
        assert [s for s in sched.slots_between(fixed, *window)] == [occurrences[0]]
        hourly = sched.parse(f"{naive.minute} * {naive.day} {naive.month} *", tz, "job")
        got = sched.slots_between(hourly, *window)
        assert set(occurrences) <= set(got), f"{[datetime.fromtimestamp(s, zone).isoformat() for s in got]}"


def test_a_per_second_job_stays_cheap_in_the_hours_before_a_dst_fall_back():
    """A leader works out one slot per fire: in the hours before clocks go back that must
    cost no more than at any other time, or a per-second job falls behind its schedule."""
    edge = 1_699_164_000  # 2023-11-05T06:00:00Z: New York falls back from 02:00 to 01:00
    s = sched.parse("* * * * * *", "America/New_York", "job")
    slots, started = [], time.perf_counter()
    slot = sched.next_after(s, edge - 1800)
    while slot <= edge + 600 and time.perf_counter() - started < 3:  # 2400 slots: ~0.3 s in UTC
        slots.append(slot)
        slot = sched.next_after(s, slot)
    took = time.perf_counter() - started
    assert slot > edge + 600, (
        f"{len(slots)} of 2400 slots in {took:.1f}s ({took / max(len(slots), 1) * 1000:.0f} ms per slot; "
        "away from a transition about 0.1 ms)"
    )
    # `*` jobs run on elapsed time: every second of the repeated hour, once each.
    assert slots == list(range(edge - 1799, edge + 601))


@pytest.mark.parametrize("expr", ["0 16-16 * * *", "0 0 1 12-12 *", "30 9 * * 1-1", "0-0 * * * *", "0 0-0,12 * * *", "0 0 0 1-1 * *"])
def test_a_range_from_a_number_to_itself_is_that_number(expr):
    """POSIX cron: `a-b` is the inclusive range, so `16-16` is 16, not every hour."""
    s = sched.parse(expr, "UTC", "job")
    after, got, want = 1_700_000_000, [], []
    sim = CronSim(expr, datetime.fromtimestamp(after, UTC))
    for _ in range(5):
        after = ours(s, after)
        got.append(sched.format_slot(after))
        want.append(sched.format_slot(int(next(sim).timestamp())))
    assert got == want


# -- the fast dotenv path ------------------------------------------------------------------

_DOTENV_TEXT = st.text(alphabet="ab Z09:/._-#$\\'\"\té{}\r=", max_size=8)
_DOTENV_LINE = st.one_of(
    st.builds(
        lambda lead, export, key, value, tail: f"{lead}{export}{key}={value}{tail}",
        st.sampled_from(["", " ", "\t"]),
        st.sampled_from(["", "export ", "export\t"]),
        st.sampled_from(["A", "B_2", "_c", "SCHEDULER_JOB_X_URL", "9x", "A-B"]),
        st.one_of(_DOTENV_TEXT, _DOTENV_TEXT.map(lambda t: f'"{t}"'), _DOTENV_TEXT.map(lambda t: f"'{t}'")),
        st.sampled_from(["", " ", "\t", " # note", "# note", "\t#x", "\r", " x"]),
    ),
    st.sampled_from(["", "# comment", "  # indented", "A", "=x"]),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_DOTENV_LINE, max_size=6))
@example(["A=abc#def"])
@example(["A=abc #def", "B='q # r'", 'C="s"#t'])
def test_the_fast_dotenv_path_reads_what_python_dotenv_reads(lines):
    import io

    from dotenv import dotenv_values

    from scheduler.config.loader import _simple_dotenv

    text = "\n".join(lines) + "\n"
    fast = _simple_dotenv(text)
    note(repr(text))
    if fast is not None:
        assert fast == dict(dotenv_values(stream=io.StringIO(text), interpolate=True))
        assert fast == dict(dotenv_values(stream=io.StringIO(text), interpolate=False))


def test_the_fast_dotenv_path_takes_plain_files_and_leaves_the_rest():
    from scheduler.config.loader import _simple_dotenv

    assert _simple_dotenv('# jobs\nexport A=1\nB="two words"  # note\nC=\'x\'\r\n\n') == {"A": "1", "B": "two words", "C": "x"}
    for line in ('A="a\\nb"', "A=${B}", "A=a b", "A", "A=abc#def", "\ufeffA=1"):
        assert _simple_dotenv(line) is None, line
