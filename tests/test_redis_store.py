"""The Redis store against a real redis-server: lease, fencing epoch, claims, state."""

from __future__ import annotations

import asyncio
import time

import pytest

from scheduler.store.redis.store import RedisStore
from scheduler.model import Finished
from scheduler.store.protocol import REDELIVER, SKIP, Claim, LeaseLost, Outcome, StoreUnavailable
from tests.support import wait_until


def run(coro):
    return asyncio.run(coro)


def store(server, ttl_s=2.0, namespace="t", replica_id=None) -> RedisStore:
    return RedisStore(server.url, namespace, ttl_s, replica_id=replica_id)


def test_lease_is_exclusive_and_epoch_increments(redis_server):
    async def go():
        a, b = store(redis_server, replica_id="a"), store(redis_server, replica_id="b")
        first = await a.acquire()
        assert await b.acquire() is None
        assert await a.renew() is True
        assert await b.renew() is False
        await a.release()
        assert await b.acquire() == first + 1
        await a.close(), await b.close()
        return first

    first = run(go())
    assert redis_server.client().get("{t}:leader") == "b"
    assert redis_server.client().get("{t}:epoch") == str(first + 1)


def server_ms(client) -> int:
    """The server's clock in milliseconds, read as the scripts read it."""
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def test_epoch_keeps_growing_when_redis_loses_its_data(redis_server):
    """Fencing tokens start from the server clock (ms), not 0, so a target that refuses a
    token lower than one it has seen keeps accepting fires after Redis forgets everything."""

    async def go():
        a = store(redis_server, replica_id="a")
        first = await a.acquire()
        await a.release()
        second = await a.acquire()
        probe = redis_server.client()
        probe.flushall()
        # A new seed `now` hands out now + 1, above `second` only once the server's clock has
        # reached `second`. A real loss of state (a restart, a failover) takes far longer than
        # a millisecond per token handed out; here the data is gone a millisecond or two after
        # the seed, so wait for the clock instead of hoping it moved.
        wait_until(lambda: server_ms(probe) >= second, timeout=5, interval=0.001,
                   message=f"the server's clock to reach {second} ms")
        third = await a.acquire()
        await a.close()
        return first, second, third

    first, second, third = run(go())
    assert second == first + 1
    assert third > second
    assert abs(first / 1000 - time.time()) < 60  # seeded from the clock in milliseconds


def test_renew_never_extends_a_lease_another_replica_holds(redis_server):
    async def go():
        a, b = store(redis_server, replica_id="a"), store(redis_server, replica_id="b")
        first = await a.acquire()
        redis_server.client().delete("{t}:leader")  # as if it expired
        assert await b.acquire() == first + 1
        assert await a.renew() is False
        await a.release()  # compare-and-delete: must not remove b's lease
        await a.close(), await b.close()

    run(go())
    assert redis_server.client().get("{t}:leader") == "b"


def test_stale_leader_cannot_claim_after_losing_the_lease(redis_server):
    async def go():
        a, b = store(redis_server, replica_id="a"), store(redis_server, replica_id="b")
        epoch_a = await a.acquire()
        assert await a.claim(epoch_a, [Claim("j", 100)]) == [True]
        redis_server.client().delete("{t}:leader")
        epoch_b = await b.acquire()
        with pytest.raises(LeaseLost):
            await a.claim(epoch_a, [Claim("j", 101)])
        assert await b.claim(epoch_b, [Claim("j", 101)]) == [True]
        await a.close(), await b.close()

    run(go())
    assert redis_server.client().hget("{t}:slots", "j") == "101"


