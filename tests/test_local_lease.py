"""The standalone lease on real files: the lock file deleted or replaced under its holder,
the leader and epoch the state file records, and a handover from a leader that may still
be running. (Two daemons with a lock file deleted under the leader: test_replicas.py.)"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time

import pytest

from scheduler.store.sqlite.store import LocalStore
from scheduler.model import CLAIMED, Claim, Finished, InFlight, Outcome
from scheduler.store.protocol import LeaseLost

TTL_S = 0.5


def run(coro):
    return asyncio.run(coro)


def meta(path) -> dict:
    db = sqlite3.connect(str(path))
    try:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.close()


def store(path, replica: str) -> LocalStore:
    return LocalStore(str(path), replica_id=replica, lease_ttl_s=TTL_S)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_lost_lock_file_ends_the_lease_at_the_next_renewal(tmp_path, how):
    path = tmp_path / "state.db"
    lock = tmp_path / "state.db.lock"

    async def go():
        a = store(path, "a")
        first = await a.acquire()
        assert await a.renew() is True
        lock.unlink()
        if how == "replaced":
            lock.write_text("someone else's")
        assert await a.renew() is False
        # It was the last leader itself: it takes the path's file at once, under a new epoch.
        second = await a.acquire()
        assert second is not None and second > first
        assert await a.renew() is True
        assert meta(path)["lock"] == f"{os.stat(lock).st_dev}:{os.stat(lock).st_ino}"
        await a.close()

    run(go())


def test_every_acquisition_records_the_leader_its_epoch_and_its_lock_file(tmp_path):
    path = tmp_path / "state.db"

    async def go():
        a = store(path, "a")
        epoch = await a.acquire()
        st = os.stat(tmp_path / "state.db.lock")
        assert meta(path) == {"leader": "a", "epoch": str(epoch), "lock": f"{st.st_dev}:{st.st_ino}"}
        await a.close()
        assert "leader" not in meta(path)

    run(go())


def test_a_lock_left_by_a_leader_that_released_or_died_is_taken_at_once(tmp_path):
    path = tmp_path / "state.db"

    async def go():
        a, b = store(path, "a"), store(path, "b")
        first = await a.acquire()
        await a.claim(first, [Claim("j", 100)])
        await a.release()
        second = await b.acquire()
        assert second is not None and second > first
        b.lease.let_go()  # as its process's death does: the file stays, the lock goes
        third = await a.acquire()
        assert third is not None and third > second
        assert (await a.load(["j"])).inflight == [InFlight("j", 100, first, 1)]  # to redeliver
        await a.close()
        await b.close()

    run(go())


def test_a_lock_taken_from_a_leader_that_may_still_run_waits_one_ttl_and_fences_it_at_once(tmp_path):
    path = tmp_path / "state.db"

    async def go():
        a, b = store(path, "a"), store(path, "b")
        first = await a.acquire()
        assert await a.claim(first, [Claim("j", 100)]) == [CLAIMED]
        (tmp_path / "state.db.lock").unlink()
        taken = time.monotonic()
        assert await b.acquire() is None  # the lock is b's, the lead not yet
        assert meta(path)["leader"] == "b"
        with pytest.raises(LeaseLost):
            await a.claim(first, [Claim("j", 101)])
        assert await a.acquire() is None
        assert not a.lease.lock.held  # it let go of the old file's lock, and b holds the new one
        # a's fire claimed before the takeover still finishes under its epoch.
        await a.finish([Finished(Claim("j", 100), first, Outcome("ok", 1, 0.1, 1000.0, http_status=200))])
        while (second := await b.acquire()) is None:
            await asyncio.sleep(0.02)
        assert time.monotonic() - taken >= TTL_S
        assert second > first + 1  # one epoch for the takeover, the next for the lead
        state = await b.load(["j"])
        assert state.inflight == [] and state.watermarks == {"j": 100}
        assert await b.claim(second, [Claim("j", 101)]) == [CLAIMED]
        await a.close()
        await b.close()

    run(go())


def test_a_claim_under_an_epoch_the_file_no_longer_records_is_refused(tmp_path):
    path = tmp_path / "state.db"

    async def go():
        a = store(path, "a")
        first = await a.acquire()
        db = sqlite3.connect(str(path), isolation_level=None)
        db.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (str(first + 5),))
        db.close()
        with pytest.raises(LeaseLost):
            await a.claim(first, [Claim("j", 100)])
        assert (await a.load(["j"])).watermarks == {}
        second = await a.acquire()
        assert second == first + 6
        assert await a.claim(second, [Claim("j", 100)]) == [CLAIMED]
        await a.close()

    run(go())
