"""The command line as an operator meets it: ids, start-up lines, the HTTP port, check, demo."""

from __future__ import annotations

import ast
import json
import signal
import socket
import urllib.request
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, Daemon, RedisServer, free_port, run_cli

EX_USAGE, EX_CONFIG = 2, 78
JOB = {
    "SCHEDULER_JOB_PING_SCHEDULE": "0 3 * * *",
    "SCHEDULER_JOB_PING_URL": "http://127.0.0.1:9/ping",
}


def _lines(output: str) -> list[dict]:
    """The JSON log records in a daemon's output."""
    out = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def _record(daemon: Daemon, message: str) -> dict:
    daemon.wait_for_output(f'"{message}"', timeout=20)
    return next(r for r in _lines(daemon.output()) if r.get("event") == message)


# ---------------------------------------------------------------------------
# trigger --id
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_id", "said"),
    [
        ("a@b", "'@' is not allowed"),
        ("slot:1", "':' is not allowed"),
        ("caf\u00e9", "'\u00e9' is not allowed"),
        ("x" * 300, "at most 128 characters (got 300)"),
        ("", "must not be empty"),
    ],
    ids=["at-sign", "colon", "non-ascii", "300-chars", "empty"],
)
def test_trigger_refuses_an_id_outside_the_grammar_with_exit_2(tmp_path: Path, request_id: str, said: str) -> None:
    env = {**JOB, "SCHEDULER_STATE_FILE": str(tmp_path / "state.db")}
    result = run_cli(["trigger", "ping", "--id", request_id], env, cwd=tmp_path)
    assert result.returncode == EX_USAGE, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert said in result.stderr
    assert "1-128 characters of A-Z a-z 0-9 . _ -" in result.stderr
    assert not (tmp_path / "state.db").exists(), "a refused id must not touch the store"


def test_trigger_takes_an_id_of_the_grammar(tmp_path: Path) -> None:
    env = {**JOB, "SCHEDULER_STATE_FILE": str(tmp_path / "state.db")}
    request_id = "Deploy-2026.11_22-" + "x" * 110  # 128 characters, every kind allowed
    result = run_cli(["trigger", "ping", "--id", request_id], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"queued trigger {request_id} for ping" in result.stdout


# ---------------------------------------------------------------------------
# module layout
# ---------------------------------------------------------------------------


def _imports(module: str) -> set[str]:
    tree = ast.parse((REPO_ROOT / "scheduler" / "cli" / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {a.name for a in node.names}
    return found


def test_cli_and_demo_reach_the_daemon_without_importing_each_other() -> None:
    assert "daemon" in _imports("program") and "daemon" in _imports("demo")
    assert "program" not in _imports("demo")
    assert "program" not in _imports("daemon") and "demo" not in _imports("daemon")


# ---------------------------------------------------------------------------
# start-up lines and the HTTP port
# ---------------------------------------------------------------------------


def _daemon_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**JOB, "SCHEDULER_STATE_FILE": str(tmp_path / "state.db"), "SCHEDULER_LOG_FORMAT": "json",
            "SCHEDULER_HTTP_HOST": "127.0.0.1", "SCHEDULER_HTTP_PORT": "0", **extra}


def test_start_up_says_where_metrics_and_probes_listen(tmp_path: Path) -> None:
    port = free_port()
    with Daemon(_daemon_env(tmp_path, SCHEDULER_HTTP_PORT=str(port)), cwd=tmp_path) as daemon:
        record = _record(daemon, "metrics and probes listening")
        assert (record["host"], record["port"]) == ("127.0.0.1", port)
        # Logged once the server is up: the probe answers at the address it names.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200


def test_a_port_in_use_exits_78_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with Daemon(_daemon_env(tmp_path, SCHEDULER_HTTP_PORT=str(port)), cwd=tmp_path) as daemon:
            assert daemon.wait(timeout=30) == EX_CONFIG, daemon.output()
            output = daemon.output()
    assert "Traceback" not in output
    assert f"SCHEDULER_HTTP_PORT: cannot listen on 127.0.0.1:{port}" in output
    assert "already in use" in output and "or to 0" in output


def test_a_redis_url_without_a_password_is_logged_whole(tmp_path: Path, redis_server: RedisServer) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    with Daemon(_daemon_env(tmp_path, SCHEDULER_REDIS_URL=url), cwd=tmp_path) as daemon:
        assert _record(daemon, "starting")["store"] == url


def test_a_redis_url_with_a_password_is_logged_with_only_the_password_masked(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: the start-up line comes before the first connection
    url = f"redis://app:pw-5ee1c0de@127.0.0.1:{port}/0"
    with Daemon(_daemon_env(tmp_path, SCHEDULER_REDIS_URL=url), cwd=tmp_path) as daemon:
        assert _record(daemon, "starting")["store"] == f"redis://app:***@127.0.0.1:{port}/0"
        assert "pw-5ee1c0de" not in daemon.output()


# ---------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------

POLICY_JOB = {
    "SCHEDULER_JOB_SYNC_SCHEDULE": "every 15m",
    "SCHEDULER_JOB_SYNC_URL": "/sync",
    "SCHEDULER_JOB_SYNC_METHOD": "PUT",
    "SCHEDULER_JOB_SYNC_TIMEOUT": "1500ms",
    "SCHEDULER_JOB_SYNC_RETRIES": "1",
    "SCHEDULER_JOB_SYNC_CATCHUP": "all",
    "SCHEDULER_JOB_SYNC_CATCHUP_WINDOW": "1h30m",
    "SCHEDULER_JOB_SYNC_CONCURRENCY": "replace",
    "SCHEDULER_JOB_SYNC_JITTER": "250ms",
}


def test_check_shows_how_each_job_is_fired(tmp_path: Path) -> None:
    result = run_cli(["check"], {**JOB, **POLICY_JOB}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sync = result.stdout.split("\nsync  (from env)\n")[1]
    assert "call      PUT http://localhost:8000/sync" in sync
    assert "attempts  timeout 1.5s each, 1 retry" in sync
    assert "catch-up  all, window 1h30m" in sync
    assert "overlap   concurrency replace, jitter 250ms" in sync
    ping = result.stdout.split("\nping  (from env)\n")[1].split("\nsync  (from env)\n")[0]
    assert "attempts  timeout 30s each, 3 retries" in ping
    assert "catch-up  latest, window unlimited" in ping
    assert "overlap   concurrency forbid, jitter 0s" in ping


def test_check_json_keeps_its_keys_and_adds_the_firing_policy(tmp_path: Path) -> None:
    result = run_cli(["check", "--json", "--count", "1"], POLICY_JOB, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (job,) = json.loads(result.stdout)["jobs"]
    assert {"name", "schedule", "timezone", "url", "enabled", "next"} <= set(job)
    assert {k: job[k] for k in ("method", "timeout_s", "retries", "catchup", "catchup_window_s",
                                "concurrency", "jitter_s")} == {
        "method": "PUT", "timeout_s": 1.5, "retries": 1, "catchup": "all", "catchup_window_s": 5400.0,
        "concurrency": "replace", "jitter_s": 0.25,
    }


# ---------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("second_after", ["shutting down", "stopped"])
def test_demo_stops_cleanly_on_a_second_ctrl_c(tmp_path: Path, second_after: str) -> None:
    with Daemon(args=["demo"], cwd=tmp_path) as demo:
        demo.wait_for_output("app received", timeout=30)
        demo.send_signal(signal.SIGINT)
        demo.wait_for_output(second_after, timeout=30)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=30) == 0, demo.output()
        assert "Traceback" not in demo.output()
        assert "KeyboardInterrupt" not in demo.output()
