"""Configuration: every bad setting is reported at once through the real CLI (exit 78, one
line per problem naming the variable, never a secret), and `config.load` maps a SCHEDULER_*
environment to settings and jobs."""

from __future__ import annotations

import dataclasses
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scheduler.config import loader as config
from tests.support import run_cli

EX_CONFIG = 78
VALID_JOB = {
    "SCHEDULER_JOB_PING_SCHEDULE": "*/5 * * * *",
    "SCHEDULER_JOB_PING_URL": "/ping",
}


@dataclasses.dataclass
class Bad:
    env: dict[str, str | None]
    names: tuple[str, ...]  # variables the error output must name
    secrets: tuple[str, ...] = ()  # values that must not appear in stdout or stderr
    files: dict[str, str] = dataclasses.field(default_factory=dict)  # written under {tmp}
    also: tuple[str, ...] = ()  # further text the error output must contain


BAD = {
    # empty values are errors, not "use the default"
    "empty-setting": Bad({"SCHEDULER_NAMESPACE": ""}, ("SCHEDULER_NAMESPACE",)),
    "empty-secret": Bad({"SCHEDULER_API_TOKEN": ""}, ("SCHEDULER_API_TOKEN",)),
    # unknown names, with a suggestion
    "unknown-global": Bad(
        {"SCHEDULER_LEASE_TTLL": "30s"}, ("SCHEDULER_LEASE_TTLL",), also=("did you mean SCHEDULER_LEASE_TTL",)
    ),
    "unknown-global-holding-a-token": Bad(
        {"SCHEDULER_API_TOKN": "tok-typo-8f3a91"},
        ("SCHEDULER_API_TOKN",),
        secrets=("tok-typo-8f3a91",),
        also=("did you mean SCHEDULER_API_TOKEN",),
    ),
    "unknown-job-field": Bad(
        {"SCHEDULER_JOB_PING_METOHD": "GET"},
        ("SCHEDULER_JOB_PING_METOHD",),
        also=("did you mean SCHEDULER_JOB_PING_METHOD",),
    ),
    "unknown-job-field-multiword": Bad(
        {
            "SCHEDULER_JOB_DATA_REFRESH_SCHEDULE": "@daily",
            "SCHEDULER_JOB_DATA_REFRESH_URL": "/refresh",
            "SCHEDULER_JOB_DATA_REFRESH_CATCHUP_WINDOWS": "1h",
        },
        ("SCHEDULER_JOB_DATA_REFRESH_CATCHUP_WINDOWS",),
        also=("did you mean SCHEDULER_JOB_DATA_REFRESH_CATCHUP_WINDOW",),
    ),
    # durations
    "bad-duration-job": Bad({"SCHEDULER_JOB_PING_TIMEOUT": "10x"}, ("SCHEDULER_JOB_PING_TIMEOUT",)),
    "lease-renew-half-ttl": Bad(
        {"SCHEDULER_LEASE_TTL": "10s", "SCHEDULER_LEASE_RENEW": "5s"}, ("SCHEDULER_LEASE_RENEW",)
    ),
    # zones
    "bad-global-zone": Bad({"SCHEDULER_TIMEZONE": "Mars/Olympus_Mons"}, ("SCHEDULER_TIMEZONE",)),
    "bad-job-zone": Bad({"SCHEDULER_JOB_PING_TIMEZONE": "Europe/Berlim"}, ("SCHEDULER_JOB_PING_TIMEZONE",)),
    # schedules
    "cron-minute-61": Bad({"SCHEDULER_JOB_PING_SCHEDULE": "61 * * * *"}, ("SCHEDULER_JOB_PING_SCHEDULE",)),
    "cron-7-fields": Bad({"SCHEDULER_JOB_PING_SCHEDULE": "0 0 * * * * *"}, ("SCHEDULER_JOB_PING_SCHEDULE",)),
    "cron-impossible-date": Bad({"SCHEDULER_JOB_PING_SCHEDULE": "0 0 30 2 *"}, ("SCHEDULER_JOB_PING_SCHEDULE",)),
    "at-bad-month": Bad({"SCHEDULER_JOB_PING_SCHEDULE": "at 2026-13-01T03:00:00Z"}, ("SCHEDULER_JOB_PING_SCHEDULE",)),
    "daily-25h": Bad({"SCHEDULER_JOB_PING_SCHEDULE": "daily 25:00"}, ("SCHEDULER_JOB_PING_SCHEDULE",)),
    # job fields
    "bad-method": Bad({"SCHEDULER_JOB_PING_METHOD": "FETCH"}, ("SCHEDULER_JOB_PING_METHOD",)),
    "url-ftp": Bad({"SCHEDULER_JOB_PING_URL": "ftp://files.example/x"}, ("SCHEDULER_JOB_PING_URL",)),
    "url-file": Bad({"SCHEDULER_JOB_PING_URL": "file:///etc/passwd"}, ("SCHEDULER_JOB_PING_URL",)),
    "url-javascript": Bad({"SCHEDULER_JOB_PING_URL": "javascript:alert(1)"}, ("SCHEDULER_JOB_PING_URL",)),
    "headers-not-json": Bad({"SCHEDULER_JOB_PING_HEADERS": '{"X-Team": '}, ("SCHEDULER_JOB_PING_HEADERS",)),
    "headers-authorization": Bad(
        {"SCHEDULER_JOB_PING_HEADERS": '{"Authorization": "Bearer sk-live-7731"}'},
        ("SCHEDULER_JOB_PING_HEADERS",),
        secrets=("sk-live-7731",),
    ),
    "headers-idempotency-key": Bad(
        {"SCHEDULER_JOB_PING_HEADERS": '{"idempotency-key": "mine"}'}, ("SCHEDULER_JOB_PING_HEADERS",)
    ),
    "retries-negative": Bad({"SCHEDULER_JOB_PING_RETRIES": "-1"}, ("SCHEDULER_JOB_PING_RETRIES",)),
    "bad-catchup": Bad({"SCHEDULER_JOB_PING_CATCHUP": "some"}, ("SCHEDULER_JOB_PING_CATCHUP",)),
    "bad-concurrency": Bad({"SCHEDULER_JOB_PING_CONCURRENCY": "parallel"}, ("SCHEDULER_JOB_PING_CONCURRENCY",)),
    "bad-enabled": Bad({"SCHEDULER_JOB_PING_ENABLED": "maybe"}, ("SCHEDULER_JOB_PING_ENABLED",)),
    "missing-url": Bad({"SCHEDULER_JOB_PING_URL": None}, ("SCHEDULER_JOB_PING_URL",)),
    "no-jobs": Bad({"SCHEDULER_JOB_PING_SCHEDULE": None, "SCHEDULER_JOB_PING_URL": None}, ("SCHEDULER_JOB_",)),
    # secrets
    "signing-secret-not-whsec": Bad(
        {"SCHEDULER_SIGNING_SECRET": "supersecretvalue123"},
        ("SCHEDULER_SIGNING_SECRET",),
        secrets=("supersecretvalue123",),
    ),
    "redis-url-http-with-password": Bad(
        {"SCHEDULER_REDIS_URL": "http://:hunter2pass@redis:6379/0"},
        ("SCHEDULER_REDIS_URL",),
        secrets=("hunter2pass",),
    ),
    "redis-url-bad-port-with-password": Bad(
        {"SCHEDULER_REDIS_URL": "redis://app:pw-9bd2e1@redis:notaport/0"},
        ("SCHEDULER_REDIS_URL",),
        secrets=("pw-9bd2e1",),
    ),
    "token-and-token-file": Bad(
        {"SCHEDULER_API_TOKEN": "tok-inline-55c0", "SCHEDULER_API_TOKEN_FILE": "{tmp}/token"},
        ("SCHEDULER_API_TOKEN", "SCHEDULER_API_TOKEN_FILE"),
        secrets=("tok-inline-55c0", "tok-file-a1b2"),
        files={"token": "tok-file-a1b2\n"},
    ),
    "redis-url-and-file": Bad(
        {"SCHEDULER_REDIS_URL": "redis://:inline-pw-31@redis:6379/0", "SCHEDULER_REDIS_URL_FILE": "{tmp}/redis"},
        ("SCHEDULER_REDIS_URL", "SCHEDULER_REDIS_URL_FILE"),
        secrets=("inline-pw-31", "file-pw-47"),
        files={"redis": "redis://:file-pw-47@redis:6379/0\n"},
    ),
    "secret-file-missing": Bad(
        {"SCHEDULER_SIGNING_SECRET_FILE": "{tmp}/no-such-file"}, ("SCHEDULER_SIGNING_SECRET_FILE",)
    ),
    "signing-secret-file-bad-content": Bad(
        {"SCHEDULER_SIGNING_SECRET_FILE": "{tmp}/whsec"},
        ("SCHEDULER_SIGNING_SECRET_FILE",),
        secrets=("plainfilesecret0042",),
        files={"whsec": "plainfilesecret0042\n"},
    ),
    "redis-url-file-http-with-password": Bad(
        {"SCHEDULER_REDIS_URL_FILE": "{tmp}/redis"},
        ("SCHEDULER_REDIS_URL_FILE",),
        secrets=("filepass-77e1",),
        files={"redis": "http://:filepass-77e1@redis:6379/0\n"},
    ),
    # Redis topology and the rest of the globals
    "sentinels-without-master": Bad(
        {"SCHEDULER_REDIS_SENTINELS": "s1:26379,s2:26379"}, ("SCHEDULER_REDIS_SENTINEL_MASTER",)
    ),
    "max-concurrency-zero": Bad({"SCHEDULER_MAX_CONCURRENCY": "0"}, ("SCHEDULER_MAX_CONCURRENCY",)),
    "http-port-70000": Bad({"SCHEDULER_HTTP_PORT": "70000"}, ("SCHEDULER_HTTP_PORT",)),
}

