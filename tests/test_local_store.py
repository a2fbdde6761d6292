"""LocalStore on real SQLite files: off the event loop, errors as outages, a versioned file,
unreadable rows set aside, and the cleanup of removed jobs."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

import pytest

from scheduler.store.sqlite.store import LocalStore
from scheduler.model import CLAIMED, INIT, TRIGGER, Claim, Finished, InFlight, Outcome, TriggerRequest
from scheduler.store.sqlite.schema import V1_TABLES, VERSION
from scheduler.store.protocol import StoreUnavailable


def run(coro):
    return asyncio.run(coro)


def raw(path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None, timeout=10)


def v1_file(path) -> None:
    """A state file as the first release left it: the first layout, no format version."""
    db = raw(path)
    for statement in V1_TABLES:
        db.execute(statement)
    db.close()


# -- off the event loop, and every error an outage ---------------------------------------


def test_a_held_write_lock_never_stalls_the_event_loop(tmp_path):
    """A command holding the write lock (as `sqlite3 state.db "BEGIN IMMEDIATE"` does) makes the
    claim wait on the store's own thread; the loop keeps running meanwhile."""
    path = tmp_path / "state.db"

    async def go():
        store = LocalStore(str(path))
        epoch = await store.acquire()
        holder = raw(path)
        holder.execute("BEGIN IMMEDIATE")
        try:
            claim = asyncio.create_task(store.claim(epoch, [Claim("j", 100)]))
            for _ in range(20):
                await asyncio.sleep(0)  # other work on the loop runs while the claim waits
            assert not claim.done()
        finally:
            holder.execute("ROLLBACK")
        assert await claim == [CLAIMED]
        await store.close()

    run(go())


def test_a_held_write_lock_is_an_outage_after_a_short_wait(tmp_path):
    path = tmp_path / "state.db"

    async def go():
        store = LocalStore(str(path), busy_timeout_s=0.2)
        epoch = await store.acquire()
        holder = raw(path)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreUnavailable):
                await store.claim(epoch, [Claim("j", 100)])
            with pytest.raises(StoreUnavailable):
                await store.set_paused("j", True)
            assert (await store.load(["j"])).watermarks == {}  # reads go on: WAL
        finally:
            holder.execute("ROLLBACK")
        assert await store.claim(epoch, [Claim("j", 100)]) == [CLAIMED]
        await store.close()

    run(go())


def test_every_read_and_the_lease_lock_fail_as_store_unavailable(tmp_path):
    path = tmp_path / "state.db"

    async def go():
        store = LocalStore(str(path))
        await store.status([])
        for table in ("slots", "trigger", "meta"):
            raw(path).execute(f"DROP TABLE {table}")
        for call in (store.load(["j"]), store.status(["j"]), store.pending_triggers()):
            with pytest.raises(StoreUnavailable):
                await call
        await store.close()
        (tmp_path / "other.db.lock").mkdir()  # the lease's lock file cannot be opened
        other = LocalStore(str(tmp_path / "other.db"))
        with pytest.raises(StoreUnavailable):
            await other.acquire()
        await other.close()
        unreachable = LocalStore(str(tmp_path / "missing" / "state.db"))
        with pytest.raises(StoreUnavailable):
            await unreachable.acquire()
        assert await unreachable.ping() is False
        await unreachable.close()

    run(go())


# -- the format version -------------------------------------------------------------------


def test_a_file_of_a_newer_format_is_neither_led_nor_written(tmp_path):
    path = tmp_path / "state.db"
    v1_file(path)
    db = raw(path)
    db.execute("INSERT INTO slots VALUES ('j', 100)")
    db.execute(f"PRAGMA user_version = {VERSION + 1}")

    async def go():
        store = LocalStore(str(path))
        assert await store.acquire() is None
        assert store.format_problem is not None
        assert f"format version {VERSION + 1}" in store.format_problem and f"up to {VERSION}" in store.format_problem
        assert await store.renew() is False
        with pytest.raises(StoreUnavailable, match="newer"):
            await store.set_paused("j", True)
        with pytest.raises(StoreUnavailable, match="newer"):
            await store.request_trigger(TriggerRequest("r1", "j", 100))
        status = await store.status(["j"])  # reading still works
        assert status["watermarks"] == {"j": 100}
        assert await store.warnings() == [store.format_problem]
        await store.close()

    run(go())
    assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION + 1
    assert db.execute("SELECT * FROM paused").fetchall() == []
    assert db.execute("SELECT * FROM trigger").fetchall() == []
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'quarantine'").fetchone() is None


