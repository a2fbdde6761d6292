"""History in both stores: the last SCHEDULER_HISTORY finished fires per job, newest first,
with the same fields; the SQLite table added as format 3 without touching the older tables."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest

from scheduler.store.sqlite.store import LocalStore
from scheduler.model import CLAIMED, Claim, Finished, Outcome, TRIGGER
from scheduler.store.redis.store import RedisStore
from scheduler.store.sqlite.schema import V1_TABLES, V2_TABLES, VERSION
from tests.support import RedisServer, run_cli

FIELDS = {"slot", "trigger", "attempts", "outcome", "http_status", "duration_ms", "lateness_ms", "finished_at",
          "fencing_token", "error", "excerpt"}


@pytest.fixture(params=["redis", "local"])
def make_store(request, tmp_path):
    server = RedisServer() if request.param == "redis" else None

    def make(keep: int):
        if server is not None:
            return RedisStore(server.url, "hist", 5.0, history=keep)
        return LocalStore(str(tmp_path / "state.db"), history=keep)

    yield make
    if server is not None:
        server.close()


async def fire_many(store, count: int, job: str = "j") -> int:
    epoch = await store.acquire()
    base = int(time.time()) - 10_000
    for i in range(count):
        slot = base + i
        assert await store.claim(epoch, [Claim(job, slot)]) == [CLAIMED]
        status = "ok" if i % 2 else "failed"
        out = Outcome(status, 1 + i % 3, 0.25, slot + 0.5, 200 if i % 2 else 500,
                      None if i % 2 else "HTTP 500", None if i % 2 else f"app said <{i}>")
        await store.finish([Finished(Claim(job, slot), epoch, out, 0.0125)])
    return base


def test_history_keeps_the_newest_entries_newest_first(make_store) -> None:
    async def go():
        store = make_store(5)
        try:
            base = await fire_many(store, 8)
            entries = await store.history("j")
            assert [e["slot"] for e in entries] == [base + i for i in (7, 6, 5, 4, 3)]
            assert all(set(e) == FIELDS for e in entries)
            failed = entries[1]
            assert (failed["outcome"], failed["http_status"], failed["excerpt"], failed["error"]) == (
                "failed", 500, "app said <6>", "HTTP 500")
            assert failed["fencing_token"] > 0 and failed["duration_ms"] == 250 and failed["lateness_ms"] == 12.5
            assert [e["slot"] for e in await store.history("j", 2)] == [base + 7, base + 6]
            assert await store.history("other") == []
        finally:
            await store.close()

    asyncio.run(go())


def test_history_zero_keeps_nothing(make_store) -> None:
    async def go():
        store = make_store(0)
        try:
            await fire_many(store, 3)
            assert await store.history("j") == []
        finally:
            await store.close()

    asyncio.run(go())


def test_a_manual_fire_is_kept_with_its_request_id(make_store) -> None:
    async def go():
        store = make_store(3)
        try:
            epoch = await store.acquire()
            now = int(time.time())
            claim = Claim("j", now, TRIGGER, trigger="deploy-9")
            assert await store.claim(epoch, [claim]) == [CLAIMED]
            await store.finish([Finished(claim, epoch, Outcome("ok", 1, 0.01, now + 0.2, 204))])
            (entry,) = await store.history("j")
            assert entry["trigger"] == "deploy-9" and entry["http_status"] == 204
        finally:
            await store.close()

    asyncio.run(go())


def test_format_3_adds_only_tables(tmp_path) -> None:
    """An older release writes its rows positionally and reads only the tables it knows:
    every table of format 2 is left exactly as it was (the history, then the ledger's tables
    are added)."""
    old = tmp_path / "v2.db"
    db = sqlite3.connect(old)
    for statement in V1_TABLES + V2_TABLES:
        db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    db.execute("INSERT INTO slots VALUES ('j', 100)")
    db.commit()
    before = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
    db.close()

    async def go():
        store = LocalStore(str(old), history=4)
        try:
            epoch = await store.acquire()
            assert await store.claim(epoch, [Claim("j", 200)]) == [CLAIMED]
            await store.finish([Finished(Claim("j", 200), epoch, Outcome("ok", 1, 0.1, 200.5, 200))])
            assert [e["slot"] for e in await store.history("j")] == [200]
        finally:
            await store.close()

    asyncio.run(go())
    db = sqlite3.connect(old)
    after = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
    assert VERSION == 3 and db.execute("PRAGMA user_version").fetchone()[0] == 3
    assert set(after) - set(before) == {"history", "runs", "leaderships"}
    assert {k: after[k] for k in before} == before
    # What a format-2 release does with the file: its positional writes still work.
    db.execute("INSERT OR REPLACE INTO slots VALUES (?, ?)", ("j", 300))
    db.execute("INSERT INTO trigger (id, job, requested_at) VALUES ('x', 'j', 1)")
    db.commit()


def test_history_command_prints_a_table_and_json(tmp_path) -> None:
    state = tmp_path / "state.db"

    async def seed():
        store = LocalStore(str(state), history=20)
        try:
            await fire_many(store, 2, job="nightly")
        finally:
            await store.close()

    asyncio.run(seed())
    env = {"SCHEDULER_STATE_FILE": str(state), "SCHEDULER_JOB_NIGHTLY_SCHEDULE": "every 1h",
           "SCHEDULER_JOB_NIGHTLY_URL": "/n"}
    text = run_cli(["history", "nightly"], env)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["FINISHED", "SLOT", "OUTCOME", "HTTP", "ATTEMPTS", "MS", "EPOCH"]
    assert lines[1].split()[2] == "ok" and lines[2].split()[2] == "failed"
    assert "the app said: app said <0>" in text.stdout
    out = run_cli(["history", "nightly", "--json"], env)
    entries = json.loads(out.stdout)
    assert [e["outcome"] for e in entries] == ["ok", "failed"]
    assert entries[0]["slot"].endswith("Z") and entries[0]["finished_at"].endswith("Z")
    missing = run_cli(["history", "weekly"], env)
    assert missing.returncode == 2 and "no job named 'weekly'" in missing.stderr
    off = run_cli(["history", "nightly"], {**env, "SCHEDULER_HISTORY": "0"})
    assert off.returncode == 0 and "SCHEDULER_HISTORY=0" in off.stdout


def test_history_entries_built_by_the_finish_script_are_the_json_of_their_fields(redis_server):
    """The Redis store's FINISH script writes each entry itself (no JSON built per fire by the
    leader): every field, free texts with quotes, newlines, NUL and non-ASCII included."""
    import asyncio
    import json

    from scheduler.model import Claim, Finished, Outcome
    from scheduler.store.redis.store import RedisStore

    cases = [
        Finished(Claim("j", 1_700_000_000), 7, Outcome("ok", 1, 0.0123, 1_700_000_000.4567, 200), 0.0421),
        Finished(Claim("j", 5, trigger="a.b_c-1"), 9, Outcome("failed", 3, 2.5, 12.0, None, 'say "no"\n\\ \u2603', 'x"\x00')),
        Finished(Claim("j", 6), 9, Outcome("failed", 1, 0.0, 12.3456789, 503, "HTTP 503", "<b>é</b>/")),
    ]

    async def go():
        store = RedisStore(redis_server.url, "hist", 3.0, replica_id="r")
        await store.finish(cases)
        entries = await store.history("j")
        await store.close()
        return entries

    entries = sorted(asyncio.run(go()), key=lambda e: e["slot"])  # the ledger's order: by slot
    for item, entry in zip(sorted(cases, key=lambda i: i.claim.slot), entries, strict=True):
        claim, o = item.claim, item.outcome
        assert entry == {
            "slot": claim.slot, "trigger": claim.trigger, "attempts": o.attempts, "outcome": o.status,
            "http_status": o.http_status, "duration_ms": int(o.duration_s * 1000),
            "lateness_ms": None if item.lateness_s is None else round(item.lateness_s * 1000, 1),
            "finished_at": round(o.finished_at, 3), "fencing_token": item.epoch, "error": o.error,
            "excerpt": o.excerpt,
        }
    assert json.dumps(entries)  # and each is plain JSON