# More bad values, checked in process through config.load (same rules, no process start).
BAD_IN_PROCESS = {
    # the TLS options of a rediss:// URL's query (docs/guarantees.md, "Redis over TLS")
    "redis-url-unknown-tls-option": Bad(
        {"SCHEDULER_REDIS_URL": "rediss://app:pw-tls-61@redis:6380/0?ssl_ca_cert={tmp}/ca.pem"},
        ("SCHEDULER_REDIS_URL",), secrets=("pw-tls-61",), files={"ca.pem": "x"}, also=("ssl_ca_certs",),
    ),
    "redis-url-tls-option-without-tls": Bad(
        {"SCHEDULER_REDIS_URL": "redis://app:pw-tls-62@redis:6379/0?ssl_ca_certs={tmp}/ca.pem"},
        ("SCHEDULER_REDIS_URL",), secrets=("pw-tls-62",), files={"ca.pem": "x"}, also=("rediss://",),
    ),
    "redis-url-ca-file-missing": Bad(
        {"SCHEDULER_REDIS_URL": "rediss://app:pw-tls-63@redis:6380/0?ssl_ca_certs={tmp}/no-ca.pem"},
        ("SCHEDULER_REDIS_URL",), secrets=("pw-tls-63",), also=("no-ca.pem",),
    ),
    "redis-url-bad-cert-reqs": Bad(
        {"SCHEDULER_REDIS_URL": "rediss://app:pw-tls-64@redis:6380/0?ssl_cert_reqs=maybe"},
        ("SCHEDULER_REDIS_URL",), secrets=("pw-tls-64",), also=("required",),
    ),
    "empty-job-field": Bad({"SCHEDULER_JOB_PING_URL": ""}, ("SCHEDULER_JOB_PING_URL",)),
    "empty-secret-file-name": Bad({"SCHEDULER_API_TOKEN_FILE": ""}, ("SCHEDULER_API_TOKEN_FILE",)),
    "job-name-double-underscore": Bad({"SCHEDULER_JOB_BAD__NAME_SCHEDULE": "@daily"}, ("SCHEDULER_JOB_BAD__NAME_SCHEDULE",)),
    "bad-duration-global": Bad({"SCHEDULER_SHUTDOWN_GRACE": "soon"}, ("SCHEDULER_SHUTDOWN_GRACE",)),
    "zero-timeout": Bad({"SCHEDULER_JOB_PING_TIMEOUT": "0"}, ("SCHEDULER_JOB_PING_TIMEOUT",)),
    "negative-jitter": Bad({"SCHEDULER_JOB_PING_JITTER": "-5s"}, ("SCHEDULER_JOB_PING_JITTER",)),
    "lease-renew-above-ttl": Bad(
        {"SCHEDULER_LEASE_TTL": "10s", "SCHEDULER_LEASE_RENEW": "1m"}, ("SCHEDULER_LEASE_RENEW",)
    ),
    "unknown-macro": Bad({"SCHEDULER_JOB_PING_SCHEDULE": "@fortnightly"}, ("SCHEDULER_JOB_PING_SCHEDULE",)),
    "interval-zero": Bad({"SCHEDULER_JOB_PING_SCHEDULE": "every 0s"}, ("SCHEDULER_JOB_PING_SCHEDULE",)),
    "at-without-offset": Bad({"SCHEDULER_JOB_PING_SCHEDULE": "at 2026-12-01T03:00:00"}, ("SCHEDULER_JOB_PING_SCHEDULE",)),
    "url-scheme-relative": Bad({"SCHEDULER_JOB_PING_URL": "//evil.example/x"}, ("SCHEDULER_JOB_PING_URL",)),
    "headers-not-object": Bad({"SCHEDULER_JOB_PING_HEADERS": '["X-Team"]'}, ("SCHEDULER_JOB_PING_HEADERS",)),
    "retries-not-a-number": Bad({"SCHEDULER_JOB_PING_RETRIES": "three"}, ("SCHEDULER_JOB_PING_RETRIES",)),
    "bad-catchup-window": Bad({"SCHEDULER_JOB_PING_CATCHUP_WINDOW": "0"}, ("SCHEDULER_JOB_PING_CATCHUP_WINDOW",)),
    "missing-schedule": Bad({"SCHEDULER_JOB_PING_SCHEDULE": None}, ("SCHEDULER_JOB_PING_SCHEDULE",)),
    "signing-secret-bad-base64": Bad(
        {"SCHEDULER_SIGNING_SECRET": "whsec_not*base64*at*all!"},
        ("SCHEDULER_SIGNING_SECRET",),
        secrets=("not*base64*at*all!",),
    ),
    "secret-file-empty": Bad(
        {"SCHEDULER_API_TOKEN_FILE": "{tmp}/empty"}, ("SCHEDULER_API_TOKEN_FILE",), files={"empty": "\n"}
    ),
    "sentinels-bad-port": Bad(
        {"SCHEDULER_REDIS_SENTINELS": "s1:99999", "SCHEDULER_REDIS_SENTINEL_MASTER": "mymaster"},
        ("SCHEDULER_REDIS_SENTINELS",),
    ),
    "api-url-no-scheme": Bad({"SCHEDULER_API_URL": "app:8000"}, ("SCHEDULER_API_URL",)),
    "bad-namespace": Bad({"SCHEDULER_NAMESPACE": "has space"}, ("SCHEDULER_NAMESPACE",)),
    "bad-log-format": Bad({"SCHEDULER_LOG_FORMAT": "xml"}, ("SCHEDULER_LOG_FORMAT",)),
    "bad-log-level": Bad({"SCHEDULER_LOG_LEVEL": "verbose"}, ("SCHEDULER_LOG_LEVEL",)),
    "tls-verify-missing-bundle": Bad({"SCHEDULER_TLS_VERIFY": "{tmp}/no-ca.pem"}, ("SCHEDULER_TLS_VERIFY",)),
    "unknown-job-prefix": Bad(
        {"SCHEDULER_JOBS_PING_SCHEDULE": "@daily"},
        ("SCHEDULER_JOBS_PING_SCHEDULE",),
        also=("did you mean SCHEDULER_JOB_PING_SCHEDULE",),
    ),
    "unknown-file-suffix": Bad(
        {"SCHEDULER_API_TOKEN_FIEL": "/run/secrets/token"},
        ("SCHEDULER_API_TOKEN_FIEL",),
        also=("did you mean SCHEDULER_API_TOKEN_FILE",),
    ),
    "cron-step-zero": Bad({"SCHEDULER_JOB_PING_SCHEDULE": "*/0 * * * *"}, ("SCHEDULER_JOB_PING_SCHEDULE",)),
    "url-without-host": Bad({"SCHEDULER_JOB_PING_URL": "http:///nohost"}, ("SCHEDULER_JOB_PING_URL",)),
}


