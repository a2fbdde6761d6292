"""The audit log's part of the store contract, both stores (a real redis-server and a real
SQLite file): ids that grow, newest first, pages below an id, the newest kept when the log
is capped, entries from another process seen, and a stray record skipped."""

from __future__ import annotations

import sqlite3

import pytest

from scheduler.store.redis.store import RedisStore
from scheduler.store.sqlite.store import LocalStore
from tests.test_store_contract import Backend, run


@pytest.fixture(params=["redis", "local"])
def backend(request, tmp_path):
    b = Backend(request.param, tmp_path)
    yield b
    b.stop()


def entry(n: int) -> dict:
    return {"who": f"ops-{n}", "method": "POST", "what": f"/api/v1/jobs/j{n}/pause", "job": f"j{n}",
            "status": 200, "reason": f"step {n}: ünïcode kept"}


def test_entries_come_back_newest_first_with_growing_ids(backend):
    async def body():
        a = backend.store("a")
        assert await a.audit(10) == []
        ids = [await a.audit_append(entry(n)) for n in range(5)]
        assert ids == sorted(ids) and len(set(ids)) == 5
        got = await a.audit(10)
        assert [e["id"] for e in got] == ids[::-1]
        assert got[0] == {**entry(4), "id": ids[4]}
        assert [e["who"] for e in await a.audit(2)] == ["ops-4", "ops-3"]

    run(backend, body)


def test_pages_below_an_id_meet_without_a_gap_or_an_overlap(backend):
    async def body():
        a = backend.store("a")
        ids = [await a.audit_append(entry(n)) for n in range(7)]
        first = await a.audit(3)
        second = await a.audit(3, before=first[-1]["id"])
        third = await a.audit(3, before=second[-1]["id"])
        seen = [e["id"] for e in first + second + third]
        assert seen == ids[::-1]
        assert await a.audit(3, before=ids[0]) == []

    run(backend, body)


def test_an_entry_written_by_another_replica_or_the_cli_is_read_by_every_one(backend):
    async def body():
        a, b = backend.store("a"), backend.store("b")
        await a.audit_append(entry(1))
        await b.audit_append(entry(2))
        assert [e["who"] for e in await a.audit(5)] == ["ops-2", "ops-1"]
        assert [e["who"] for e in await b.audit(5)] == ["ops-2", "ops-1"]

    run(backend, body)


def test_a_full_log_keeps_the_newest_entries(backend):
    async def body():
        if backend.server is not None:
            a = RedisStore(backend.server.url, "contract", 5.0, replica_id="a", audit_keep=5)
        else:
            a = LocalStore(str(backend.tmp_path / "state.db"), replica_id="a", audit_keep=5)
        backend.stores.append(a)
        for n in range(12):
            await a.audit_append(entry(n))
        got = await a.audit(100)
        assert [e["who"] for e in got] == [f"ops-{n}" for n in range(11, 6, -1)]
        assert [e["who"] for e in await a.audit(2, before=got[1]["id"])] == ["ops-9", "ops-8"]

    run(backend, body)


def test_a_record_that_is_not_an_entry_is_skipped(backend):
    async def body():
        a = backend.store("a")
        first = await a.audit_append(entry(1))
        if backend.server is not None:
            backend.server.client().lpush("{contract}:audit", f"{first + 1} not json")
            backend.server.client().incr("{contract}:audit_seq")
        else:
            db = sqlite3.connect(backend.tmp_path / "state.db")
            db.execute("INSERT INTO audit (entry) VALUES ('[1, 2]')")
            db.commit()
            db.close()
        last = await a.audit_append(entry(3))
        assert [(e["id"], e["who"]) for e in await a.audit(10)] == [(last, "ops-3"), (first, "ops-1")]

    run(backend, body)
