"""Store records are untrusted input (SPEC 3, rule 8): against a real redis-server, whatever
a key of the namespace holds, replicas keep firing and `status` keeps answering."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scheduler.model import Claim, Finished, Outcome, TriggerRequest
from scheduler.store.redis.store import RedisStore
from scheduler.store.protocol import StoreUnavailable
from tests.e2e import env_for
from tests.support import run_cli, wait_until

NS = "{hostile}"


def run(coro):
    return asyncio.run(coro)


def fires_of(receiver, path):
    return [r for r in receiver.requests if r.path == path]


def test_takeover_survives_unreadable_in_flight_records_and_sets_them_aside(redis_server, receiver, daemon_factory):
    """An id with `@` (queued by an older version), a slot that is no number, a record that
    is no JSON: today every replica that takes over exits; they must be set aside."""
    client = redis_server.client()
    client.hset(f"{NS}:inflight", mapping={
        "tick@manual:a@b": json.dumps({"epoch": 5, "attempt": 1, "slot": 100, "claimed_at": 1}),
        "tick@notanumber": json.dumps({"epoch": 5, "attempt": 1, "slot": 100, "claimed_at": 1}),
        "garbage": "not json",
        "tick@123": "[1, 2",
    })
    client.rpush(f"{NS}:trigger", "{broken", json.dumps({"id": "x:y", "job": "tick", "requested_at": 1}))
    env = env_for(redis_server, receiver, "hostile", {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}})
    daemon = daemon_factory(env)
    receiver.wait_for(lambda rs: len(fires_of(receiver, "/tick")) >= 2, timeout=20)
    assert daemon.running
    status = run_cli(["status", "--json"], env)
    assert status.returncode == 0, status.stderr
    assert run_cli(["trigger", "tick"], env).returncode == 0
    receiver.wait_for(lambda rs: any(r.header("x-scheduler-trigger") or "manual" in (r.header("idempotency-key") or "")
                                     for r in fires_of(receiver, "/tick")), timeout=20)
    quarantined = client.hgetall(f"{NS}:quarantine")
    assert {f"{NS}:inflight tick@manual:a@b", f"{NS}:inflight tick@notanumber", f"{NS}:inflight garbage",
            f"{NS}:inflight tick@123"} <= set(quarantined)
    assert "unreadable record set aside" in daemon.output()
    assert "Traceback" not in daemon.output()


def test_stray_records_written_mid_run_do_not_stop_the_jobs(redis_server, receiver, daemon_factory):
    client = redis_server.client()
    env = env_for(redis_server, receiver, "hostile", {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}})
    daemon = daemon_factory(env)
    receiver.wait_for(lambda rs: len(fires_of(receiver, "/tick")) >= 1, timeout=20)
    raw = redis_server.client(decode_responses=False)
    client.hset(f"{NS}:slots", "other", "not a number")
    client.hset(f"{NS}:job:tick", "consecutive_failures", "lots")
    client.rpush(f"{NS}:trigger", "[]")
    client.delete(f"{NS}:paused")
    client.set(f"{NS}:paused", "a string where a set belongs")
    raw.hset(f"{NS}:inflight".encode(), b"\xff\xfe@1", b"\x80\x81")
    seen = len(fires_of(receiver, "/tick"))
    receiver.wait_for(lambda rs: len(fires_of(receiver, "/tick")) >= seen + 3, timeout=20)
    assert daemon.running
    assert run_cli(["status"], env).returncode == 0
    assert client.type(f"{NS}:paused") in ("set", "none")
    assert "Traceback" not in daemon.output()


keys = st.sampled_from(["leader", "epoch", "meta", "slots", "inflight", "paused", "trigger", "triggered",
                        "job:tick", "history:tick", "quarantine"])
junk = st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode),
                 st.sampled_from([b"tick@1", b"tick@manual:a@b", b"{}", b"[]", b"null", b"-1", b"1e400", b"nan",
                                  b'{"epoch": "x", "attempt": 0, "slot": -5}', b'{"id": 1, "job": []}']))
writes = st.lists(st.tuples(keys, st.sampled_from(["string", "hash", "list", "set"]), junk, junk), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=writes)
@example(writes=[("epoch", "string", b"0\x00", b"")])  # a number to Lua's tonumber, not to INCR
@example(writes=[("epoch", "string", b"00", b"")])  # a whole number to a pattern, not to INCR (leading zero)
@example(writes=[("slots", "string", b"x", b"")])
def test_any_bytes_in_any_key_never_stop_a_store_read_or_claim(redis_server, writes):
    raw = redis_server.client(decode_responses=False)
    raw.flushall()
    for key, kind, a, b in writes:
        name = f"{NS}:{key}".encode()
        raw.delete(name)
        if kind == "string":
            raw.set(name, a)
        elif kind == "hash":
            raw.hset(name, a or b"f", b)
        elif kind == "list":
            raw.rpush(name, a, b)
        else:
            raw.sadd(name, a, b)

    async def twice(call):
        """A mistyped key costs one failed call (the store renames it aside); never two."""
        try:
            return await call()
        except StoreUnavailable:
            return await call()

    async def go():
        store = RedisStore(redis_server.url, "hostile", 3.0, replica_id="r")
        try:
            epoch = await twice(store.acquire)
            await twice(lambda: store.load(["tick"]))
            await twice(lambda: store.status(["tick"]))
            await twice(store.pending_triggers)
            await twice(lambda: store.request_trigger(TriggerRequest("t1", "tick", int(time.time()))))
            await twice(lambda: store.set_paused("tick", False))
            if epoch is not None:
                slot = int(time.time())
                result = await twice(lambda: store.claim(epoch, [Claim("tick", slot)]))
                assert result in ([1], [0])
                out = Outcome("ok", 1, 0.01, time.time(), 200)
                await twice(lambda: store.finish([Finished(Claim("tick", slot), epoch, out)]))
                await twice(lambda: store.history("tick"))
            state = await store.load(["tick"])  # a third read finds nothing left to trip on
            assert all(f.job == "tick" or f.job for f in state.inflight)
        finally:
            await store.close()

    run(go())


def test_a_late_outcome_of_a_stale_leader_leaves_the_newer_leaders_redelivery_alone(redis_server):
    async def go():
        a = RedisStore(redis_server.url, "fence", 3.0, replica_id="a")
        b = RedisStore(redis_server.url, "fence", 3.0, replica_id="b")
        ea = await a.acquire()
        slot = int(time.time())
        assert await a.claim(ea, [Claim("x", slot)]) == [1]
        redis_server.client().delete("{fence}:leader")  # a's lease ran out while its call was slow
        eb = await b.acquire()
        assert await b.claim(eb, [Claim("x", slot, "redeliver", 2)]) == [1]
        await a.finish([Finished(Claim("x", slot), ea, Outcome("failed", 1, 9.0, time.time(), 500, "HTTP 500"))])
        state = await b.load(["x"])
        assert [(f.slot, f.epoch, f.attempt) for f in state.inflight] == [(slot, eb, 2)]
        assert redis_server.client().hget("{fence}:job:x", "status") is None  # the stale outcome is not the job's
        await b.finish([Finished(Claim("x", slot), eb, Outcome("ok", 2, 0.1, time.time(), 200))])
        assert (await b.load(["x"])).inflight == []
        await a.close(), await b.close()

    run(go())
    job = redis_server.client().hgetall("{fence}:job:x")
    assert job["status"] == "ok" and job["attempts"] == "2"


def test_a_replica_whose_clock_is_off_does_not_lead_and_a_skewed_leader_steps_down(redis_server):
    async def go():
        ahead = RedisStore(redis_server.url, "skew", 3.0, replica_id="ahead", clock=lambda: time.time() + 20)
        behind = RedisStore(redis_server.url, "skew", 3.0, replica_id="behind", clock=lambda: time.time() - 20)
        assert await ahead.acquire() is None and await behind.acquire() is None
        assert 19 < ahead.clock_skew_s < 21 and -21 < behind.clock_skew_s < -19
        assert not ahead.clock_ok() and not behind.clock_ok()
        assert redis_server.client().get("{skew}:leader") is None

        offset = [0.0]
        drifting = RedisStore(redis_server.url, "skew", 3.0, replica_id="drift", clock=lambda: time.time() + offset[0])
        epoch = await drifting.acquire()
        assert epoch is not None and drifting.clock_ok()
        offset[0] = 20.0
        assert await drifting.renew() is False  # gives the lease up at once
        assert redis_server.client().get("{skew}:leader") is None
        offset[0] = 0.0
        epoch = await drifting.acquire()
        # The claim script goes by the server's clock: a slot 20 s ahead is refused.
        now = int(time.time())
        assert await drifting.claim(epoch, [Claim("x", now + 20), Claim("y", now)]) == [3, 1]
        for s in (ahead, behind, drifting):
            await s.close()

    run(go())


def test_a_newer_state_format_is_refused_with_the_reason(redis_server):
    redis_server.client().hset("{fmt}:meta", mapping={"format": "99", "writer": "9.9.9"})

    async def go():
        store = RedisStore(redis_server.url, "fmt", 3.0, replica_id="r")
        assert await store.acquire() is None
        assert "format 99" in store.format_problem
        await store.close()

    run(go())
    assert redis_server.client().get("{fmt}:leader") is None


def test_dry_run_never_takes_the_lease_claims_or_writes(redis_server, receiver, daemon_factory):
    client = redis_server.client()
    before_slot = int(time.time()) - 3600
    client.hset("{live}:slots", "tick", before_slot)
    env = env_for(redis_server, receiver, "live", {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}})
    snapshot = {k: client.dump(k) for k in client.keys("*")}
    daemon = daemon_factory(env, args=("run", "--dry-run"))
    daemon.wait_for_output("would send", timeout=20)
    wait_until(lambda: daemon.output().count("would send") >= 3, timeout=20)
    assert client.get("{live}:leader") is None
    assert {k: client.dump(k) for k in client.keys("*")} == snapshot
    assert receiver.requests == []


def test_overdue_counts_from_the_persisted_first_sighting_across_leaders(redis_server, receiver, daemon_factory):
    """A job that never succeeded is overdue two periods after a leader first saw it, even
    when the replica that leads now started a moment ago."""
    import urllib.request

    from tests.support import free_port

    receiver.set_handler(lambda r: 500)
    client = redis_server.client()
    client.hset("{od}:slots", "sync", int(time.time()))
    client.hset("{od}:job:sync", mapping={"first_seen_at": time.time() - 1000, "consecutive_failures": 0})
    port = free_port()
    env = env_for(redis_server, receiver, "od", {"sync": {"SCHEDULE": "every 60s", "URL": "/sync", "RETRIES": "0"}},
                  http_port=str(port))
    daemon_factory(env).wait_for_output("became leader", timeout=20)

    def overdue() -> str:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return next((line for line in body.splitlines() if line.startswith("cron_sidecar_job_overdue{")), "")

    wait_until(lambda: overdue() and float(overdue().rsplit(" ", 1)[1]) == 1.0, timeout=10)
    report = json.loads(run_cli(["status", "--json"], env).stdout)
    assert report["jobs"][0]["overdue"] is True


def test_an_unreadable_watermark_falls_back_to_the_last_claimed_slot(redis_server):
    """CATCHUP still makes up a missed slot when the watermark was overwritten with junk:
    the last outcome's slot stands in for it."""
    client = redis_server.client()
    client.hset("{wm}:slots", "five", "junk")
    client.hset("{wm}:job:five", mapping={"status": "ok", "slot": 1_700_000_000})

    async def go():
        store = RedisStore(redis_server.url, "wm", 3.0, replica_id="r")
        state = await store.load(["five"])
        await store.close()
        return state

    assert run(go()).watermarks == {"five": 1_700_000_000}
    assert client.hget("{wm}:slots", "five") == "1700000000"  # the stand-in replaces the junk
    assert client.hexists("{wm}:quarantine", "{wm}:slots five")  # which is kept aside


