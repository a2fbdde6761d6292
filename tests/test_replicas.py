"""End to end: real daemons, a real redis-server, a real HTTP receiver.

Each test runs replicas of `python -m scheduler run` as processes, injects a fault, and
checks what the receiver got: every slot once as a first attempt, no hole between
consecutive slots, and only the leader of the moment firing.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from scheduler import __version__
from scheduler.schedule import slots as sched
from tests.e2e import TOKEN, assert_exactly_once, env_for, fence, log_events, slot_of, standalone_env, the_leader, ts
from tests.support import wait_until

def test_two_replicas_fire_every_slot_exactly_once_with_spec_headers(redis_server, receiver, daemon_factory, tmp_path):
    jobs = {
        "interval": {"SCHEDULE": "every 2s", "URL": "/tasks/interval"},
        "seconds": {"SCHEDULE": "*/3 * * * * *", "URL": "/tasks/seconds", "METHOD": "PUT"},
        "minute": {"SCHEDULE": "* * * * *", "URL": "/tasks/minute"},
    }
    env = env_for(redis_server, receiver, "once", jobs)
    daemons = [daemon_factory(env, cwd=tmp_path) for _ in range(2)]
    leader = the_leader(redis_server, "once", daemons)
    # Run past one minute boundary, then a few more slots of the fast jobs.
    receiver.wait_for(lambda rs: any(r.path == "/tasks/minute" for r in rs), timeout=75)
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 4, timeout=15)
    epoch = int(redis_server.client().get("{once}:epoch"))
    # The standby first: stopped after the leader, it could take the released lease (a new
    # epoch) in the moment before its own SIGTERM.
    for d in sorted(daemons, key=lambda d: d is leader):
        d.terminate()
        assert d.wait(15) == 0

    requests = receiver.requests
    slots = assert_exactly_once(requests, {n: sched.parse(j["SCHEDULE"], "UTC", n) for n, j in jobs.items()})
    assert len(slots["interval"]) >= 3 and len(slots["seconds"]) >= 2 and len(slots["minute"]) >= 1
    assert {fence(r) for r in requests} == {epoch}, "only the one leader fired"
    assert leader.pid in [d.pid for d in daemons]
    assert not log_events([d for d in daemons if d is not leader][0], "fired"), "the standby fired"

    r = next(r for r in requests if r.path == "/tasks/seconds")
    slot = r.header("x-scheduler-slot")
    key = f"seconds@{slot}"
    assert r.method == "PUT"
    assert r.header("authorization") == f"Bearer {TOKEN}"
    assert r.header("idempotency-key") == f'"{key}"'
    assert r.header("x-scheduler-job") == "seconds"
    assert r.header("x-scheduler-attempt") == "1"
    assert r.header("x-scheduler-fencing-token") == str(epoch)
    assert r.header("user-agent") == f"cron-sidecar/{__version__}"
    assert r.header("content-type") == "application/json"
    assert datetime.fromisoformat(slot.replace("Z", "+00:00")).timestamp() % 3 == 0
    assert r.json() == {"job": "seconds", "slot": slot, "attempt": 1, "fencing_token": epoch, "idempotency_key": key}
    assert "webhook-signature" not in r.headers  # no signing secret configured


def test_standby_takes_over_within_ttl_plus_one_retry_after_kill_9(redis_server, receiver, daemon_factory, tmp_path):
    jobs = {"tick": {"SCHEDULE": "every 1s", "URL": "/tick", "CATCHUP": "all"}}
    env = env_for(redis_server, receiver, "crash", jobs)
    daemons = [daemon_factory(env, cwd=tmp_path) for _ in range(2)]
    leader = the_leader(redis_server, "crash", daemons)
    receiver.wait_for_count(3, timeout=15)
    old_epoch = max(fence(r) for r in receiver.requests)
    leader.kill()
    # How long the takeover takes (TTL + one renew period at most) is a figure that
    # bench/failover.py measures; here, only that it happens and loses or repeats no slot.
    receiver.wait_for(lambda rs: [r for r in rs if fence(r) > old_epoch], timeout=15)
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 3, timeout=10)
    survivor = next(d for d in daemons if d is not leader)
    survivor.terminate()
    assert survivor.wait(15) == 0

    assert_exactly_once(receiver.requests, {"tick": sched.parse("every 1s")})


def test_graceful_handover_loses_no_slot_and_is_woken_by_the_release_notice(redis_server, receiver, daemon_factory, tmp_path):
    # A renew period far longer than the wait below: only the release notification can
    # wake the standby in time, so the wait itself shows the notice works.
    jobs = {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}}
    env = env_for(redis_server, receiver, "handover", jobs, lease_ttl="90s", lease_renew="30s")
    daemons = [daemon_factory(env, cwd=tmp_path) for _ in range(2)]
    leader = the_leader(redis_server, "handover", daemons)
    standby = next(d for d in daemons if d is not leader)
    receiver.wait_for_count(3, timeout=15)
    wait_until(lambda: redis_server.client().pubsub_numsub("{handover}:released")[0][1] == 2,
               timeout=10, message="the replicas never subscribed to lease releases")
    leader.terminate()
    assert leader.wait(15) == 0
    wait_until(lambda: log_events(standby, "became leader"), timeout=10, message="standby never took over")
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 3, timeout=10)
    standby.terminate()
    assert standby.wait(15) == 0

    (released,) = log_events(leader, "released the lease")
    (became,) = log_events(standby, "became leader")
    assert ts(became) - ts(released) < 30, "the standby took over by its renew timer, not by the notice"
    assert len({fence(r) for r in receiver.requests}) == 2
    assert_exactly_once(receiver.requests, {"tick": sched.parse("every 1s")})


def test_leader_paused_past_its_lease_never_fires_a_slot_the_new_leader_claimed(
    redis_server, receiver, daemon_factory, tmp_path
):
    jobs = {"tick": {"SCHEDULE": "every 1s", "URL": "/tick", "CATCHUP": "all"}}
    env = env_for(redis_server, receiver, "pause", jobs)
    daemons = [daemon_factory(env, cwd=tmp_path) for _ in range(2)]
    leader = the_leader(redis_server, "pause", daemons)
    receiver.wait_for_count(3, timeout=15)
    old_epoch = max(fence(r) for r in receiver.requests)
    leader.pause()
    try:
        receiver.wait_for(lambda rs: sum(fence(r) > old_epoch for r in rs) >= 2, timeout=15)
    finally:
        leader.resume()
    wait_until(lambda: log_events(leader, "stepped down") or log_events(leader, "claim refused: the lease is not ours"),
               timeout=10, message="the paused leader did not notice it lost the lease")
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 3, timeout=10)
    for d in daemons:
        d.terminate()
    for d in daemons:
        assert d.wait(15) == 0

    requests = receiver.requests
    new_slots = {slot_of(r) for r in requests if fence(r) > old_epoch and r.header("x-scheduler-attempt") == "1"}
    stale = [r for r in requests if fence(r) == old_epoch and slot_of(r) in new_slots]
    assert not stale, f"the old leader fired slots the new leader claimed: {[slot_of(r) for r in stale]}"
    assert_exactly_once(requests, {"tick": sched.parse("every 1s")})


def test_leader_survives_a_redis_outage_and_resumes(redis_factory, receiver, daemon_factory, tmp_path):
    redis = redis_factory(appendonly=True)
    jobs = {"tick": {"SCHEDULE": "every 1s", "URL": "/tick", "CATCHUP": "all"}}
    env = env_for(redis, receiver, "outage", jobs)
    daemon = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for_count(2, timeout=15)
    redis.kill()
    daemon.wait_for_output("unreachable", timeout=15)
    quiet = len(receiver.requests)
    wait_until(lambda: log_events(daemon, "stepped down"), timeout=10, message="leader kept going without Redis")
    stopped = len(receiver.requests)
    assert stopped - quiet <= 4  # only what was already claimed before the lease ran out
    assert daemon.running, "the daemon must not exit while Redis is down"
    redis.restart()
    receiver.wait_for(lambda rs: len(rs) >= stopped + 3, timeout=20)
    daemon.terminate()
    assert daemon.wait(15) == 0
    firsts = Counter(r.header("idempotency-key") for r in receiver.requests if r.header("x-scheduler-attempt") == "1")
    assert max(firsts.values()) == 1


def test_two_standalone_replicas_on_one_state_file_never_both_fire(receiver, daemon_factory, tmp_path):
    env = standalone_env(receiver, tmp_path / "state.db", {"tick": {"SCHEDULE": "every 1s", "URL": "/tick", "CATCHUP": "all"}})
    a = daemon_factory(env, cwd=tmp_path)
    a.wait_for_output("became leader", timeout=10)
    b = daemon_factory(env, cwd=tmp_path)
    b.wait_for_output("starting", timeout=10)
    receiver.wait_for_count(4, timeout=15)
    assert not log_events(b, "became leader"), "the second replica took the lock while the first held it"
    a.kill()
    b.wait_for_output("became leader", timeout=10)
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 3, timeout=10)
    b.terminate()
    assert b.wait(15) == 0
    first, second = sorted({fence(r) for r in receiver.requests})
    assert second == first + 1
    assert_exactly_once(receiver.requests, {"tick": sched.parse("every 1s")})


def leading(daemon) -> bool:
    """Whether the daemon's log says it leads now: it became leader more often than it stepped down."""
    return len(log_events(daemon, "became leader")) > len(log_events(daemon, "stepped down"))


