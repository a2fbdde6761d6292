"""One contract, both stores: the claim, lease, redelivery, trigger, pause and outcome rules,
run against RedisStore (a real redis-server) and LocalStore (a real SQLite file)."""

from __future__ import annotations

import asyncio
import time

import pytest

from scheduler.store.sqlite.store import LocalStore
from scheduler.model import (
    CLAIMED, EXPIRE, HELD, INIT, PAUSED, REDELIVER, REDRIVE, SKIP, STALE, TRIGGER, Claim, Finished, InFlight, Outcome,
    SlotRequest, TriggerRequest,
)
from scheduler.store.redis.store import RedisStore
from scheduler.store.protocol import LeaseLost
from tests.support import RedisServer


def both_stores(what: str):
    """Both stores; `what` names the part of the contract."""
    return pytest.mark.parametrize("backend", ["redis", "local"], indirect=True)


REDIS_FINISHED = "outcomes fenced by epoch"
HANDOVER_S = 0.3  # the standalone lease TTL here: how long a lock taken from a live leader waits
REDIS_FIRST_SEEN = "a job's first sighting"


class Backend:
    def __init__(self, kind: str, tmp_path):
        self.kind = kind
        self.tmp_path = tmp_path
        self.server = RedisServer() if kind == "redis" else None
        self.stores: list = []

    def store(self, replica_id: str):
        if self.server is not None:
            store = RedisStore(self.server.url, "contract", 5.0, replica_id=replica_id)
        else:
            store = LocalStore(str(self.tmp_path / "state.db"), replica_id=replica_id, lease_ttl_s=HANDOVER_S)
        self.stores.append(store)
        return store

    def lose_lease(self) -> None:
        """The lease goes while its holder runs on: its Redis key expires, or the lock file is
        deleted."""
        if self.server is not None:
            self.server.client().delete("{contract}:leader")
        else:
            (self.tmp_path / "state.db.lock").unlink()

    async def take_lease(self, store) -> int:
        """Acquire until it is ours (a lock file taken from a leader that may still be
        running is first held for a lease TTL)."""
        deadline = time.monotonic() + 10 * HANDOVER_S
        while (epoch := await store.acquire()) is None:
            assert time.monotonic() < deadline, "the lease was never taken over"
            await asyncio.sleep(0.02)
        return epoch

    async def close(self) -> None:
        for store in self.stores:
            await store.close()

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture(params=["redis", "local"])
def backend(request, tmp_path):
    b = Backend(request.param, tmp_path)
    yield b
    b.stop()


def run(backend, body):
    async def go():
        try:
            return await body()
        finally:
            await backend.close()

    return asyncio.run(go())


def ok(at: float = 1000.0) -> Outcome:
    return Outcome("ok", 1, 0.25, at, http_status=200)


def failed(at: float = 1000.0) -> Outcome:
    return Outcome("failed", 2, 0.5, at, http_status=503, error="HTTP 503")


# -- the lease ------------------------------------------------------------------------


def test_lease_is_exclusive_and_each_acquisition_takes_a_higher_epoch(backend):
    async def body():
        a, b = backend.store("a"), backend.store("b")
        first = await a.acquire()
        assert first is not None and first > 0
        assert await b.acquire() is None
        assert await a.renew() is True
        assert await b.renew() is False
        await a.release()
        assert await a.renew() is False
        second = await b.acquire()
        assert second is not None and second > first
        status = await a.status([])
        assert status["leader"] == "b" and status["epoch"] == second

    run(backend, body)


def test_a_replica_without_the_lease_cannot_claim(backend):
    async def body():
        a, b = backend.store("a"), backend.store("b")
        epoch = await a.acquire()
        with pytest.raises(LeaseLost):
            await b.claim(epoch, [Claim("j", 100)])
        await a.release()
        with pytest.raises(LeaseLost):
            await a.claim(epoch, [Claim("j", 100)])
        assert (await b.load(["j"])).watermarks == {}

    run(backend, body)