def test_a_first_release_file_is_migrated_and_keeps_its_state(tmp_path):
    path = tmp_path / "state.db"
    v1_file(path)
    db = raw(path)
    db.execute("INSERT INTO meta VALUES ('epoch', '41')")
    db.execute("INSERT INTO slots VALUES ('j', 100)")
    db.execute("INSERT INTO inflight VALUES ('j@100', 'j', 100, 41, 1, NULL, 99.5)")
    db.execute("""INSERT INTO jobs VALUES ('j', '{"consecutive_failures": 2, "last_success_at": 50.0}')""")

    async def go():
        store = LocalStore(str(path))
        state = await store.load(["j"])
        assert state.watermarks == {"j": 100}
        assert state.inflight == [InFlight("j", 100, 41, 1)]
        assert state.health["j"].consecutive_failures == 2 and state.health["j"].last_success_at == 50.0
        assert await store.acquire() == 42
        await store.close()

    run(go())
    assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION
    assert db.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)


def test_a_migration_that_cannot_take_the_lock_changes_nothing_and_is_retried(tmp_path):
    path = tmp_path / "state.db"
    v1_file(path)
    holder = raw(path)
    holder.execute("BEGIN IMMEDIATE")

    async def go():
        store = LocalStore(str(path), busy_timeout_s=0.2)
        with pytest.raises(StoreUnavailable):
            await store.acquire()
        assert raw(path).execute("PRAGMA user_version").fetchone()[0] == 0
        holder.execute("ROLLBACK")
        assert await store.acquire() is not None
        await store.close()

    run(go())
    assert raw(path).execute("PRAGMA user_version").fetchone()[0] == VERSION


# -- unreadable rows ----------------------------------------------------------------------

BAD_ROWS = [
    ("slots", "INSERT INTO slots VALUES ('j', 'not a slot')"),
    ("inflight", "INSERT INTO inflight VALUES ('j@notanumber', 'j', 1, 1, 1, NULL, 1.0)"),
    ("inflight", "INSERT INTO inflight VALUES ('k@manual:a@b', 'k', 1, 1, 1, 'a@b', 1.0)"),
    ("jobs", "INSERT INTO jobs VALUES ('j', 'not json')"),
    ("jobs", "INSERT INTO jobs VALUES ('k', '[1, 2]')"),
    ("paused", "INSERT INTO paused VALUES (x'00ff')"),
    ("trigger", "INSERT INTO trigger (id, job, requested_at) VALUES ('a@b', 'j', 100)"),
    ("meta", "INSERT OR REPLACE INTO meta VALUES ('epoch', 'many')"),
    ("slots", "INSERT INTO slots VALUES (CAST(x'ff41' AS TEXT), 5)"),  # text that is not UTF-8
]


