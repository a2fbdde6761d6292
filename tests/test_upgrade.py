"""Upgrades and rollbacks between the previous release (built from git history) and this
code, against one real redis-server and one SQLite file; and a replica facing a state format
newer than it reads refuses to lead and says why."""

from __future__ import annotations

import re
import sqlite3
import urllib.request
import urllib.error

import pytest

from scheduler.store.sqlite import schema as sqlite_schema
from tests import upgrade_run
from tests.releases import PREVIOUS, release
from tests.support import Daemon, Receiver, RedisServer, free_port, wait_until


@pytest.fixture(scope="module")
def previous():
    return release(PREVIOUS)


def _check(report: upgrade_run.Report) -> None:
    print("\n" + "\n".join(report.lines()))
    assert not report.doubled_first_attempts, f"slots fired twice as attempt 1: {report.doubled_first_attempts}"
    assert not report.missing_slots, f"tick slots never fired: {report.missing_slots}"
    assert report.exits and set(report.exits.values()) == {0}, f"replica exits: {report.exits}; last said: {report.tails}"
    assert not report.tracebacks, f"tracebacks in replica logs: {report.tracebacks}"
    assert len(report.handovers) >= len(report.versions) - 1
    for h in report.handovers:
        assert h.slow_finished or h.slow_redelivered, f"slow fire {h.slow_key} in flight at a handover was lost"
    # Each handover waits for the slow fire (SLOW_FIRE_S) and then hands over; nothing waits longer.
    assert report.max_gap_s < upgrade_run.SLOW_FIRE_S + 3, f"tick job waited {report.max_gap_s:.2f}s"


def test_rolling_upgrade_then_rollback_on_redis_loses_and_doubles_nothing(previous):
    old = previous.version
    with RedisServer() as redis:
        report = upgrade_run.run("redis", [old, upgrade_run.CURRENT, old], {old: previous}, redis=redis)
        meta = redis.client().hgetall("{upgrade}:meta")
    _check(report)
    assert meta.get("format") == "2"  # written by the current code, kept (and read) by the old one


def test_upgrade_then_rollback_on_one_sqlite_file_loses_and_doubles_nothing(previous, tmp_path):
    old = previous.version
    state = tmp_path / "state.db"
    report = upgrade_run.run("sqlite", [old, upgrade_run.CURRENT, old], {old: previous}, state_file=state)
    _check(report)
    with sqlite3.connect(state) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == sqlite_schema.VERSION  # written by the current code, read by the old one


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _refuses(daemon: Daemon, port: int, receiver: Receiver) -> None:
    daemon.wait_for_output("not leading: the state store holds a newer state format", timeout=20)
    status, body = wait_until(lambda: (r := _get(port, "/readyz"))[0] == 503 and r, timeout=10,
                              message="/readyz 503")
    assert "newer state format" in body
    metrics = wait_until(lambda: (m := _get(port, "/metrics")[1]) and "cron_sidecar_state_format_refused 1.0" in m and m,
                         timeout=10, message="the refusal metric at 1")
    assert "cron_sidecar_state_format_refused 1.0" in metrics
    assert re.search(r"format (version )?99", daemon.output())  # what it found, in the log line
    assert receiver.requests == []
    assert daemon.running


def _env(receiver: Receiver, port: int, **extra: str) -> dict[str, str]:
    return {"SCHEDULER_API_URL": receiver.url, "SCHEDULER_HTTP_PORT": str(port), "SCHEDULER_HTTP_HOST": "127.0.0.1",
            "SCHEDULER_LOG_FORMAT": "json", "SCHEDULER_JOB_TICK_SCHEDULE": "every 1s",
            "SCHEDULER_JOB_TICK_URL": "/tick", **extra}


def test_a_replica_facing_a_newer_redis_format_refuses_to_lead_and_says_why(redis_server):
    client = redis_server.client()
    client.hset("{newer}:meta", mapping={"format": "99", "writer": "9.0.0"})
    port = free_port()
    with Receiver() as receiver, Daemon(_env(receiver, port, SCHEDULER_REDIS_URL=redis_server.url,
                                             SCHEDULER_NAMESPACE="newer", SCHEDULER_LEASE_TTL="3s",
                                             SCHEDULER_LEASE_RENEW="1s")) as daemon:
        _refuses(daemon, port, receiver)
        assert "reads format 2" in daemon.output()
        assert client.get("{newer}:leader") is None
        assert client.hgetall("{newer}:slots") == {}
        assert client.hgetall("{newer}:meta") == {"format": "99", "writer": "9.0.0"}  # left as found


def test_a_replica_facing_a_newer_sqlite_format_refuses_to_lead_and_says_why(tmp_path):
    state = tmp_path / "state.db"
    with sqlite3.connect(state) as db:
        db.execute("PRAGMA user_version = 99")
    port = free_port()
    with Receiver() as receiver, Daemon(_env(receiver, port, SCHEDULER_STATE_FILE=str(state))) as daemon:
        _refuses(daemon, port, receiver)
        assert f"up to {sqlite_schema.VERSION}" in daemon.output()
    with sqlite3.connect(state) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 99
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == set()  # nothing written