def test_a_replica_whose_lease_was_taken_over_can_no_longer_claim(backend):
    async def body():
        a, b = backend.store("a"), backend.store("b")
        first = await a.acquire()
        assert await a.claim(first, [Claim("j", 100)]) == [CLAIMED]
        backend.lose_lease()
        second = await backend.take_lease(b)
        assert second > first
        with pytest.raises(LeaseLost):
            await a.claim(first, [Claim("j", 101)])
        assert await a.renew() is False
        assert await a.acquire() is None
        assert await b.claim(second, [Claim("j", 101)]) == [CLAIMED]
        assert (await b.load(["j"])).watermarks == {"j": 101}

    run(backend, body)


# -- claims ---------------------------------------------------------------------------


def test_a_slot_is_claimed_once_and_older_slots_are_stale(backend):
    async def body():
        a = backend.store("a")
        epoch = await a.acquire()
        assert await a.claim(epoch, [Claim("j", 100)]) == [CLAIMED]
        assert await a.claim(epoch, [Claim("j", 90), Claim("j", 99, SKIP), Claim("j", 99, INIT)]) == [STALE, STALE, STALE]
        state = await a.load(["j"])
        assert state.watermarks == {"j": 100}
        assert state.inflight == [InFlight("j", 100, epoch, 1)]

    run(backend, body)


def test_a_claim_sent_again_is_ours_only_under_the_same_epoch(backend):
    """A retried claim whose reply was lost is still ours; a new leader cannot take it."""
    async def body():
        a = backend.store("a")
        first = await a.acquire()
        assert await a.claim(first, [Claim("j", 100)]) == [CLAIMED]
        assert await a.claim(first, [Claim("j", 100)]) == [CLAIMED]
        await a.release()
        second = await a.acquire()
        assert await a.claim(second, [Claim("j", 100)]) == [STALE]

    run(backend, body)


def test_a_skip_advances_the_watermark_without_a_fire_in_flight(backend):
    async def body():
        a = backend.store("a")
        epoch = await a.acquire()
        assert await a.claim(epoch, [Claim("j", 100, SKIP)]) == [CLAIMED]
        assert await a.claim(epoch, [Claim("j", 100, SKIP)]) == [CLAIMED]  # sent again
        assert await a.claim(epoch, [Claim("j", 100)]) == [STALE]
        state = await a.load(["j"])
        assert state.watermarks == {"j": 100} and state.inflight == []

    run(backend, body)


def test_init_sets_a_watermark_only_where_there_is_none(backend):
    async def body():
        a = backend.store("a")
        epoch = await a.acquire()
        assert await a.claim(epoch, [Claim("j", 100, INIT)]) == [CLAIMED]
        assert await a.claim(epoch, [Claim("j", 200, INIT), Claim("k", 50, INIT)]) == [STALE, CLAIMED]
        state = await a.load(["j", "k"])
        assert state.watermarks == {"j": 100, "k": 50} and state.inflight == []
        assert await a.claim(epoch, [Claim("j", 100), Claim("j", 101)]) == [STALE, CLAIMED]

    run(backend, body)


def test_many_jobs_claim_together_each_by_its_own_watermark(backend):
    async def body():
        a = backend.store("a")
        epoch = await a.acquire()
        await a.claim(epoch, [Claim("x", 100)])
        result = await a.claim(epoch, [Claim("x", 100), Claim("y", 100), Claim("x", 101), Claim("z", 5, SKIP)])
        assert result == [CLAIMED, CLAIMED, CLAIMED, CLAIMED]
        assert (await a.load([])).watermarks == {"x": 101, "y": 100, "z": 5}

    run(backend, body)


# -- redelivery -----------------------------------------------------------------------


def test_a_new_leader_redelivers_a_fire_left_in_flight_with_the_next_attempt(backend):
    async def body():
        a, b = backend.store("a"), backend.store("b")
        first = await a.acquire()
        await a.claim(first, [Claim("j", 100)])
        await a.note_attempt(first, Claim("j", 100), 2)
        await a.release()
        second = await b.acquire()
        state = await b.load(["j"])
        assert state.inflight == [InFlight("j", 100, first, 2)]
        assert await b.claim(second, [Claim("j", 100, REDELIVER, 3), Claim("j", 99, REDELIVER, 2)]) == [CLAIMED, STALE]
        assert (await b.load(["j"])).inflight == [InFlight("j", 100, second, 3)]
        # The old leader's late attempt note no longer applies.
        await a.note_attempt(first, Claim("j", 100), 7)
        assert (await b.load(["j"])).inflight == [InFlight("j", 100, second, 3)]

    run(backend, body)