def test_status_reading_an_unreadable_watermark_first_leaves_the_stand_in_for_the_leader(redis_server):
    """Whoever meets the junk first (here `status`, as an operator would run it) leaves the
    stand-in in the store, so the next leader's load still makes up what was missed."""
    client = redis_server.client()
    client.hset("{wm2}:slots", "five", "junk")
    client.hset("{wm2}:job:five", mapping={"status": "ok", "slot": 1_700_000_000})

    async def go():
        store = RedisStore(redis_server.url, "wm2", 3.0, replica_id="r")
        await store.status(["five"])
        state = await store.load(["five"])
        await store.close()
        return state

    assert run(go()).watermarks == {"five": 1_700_000_000}


def test_a_mistyped_key_met_half_way_through_a_claim_loses_no_slot(redis_server):
    """`paused` holding a string: the claim is refused before it writes anything, the key is
    renamed aside, and the claim sent again takes the slot (before, the first job's watermark
    had advanced with no fire recorded, and the slot was lost)."""
    client = redis_server.client()

    async def go():
        store = RedisStore(redis_server.url, "half", 3.0, replica_id="r")
        epoch = await store.acquire()
        client.set("{half}:paused", "a string where a set belongs")
        slot = int(time.time())
        with pytest.raises(StoreUnavailable):
            await store.claim(epoch, [Claim("a", slot), Claim("b", slot)])
        assert client.hget("{half}:slots", "a") is None  # nothing written by the refused claim
        assert await store.claim(epoch, [Claim("a", slot), Claim("b", slot)]) == [1, 1]
        assert {f.job for f in (await store.load(["a", "b"])).inflight} == {"a", "b"}
        await store.close()

    run(go())
