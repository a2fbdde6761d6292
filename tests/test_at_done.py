"""One-time jobs and pauses over a job's life (SPEC 6 rule 2, SPEC 8 "Enabled, paused,
done"), against a running daemon, a real app on 127.0.0.1, and a real redis-server or SQLite
file: an `at` imported long after its instant expires instead of firing, a pause does not
outlive its job, and `done` reads the same in the CLI and the API."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from tests.e2e import env_for, standalone_env
from tests.support import free_port, run_cli, wait_until

CONTROL = "ctl-at-done-7c1e"
TWO_YEARS_S = 2 * 365 * 86400


def write(path, jobs: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"jobs": jobs}))
    os.replace(tmp, path)  # whole, at once, as a ConfigMap update lands


def at(instant: float) -> str:
    return "at " + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(instant))


def calls(receiver, path: str) -> int:
    return sum(1 for r in receiver.requests if r.path == path)


@pytest.fixture(params=["redis", "sqlite"])
def setup(request, tmp_path, receiver):
    """(env with a jobs file and the control API, the jobs file, the API's base URL)."""
    jobs_file, port = tmp_path / "jobs.json", free_port()
    extra = dict(jobs_file=str(jobs_file), http_port=str(port), http_host="127.0.0.1", control_token=CONTROL)
    if request.param == "redis":
        env = env_for(request.getfixturevalue("redis_server"), receiver, "atdone", {}, **extra)
    else:
        env = standalone_env(receiver, tmp_path / "state.db", {}, **extra)
    return env, jobs_file, f"http://127.0.0.1:{port}"


def api_jobs(base: str) -> dict[str, dict]:
    r = httpx.get(base + "/api/v1/jobs", headers={"Authorization": f"Bearer {CONTROL}"}, timeout=5)
    assert r.status_code == 200, r.text
    return {j["name"]: j for j in r.json()["jobs"]}


def api_ready(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def cli_jobs(env, cwd) -> dict[str, dict]:
    done = run_cli(["status", "--json"], env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return {j["name"]: j for j in json.loads(done.stdout)["jobs"]}


def test_an_at_imported_long_after_its_instant_expires_and_one_just_passed_fires_once(
        setup, receiver, daemon_factory, tmp_path):
    """The one just passed is in the file when the daemon starts; the old one is imported
    while it runs (today's way for an app to hand over triggers that already ran)."""
    env, jobs_file, base = setup
    tick = {"name": "tick", "schedule": "every 1s", "url": "/tick"}
    recent = {"name": "recent", "schedule": at(time.time() - 10), "url": "/recent"}
    write(jobs_file, [tick, recent])
    daemon = daemon_factory(env)
    receiver.wait_for(lambda rs: calls(receiver, "/recent") >= 1 and calls(receiver, "/tick") >= 1, timeout=20)
    wait_until(lambda: api_ready(base), 15, message="the HTTP port")
    write(jobs_file, [tick, recent, {"name": "old", "schedule": at(time.time() - TWO_YEARS_S), "url": "/old"}])
    old = wait_until(lambda: (j := api_jobs(base)["old"])["last"] and j, 15, message="the expiry recorded")
    assert old["state"] == "done" and old["next"] == [] and old["last"]["outcome"] == "expired", old
    assert "SCHEDULER_AT_GRACE" in old["last"]["error"]
    seen = calls(receiver, "/tick")
    receiver.wait_for(lambda rs: calls(receiver, "/tick") >= seen + 2, timeout=20)  # time for a wrong fire

    assert calls(receiver, "/old") == 0, "a trigger imported two years after its instant fired"
    assert calls(receiver, "/recent") == 1
    status = cli_jobs(env, tmp_path)
    assert status["old"]["state"] == "done" and status["old"]["last_outcome"] == "expired"
    history = json.loads(run_cli(["history", "old", "--json"], env, cwd=tmp_path).stdout)
    assert [h["outcome"] for h in history] == ["expired"] and history[0]["attempts"] == 0
    assert "expired: a one-time job first seen too late never fires" in daemon.output()
    assert "Traceback" not in daemon.output()


def test_a_paused_job_deleted_and_created_again_fires_and_is_active(setup, receiver, daemon_factory, tmp_path):
    env, jobs_file, base = setup
    tick = {"name": "tick", "schedule": "every 1s", "url": "/tick"}
    digest = {"name": "digest", "schedule": "every 1s", "url": "/digest"}
    write(jobs_file, [tick, digest])
    daemon = daemon_factory(env)
    receiver.wait_for(lambda rs: calls(receiver, "/digest") >= 1, timeout=20)
    assert run_cli(["pause", "digest"], env, cwd=tmp_path).returncode == 0
    daemon.wait_for_output("skipped: job is paused", timeout=20)

    # Rejected for a bad edit is not removed: fixed, it is still paused.
    write(jobs_file, [tick, {**digest, "retires": 2}])
    daemon.wait_for_output('"removed": 1', timeout=20)
    write(jobs_file, [tick, digest])
    wait_until(lambda: api_jobs(base).get("digest", {}).get("state") == "paused", 15, message="digest back, paused")

    write(jobs_file, [tick])  # the app deletes the trigger...
    wait_until(lambda: daemon.output().count('"removed": 1') == 2, 20, message="the removal applied")
    wait_until(lambda: "digest" not in api_jobs(base), 15, message="the removal seen by the API")
    fired = calls(receiver, "/digest")
    write(jobs_file, [tick, digest])  # ...and a user creates one of the same name
    wait_until(lambda: daemon.output().count('"added": 1') == 2, 20, message="the addition applied")
    receiver.wait_for(lambda rs: calls(receiver, "/digest") > fired, timeout=20)

    assert api_jobs(base)["digest"]["state"] == "active"
    assert cli_jobs(env, tmp_path)["digest"]["state"] == "active"
    assert "Traceback" not in daemon.output()


def test_a_fired_at_job_is_done_alike_in_the_api_the_cli_and_check(setup, receiver, daemon_factory, tmp_path):
    env, jobs_file, base = setup
    write(jobs_file, [{"name": "once", "schedule": at(time.time() + 2), "url": "/once"}])
    daemon = daemon_factory(env)
    wait_until(lambda: api_ready(base), 15, message="the HTTP port")
    receiver.wait_for(lambda rs: calls(receiver, "/once") == 1, timeout=20)
    job = wait_until(lambda: (j := api_jobs(base)["once"])["last"] and j, 15, message="the outcome recorded")

    assert job["state"] == "done" and job["next"] == [] and job["last"]["outcome"] == "ok"
    status = cli_jobs(env, tmp_path)["once"]
    assert status["state"] == "done"
    text = run_cli(["status"], env, cwd=tmp_path).stdout
    assert any(line.split()[:3] == ["once", "file", "done"] for line in text.splitlines()), text
    checked = json.loads(run_cli(["check", "--json"], env, cwd=tmp_path).stdout)
    assert {j["name"]: j["state"] for j in checked["jobs"]} == {"once": "done"}
    assert "Traceback" not in daemon.output()


def test_the_pause_of_a_removed_job_is_dropped_once_a_locked_store_answers_again(tmp_path):
    """The drop is retried while the store cannot be written (here another process holds the
    SQLite file's write lock), and goes through once it can."""
    import asyncio
    import sqlite3

    from scheduler.control.pauses import RemovedPauses
    from scheduler.store.sqlite.store import LocalStore

    async def main():
        store = LocalStore(str(tmp_path / "state.db"), busy_timeout_s=0.05)
        await store.set_paused("gone", True)
        await store.set_paused("kept", True)
        other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        slept = asyncio.Event()

        async def sleep(seconds: float) -> None:
            if not slept.is_set():
                other.execute("COMMIT")  # the other writer lets go while the first retry waits
                slept.set()
            await asyncio.sleep(0)

        pauses = RemovedPauses(store, sleep)
        pauses.removed(["gone"])
        await asyncio.wait_for(slept.wait(), 10)
        deadline = time.monotonic() + 10
        while (await store.status(["gone", "kept"]))["paused"] != {"kept"}:
            assert time.monotonic() < deadline, "the pause was never dropped"
            await asyncio.sleep(0.01)
        await pauses.aclose()
        other.close()
        await store.close()

    asyncio.run(main())