def test_a_fire_handed_over_is_its_owners_until_its_deadline_and_its_outcome_counts(backend):
    async def body():
        a, b = backend.store("a"), backend.store("b")
        first = await a.acquire()
        await a.claim(first, [Claim("j", 100), Claim("k", 100)])
        # Only j is still running at the stop: k (say, a fire that never went out) is free.
        await a.hand_over(first, [Claim("j", 100).field], 30.0)
        second = await backend.take_lease(b)
        held = {f.job: f for f in (await b.load(["j", "k"])).inflight}
        assert held["j"].owner == "a" and held["j"].until is not None and held["j"].until > time.time() + 20
        assert held["k"].until is None
        assert await b.claim(second, [Claim("j", 100, REDELIVER, 2), Claim("k", 100, REDELIVER, 2)]) == [HELD, CLAIMED]
        # The owner's outcome, written after the handover, is accepted: the fire is its own.
        await a.finish([Finished(Claim("j", 100), first, ok(2000.0))])
        state = await b.load(["j", "k"])
        assert state.inflight == [InFlight("k", 100, second, 2)]
        assert state.health["j"].last_success_at == 2000.0

    run(backend, body)


def test_a_held_fire_still_in_flight_at_its_deadline_is_redelivered_and_its_owner_fenced(backend):
    async def body():
        a, b = backend.store("a"), backend.store("b")
        first = await a.acquire()
        await a.claim(first, [Claim("j", 100)])
        await a.hand_over(first, [Claim("j", 100).field], 0.3)
        second = await backend.take_lease(b)
        deadline = time.monotonic() + 5
        while (got := await b.claim(second, [Claim("j", 100, REDELIVER, 2)])) == [HELD]:
            assert time.monotonic() < deadline, "the hold never ran out"
            await asyncio.sleep(0.05)
        assert got == [CLAIMED]
        # Its owner (which died while draining, or gave up) no longer writes its outcome.
        await a.finish([Finished(Claim("j", 100), first, failed(3000.0))])
        assert (await b.load(["j"])).inflight == [InFlight("j", 100, second, 2)]

    run(backend, body)


# -- pause ----------------------------------------------------------------------------


def test_a_paused_job_advances_its_watermark_without_firing(backend):
    async def body():
        a = backend.store("a")
        epoch = await a.acquire()
        assert await a.set_paused("j", True) is True
        assert await a.set_paused("j", True) is False
        assert (await a.load(["j"])).paused == {"j"}
        assert await a.claim(epoch, [Claim("j", 100), Claim("k", 100)]) == [PAUSED, CLAIMED]
        state = await a.load(["j", "k"])
        assert state.watermarks == {"j": 100, "k": 100}
        assert [f.job for f in state.inflight] == ["k"]
        assert await a.set_paused("j", False) is True
        assert await a.set_paused("j", False) is False
        assert await a.claim(epoch, [Claim("j", 101)]) == [CLAIMED]
        assert (await a.status(["j"]))["paused"] == set()

    run(backend, body)


def test_a_removed_jobs_pause_is_dropped_and_the_others_are_kept(backend):
    async def body():
        a = backend.store("a")
        await a.set_paused("gone", True)
        await a.set_paused("kept", True)
        assert await a.drop_pauses(["gone", "never-paused"]) == 1
        assert await a.drop_pauses([]) == 0
        assert (await a.status(["gone", "kept"]))["paused"] == {"kept"}
        assert await a.set_paused("gone", True) is True  # paused again later: a new pause

    run(backend, body)


# -- one-time jobs first seen too late ---------------------------------------------------