def test_unreadable_rows_are_logged_once_counted_and_set_aside(tmp_path, caplog):
    path = tmp_path / "state.db"
    seen = []

    async def go():
        store = LocalStore(str(path), on_malformed=seen.append)
        await store.status([])
        db = raw(path)
        for _, statement in BAD_ROWS:
            db.execute(statement)
        db.execute("INSERT INTO slots VALUES ('good', 100)")
        with caplog.at_level(logging.WARNING, logger="scheduler.sqlite"):
            state = await store.load(["j", "k"])
            status = await store.status(["j", "k"])
            assert await store.pending_triggers() == []
            assert await store.status(["j", "k"]) == status
        assert state.watermarks == {"good": 100} and state.inflight == [] and state.paused == set()
        assert state.health == {}
        assert status["epoch"] is None and status["jobs"] == {"j": {}, "k": {}}
        assert store.malformed == len(BAD_ROWS)
        epoch = await store.acquire()  # an unreadable epoch counter starts again from the clock
        assert epoch > time.time() * 1000 - 60_000
        await store.close()

    run(go())
    assert len(seen) == len(BAD_ROWS)
    assert sorted(where.split(" ")[0] for where in seen) == sorted(t for t, _ in BAD_ROWS)
    warnings = [r for r in caplog.records if r.getMessage() == "unreadable record set aside"]
    assert sorted(r.table for r in warnings) == sorted(t for t, _ in BAD_ROWS)
    assert not any("not json" in str(vars(r)) for r in warnings)  # the key, never the value
    db = raw(path)
    assert sorted(r[0] for r in db.execute("SELECT source FROM quarantine")) == sorted(t for t, _ in BAD_ROWS)
    assert db.execute("SELECT job, slot FROM slots").fetchall() == [("good", 100)]
    assert db.execute("SELECT count(*) FROM inflight").fetchone() == (0,)
    assert db.execute("SELECT raw FROM quarantine WHERE source = 'jobs' AND key = 'j'").fetchone() == ("('j', 'not json')",)


def test_claims_outcomes_and_triggers_go_on_past_unreadable_rows(tmp_path):
    path = tmp_path / "state.db"

    async def go():
        store = LocalStore(str(path))
        epoch = await store.acquire()
        db = raw(path)
        db.execute("INSERT INTO slots VALUES ('j', 'not a slot')")
        db.execute("INSERT INTO slots VALUES ('n', x'01')")
        db.execute("INSERT INTO jobs VALUES ('j', '{\"consecutive_failures\": \"many\"}')")
        db.execute("INSERT INTO jobs VALUES ('n', 'NaN')")
        db.execute("INSERT INTO trigger (id, job, requested_at) VALUES ('ok-id', 'k', 'soon')")
        assert await store.claim(epoch, [Claim("j", 100), Claim("n", 5, INIT)]) == [CLAIMED, CLAIMED]
        done = Finished(Claim("j", 100), epoch, Outcome("failed", 1, 0.1, 200.0, error="boom"))
        assert await store.finish([done]) == [1]
        assert await store.request_trigger(TriggerRequest("r1", "k", 300)) is None
        assert await store.claim(epoch, [Claim("k", 300, TRIGGER, trigger="r1")]) == [CLAIMED]
        state = await store.load(["j", "n"])
        assert state.watermarks == {"j": 100, "n": 5}
        assert state.health["j"].consecutive_failures == 1
        assert state.health["n"].first_seen_at is not None
        assert store.malformed == 5
        await store.close()

    run(go())


# -- cleanup of removed jobs --------------------------------------------------------------


def test_gc_deletes_only_the_old_state_of_removed_jobs_and_can_be_dry_run(tmp_path):
    path = tmp_path / "state.db"
    old = time.time() - 7 * 86400

    async def go():
        store = LocalStore(str(path))
        epoch = await store.acquire()
        for job in ("kept", "gone", "recent", "busy"):
            await store.claim(epoch, [Claim(job, int(old), INIT)])
        await store.request_trigger(TriggerRequest("t1", "gone", int(old)))
        await store.claim(epoch, [Claim("gone", int(old), TRIGGER, trigger="t1"), Claim("busy", int(old) + 1)])
        await store.finish([Finished(Claim("gone", int(old), trigger="t1"), epoch, Outcome("ok", 1, 0.1, old))])
        await store.finish([Finished(Claim("recent", int(old)), epoch, Outcome("ok", 1, 0.1, time.time()))])
        db = raw(path)
        db.execute("UPDATE triggered SET at = ?", (old,))
        db.execute("UPDATE jobs SET record = json_set(record, '$.first_seen_at', ?)", (old,))
        expected = ["watermark gone", "job record gone", "triggered id t1 (gone)", "ledger gone"]
        assert await store.gc(["kept"], 86400, dry_run=True) == expected
        assert sorted((await store.load([])).watermarks) == ["busy", "gone", "kept", "recent"]
        assert await store.gc(["kept"], 86400) == expected
        assert sorted((await store.load([])).watermarks) == ["busy", "kept", "recent"]
        assert db.execute("SELECT name FROM jobs ORDER BY name").fetchall() == [("busy",), ("kept",), ("recent",)]
        assert db.execute("SELECT count(*) FROM triggered").fetchone() == (0,)
        assert await store.gc(["kept"], 86400) == []
        await store.close()

    run(go())