def _materialize(case: Bad, tmp_path: Path) -> dict[str, str | None]:
    for name, content in case.files.items():
        (tmp_path / name).write_text(content)
    env: dict[str, str | None] = dict(VALID_JOB)
    for key, value in case.env.items():
        env[key] = None if value is None else value.replace("{tmp}", str(tmp_path))
    return env


def _problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("config error:")]


@pytest.fixture(scope="module")
def bad_results(tmp_path_factory) -> dict[str, subprocess.CompletedProcess[str]]:
    """`check` run once per bad case; the processes run side by side to keep the table fast."""

    tmp = {case_id: tmp_path_factory.mktemp(case_id) for case_id in BAD}  # not thread-safe

    def run(case_id: str) -> subprocess.CompletedProcess[str]:
        return run_cli(["check"], _materialize(BAD[case_id], tmp[case_id]), cwd=tmp[case_id])

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(BAD, pool.map(run, BAD)))


@pytest.mark.parametrize("case_id", list(BAD))
def test_bad_configuration_is_rejected_by_check(case_id: str, bad_results) -> None:
    case, result = BAD[case_id], bad_results[case_id]
    output = result.stdout + result.stderr
    assert result.returncode == EX_CONFIG, output
    lines = _problem_lines(result.stderr)
    assert lines, result.stderr
    for name in case.names:
        assert any(name in line for line in lines), f"{name} not named in:\n{result.stderr}"
    for text in case.also:
        assert text in result.stderr, result.stderr
    for secret in case.secrets:
        assert secret not in output, f"secret {secret!r} leaked:\n{output}"
    assert "Traceback" not in output