def test_an_expiry_sets_the_watermark_and_records_expired_only_at_a_first_sighting(backend):
    async def body():
        a = backend.store("a")
        epoch = await a.acquire()
        await a.set_paused("p", True)  # nothing fires, so a pause changes nothing
        expire = [Claim("j", 100, EXPIRE, reason="first seen 2d after its instant"), Claim("p", 100, EXPIRE)]
        assert await a.claim(epoch, expire) == [CLAIMED, CLAIMED]
        assert await a.claim(epoch, expire) == [STALE, STALE]  # once
        assert await a.claim(epoch, [Claim("j", 100), Claim("k", 5, INIT), Claim("k", 3, EXPIRE)]) == [STALE, CLAIMED, STALE]
        state = await a.load(["j", "k"])
        assert state.watermarks == {"j": 100, "k": 5, "p": 100} and state.inflight == []
        assert "j" not in state.health or state.health["j"].consecutive_failures == 0  # not a failure
        record = (await a.status(["j"]))["jobs"]["j"]
        assert (record["status"], record["slot"], record["error"]) == ("expired", 100, "first seen 2d after its instant")
        (entry,) = await a.history("j")
        assert entry["outcome"] == "expired" and entry["slot"] == 100 and entry["attempts"] == 0
        assert entry["error"] == "first seen 2d after its instant" and entry["fencing_token"] == epoch

    run(backend, body)


# -- triggers -------------------------------------------------------------------------


def test_a_trigger_id_fires_once(backend):
    async def body():
        a = backend.store("a")
        epoch = await a.acquire()
        assert await a.request_trigger(TriggerRequest("r1", "j", 500)) is None
        assert await a.pending_triggers() == [TriggerRequest("r1", "j", 500)]
        claim = Claim("j", 500, TRIGGER, trigger="r1")
        assert await a.claim(epoch, [claim]) == [CLAIMED]
        assert await a.pending_triggers() == []
        assert await a.claim(epoch, [claim]) == [STALE]
        assert (await a.load(["j"])).inflight == [InFlight("j", 500, epoch, 1, "r1")]
        # Asked again after it fired: told it is spent, and nothing is queued.
        spent = await a.request_trigger(TriggerRequest("r1", "j", 600))
        assert spent is not None and spent.id == "r1"
        assert await a.pending_triggers() == []

    run(backend, body)


def test_a_trigger_joins_one_queued_or_in_flight_for_the_same_job(backend):
    async def body():
        a = backend.store("a")
        epoch = await a.acquire()
        assert await a.request_trigger(TriggerRequest("r1", "j", 500)) is None
        assert await a.request_trigger(TriggerRequest("r2", "j", 501)) == TriggerRequest("r1", "j", 500)
        assert await a.request_trigger(TriggerRequest("r3", "k", 502)) is None
        assert [t.id for t in await a.pending_triggers()] == ["r1", "r3"]
        await a.claim(epoch, [Claim("j", 500, TRIGGER, trigger="r1")])
        assert await a.request_trigger(TriggerRequest("r4", "j", 503)) == TriggerRequest("r1", "j", 500)
        status = await a.status(["j"])
        assert [t["id"] for t in status["pending_triggers"]] == ["r3"]

    run(backend, body)


def test_a_slot_request_is_queued_once_and_claimed_once_under_the_slots_own_field(backend):
    async def body():
        a = backend.store("a")
        epoch = await a.acquire()
        assert await a.claim(epoch, [Claim("j", 100), Claim("j", 200)]) == [CLAIMED, CLAIMED]
        await a.finish([Finished(Claim("j", 100), epoch, ok())])
        asked = [SlotRequest("j", 50, 1, None, 7), SlotRequest("j", 100, 2, "why", 7), SlotRequest("j", 200, 1, None, 7),
                 SlotRequest("j", 300, 1, None, 7)]
        # 200 is in flight; 300 lies past the watermark: the schedule has yet to claim it.
        assert await a.request_slots("j", asked) == [50, 100]
        assert await a.request_slots("j", asked) == []  # queued already
        assert await a.request_slots("k", [SlotRequest("k", 50)]) == []  # a job never claimed has no slot yet
        assert await a.pending_slots() == asked[:2]
        assert await a.pending_triggers() == []  # no manual trigger for all that

        redrive = Claim("j", 100, REDRIVE, 2, reason="why")
        assert await a.claim(epoch, [redrive]) == [CLAIMED]
        assert await a.claim(epoch, [redrive]) == [CLAIMED]  # sent again after a lost reply: ours
        assert await a.claim(epoch, [Claim("j", 60, REDRIVE)]) == [STALE]  # never queued
        state = await a.load(["j"])
        assert state.watermarks == {"j": 200}
        assert sorted((f.slot, f.attempt, f.trigger) for f in state.inflight) == [(100, 2, None), (200, 1, None)]
        assert await a.pending_slots() == asked[:1]
        assert await a.request_slots("j", asked[1:2]) == []  # in flight
        await a.finish([Finished(redrive, epoch, ok())])
        assert await a.request_slots("j", asked[1:2]) == [100]
        # Another leader takes over: the old epoch's claim of a queued slot is refused.
        backend.lose_lease()
        b = backend.store("b")
        await backend.take_lease(b)
        with pytest.raises(LeaseLost):
            await a.claim(epoch, [Claim("j", 50, REDRIVE)])
        assert [r.slot for r in await b.pending_slots()] == [50, 100]

    run(backend, body)


