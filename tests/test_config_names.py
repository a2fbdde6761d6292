"""SCHEDULER_* names the scheduler does not read (SPEC section 2): the app shares the env file
and the prefix, so such a name is a warning, said once at start and by `check`; a typo of a
known name is an error whose suggestion is itself valid; the names of the schedulers this
replaces get a hint how to write the job here. Each runs the real CLI or a real daemon."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scheduler.config import loader as config
from tests.support import Daemon, Receiver, run_cli

EX_CONFIG = 78
APP_SECRET = "app-secret-value-5d1e"


def _shared_env_file(tmp_path: Path, api_url: str) -> Path:
    """The .env of an app that reads SCHEDULER_* names of its own, with the sidecar's beside them."""
    path = tmp_path / ".env"
    path.write_text(
        "# the app\n"
        "DATABASE_URL=postgres://app@db/app\n"
        "SCHEDULER_ENABLED=True\n"
        "SCHEDULER_VERIFICATION_DETECTOR_INTERVAL=300\n"
        "SCHEDULER_VERIFICATION_DETECTOR_BATCH_SIZE=50\n"
        f"SCHEDULER_APP_SECRET_KEY={APP_SECRET}\n"
        "# left from the scheduler this replaces\n"
        "SCHEDULER_DATA_REFRESH_INTERVAL=900\n"
        "SCHEDULER_TICK_SECONDS=30\n"
        "# the sidecar\n"
        f"SCHEDULER_API_URL={api_url}\n"
        "SCHEDULER_JOB_HEARTBEAT_SCHEDULE=every 1s\n"
        "SCHEDULER_JOB_HEARTBEAT_URL=/tasks/heartbeat\n"
        "SCHEDULER_JOB_REPORT_SCHEDULE=every 1m\n"
        "SCHEDULER_JOB_REPORT_URL=/tasks/report\n"
        "SCHEDULER_JOB_REPORT_TIMEOUT=600s\n"
        f"SCHEDULER_STATE_FILE={tmp_path / 'state.db'}\n"
        "SCHEDULER_HTTP_PORT=0\n"
        "SCHEDULER_LOG_FORMAT=json\n"
    )
    return path


APP_NAMES = ("SCHEDULER_ENABLED", "SCHEDULER_VERIFICATION_DETECTOR_INTERVAL",
             "SCHEDULER_VERIFICATION_DETECTOR_BATCH_SIZE", "SCHEDULER_APP_SECRET_KEY",
             "SCHEDULER_DATA_REFRESH_INTERVAL", "SCHEDULER_TICK_SECONDS")
DATA_REFRESH_HINT = ("to run a job every 900 s here: SCHEDULER_JOB_DATA_REFRESH_SCHEDULE='every 900s' "
                     "and SCHEDULER_JOB_DATA_REFRESH_URL=...")


def test_a_daemon_on_the_apps_shared_env_file_starts_fires_and_warns_once(tmp_path: Path) -> None:
    with Receiver() as receiver:
        _shared_env_file(tmp_path, receiver.url)
        with Daemon(cwd=tmp_path) as daemon:
            receiver.wait_for(lambda rs: any(r.path == "/tasks/heartbeat" for r in rs), timeout=20,
                              message="a heartbeat fire")
            output = daemon.output()
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    warned = [r for r in records if r.get("level") in ("warning", "WARNING")]
    for name in APP_NAMES:
        assert sum(r.get("event", "").startswith(name + ": ") for r in warned) == 1, (name, output)
    assert any(DATA_REFRESH_HINT in r["event"] for r in warned), output
    assert any(r["event"].startswith("SCHEDULER_JOB_REPORT_TIMEOUT: 600s is longer") for r in warned), output
    assert any(r["event"].startswith("SCHEDULER_API_TOKEN and SCHEDULER_SIGNING_SECRET: neither is set")
               for r in warned), output
    assert APP_SECRET not in output