@pytest.mark.parametrize("case_id", list(BAD_IN_PROCESS))
def test_bad_configuration_is_rejected_by_load(case_id: str, tmp_path: Path) -> None:
    case = BAD_IN_PROCESS[case_id]
    env = {k: v for k, v in _materialize(case, tmp_path).items() if v is not None}
    with pytest.raises(config.ConfigError) as err:
        config.load(env)
    problems = err.value.problems
    for name in case.names:
        assert any(p.startswith(name) for p in problems), (name, problems)
    for text in case.also:
        assert any(text in p for p in problems), problems
    for secret in case.secrets:
        assert all(secret not in p for p in problems), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    env = {
        **VALID_JOB,
        "SCHEDULER_TIMEZONE": "Nowhere/Land",
        "SCHEDULER_MAX_CONCURRENCY": "0",
        "SCHEDULER_HTTP_PORT": "70000",
        "SCHEDULER_LEASE_TTLL": "30s",
        "SCHEDULER_API_TOKEN": "tok-multi-6e0f",
        "SCHEDULER_SIGNING_SECRET": "not-a-whsec-value-19",
        "SCHEDULER_JOB_PING_METHOD": "FETCH",
        "SCHEDULER_JOB_PING_RETRIES": "-1",
        "SCHEDULER_JOB_OTHER_SCHEDULE": "61 * * * *",
        "SCHEDULER_JOB_OTHER_URL": "ftp://x/y",
    }
    expected = [
        "SCHEDULER_TIMEZONE",
        "SCHEDULER_MAX_CONCURRENCY",
        "SCHEDULER_HTTP_PORT",
        "SCHEDULER_LEASE_TTLL",
        "SCHEDULER_SIGNING_SECRET",
        "SCHEDULER_JOB_PING_METHOD",
        "SCHEDULER_JOB_PING_RETRIES",
        "SCHEDULER_JOB_OTHER_SCHEDULE",
        "SCHEDULER_JOB_OTHER_URL",
    ]
    result = run_cli(["check"], env, cwd=tmp_path)
    assert result.returncode == EX_CONFIG
    lines = _problem_lines(result.stderr)
    assert len(lines) == len(expected), result.stderr
    for name in expected:
        assert sum(line.startswith(f"config error: {name}:") for line in lines) == 1, (name, result.stderr)
    assert f"{len(expected)} configuration problem(s)" in result.stderr
    assert "tok-multi-6e0f" not in result.stdout + result.stderr
    assert "not-a-whsec-value-19" not in result.stdout + result.stderr
    assert result.stdout == ""


