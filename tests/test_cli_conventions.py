"""The conventions of a command line tool, held over real processes: the name it was started
by in its usage line, a closed stdout ends it quietly, a usage error is exit 2 with a
sentence, and under --json stdout holds JSON only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import child_env, run_cli

EX_USAGE = 2
JOB = {"SCHEDULER_JOB_PING_SCHEDULE": "every 1m", "SCHEDULER_JOB_PING_URL": "http://127.0.0.1:9/ping"}
CONSOLE_SCRIPT = Path(sys.executable).parent / "cron-sidecar"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**JOB, "SCHEDULER_STATE_FILE": str(tmp_path / "state.db"), **extra}


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="the console script is not installed")
def test_usage_names_the_console_script_when_started_by_it(tmp_path: Path) -> None:
    for argv, usage in ((["--help"], "usage: cron-sidecar [-h]"), (["check", "--help"], "usage: cron-sidecar check")):
        r = subprocess.run([str(CONSOLE_SCRIPT), *argv], env=child_env(), cwd=tmp_path,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(usage), r.stdout
        assert "python -m scheduler" not in r.stdout
    module = run_cli(["--help"], cwd=tmp_path)
    assert module.stdout.startswith("usage: python -m scheduler"), module.stdout


def test_a_closed_stdout_ends_check_quietly(tmp_path: Path) -> None:
    # Far more than a pipe holds (64 KiB), so the writer meets the closed end for sure.
    jobs = {f"SCHEDULER_JOB_J{i}_SCHEDULE": "every 1m" for i in range(30)}
    jobs |= {f"SCHEDULER_JOB_J{i}_URL": "http://127.0.0.1:9/j" for i in range(30)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scheduler", "check", "--count", "200"],
        env=child_env({**jobs, "SCHEDULER_API_TOKEN": "t"}), cwd=tmp_path,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # what `| head -1` reads, and then it exits
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    assert first.startswith(b"configuration OK: 30 job(s)")
    assert code in (0, 141), (code, stderr)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_head_on_check_in_a_shell_pipeline_prints_no_traceback(tmp_path: Path) -> None:
    env = child_env({**_env(tmp_path), "SCHEDULER_API_TOKEN": "t"})
    r = subprocess.run(f"{sys.executable} -m scheduler check --count 5000 | head -1", shell=True, env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.stdout.startswith("configuration OK: 1 job(s)")
    assert "Traceback" not in r.stderr and "BrokenPipeError" not in r.stderr, r.stderr


@pytest.mark.parametrize(("argv", "said"), [
    (["check", "--count", "0"], "argument --count: expected a whole number >= 1, got 0"),
    (["check", "--count", "many"], "argument --count: expected a whole number >= 1, got 'many'"),
    (["check", "--from", "yesterday"], "argument --from: expected an RFC 3339 instant"),
], ids=["count-0", "count-word", "from-yesterday"])
def test_a_bad_option_of_check_is_a_usage_error(tmp_path: Path, argv: list[str], said: str) -> None:
    r = run_cli(argv, _env(tmp_path), cwd=tmp_path)
    assert r.returncode == EX_USAGE, (r.returncode, r.stderr)
    assert said in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_check_from_takes_an_rfc3339_instant(tmp_path: Path) -> None:
    r = run_cli(["check", "--json", "--from", "2030-01-01T00:00:00Z", "--count", "2"], _env(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["jobs"][0]["next"] == ["2030-01-01T00:01:00Z", "2030-01-01T00:02:00Z"]


def _json_only(args: list[str], env: dict[str, str], cwd: Path) -> object:
    r = run_cli(args, env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # the whole of stdout is one JSON document


def test_pause_resume_trigger_and_gc_answer_json(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert _json_only(["pause", "ping", "--json"], env, tmp_path) == {"job": "ping", "paused": True, "changed": True}
    assert _json_only(["pause", "ping", "--json"], env, tmp_path) == {"job": "ping", "paused": True, "changed": False}
    assert _json_only(["resume", "ping", "--json"], env, tmp_path) == {"job": "ping", "paused": False, "changed": True}
    queued = _json_only(["trigger", "ping", "--id", "deploy-1", "--json"], env, tmp_path)
    assert queued == {"job": "ping", "id": "deploy-1", "result": "queued", "leader": False}
    again = _json_only(["trigger", "ping", "--id", "deploy-1", "--json"], env, tmp_path)
    assert again["result"] == "taken"  # an id fires at most once
    gc = _json_only(["state", "gc", "--dry-run", "--json"], env, tmp_path)
    assert gc == {"dry_run": True, "older_than_s": 86400.0, "deleted": []}


def test_state_quarantine_json_prints_json_lines_only(tmp_path: Path, redis_server) -> None:
    r = redis_server.client()
    r.hset("{q}:quarantine", "{q}:slots bad-job", "not-a-number")
    env = {**JOB, "SCHEDULER_REDIS_URL": redis_server.url, "SCHEDULER_NAMESPACE": "q"}
    done = run_cli(["state", "quarantine", "--json"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    items = [json.loads(line) for line in done.stdout.splitlines()]
    assert [item["record"] for item in items] == ["{q}:slots bad-job"]
    assert "state quarantine: 1 record(s) set aside" in done.stderr


def test_every_json_command_prints_only_json_on_stdout(tmp_path: Path) -> None:
    # No token: a warning, which goes to stderr and leaves stdout JSON.
    env = {**_env(tmp_path), "SCHEDULER_APP_FEATURE": "on"}
    for args in (["check", "--json"], ["status", "--json"], ["history", "ping", "--json"]):
        _json_only(args, env, tmp_path)