def test_check_on_the_shared_env_file_exits_0_with_warnings_and_78_with_strict(tmp_path: Path) -> None:
    env_file = _shared_env_file(tmp_path, "http://127.0.0.1:9")
    ok = run_cli(["check", "--env-file", env_file], cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK: 2 job(s)" in ok.stdout
    warnings = [line for line in ok.stderr.splitlines() if line.startswith("warning: ")]
    for name in APP_NAMES:
        assert sum(line.startswith(f"warning: {name}: ") for line in warnings) == 1, ok.stderr
    assert any(DATA_REFRESH_HINT in line for line in warnings)
    assert any("SCHEDULER_TICK_SECONDS: " in line and "SCHEDULER_JOB_<NAME>_SCHEDULE=" in line for line in warnings)
    assert "did you mean" not in ok.stderr
    assert APP_SECRET not in ok.stdout + ok.stderr

    strict = run_cli(["check", "--strict", "--env-file", env_file], cwd=tmp_path)
    assert strict.returncode == EX_CONFIG, strict.stderr
    for name in APP_NAMES:
        assert f"config error: {name}: " in strict.stderr
    # The other warnings stay warnings under --strict.
    assert "warning: SCHEDULER_JOB_REPORT_TIMEOUT: 600s is longer than the job's period of 60s" in strict.stderr
    assert APP_SECRET not in strict.stdout + strict.stderr

    as_json = run_cli(["check", "--json", "--env-file", env_file], cwd=tmp_path)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["jobs"], as_json.stderr
    assert "warning: SCHEDULER_ENABLED: " in as_json.stderr


JOB = {"SCHEDULER_JOB_PING_SCHEDULE": "every 1m", "SCHEDULER_JOB_PING_URL": "http://127.0.0.1:9/ping"}


def test_a_former_schedulers_interval_gets_how_to_write_the_job_here(tmp_path: Path) -> None:
    # Was: exit 78, "did you mean SCHEDULER_JOB_DATA_REFRESH_JITTER" (a job without SCHEDULE and URL).
    r = run_cli(["check"], {**JOB, "SCHEDULER_DATA_REFRESH_INTERVAL": "900"}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "warning: SCHEDULER_DATA_REFRESH_INTERVAL: " in r.stderr and DATA_REFRESH_HINT in r.stderr
    assert "JITTER" not in r.stderr and "did you mean" not in r.stderr


def test_a_job_name_in_lower_case_suggests_its_upper_case_form_never_itself(tmp_path: Path) -> None:
    env = {"SCHEDULER_JOB_hello_SCHEDULE": "every 1m", "SCHEDULER_JOB_hello_URL": "http://127.0.0.1:9/hello"}
    r = run_cli(["check"], env, cwd=tmp_path)
    assert r.returncode == EX_CONFIG, r.stderr
    assert "SCHEDULER_JOB_hello_SCHEDULE: unknown job variable" in r.stderr
    assert "did you mean SCHEDULER_JOB_HELLO_SCHEDULE?" in r.stderr
    assert "did you mean SCHEDULER_JOB_HELLO_URL?" in r.stderr
    assert "did you mean SCHEDULER_JOB_hello" not in r.stderr
    fixed = run_cli(["check"], {k.replace("hello", "HELLO"): v for k, v in env.items()}, cwd=tmp_path)
    assert fixed.returncode == 0 and "\nhello  (from env)" in fixed.stdout, fixed.stderr


TYPOS = {
    "SCHEDULER_LEASE_TTLL": ("30s", "SCHEDULER_LEASE_TTL"),
    "SCHEDULER_api_url": ("http://127.0.0.1:8000", "SCHEDULER_API_URL"),
    "SCHEDULER_Namespace": ("ns", "SCHEDULER_NAMESPACE"),
    "SCHEDULER_API_TOKEN_FIEL": ("{tmp}/token", "SCHEDULER_API_TOKEN_FILE"),
    "SCHEDULER_JOBS_PING_TIMEOUT": ("10s", "SCHEDULER_JOB_PING_TIMEOUT"),
    "SCHEDULER_JOBS_NEW_URL": ("/new", "SCHEDULER_JOB_NEW_URL"),
    "SCHEDULER_JOB_PING_METOHD": ("GET", "SCHEDULER_JOB_PING_METHOD"),
    "SCHEDULER_JOB_ping_RETRIES": ("2", "SCHEDULER_JOB_PING_RETRIES"),
}


@pytest.mark.parametrize("name", list(TYPOS))
def test_a_typo_is_an_error_whose_suggestion_loads(tmp_path: Path, name: str) -> None:
    (tmp_path / "token").write_text("tok\n")
    value, meant = TYPOS[name]
    value = value.replace("{tmp}", str(tmp_path))
    with pytest.raises(config.ConfigError) as err:
        config.load({**JOB, name: value})
    line = next(p for p in err.value.problems if p.startswith(name + ": "))
    assert line.endswith(f"did you mean {meant}?"), line
    env = {**JOB, meant: value}
    if meant == "SCHEDULER_JOB_NEW_URL":  # a job is started by its URL or SCHEDULE; the other is its own line
        env["SCHEDULER_JOB_NEW_SCHEDULE"] = "@daily"
    config.load(env)  # the suggestion, taken, is a configuration that loads


@pytest.mark.parametrize("name", ["SCHEDULER_JOBS_OTHER_JITTER", "SCHEDULER_ENABLED", "SCHEDULER_FEATURE_X"])
def test_a_name_far_from_every_valid_one_is_a_warning_not_a_guess(name: str) -> None:
    settings = config.load({**JOB, name: "1"})
    assert settings.ignored == (name,)
    assert [w for w in settings.warnings if w.startswith(name + ": ")], settings.warnings
    assert not any("did you mean" in w for w in settings.warnings)


def test_timeout_longer_than_the_period_is_a_warning_only_when_written() -> None:
    long = config.load({**JOB, "SCHEDULER_JOB_PING_TIMEOUT": "10m", "SCHEDULER_API_TOKEN": "t"})
    assert [w for w in long.warnings if re.match(r"SCHEDULER_JOB_PING_TIMEOUT: 600s is longer than the job's "
                                                  r"period of 60s \(every 1m\)", w)], long.warnings
    cron = config.load({"SCHEDULER_JOB_C_SCHEDULE": "*/5 * * * * *", "SCHEDULER_JOB_C_URL": "http://x/c",
                        "SCHEDULER_JOB_C_TIMEOUT": "6s", "SCHEDULER_API_TOKEN": "t"})
    assert [w for w in cron.warnings if w.startswith("SCHEDULER_JOB_C_TIMEOUT: 6s is longer")], cron.warnings
    # The default 30s on a 10 s interval is not the operator's doing: no warning.
    quick = config.load({"SCHEDULER_JOB_Q_SCHEDULE": "every 10s", "SCHEDULER_JOB_Q_URL": "http://x/q",
                         "SCHEDULER_API_TOKEN": "t"})
    assert quick.warnings == ()


def test_an_interval_written_as_a_job_field_is_an_error_with_how_to_write_it() -> None:
    with pytest.raises(config.ConfigError) as err:
        config.load({**JOB, "SCHEDULER_JOB_PING_INTERVAL": "300"})
    (line,) = [p for p in err.value.problems if p.startswith("SCHEDULER_JOB_PING_INTERVAL: ")]
    assert line.endswith("to run a job every 300 s here: SCHEDULER_JOB_PING_SCHEDULE='every 300s' "
                         "and SCHEDULER_JOB_PING_URL=..."), line
    assert "did you mean" not in line