def test_claim_advances_watermark_once_per_slot_and_records_in_flight(redis_server):
    async def go():
        a = store(redis_server)
        e = await a.acquire()
        got = await a.claim(e, [Claim("x", 10), Claim("y", 10), Claim("z", 10, SKIP)])
        assert got == [True, True, True]
        # Older or equal slots are refused, a newer one is taken; a skip sent again at the
        # watermark is the leader's own (its first reply was lost).
        assert await a.claim(e, [Claim("x", 9), Claim("y", 11), Claim("z", 10, SKIP), Claim("z", 9, SKIP)]) == [0, 1, 1, 0]
        state = await a.load([])
        assert state.watermarks == {"x": 10, "y": 11, "z": 10}
        assert {(f.job, f.slot, f.epoch, f.attempt) for f in state.inflight} == {("x", 10, e, 1), ("y", 10, e, 1), ("y", 11, e, 1)}
        await a.finish([Finished(Claim("y", 10), e, Outcome("ok", 1, 0.01, time.time(), 200))])
        state = await a.load([])
        assert {(f.job, f.slot) for f in state.inflight} == {("x", 10), ("y", 11)}
        await a.close()

    run(go())
    job = redis_server.client().hgetall("{t}:job:y")
    assert job["status"] == "ok" and job["http_status"] == "200" and job["consecutive_failures"] == "0"


def test_retried_claim_of_the_same_epoch_is_still_ours(redis_server):
    """A claim whose reply was lost is retried; the retry must not lose the slot."""

    async def go():
        a = store(redis_server)
        e = await a.acquire()
        assert await a.claim(e, [Claim("x", 10)]) == [True]
        assert await a.claim(e, [Claim("x", 10)]) == [True]
        await a.finish([Finished(Claim("x", 10), e, Outcome("ok", 1, 0.01, time.time(), 200))])
        assert await a.claim(e, [Claim("x", 10)]) == [False]  # finished: never again
        await a.close()

    run(go())


def test_redelivery_takes_over_an_in_flight_record_with_next_attempt(redis_server):
    async def go():
        a, b = store(redis_server, replica_id="a"), store(redis_server, replica_id="b")
        ea = await a.acquire()
        await a.claim(ea, [Claim("x", 10)])
        redis_server.client().delete("{t}:leader")
        eb = await b.acquire()
        assert eb == ea + 1
        state = await b.load([])
        (f,) = state.inflight
        assert (f.job, f.slot, f.epoch, f.attempt) == ("x", 10, ea, 1)
        assert await b.claim(eb, [Claim("x", 10, REDELIVER, 2)]) == [True]
        assert await b.claim(eb, [Claim("x", 11, REDELIVER, 2)]) == [False]  # nothing in flight there
        (f,) = (await b.load([])).inflight
        assert (f.epoch, f.attempt) == (eb, 2)
        await a.close(), await b.close()

    run(go())


def calls(client) -> dict[str, int]:
    """Commands by name, as counted by the server (INFO commandstats)."""
    return {k[len("cmdstat_"):]: v["calls"] for k, v in client.info("commandstats").items()}


def delta(before: dict[str, int], after: dict[str, int], names) -> int:
    return sum(after.get(n, 0) - before.get(n, 0) for n in names)


def test_claims_for_one_moment_are_one_command(redis_server):
    client = redis_server.client()

    async def go():
        a = store(redis_server)
        e = await a.acquire()
        await a.claim(e, [Claim("warm", 1)])  # loads the script
        before = calls(client)
        assert await a.claim(e, [Claim(f"job{i}", 5) for i in range(500)]) == [True] * 500
        after = calls(client)
        await a.close()
        return delta(before, after, ["evalsha", "eval"])

    assert run(go()) == 1


@pytest.mark.parametrize("jobs", [1, 2000])
def test_loading_state_costs_the_same_whatever_the_number_of_jobs(redis_server, jobs):
    client = redis_server.client()

    async def go():
        a = store(redis_server)
        e = await a.acquire()
        await a.claim(e, [Claim(f"job{i}", 5) for i in range(jobs)])
        await a.load([])  # warm the connection
        before = calls(client)
        state = await a.load([])
        after = calls(client)
        await a.close()
        assert len(state.watermarks) == jobs
        return sum(after.values()) - sum(before.values()) - 1  # less the INFO that read `before`

    assert run(go()) == 3  # HGETALL slots, HGETALL inflight, SMEMBERS paused


