"""`state gc` and `state quarantine` against a real redis-server and a real SQLite file:
each deletes only what it documents, says what, and a dry run deletes nothing."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from tests.support import run_cli

OLD = int(time.time()) - 3 * 86400


def _env(**store: str) -> dict[str, str]:
    return {"SCHEDULER_API_URL": "http://127.0.0.1:9", "SCHEDULER_JOB_KEEP_SCHEDULE": "every 1m",
            "SCHEDULER_JOB_KEEP_URL": "/keep", "SCHEDULER_LOG_FORMAT": "json", **store}


def _ok(args, env):
    done = run_cli(args, env)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def redis_state(redis_server):
    r = redis_server.client()
    r.hset("{gc}:slots", mapping={"keep": OLD, "gone": OLD, "busy": OLD, "queued": OLD, "recent": int(time.time()),
                                  "paused-gone": OLD})
    for job in ("keep", "gone"):
        r.hset("{gc}:job:" + job, mapping={"status": "success", "finished_at": OLD})
        r.rpush("{gc}:history:" + job, json.dumps({"finished_at": OLD, "status": "success"}))
    r.hset("{gc}:inflight", "busy@%d" % OLD, json.dumps({"slot": OLD, "epoch": 1, "attempt": 1}))
    r.rpush("{gc}:trigger", json.dumps({"id": "t1", "job": "queued", "requested_at": OLD}))
    r.sadd("{gc}:paused", "paused-gone")
    return r, _env(SCHEDULER_REDIS_URL=redis_server.url, SCHEDULER_NAMESPACE="gc")


def test_redis_gc_dry_run_lists_and_deletes_nothing(redis_state):
    r, env = redis_state
    before = {k: r.type(k) for k in r.keys("*")}, r.hgetall("{gc}:slots")
    out = _ok(["state", "gc", "--dry-run"], env)
    assert "would delete watermark gone" in out and "would delete history gone" in out
    assert "would delete watermark paused-gone" in out
    for kept in ("keep", "busy", "queued", "recent"):
        assert f" {kept}\n" not in out
    assert ({k: r.type(k) for k in r.keys("*")}, r.hgetall("{gc}:slots")) == before


def test_redis_gc_deletes_only_removed_idle_jobs_and_never_a_pause_or_a_fire_in_flight(redis_state):
    r, env = redis_state
    out = _ok(["state", "gc"], env)
    assert "deleted job record gone" in out
    assert set(r.hgetall("{gc}:slots")) == {"keep", "busy", "queued", "recent"}
    assert not r.exists("{gc}:job:gone", "{gc}:history:gone")
    assert r.exists("{gc}:job:keep") and r.exists("{gc}:history:keep")
    assert r.hlen("{gc}:inflight") == 1 and r.llen("{gc}:trigger") == 1
    assert r.smembers("{gc}:paused") == {"paused-gone"}
    assert "deleted 0 item(s)" in _ok(["state", "gc"], env)  # nothing left to delete


def test_redis_gc_respects_the_window(redis_state):
    r, env = redis_state
    out = _ok(["state", "gc", "--older-than", "30d"], env)
    assert "deleted 0 item(s)" in out
    assert len(r.hgetall("{gc}:slots")) == 6


def test_redis_quarantine_lists_and_purges_what_was_set_aside(redis_server):
    r = redis_server.client()
    r.hset("{gc}:quarantine", "{gc}:slots bad-job", "not-a-number")
    r.set("{gc}:epoch:quarantined:1700000000000", "x")
    r.set("{other}:epoch:quarantined:1700000000000", "x")  # another namespace: never touched
    env = _env(SCHEDULER_REDIS_URL=redis_server.url, SCHEDULER_NAMESPACE="gc")
    listed = _ok(["state", "quarantine"], env)
    assert "{gc}:slots bad-job" in listed and "{gc}:epoch:quarantined:1700000000000" in listed
    assert "{other}" not in listed
    assert "would delete 2" in _ok(["state", "quarantine", "--purge", "--dry-run"], env)
    assert r.hlen("{gc}:quarantine") == 1 and r.exists("{gc}:epoch:quarantined:1700000000000")
    assert "deleted 2" in _ok(["state", "quarantine", "--purge"], env)
    assert r.hlen("{gc}:quarantine") == 0 and not r.exists("{gc}:epoch:quarantined:1700000000000")
    assert r.exists("{other}:epoch:quarantined:1700000000000")


def test_a_namespace_change_deletes_nothing_of_the_old_namespace(redis_state):
    r, env = redis_state
    before = sorted(r.keys("{gc}:*"))
    _ok(["state", "gc"], {**env, "SCHEDULER_NAMESPACE": "renamed"})
    _ok(["state", "quarantine", "--purge"], {**env, "SCHEDULER_NAMESPACE": "renamed"})
    assert sorted(r.keys("{gc}:*")) == before


@pytest.fixture
def sqlite_state(tmp_path):
    path = tmp_path / "state.db"
    env = _env(SCHEDULER_STATE_FILE=str(path))
    _ok(["status"], env)  # creates the file at the current format
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO slots VALUES (?, ?)",
                       [("keep", OLD), ("gone", OLD), ("busy", OLD), ("recent", int(time.time()))])
        db.executemany("INSERT INTO jobs VALUES (?, ?)",
                       [(j, json.dumps({"status": "success", "finished_at": OLD})) for j in ("keep", "gone")])
        db.execute("INSERT INTO inflight VALUES (?, ?, ?, ?, ?, ?, ?)", (f"busy@{OLD}", "busy", OLD, 1, 1, None, OLD))
        db.execute("INSERT INTO paused VALUES ('gone')")
        db.execute("INSERT INTO triggered VALUES ('t-old', ?)", (OLD,))
        db.execute("INSERT INTO triggered_job VALUES ('t-old', 'gone')")
        db.execute("INSERT INTO quarantine (source, key, raw, reason, at) VALUES ('slots', 'x', '1', 'bad', 1)")
    return path, env


def _rows(path, table):
    with sqlite3.connect(path) as db:
        return sorted(db.execute(f"SELECT * FROM {table}").fetchall())


def test_sqlite_gc_dry_run_then_gc_delete_only_removed_idle_jobs(sqlite_state):
    path, env = sqlite_state
    tables = ("slots", "jobs", "inflight", "paused", "triggered", "triggered_job")
    before = {t: _rows(path, t) for t in tables}
    out = _ok(["state", "gc", "--dry-run"], env)
    assert "would delete watermark gone" in out and "would delete triggered id t-old (gone)" in out
    assert {t: _rows(path, t) for t in tables} == before
    out = _ok(["state", "gc"], env)
    assert "deleted job record gone" in out
    assert {r[0] for r in _rows(path, "slots")} == {"keep", "busy", "recent"}
    assert [r[0] for r in _rows(path, "jobs")] == ["keep"]
    assert _rows(path, "inflight") == before["inflight"] and _rows(path, "paused") == [("gone",)]
    assert _rows(path, "triggered") == [] and _rows(path, "triggered_job") == []


def test_sqlite_quarantine_lists_and_purges(sqlite_state):
    path, env = sqlite_state
    assert "slots x  (bad)" in _ok(["state", "quarantine"], env)
    assert "would delete 1" in _ok(["state", "quarantine", "--purge", "--dry-run"], env)
    assert len(_rows(path, "quarantine")) == 1
    assert "deleted 1" in _ok(["state", "quarantine", "--purge"], env)
    assert _rows(path, "quarantine") == []


def test_state_gc_refuses_a_newer_format_and_deletes_nothing(redis_state):
    r, env = redis_state
    r.hset("{gc}:meta", "format", "99")
    done = run_cli(["state", "gc"], env)
    assert done.returncode == 1 and "format 99" in done.stderr
    assert len(r.hgetall("{gc}:slots")) == 6


def test_state_gc_rejects_a_bad_window():
    done = run_cli(["state", "gc", "--older-than", "soon"], _env())
    assert done.returncode == 2 and "--older-than" in done.stderr