# -- outcomes -------------------------------------------------------------------------


@both_stores(REDIS_FINISHED)
def test_outcomes_count_the_failure_streak_and_clear_the_fire(backend):
    async def body():
        a = backend.store("a")
        epoch = await a.acquire()
        await a.claim(epoch, [Claim("j", 100), Claim("j", 101), Claim("j", 102)])
        assert await a.finish([Finished(Claim("j", 100), epoch, failed())]) == [1]
        assert await a.finish([Finished(Claim("j", 101), epoch, failed()), Finished(Claim("j", 102), epoch, ok(2000.0))]) == [2, 0]
        state = await a.load(["j"])
        assert state.inflight == []
        assert state.health["j"].consecutive_failures == 0
        assert state.health["j"].last_success_at == 2000.0
        record = (await a.status(["j"]))["jobs"]["j"]
        assert (record["status"], record["slot"], record["http_status"], record["attempts"]) == ("ok", 102, 200, 1)

    run(backend, body)


@both_stores(REDIS_FINISHED)
def test_a_stale_leaders_late_outcome_leaves_the_redelivered_fire_in_flight(backend):
    async def body():
        a, b = backend.store("a"), backend.store("b")
        first = await a.acquire()
        await a.claim(first, [Claim("j", 100)])
        await a.release()
        second = await b.acquire()
        await b.claim(second, [Claim("j", 100, REDELIVER, 2)])
        await b.finish([Finished(Claim("j", 101), second, ok(3000.0))])
        # The old leader's call comes back late: it must not drop the newer leader's fire
        # nor overwrite the newer leader's outcome.
        assert await a.finish([Finished(Claim("j", 100), first, failed(3500.0))]) == [0]
        state = await b.load(["j"])
        assert state.inflight == [InFlight("j", 100, second, 2)]
        assert state.health["j"].last_success_at == 3000.0
        assert state.health["j"].consecutive_failures == 0
        assert (await b.status(["j"]))["jobs"]["j"]["status"] == "ok"
        # The newer leader's own outcome goes through.
        assert await b.finish([Finished(Claim("j", 100), second, failed(4000.0))]) == [1]
        assert (await b.load(["j"])).inflight == []

    run(backend, body)


@both_stores(REDIS_FINISHED)
def test_a_stale_leaders_outcome_is_not_recorded_while_a_newer_one_runs_the_fire(backend):
    async def body():
        a, b = backend.store("a"), backend.store("b")
        first = await a.acquire()
        await a.claim(first, [Claim("j", 100)])
        await a.release()
        second = await b.acquire()
        await b.claim(second, [Claim("j", 100, REDELIVER, 2)])
        # The old leader's call comes back while the newer leader's redelivery runs: the
        # fire's outcome is the newer leader's to write.
        assert await a.finish([Finished(Claim("j", 100), first, failed(3500.0))]) == [0]
        assert (await b.load(["j"])).inflight == [InFlight("j", 100, second, 2)]
        assert (await b.status(["j"]))["jobs"]["j"].get("status") is None
        assert await b.finish([Finished(Claim("j", 100), second, ok(4000.0))]) == [0]
        assert (await b.status(["j"]))["jobs"]["j"]["status"] == "ok"

    run(backend, body)


