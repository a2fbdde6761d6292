"""The migration guide's examples (docs/migration.md), run as written: each migrated app under
examples/ on 127.0.0.1, a real daemon (standalone) firing at it, and the app's own log line
saying it took a signed, authenticated call of the job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, Daemon, free_port, wait_until

EXAMPLES = REPO_ROOT / "examples"
SECRET = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUE="  # the secret the guide's commands use


class App:
    def __init__(self, script: Path, tmp: Path, **env: str) -> None:
        self.port = free_port()
        self.log = tmp / f"{script.stem}.log"
        self.process = subprocess.Popen(
            [sys.executable, str(script)], cwd=tmp, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
            env={**os.environ, "APP_TOKEN": "tok", "APP_SIGNING_SECRET": SECRET, "APP_HOST": "127.0.0.1",
                 "APP_PORT": str(self.port), "PYTHONUNBUFFERED": "1", **env})
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: self.events("listening"), 15, message=f"{script.name} listening")

    def events(self, event: str) -> list[dict]:
        if self.process.poll() is not None:
            raise AssertionError(self.log.read_text())
        lines = [json.loads(x) for x in self.log.read_text().splitlines() if x.startswith("{")]
        return [x for x in lines if x.get("event") == event]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def app_factory(tmp_path):
    apps: list[App] = []

    def start(script: Path, **env: str) -> App:
        apps.append(App(script, tmp_path, **env))
        return apps[-1]

    yield start
    for app in apps:
        app.close()


def _signed_call_of(app: App, job: str, daemon: Daemon) -> dict:
    def done():
        if not daemon.running:
            raise AssertionError(daemon.output())
        return next((e for e in app.events("done") if e["job"] == job and e["verified"]), None)

    return wait_until(done, 30, message=f"a verified call of {job}")


def test_env_loop_migration_the_env_file_fires_the_loops_task(app_factory, tmp_path):
    app = app_factory(EXAMPLES / "migration" / "env_loop.py")
    # The guide's env file as written, but every second and at this test's port (the environment wins).
    env = {"SCHEDULER_API_URL": app.url, "SCHEDULER_JOB_DATA_REFRESH_SCHEDULE": "every 1s",
           "SCHEDULER_HTTP_PORT": "0", "SCHEDULER_STATE_FILE": str(tmp_path / "state.db"),
           "SCHEDULER_DATA_REFRESH_INTERVAL": "900"}  # the old loop's variable, still in the shared .env
    with Daemon(env, args=("run", "--env-file", str(EXAMPLES / "migration" / "env_loop.env")), cwd=tmp_path) as daemon:
        _signed_call_of(app, "data-refresh", daemon)
        assert "SCHEDULER_JOB_DATA_REFRESH_SCHEDULE='every 900s'" in daemon.output()  # the hint for the old name


def test_db_rows_migration_the_table_is_the_jobs_document(app_factory, tmp_path):
    app = app_factory(EXAMPLES / "migration" / "db_rows.py", CACHE_WARM_SCHEDULE="every 1s",
                      APP_DB=str(tmp_path / "tasks.db"))
    env = {"SCHEDULER_API_URL": app.url, "SCHEDULER_API_TOKEN": "tok", "SCHEDULER_SIGNING_SECRET": SECRET,
           "SCHEDULER_JOBS_URL": "/internal/cron-jobs", "SCHEDULER_HTTP_PORT": "0",
           "SCHEDULER_STATE_FILE": str(tmp_path / "state.db")}
    with Daemon(env, cwd=tmp_path) as daemon:
        _signed_call_of(app, "cache-warm", daemon)
    result = subprocess.run([sys.executable, "-m", "scheduler", "check", "--json"], cwd=tmp_path, capture_output=True,
                            text=True, env={**os.environ, **env}, timeout=30)
    names = {j["name"] for j in json.loads(result.stdout)["jobs"]}
    assert names == {"cache-warm", "nightly-report"}, result.stderr


def test_user_triggers_migration_a_users_trigger_fires_signed(app_factory, tmp_path):
    control, port = "ctl", free_port()
    app = app_factory(EXAMPLES / "app.py", APP_DB=str(tmp_path / "triggers.db"),
                      SIDECAR_URL=f"http://127.0.0.1:{port}", SIDECAR_CONTROL_TOKEN=control)
    env = {"SCHEDULER_API_URL": app.url, "SCHEDULER_API_TOKEN": "tok", "SCHEDULER_SIGNING_SECRET": SECRET,
           "SCHEDULER_CONTROL_TOKEN": control, "SCHEDULER_JOBS_URL": "/internal/cron-jobs", "SCHEDULER_JOBS_REFRESH": "1h",
           "SCHEDULER_HTTP_PORT": str(port), "SCHEDULER_HTTP_HOST": "127.0.0.1",
           "SCHEDULER_STATE_FILE": str(tmp_path / "state.db")}
    with Daemon(env, cwd=tmp_path) as daemon:
        wait_until(lambda: b"listening" in Path(daemon.log_path).read_bytes(), 15, message="the sidecar's port")
        request = urllib.request.Request(app.url + "/triggers", method="POST",
                                         data=json.dumps({"name": "user-7-digest", "schedule": "every 1s"}).encode(),
                                         headers={"Authorization": "Bearer tok", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read())["reason"] == "in force now"
        _signed_call_of(app, "user-7-digest", daemon)