# -- arbitrary values in every table, under a running daemon -----------------------------

COLUMNS = {
    "meta": ("key", "value"),
    "slots": ("job", "slot"),
    "inflight": ("field", "job", "slot", "epoch", "attempt", "trigger", "claimed_at"),
    "jobs": ("name", "record"),
    "paused": ("name",),
    "trigger": ("id", "job", "requested_at"),
    "triggered": ("id", "at"),
    "triggered_job": ("id", "job"),
    "quarantine": ("source", "key", "raw", "reason", "at"),
}


class NotUtf8(bytes):
    """Written as TEXT that is not UTF-8."""


def _values():
    from hypothesis import strategies as st

    return st.one_of(
        st.none(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=30), st.binary(max_size=30),
        st.binary(min_size=1, max_size=8).map(lambda b: NotUtf8(b + b"\xff")),
        # Near misses of real rows, for the job that is firing.
        st.sampled_from(["tick", "tick@100", "tick@manual:r1", "tick@manual:a@b", "epoch", "leader", "{}", "[]",
                         '{"consecutive_failures": -1}', '{"last_success_at": "x"}', "NaN", "1e999"]),
    )


def _rows():
    from hypothesis import strategies as st

    table = st.sampled_from(sorted(COLUMNS))
    return st.lists(table.flatmap(lambda t: st.tuples(st.just(t), st.tuples(*[_values()] * len(COLUMNS[t])))),
                    min_size=1, max_size=12)


def _write(path, rows) -> None:
    db = raw(path)
    for table, values in rows:
        if table == "paused" and values[0] == "tick":
            continue  # a readable pause of the job: it would rightly stop firing
        cols = COLUMNS[table]
        marks = ", ".join("CAST(? AS TEXT)" if isinstance(v, NotUtf8) else "?" for v in values)
        try:
            db.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) VALUES ({marks})",
                       [bytes(v) if isinstance(v, NotUtf8) else v for v in values])
        except sqlite3.IntegrityError:
            pass  # a NOT NULL column refused it: no reader can meet that row
    db.close()


def test_arbitrary_rows_in_every_table_never_stop_reads_or_the_firing_daemon(receiver, daemon_factory, tmp_path):
    from hypothesis import HealthCheck, given, settings

    from tests.e2e import standalone_env
    from tests.support import run_cli, wait_until

    path = tmp_path / "state.db"
    env = standalone_env(receiver, path, {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}})
    daemon = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for_count(1, timeout=20)

    def fires_again() -> None:
        before = len(receiver.requests)
        wait_until(lambda: len(receiver.requests) > before, timeout=15, message="the daemon stopped firing")

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(rows=_rows())
    def example(rows):
        _write(path, rows)

        async def read():
            store = LocalStore(str(path))
            try:
                await store.load(["tick"])
                await store.status(["tick"])
                await store.pending_triggers()
            finally:
                await store.close()

        run(read())
        fires_again()

    example()
    assert daemon.running

    # A new leader reads everything at its start: write again with no reader to clean up.
    daemon.kill()

    @settings(max_examples=1, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(rows=_rows())
    def junk(rows):
        _write(path, rows)

    junk()
    db = raw(path)
    for _, statement in BAD_ROWS:
        db.execute(statement.replace("INSERT INTO", "INSERT OR REPLACE INTO"))
    db.close()
    daemon.start()
    fires_again()
    fires_again()
    result = run_cli(["status"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert daemon.running and "Traceback" not in daemon.output()
    assert "unreadable record set aside" in daemon.output()  # the daemon did meet them