def test_run_with_a_bad_configuration_exits_78_before_starting(tmp_path: Path) -> None:
    env = {
        **VALID_JOB,
        "SCHEDULER_JOB_PING_METHOD": "FETCH",
        "SCHEDULER_STATE_FILE": str(tmp_path / "state.db"),
        "SCHEDULER_HTTP_PORT": "0",
    }
    result = run_cli(["run"], env, cwd=tmp_path, timeout=20)
    assert result.returncode == EX_CONFIG, result.stdout + result.stderr
    assert "SCHEDULER_JOB_PING_METHOD" in result.stderr
    assert not (tmp_path / "state.db").exists()


def test_missing_env_file_is_a_config_error(tmp_path: Path) -> None:
    result = run_cli(["check", "--env-file", str(tmp_path / "nope.env")], VALID_JOB, cwd=tmp_path)
    assert result.returncode == EX_CONFIG
    assert "--env-file" in result.stderr


@pytest.mark.parametrize("given", [True, False], ids=["--env-file", "./.env"])
def test_an_env_file_that_is_not_utf8_is_a_config_error_naming_the_file(tmp_path: Path, given: bool) -> None:
    env_file = tmp_path / ("latin1.env" if given else ".env")
    env_file.write_bytes(b"SCHEDULER_NAMESPACE=caf\xe9\n")
    args = ["check", "--env-file", str(env_file)] if given else ["check"]
    result = run_cli(args, VALID_JOB, cwd=tmp_path)
    assert result.returncode == EX_CONFIG, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert env_file.name in result.stderr
    assert "is not UTF-8 text (byte 0xe9 at offset 23)" in result.stderr


