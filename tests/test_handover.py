"""Handover without a stall and crash failover (SPEC 8), end to end: real daemons, a real
redis-server (or one SQLite state file), and a receiver that holds one job's call.

A stopped leader gives the lease up at once: an every-second job goes on under the next
leader while the old one finishes its slow call, which is sent once and recorded. A leader
killed with -9 is noticed by its connections' disappearance, not by its lease running out;
a paused one (its sockets stay open) is waited out.
"""

from __future__ import annotations

import threading
import time

from scheduler.schedule import slots as sched
from tests.e2e import assert_exactly_once, env_for, fence, log_events, standalone_env, the_leader, ts
from tests.support import wait_until

SLOW_HOLD_S = 15.0


def holding(path: str, hold_s: float):
    """A handler that holds the first call to `path` for hold_s, and answers every other at once."""
    first = threading.Event()

    def handle(request):
        if request.path == path and not first.is_set():
            first.set()
            time.sleep(hold_s)  # the slow app itself: the fault under test
        return 200

    return handle


def tick_gaps(requests, after: float) -> float:
    """The longest time between two consecutive arrivals of /tick from `after` on."""
    times = sorted(r.received_at for r in requests if r.path == "/tick" and r.received_at >= after)
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def slow_firsts(requests) -> list:
    firsts = [r for r in requests if r.path == "/slow"]
    key = firsts[0].header("idempotency-key")
    return [r for r in firsts if r.header("idempotency-key") == key]


JOBS = {
    "tick": {"SCHEDULE": "every 1s", "URL": "/tick"},
    "slow": {"SCHEDULE": "every 2s", "URL": "/slow", "TIMEOUT": "25s", "CONCURRENCY": "forbid"},
}


def test_a_stopped_leader_hands_over_at_once_while_its_slow_fire_finishes(redis_server, receiver, daemon_factory,
                                                                          tmp_path):
    receiver.set_handler(holding("/slow", SLOW_HOLD_S))
    env = env_for(redis_server, receiver, "hand", JOBS, shutdown_grace="25s")
    daemons = [daemon_factory(env, cwd=tmp_path) for _ in range(2)]
    leader = the_leader(redis_server, "hand", daemons)
    standby = next(d for d in daemons if d is not leader)
    receiver.wait_for(lambda rs: any(r.path == "/slow" for r in rs), timeout=10)
    receiver.wait_for(lambda rs: sum(r.path == "/tick" for r in rs) >= 2, timeout=10)
    stopped_at = time.time()
    leader.terminate()
    wait_until(lambda: log_events(standby, "became leader"), timeout=10, message="the standby never took over")
    # The old replica finishes its slow call (recorded), then exits; the ticks go on meanwhile.
    assert leader.wait(SLOW_HOLD_S + 15) == 0
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 2, timeout=10)
    standby.terminate()
    assert standby.wait(15) == 0

    requests = receiver.requests
    assert tick_gaps(requests, stopped_at - 1) <= 1.5, "the every-second job stalled during the handover"
    sent = slow_firsts(requests)
    assert len(sent) == 1, f"the slow slot was sent {len(sent)} times"
    slow_fired = [e for e in log_events(leader, "fired") if e.get("job") == "slow"]
    assert slow_fired and slow_fired[0]["outcome"] == "ok", "the old replica did not record its slow fire"
    assert not [e for e in log_events(standby, "redelivering a fire left in flight") if e.get("job") == "slow"]
    assert not redis_server.client().hgetall("{hand}:inflight"), "a fire was left in flight"
    assert_exactly_once([r for r in requests if r.path == "/tick"], {"tick": sched.parse("every 1s")})


def test_a_killed_leader_is_replaced_within_a_second_with_default_lease_settings(redis_server, receiver, daemon_factory,
                                                                                 tmp_path):
    jobs = {"tick": {"SCHEDULE": "every 1s", "URL": "/tick", "CATCHUP": "all"}}
    env = env_for(redis_server, receiver, "kill", jobs, lease_ttl="4s", lease_renew="1s")
    daemons = [daemon_factory(env, cwd=tmp_path) for _ in range(2)]
    leader = the_leader(redis_server, "kill", daemons)
    receiver.wait_for_count(3, timeout=15)
    old_epoch = max(fence(r) for r in receiver.requests)
    # The standby has seen the leader's connections at least once before (handover.py).
    wait_until(lambda: any(c.get("name") == redis_server.client().get("{kill}:leader")
                           for c in redis_server.client().client_list()), timeout=5,
               message="the leader's connections carry no name")
    killed_at = time.time()
    leader.kill()
    first = receiver.wait_for(lambda rs: [r for r in rs if fence(r) > old_epoch], timeout=15)[0]
    survivor = next(d for d in daemons if d is not leader)
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 2, timeout=10)
    survivor.terminate()
    assert survivor.wait(15) == 0

    assert first.received_at - killed_at <= 1.5, f"the next fire came {first.received_at - killed_at:.2f} s after the kill"
    assert log_events(survivor, "the lease holder's connections to Redis are gone: its lease deleted, its fires in "
                                "flight held until it would have stopped sending")
    assert_exactly_once(receiver.requests, {"tick": sched.parse("every 1s")})