@both_stores(REDIS_FIRST_SEEN)
def test_init_records_when_a_job_was_first_seen(backend):
    async def body():
        a = backend.store("a")
        epoch = await a.acquire()
        await a.claim(epoch, [Claim("j", 100, INIT)])
        seen = (await a.load(["j"])).health["j"].first_seen_at
        assert seen is not None
        await a.release()
        epoch = await a.acquire()
        await a.claim(epoch, [Claim("j", 200, INIT)])
        assert (await a.load(["j"])).health["j"].first_seen_at == seen  # kept, not moved on

    run(backend, body)


# -- collaborators, the same for both ---------------------------------------------------


def spoil_a_watermark(backend) -> None:
    """A watermark that is not a number, written behind the store's back."""
    if backend.server is not None:
        import redis

        redis.Redis.from_url(backend.server.url).hset("{contract}:slots", "bad", "not a number")
    else:
        import sqlite3

        db = sqlite3.connect(backend.tmp_path / "state.db")
        db.execute("INSERT INTO slots VALUES ('bad', 'not a number')")
        db.commit()
        db.close()


def quarantined_count(backend) -> int:
    if backend.server is not None:
        import redis

        return redis.Redis.from_url(backend.server.url).hlen("{contract}:quarantine")
    import sqlite3

    db = sqlite3.connect(backend.tmp_path / "state.db")
    try:
        return db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    finally:
        db.close()


def test_each_store_tells_its_malformed_hook_of_an_unreadable_record(backend):
    async def body():
        store = backend.store("a")
        await store.status(["good"])  # creates the file's tables
        spoil_a_watermark(backend)
        told: list[str] = []
        store.on_malformed = told.append
        state = await store.load(["good", "bad"])
        assert "bad" not in state.watermarks
        assert len(told) == 1 and "slots" in told[0]
        assert quarantined_count(backend) == 1

    run(backend, body)


def test_a_read_only_store_skips_an_unreadable_record_without_moving_it(backend):
    async def body():
        store = backend.store("a")
        await store.status(["good"])
        spoil_a_watermark(backend)
        store.read_only = True
        told: list[str] = []
        store.on_malformed = told.append
        state = await store.load(["good", "bad"])
        assert "bad" not in state.watermarks and len(told) == 1
        assert quarantined_count(backend) == 0  # a dry run writes nothing

    run(backend, body)


# -- the ledger (SPEC 8; tests/test_ledger.py has the rest) -----------------------------


@both_stores("the ledger's entries fenced by epoch")
def test_a_stale_leaders_late_outcome_leaves_the_ledger_entry_to_the_newer_leader(backend):
    async def body():
        a, b = backend.store("a"), backend.store("b")
        first = await a.acquire()
        await a.claim(first, [Claim("j", 100)])
        await a.release()
        second = await backend.take_lease(b)
        await b.claim(second, [Claim("j", 100, REDELIVER, 2)])
        await b.finish([Finished(Claim("j", 100), second, ok(4000.0))])
        assert await a.finish([Finished(Claim("j", 100), first, failed(4500.0))]) == [0]
        entry = await b.run("j", "100")
        assert entry is not None and entry["outcome"] == "ok" and entry["fencing_token"] == second
        assert [e["id"] for e in (await b.runs("j"))[0]] == ["100"]
        # the log of leaderships names both, newest first
        assert [r["epoch"] for r in (await b.leaderships())[:2]] == [second, first]

    run(backend, body)


@both_stores("a dry run's view of the ledger")
def test_a_read_only_store_reads_the_ledger_and_writes_none(backend):
    from scheduler.store.read_only import ReadOnlyStore

    async def body():
        live = backend.store("live")
        epoch = await live.acquire()
        await live.claim(epoch, [Claim("j", 100), Claim("k", 100, SKIP, reason="overlap", policy="forbid")])
        await live.finish([Finished(Claim("j", 100), epoch, ok())])
        view = ReadOnlyStore(backend.store("dry"))
        assert [e["id"] for e in (await view.runs("j"))[0]] == ["100"]
        assert (await view.run("k", "100"))["outcome"] == "skipped"
        assert await view.leaderships()
        dry_epoch = await view.acquire()
        await view.claim(dry_epoch or 0, [Claim("k", 200, SKIP, reason="overlap", policy="forbid")])
        assert await live.run("k", "200") is None

    run(backend, body)
