"""Unreadable SQLite rows in standalone mode, against real daemon processes: the leader
counts them in the same metric as with Redis, and a dry run over the file writes nothing,
not even the move of an unreadable row aside (SPEC sections 3 rule 8, and 5)."""

from __future__ import annotations

import sqlite3

import httpx

from scheduler.store.sqlite.store import LocalStore
from tests.e2e import standalone_env
from tests.support import free_port, wait_until


def state_with_a_bad_row(path) -> None:
    import asyncio

    async def make():
        store = LocalStore(str(path))
        await store.status([])
        await store.close()

    asyncio.run(make())
    db = sqlite3.connect(path)
    db.execute("INSERT INTO slots VALUES ('bad', 'not a number')")
    db.commit()
    db.close()


def rows(path) -> tuple[list, list]:
    db = sqlite3.connect(path)
    try:
        return (db.execute("SELECT job, slot FROM slots WHERE job = 'bad'").fetchall(),
                db.execute("SELECT source, key FROM quarantine").fetchall())
    finally:
        db.close()


def malformed_metric(port: int) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("cron_sidecar_store_malformed_records_total "):
            return float(line.split()[1])
    return None


def test_a_standalone_leader_counts_an_unreadable_row_in_its_metric(tmp_path, receiver, daemon_factory):
    path = tmp_path / "state.db"
    state_with_a_bad_row(path)
    port = free_port()
    env = standalone_env(receiver, path, {"bad": {"SCHEDULE": "every 1s", "URL": "/bad"}},
                         http_port=str(port), http_host="127.0.0.1")
    daemon_factory(env)
    wait_until(lambda: (malformed_metric(port) or 0) >= 1, timeout=20, message="the malformed-records metric moves")
    assert rows(path)[1] == [("slots", "bad")]  # set aside by the leader


def test_a_dry_run_over_a_sqlite_file_leaves_an_unreadable_row_where_it_is(tmp_path, receiver, daemon_factory):
    path = tmp_path / "state.db"
    state_with_a_bad_row(path)
    env = standalone_env(receiver, path, {"bad": {"SCHEDULE": "every 1s", "URL": "/bad"}})
    daemon = daemon_factory(env, args=["run", "--dry-run"])
    daemon.wait_for_output("unreadable record set aside", timeout=20)
    daemon.wait_for_output("dry run: would send", timeout=20)
    daemon.terminate()
    daemon.wait()
    assert rows(path) == ([("bad", "not a number")], [])