def test_a_paused_leader_is_waited_out_and_fires_nothing_twice(redis_server, receiver, daemon_factory, tmp_path):
    jobs = {"tick": {"SCHEDULE": "every 1s", "URL": "/tick", "CATCHUP": "all"}}
    env = env_for(redis_server, receiver, "stop", jobs)
    daemons = [daemon_factory(env, cwd=tmp_path) for _ in range(2)]
    leader = the_leader(redis_server, "stop", daemons)
    standby = next(d for d in daemons if d is not leader)
    receiver.wait_for_count(3, timeout=15)
    leader.pause()
    try:
        expires_at = time.time() + redis_server.client().pttl("{stop}:leader") / 1000
        wait_until(lambda: log_events(standby, "became leader"), timeout=15, message="the standby never took over")
    finally:
        leader.resume()
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 3, timeout=10)
    for d in daemons:
        d.terminate()
    for d in daemons:
        assert d.wait(15) == 0

    (became,) = log_events(standby, "became leader")
    assert ts(became) >= expires_at - 0.05, "the standby took the lease of a paused leader before it ran out"
    assert_exactly_once(receiver.requests, {"tick": sched.parse("every 1s")})


def test_a_stopped_standalone_leader_hands_the_lock_over_at_once(receiver, daemon_factory, tmp_path):
    receiver.set_handler(holding("/slow", 6.0))
    env = standalone_env(receiver, tmp_path / "state.db", JOBS, shutdown_grace="20s")
    a = daemon_factory(env, cwd=tmp_path)
    a.wait_for_output("became leader", timeout=10)
    b = daemon_factory(env, cwd=tmp_path)
    b.wait_for_output("starting", timeout=10)
    receiver.wait_for(lambda rs: any(r.path == "/slow" for r in rs), timeout=10)
    receiver.wait_for(lambda rs: sum(r.path == "/tick" for r in rs) >= 2, timeout=10)
    stopped_at = time.time()
    a.terminate()
    b.wait_for_output("became leader", timeout=10)
    assert a.wait(25) == 0
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 2, timeout=10)
    b.terminate()
    assert b.wait(15) == 0

    requests = receiver.requests
    assert tick_gaps(requests, stopped_at - 1) <= 1.5, "the every-second job stalled during the handover"
    assert len(slow_firsts(requests)) == 1
    assert [e for e in log_events(a, "fired") if e.get("job") == "slow"][0]["outcome"] == "ok"
    assert_exactly_once([r for r in requests if r.path == "/tick"], {"tick": sched.parse("every 1s")})


def test_a_fire_of_a_replica_killed_while_draining_is_redelivered_at_its_deadline(redis_server, receiver,
                                                                                  daemon_factory, tmp_path):
    release = threading.Event()

    def handle(request):
        if request.path == "/slow" and request.header("x-scheduler-attempt") == "1" and not release.is_set():
            release.wait(30)  # the first sender's call never ends: its process is killed meanwhile
        return 200

    receiver.set_handler(handle)
    env = env_for(redis_server, receiver, "drain", JOBS, shutdown_grace="3s")
    daemons = [daemon_factory(env, cwd=tmp_path) for _ in range(2)]
    leader = the_leader(redis_server, "drain", daemons)
    standby = next(d for d in daemons if d is not leader)
    try:
        first = receiver.wait_for(lambda rs: [r for r in rs if r.path == "/slow"], timeout=10)[0]
        key = first.header("idempotency-key")
        stopped_at = time.time()
        leader.terminate()
        wait_until(lambda: log_events(standby, "became leader"), timeout=10, message="the standby never took over")
        leader.kill()  # while it drains, its slow fire still held in the store
        again = receiver.wait_for(
            lambda rs: [r for r in rs if r.header("idempotency-key") == key and r.header("x-scheduler-attempt") != "1"],
            timeout=15)[0]
    finally:
        release.set()
    standby.terminate()
    assert standby.wait(15) == 0

    (became,) = log_events(standby, "became leader")
    assert ts(became) < stopped_at + 3.0, "the standby led only once the old replica's drain was over"
    assert again.header("x-scheduler-attempt") == "2"
    # Held for SHUTDOWN_GRACE (3 s) + 1 s from the handover: never redelivered before.
    assert again.received_at >= stopped_at + 3.0, "redelivered while its owner still held it"
    assert len([r for r in receiver.requests if r.header("idempotency-key") == key]) == 2
