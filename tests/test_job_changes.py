"""SPEC 6, rule 2, against a running daemon on a real redis-server and on a real SQLite
file: jobs from SCHEDULER_JOBS_FILE added, changed, removed, added back and renamed while
it runs, each change applied without a restart."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from tests.e2e import env_for, slot_of, standalone_env
from tests.support import wait_until


def write(path, jobs: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"jobs": jobs}))
    os.replace(tmp, path)  # as a ConfigMap update lands: whole, at once


def slots(receiver, path: str) -> list[int]:
    return [slot_of(r) for r in receiver.requests if r.path == path]


@pytest.fixture(params=["redis", "sqlite"])
def daemon_env(request, tmp_path, receiver):
    jobs_file = tmp_path / "jobs.json"
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        env = env_for(server, receiver, "changes", {}, jobs_file=str(jobs_file))
    else:
        env = standalone_env(receiver, tmp_path / "state.db", {}, jobs_file=str(jobs_file))
    return env, jobs_file


def test_jobs_added_changed_removed_and_renamed_while_it_runs(daemon_env, receiver, daemon_factory):
    env, jobs_file = daemon_env
    release = threading.Event()
    receiver.set_handler(lambda r: (release.wait(20), 200)[1] if r.path == "/slow" else 200)
    tick = {"name": "tick", "schedule": "every 1s", "url": "/tick"}
    slow = {"name": "slow", "schedule": "every 1s", "url": "/slow", "catchup": "none"}
    write(jobs_file, [tick])
    daemon = daemon_factory(env)
    receiver.wait_for(lambda rs: len(slots(receiver, "/tick")) >= 2, timeout=20)

    # Added: fires from its next slot on; nothing from before it was first seen.
    added_at = time.time()
    once = {"name": "once", "schedule": f"at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(added_at - 2))}",
            "url": "/once"}
    write(jobs_file, [tick, slow, once])
    receiver.wait_for(lambda rs: slots(receiver, "/slow"), timeout=20)
    assert min(slots(receiver, "/slow")) >= int(added_at) - 1
    # An `at` job whose instant has just passed fires once.
    receiver.wait_for(lambda rs: slots(receiver, "/once"), timeout=20)

    # Removed: no new slot, the fire in flight finishes, the state stays.
    in_flight = slots(receiver, "/slow")
    write(jobs_file, [tick, once])
    daemon.wait_for_output('"removed": 1', timeout=20)
    release.set()
    wait_until(lambda: '"job": "slow"' in daemon.output() and '"event": "fired"' in daemon.output(), timeout=20)
    removed_mark = max(in_flight)
    seen = len(slots(receiver, "/tick"))
    receiver.wait_for(lambda rs: len(slots(receiver, "/tick")) >= seen + 2, timeout=20)
    assert slots(receiver, "/slow") == in_flight, "a removed job fired a new slot"

    # Changed: the watermark stays: no slot twice, nothing made up from before the change.
    changed_at = time.time()
    write(jobs_file, [{**tick, "schedule": "every 2s"}, once])
    receiver.wait_for(lambda rs: [s for s in slots(receiver, "/tick") if s > changed_at + 2], timeout=20)
    later = [s for s in slots(receiver, "/tick") if s > changed_at + 1]
    assert later and all(s % 2 == 0 for s in later), later

    # Added back: a slot claimed before is never fired again.
    release.clear()
    receiver.set_handler(None)
    write(jobs_file, [{**tick, "schedule": "every 2s"}, once, slow])
    receiver.wait_for(lambda rs: [s for s in slots(receiver, "/slow") if s > removed_mark], timeout=20)

    # Renamed: a removal and an addition.
    write(jobs_file, [{**tick, "name": "tock", "schedule": "every 2s"}, once, slow])
    daemon.wait_for_output('"added": 1, "changed": 0, "removed": 1', timeout=20)
    renamed_at = time.time()
    receiver.wait_for(lambda rs: [r for r in rs if r.header("x-scheduler-job") == "tock"], timeout=20)
    assert not [r for r in receiver.requests if r.header("x-scheduler-job") == "tick" and r.received_at > renamed_at + 1.5]

    keys = [r.header("idempotency-key") for r in receiver.requests if r.header("x-scheduler-attempt") == "1"]
    assert len(keys) == len(set(keys)), "a slot fired twice as attempt 1"
    assert len(slots(receiver, "/once")) == 1
    assert daemon.running and "Traceback" not in daemon.output()


def test_status_and_the_api_name_each_jobs_source_and_the_rejected_ones(tmp_path, receiver):
    from tests.support import run_cli

    jobs_file = tmp_path / "jobs.json"
    write(jobs_file, [{"name": "digest", "schedule": "0 7 * * 1-5", "url": "/digest"},
                      {"name": "broken", "schedule": "every never", "url": "/x"},
                      {"name": "typo", "schedule": "@daily", "url": "/t", "retires": 2}])
    env = standalone_env(receiver, tmp_path / "state.db", {"ping": {"SCHEDULE": "@hourly", "URL": "/ping"}},
                         jobs_file=str(jobs_file))
    report = json.loads(run_cli(["status", "--json"], env, cwd=tmp_path).stdout)
    assert {j["name"]: j["source"] for j in report["jobs"]} == {"ping": "env", "digest": "file"}
    rejected = {r["name"]: r for r in report["rejected"]}
    assert set(rejected) == {"broken", "typo"} and rejected["typo"]["source"] == "file"
    assert "retries" in rejected["typo"]["problem"]  # did you mean
    text = run_cli(["status"], env, cwd=tmp_path).stdout
    assert "digest  file" in text and "rejected broken (file):" in text