def test_check_accepts_a_valid_configuration(tmp_path: Path) -> None:
    result = run_cli(["check"], VALID_JOB, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ping" in result.stdout


def test_check_never_prints_a_secret_of_a_valid_configuration(tmp_path: Path) -> None:
    env = {
        **VALID_JOB,
        "SCHEDULER_API_TOKEN": "tok-valid-0d7e",
        "SCHEDULER_SIGNING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "SCHEDULER_REDIS_URL": "redis://app:redispw-64aa@redis:6379/0",
    }
    for args in (["check"], ["check", "--json"]):
        result = run_cli(args, env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        output = result.stdout + result.stderr
        for secret in ("tok-valid-0d7e", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "redispw-64aa"):
            assert secret not in output, output


# ---------------------------------------------------------------------------
# config.load and config.read_environment, in process
# ---------------------------------------------------------------------------


def load(**env: str) -> config.Settings:
    return config.load({**VALID_JOB, **env})


def job(settings: config.Settings, name: str) -> config.JobSpec:
    return next(j for j in settings.jobs if j.name == name)


def test_defaults() -> None:
    s = load()
    assert s.api_url == "http://localhost:8000"
    assert s.api_token is None and s.signing_secret is None and s.redis_url is None
    assert s.standalone
    assert s.namespace == "scheduler"
    assert s.state_file == "./scheduler-state.db"
    assert (s.lease_ttl_s, s.lease_renew_s) == (4.0, 1.0)
    assert s.timezone == "UTC"
    assert s.max_concurrency == 64
    assert s.shutdown_grace_s == 30.0
    assert (s.http_port, s.http_host) == (9464, "0.0.0.0")
    assert s.log_level == "INFO"
    assert s.tls_verify is True
    j = job(s, "ping")
    assert j.url == "http://localhost:8000/ping"
    assert (j.method, j.timeout_s, j.retries, j.body, j.headers) == ("POST", 30.0, 3, None, ())
    assert (j.timezone, j.jitter_s, j.catchup, j.catchup_window_s) == ("UTC", 0.0, "latest", None)
    assert (j.concurrency, j.enabled) == ("forbid", True)


def test_log_format_default_follows_the_terminal() -> None:
    assert config.load(VALID_JOB, stderr_is_tty=False).log_format == "json"
    assert config.load(VALID_JOB, stderr_is_tty=True).log_format == "text"
    assert config.load({**VALID_JOB, "SCHEDULER_LOG_FORMAT": "text"}).log_format == "text"


def test_precedence_defaults_then_dotenv_then_environment(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text(
        "SCHEDULER_LEASE_TTL=20s\n"
        "SCHEDULER_NAMESPACE=from-file\n"
        "SCHEDULER_JOB_PING_SCHEDULE='@hourly'\n"
        "SCHEDULER_JOB_PING_URL=/from-file\n"
        "UNRELATED=1\n"
    )
    environ = {"SCHEDULER_NAMESPACE": "from-env", "SCHEDULER_JOB_PING_URL": "/from-env", "PATH": "/bin"}
    merged = config.read_environment(str(env_file), environ)
    assert "PATH" not in merged and "UNRELATED" not in merged
    s = config.load(merged)
    assert s.lease_ttl_s == 20.0  # file beats default
    assert s.namespace == "from-env"  # environment beats file
    assert s.max_concurrency == 64  # default where neither sets it
    assert job(s, "ping").url == "http://localhost:8000/from-env"
    assert job(s, "ping").schedule_text == "@hourly"


def test_dotenv_never_overrides_an_empty_environment_value(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text("SCHEDULER_NAMESPACE=from-file\n")
    merged = config.read_environment(str(env_file), {**VALID_JOB, "SCHEDULER_NAMESPACE": ""})
    with pytest.raises(config.ConfigError) as err:
        config.load(merged)
    assert any("SCHEDULER_NAMESPACE" in p for p in err.value.problems)


def test_dot_env_in_the_working_directory_is_read_by_default(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / ".env").write_text("SCHEDULER_NAMESPACE=dot-env\n")
    monkeypatch.chdir(tmp_path)
    assert config.load(config.read_environment(None, VALID_JOB)).namespace == "dot-env"
    (tmp_path / ".env").unlink()
    assert config.load(config.read_environment(None, VALID_JOB)).namespace == "scheduler"


def test_missing_env_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError):
        config.read_environment(str(tmp_path / "missing.env"), {})


def test_secret_files_with_trailing_newline_stripped(tmp_path: Path) -> None:
    whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    (tmp_path / "token").write_text("tok-from-file\n")
    (tmp_path / "signing").write_text(whsec + "\r\n")
    (tmp_path / "redis").write_text("redis://:pw@redis:6379/0\n")
    s = load(
        SCHEDULER_API_TOKEN_FILE=str(tmp_path / "token"),
        SCHEDULER_SIGNING_SECRET_FILE=str(tmp_path / "signing"),
        SCHEDULER_REDIS_URL_FILE=str(tmp_path / "redis"),
    )
    assert s.api_token == "tok-from-file"
    assert s.signing_secret == whsec
    assert s.redis_url == "redis://:pw@redis:6379/0"
    assert not s.standalone


def test_both_secret_and_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("a\n")
    with pytest.raises(config.ConfigError) as err:
        load(SCHEDULER_API_TOKEN="b", SCHEDULER_API_TOKEN_FILE=str(tmp_path / "token"))
    assert len(err.value.problems) == 1
    assert "SCHEDULER_API_TOKEN_FILE" in err.value.problems[0]


def test_job_name_mapping() -> None:
    s = config.load(
        {
            "SCHEDULER_JOB_DATA_REFRESH_SCHEDULE": "@hourly",
            "SCHEDULER_JOB_DATA_REFRESH_URL": "/refresh",
            "SCHEDULER_JOB_NIGHTLY2_SCHEDULE": "@daily",
            "SCHEDULER_JOB_NIGHTLY2_URL": "/n",
        }
    )
    assert sorted(j.name for j in s.jobs) == ["data-refresh", "nightly2"]


def test_longest_field_suffix_wins() -> None:
    s = config.load(
        {
            "SCHEDULER_JOB_DATA_REFRESH_SCHEDULE": "@hourly",
            "SCHEDULER_JOB_DATA_REFRESH_URL": "/refresh",
            "SCHEDULER_JOB_DATA_REFRESH_CATCHUP": "all",
            "SCHEDULER_JOB_DATA_REFRESH_CATCHUP_WINDOW": "2h",
            # a job whose name ends like a field
            "SCHEDULER_JOB_SYNC_URL_SCHEDULE": "@daily",
            "SCHEDULER_JOB_SYNC_URL_URL": "/sync",
        }
    )
    assert sorted(j.name for j in s.jobs) == ["data-refresh", "sync-url"]
    j = job(s, "data-refresh")
    assert j.catchup == "all"
    assert j.catchup_window_s == 7200.0
    assert job(s, "sync-url").url == "http://localhost:8000/sync"


@pytest.mark.parametrize(
    "api_url, path, expected",
    [
        ("http://app:8000/api", "/tasks/x", "http://app:8000/api/tasks/x"),
        ("http://app:8000/api/", "/tasks/x", "http://app:8000/api/tasks/x"),
        ("http://app:8000/api", "tasks/x", "http://app:8000/api/tasks/x"),
        ("http://app:8000", "/tasks/x", "http://app:8000/tasks/x"),
        ("https://app.example/v1/api", "/tasks/x?full=1", "https://app.example/v1/api/tasks/x?full=1"),
        ("http://app:8000/api", "https://other.example/hook", "https://other.example/hook"),
    ],
)
def test_relative_url_joined_to_api_url(api_url: str, path: str, expected: str) -> None:
    s = load(SCHEDULER_API_URL=api_url, SCHEDULER_JOB_PING_URL=path)
    assert job(s, "ping").url == expected


@pytest.mark.parametrize(
    "text, seconds",
    [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("1h30m", 5400.0), ("2d", 172800.0)],
)
def test_durations(text: str, seconds: float) -> None:
    s = load(SCHEDULER_SHUTDOWN_GRACE=text, SCHEDULER_JOB_PING_TIMEOUT=text, SCHEDULER_JOB_PING_CATCHUP_WINDOW=text)
    assert s.shutdown_grace_s == seconds
    assert job(s, "ping").timeout_s == seconds
    assert job(s, "ping").catchup_window_s == seconds


def test_job_fields_parsed() -> None:
    s = load(
        SCHEDULER_JOB_PING_METHOD="get",
        SCHEDULER_JOB_PING_RETRIES="0",
        SCHEDULER_JOB_PING_BODY='{"a": 1}',
        SCHEDULER_JOB_PING_HEADERS='{"X-Team": "ops", "X-Env": "prod"}',
        SCHEDULER_JOB_PING_TIMEZONE="Europe/Berlin",
        SCHEDULER_JOB_PING_JITTER="30s",
        SCHEDULER_JOB_PING_CATCHUP="none",
        SCHEDULER_JOB_PING_CONCURRENCY="replace",
        SCHEDULER_JOB_PING_ENABLED="false",
    )
    j = job(s, "ping")
    assert j.method == "GET"
    assert j.retries == 0
    assert j.body == '{"a": 1}'
    assert dict(j.headers) == {"X-Team": "ops", "X-Env": "prod"}
    assert j.timezone == "Europe/Berlin"
    assert j.jitter_s == 30.0
    assert (j.catchup, j.concurrency, j.enabled) == ("none", "replace", False)


def test_job_zone_defaults_to_global_zone() -> None:
    s = load(SCHEDULER_TIMEZONE="America/New_York")
    assert s.timezone == "America/New_York"
    assert job(s, "ping").timezone == "America/New_York"


def test_sentinels_parsed() -> None:
    s = load(SCHEDULER_REDIS_SENTINELS="s1:26379, s2:26380", SCHEDULER_REDIS_SENTINEL_MASTER="mymaster")
    assert s.redis_sentinels == (("s1", 26379), ("s2", 26380))
    assert s.redis_sentinel_master == "mymaster"
    assert not s.standalone


def test_load_collects_every_problem() -> None:
    with pytest.raises(config.ConfigError) as err:
        # A typo of a known name is an error (an unknown name far from every known one is a
        # warning: see test_config_names.py).
        load(SCHEDULER_HTTP_PORT="70000", SCHEDULER_JOB_PING_METHOD="FETCH", SCHEDULER_HTTP_HSOT="1")
    assert len(err.value.problems) == 3
    assert str(err.value).count("\n") == 2


def test_settings_repr_never_shows_a_secret() -> None:
    s = load(
        SCHEDULER_API_TOKEN="tok-repr-3c1d",
        SCHEDULER_SIGNING_SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        SCHEDULER_REDIS_URL="redis://user:redispw-9a0b@redis:6379/0",
    )
    for text in (repr(s), str(s), f"{s!r}", repr(s.api_token), repr(s.redis_url)):
        assert "tok-repr-3c1d" not in text
        assert "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in text
        assert "redispw-9a0b" not in text
    # the values themselves are intact for the code that uses them
    assert s.api_token == "tok-repr-3c1d"
    assert "redispw-9a0b" in s.redis_url  # type: ignore[operator]


def test_settings_are_frozen() -> None:
    s = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.namespace = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.jobs[0].url = "http://elsewhere"  # type: ignore[misc]


def test_mask_url_hides_the_password() -> None:
    assert config.mask_url("redis://user:pw-1@redis:6379/0") == "redis://user:***@redis:6379/0"
    assert config.mask_url("redis://redis:6379/0") == "redis://redis:6379/0"


def test_each_setting_has_one_entry_and_settings_defaults_are_its_parsed_default() -> None:
    """One table: every Settings field read from the environment has exactly one entry, and
    a Settings built without arguments holds what each entry's default text parses to."""
    from scheduler.config import settings as table

    read_fields = [f.name for f in dataclasses.fields(config.Settings) if f.name not in ("jobs", "source_of", "rejected", "warnings", "ignored")]
    assert sorted(s.field for s in table.SETTINGS) == sorted(read_fields)
    assert len({s.env for s in table.SETTINGS}) == len(table.SETTINGS)
    assert list(config.GLOBAL_DEFAULTS) == [s.env for s in table.SETTINGS]
    assert set(config.SECRETS) == {s.env for s in table.SETTINGS if s.secret}
    built = config.Settings()
    for s in table.SETTINGS:
        expected = s.unset if s.default is None else s.parse(s.default)
        assert getattr(built, s.field) == expected, s.env
    # A setting left unset is, once loaded, what Settings holds by default (the log format
    # follows the terminal, so it is compared on one).
    loaded = config.load(VALID_JOB, stderr_is_tty=True)
    assert dataclasses.replace(loaded, jobs=(), warnings=()) == built


def test_each_job_default_exists_once_and_jobspec_defaults_are_the_parsed_job_fields() -> None:
    """One table for the jobs too: JOB_FIELDS holds each default as an operator writes it,
    JobSpec's defaults are those texts parsed (so a job that leaves every optional field out
    equals a JobSpec built without them), and JobSpec writes none of its own: a second copy
    would pass the comparison until the day the table changes."""
    import ast
    import inspect

    from scheduler.config import jobs as table

    assert sorted(table._OPTIONAL) == sorted(f for f in config.JOB_FIELDS if f not in ("SCHEDULE", "URL"))
    defaults = {f.name: f.default for f in dataclasses.fields(config.JobSpec) if f.default is not dataclasses.MISSING}
    assert defaults == table.JOB_DEFAULTS
    for fld, (attr, parse) in table._OPTIONAL.items():
        text = config.JOB_FIELDS[fld]
        if text is not None:
            assert defaults[attr] == parse(text), fld
    job = config.load(VALID_JOB).jobs[0]
    assert job == config.JobSpec(job.name, job.schedule_text, job.schedule, job.url)
    (cls,) = ast.parse(inspect.getsource(config.JobSpec)).body
    assert isinstance(cls, ast.ClassDef)
    written = {ast.unparse(n.target): ast.unparse(n.value) for n in cls.body if isinstance(n, ast.AnnAssign) and n.value}
    assert written == {attr: f"JOB_DEFAULTS[{attr!r}]" for attr in defaults}