def test_release_wakes_a_waiting_standby_at_once(redis_server):
    async def go():
        a, b = store(redis_server, replica_id="a"), store(redis_server, replica_id="b")
        first = await a.acquire()
        await b.wait_released(0.05)  # subscribes
        waiter = asyncio.create_task(b.wait_released(30))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await a.release()
        await asyncio.wait_for(waiter, 10)
        woke_after = time.monotonic() - started
        assert await b.acquire() == first + 1
        await a.close(), await b.close()
        return woke_after

    assert run(go()) < 10  # woken by the release message, not by the 30 s timeout


def test_unreachable_redis_raises_store_unavailable_quickly(redis_server):
    async def go():
        a = store(redis_server)
        await a.acquire()
        redis_server.pause()
        try:
            with pytest.raises(StoreUnavailable):
                await a.renew()
        finally:
            redis_server.resume()
        await a.close()

    run(go())


def test_keys_stay_in_the_namespace(redis_server):
    async def go():
        a = store(redis_server, namespace="ns1")
        e = await a.acquire()
        await a.claim(e, [Claim("x", 10)])
        await a.finish([Finished(Claim("x", 10), e, Outcome("failed", 1, 0.01, time.time(), 503, "HTTP 503"))])
        await a.release()
        await a.close()

    run(go())
    keys = redis_server.client().keys("*")
    assert keys and all(k.startswith("{ns1}:") for k in keys)


def test_outcomes_of_many_fires_are_one_command_and_count_failure_streaks(redis_server):
    client = redis_server.client()

    async def go():
        a = store(redis_server)
        e = await a.acquire()
        await a.claim(e, [Claim("x", 10), Claim("y", 10), Claim("x", 11)])
        await a.finish([])  # nothing to write: no command
        await a.finish([Finished(Claim("warm", 1), e, Outcome("ok", 1, 0.01, 99.0, 200))])  # loads the script
        before = calls(client)
        fails = await a.finish([
            Finished(Claim("x", 10), e, Outcome("failed", 2, 0.5, 100.0, 500, "HTTP 500")),
            Finished(Claim("y", 10), e, Outcome("ok", 1, 0.01, 101.0, 204)),
            Finished(Claim("x", 11), e, Outcome("failed", 1, 0.5, 102.0, None, "timeout")),
        ])
        after = calls(client)
        assert fails == [1, 0, 2]
        assert (await a.load(["x", "y"])).inflight == []
        await a.close()
        return delta(before, after, ["evalsha", "eval"])

    assert run(go()) == 1
    x = client.hgetall("{t}:job:x")
    assert x["status"] == "failed" and x["error"] == "timeout" and x["consecutive_failures"] == "2" and x["slot"] == "11"
    assert client.hget("{t}:job:y", "last_success_at") == "101.000"


def test_job_records_load_in_chunks_of_one_script_call_each_and_a_wrong_typed_one_is_set_aside(redis_server, monkeypatch):
    from scheduler.store.redis import reads as redis_reads

    monkeypatch.setattr(redis_reads, "LOAD_CHUNK", 7)
    client = redis_server.client()
    names = [f"job{i}" for i in range(30)]
    for i in range(0, 30, 4):
        client.hset(f"{{t}}:job:job{i}", mapping={"last_success_at": str(1_700_000_000 + i), "consecutive_failures": str(i)})
    client.set("{t}:job:job13", "not a hash")  # a stray write: the wrong type

    async def go():
        a = store(redis_server)
        await a.load(names)  # loads the script
        before = calls(client)
        state = await a.load(names)
        after = calls(client)
        await a.close()
        return state, delta(before, after, ["evalsha", "eval"])

    state, commands = run(go())
    assert {job: h.consecutive_failures for job, h in state.health.items()} == {f"job{i}": i for i in range(0, 30, 4)}
    assert state.health["job8"].last_success_at == 1_700_000_008
    assert commands == 5  # 30 names in chunks of 7: one script call each
    assert client.type("{t}:job:job13") == "none"  # renamed aside
    assert any(key.startswith("{t}:job:job13:quarantined") for key in client.keys("{t}:*"))