@pytest.mark.parametrize("b_waits", [False, True], ids=["b-started-after", "b-standing-by"])
def test_a_deleted_lock_file_never_makes_two_standalone_leaders(receiver, daemon_factory, tmp_path, b_waits):
    """The lock file is deleted under a running leader: the leader notices (at its next
    renewal, or when its claim is refused) and steps down; whichever replica leads then, no
    two ever fire at once."""
    state = tmp_path / "state.db"
    env = standalone_env(receiver, state, {"tick": {"SCHEDULE": "every 1s", "URL": "/tick", "CATCHUP": "all"}},
                         lease_ttl="2s", lease_renew="500ms")
    a = daemon_factory(env, cwd=tmp_path)
    a.wait_for_output("became leader", timeout=10)
    receiver.wait_for_count(2, timeout=10)
    b = None
    if b_waits:
        b = daemon_factory(env, cwd=tmp_path)
        b.wait_for_output("standing by", timeout=10)
    (tmp_path / "state.db.lock").unlink()
    if b is None:
        b = daemon_factory(env, cwd=tmp_path)
    b.wait_for_output("starting", timeout=10)
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 6, timeout=20)
    assert a.running and b.running
    assert [leading(a), leading(b)].count(True) == 1, "not exactly one replica leads"
    tokens = [fence(r) for r in receiver.requests]
    assert tokens == sorted(tokens), f"fencing tokens went backwards: {tokens}"
    keys = Counter(r.header("idempotency-key") for r in receiver.requests)
    assert max(keys.values()) == 1, f"slots delivered twice: {[k for k, n in keys.items() if n > 1]}"
    assert_exactly_once(receiver.requests, {"tick": sched.parse("every 1s")})
    for daemon in (a, b):
        daemon.terminate()
        assert daemon.wait(15) == 0
