"""Redis Sentinel for real: a master, a replica and three sentinels (all from the same
`redis-server` binary, on loopback ports), a daemon that finds its master through the
sentinels, and a failover by `kill -9` of the master while the daemon fires every second.

What must hold: the daemon follows the promotion and keeps firing, and no slot reaches the
receiver twice as a first attempt (a fire cut off by the failover may come again, but only
as a redelivery with the same Idempotency-Key and a higher attempt number).
"""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from scheduler.schedule import slots as sched
from scheduler.store.redis.store import RedisStore
from tests.e2e import TOKEN, assert_exactly_once, fence, slot_of
from harness.sentinel import Sentinel
from tests.support import RedisServer, wait_until

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not on PATH")

MASTER_NAME = "mymaster"
QUORUM = 2


@pytest.fixture
def sentinel_setup():
    """(master, replica, [sentinel x3]) with the replica in sync and every sentinel aware
    of the replica and of the two other sentinels, so a failover can be agreed on."""
    started: list = []
    try:
        master = RedisServer()
        started.append(master)
        replica = RedisServer(extra_args=["--replicaof", master.host, str(master.port)])
        started.append(replica)
        wait_until(lambda: replica.client().info("replication").get("master_link_status") == "up",
                   timeout=10, message="replica in sync with the master")
        sentinels = []
        for _ in range(3):
            s = Sentinel(master.port, master_name=MASTER_NAME, quorum=QUORUM, parallel_syncs=1)
            started.append(s)
            sentinels.append(s)

        def ready() -> bool:
            for s in sentinels:
                info = s.master_info()
                if int(info.get("num-slaves", 0)) < 1 or int(info.get("num-other-sentinels", 0)) < 2:
                    return False
            return True

        wait_until(ready, timeout=15, interval=0.2, message="sentinels know the replica and each other")
        yield master, replica, sentinels
    finally:
        for thing in started:  # pytest shows this output when the test fails
            if isinstance(thing, Sentinel):
                print(f"----- sentinel on port {thing.port} -----\n{thing.log()}")
        for thing in reversed(started):
            thing.close()


def daemon_env(sentinels, receiver) -> dict[str, str]:
    return {
        "SCHEDULER_REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in sentinels),
        "SCHEDULER_REDIS_SENTINEL_MASTER": MASTER_NAME,
        "SCHEDULER_API_URL": receiver.url,
        "SCHEDULER_API_TOKEN": TOKEN,
        "SCHEDULER_NAMESPACE": "sentinel",
        "SCHEDULER_LEASE_TTL": "3s",
        "SCHEDULER_LEASE_RENEW": "1s",
        "SCHEDULER_HTTP_PORT": "0",
        "SCHEDULER_LOG_FORMAT": "json",
        "SCHEDULER_SHUTDOWN_GRACE": "5s",
        "SCHEDULER_JOB_TICK_SCHEDULE": "every 1s",
        "SCHEDULER_JOB_TICK_URL": "/tick",
        "SCHEDULER_JOB_TICK_CATCHUP": "all",
    }


def test_daemon_follows_a_sentinel_failover_and_keeps_firing(sentinel_setup, receiver, daemon_factory, tmp_path):
    master, replica, sentinels = sentinel_setup
    assert sentinels[0].master_addr() == ("127.0.0.1", master.port)
    env = daemon_env(sentinels, receiver)
    daemon = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for_count(3, timeout=15)
    # The lease lives on the master the sentinels named, and reached the replica.
    assert master.client().get("{sentinel}:leader")
    wait_until(lambda: replica.client().get("{sentinel}:leader"), timeout=5, message="lease replicated")
    old_epoch = max(fence(r) for r in receiver.requests)

    master.kill()  # kill -9
    killed_at = time.time()
    promoted = wait_until(
        lambda: sentinels[0].master_addr() == ("127.0.0.1", replica.port),
        timeout=20, interval=0.1, message="sentinel promoted the replica",
    )
    assert promoted
    promoted_at = time.time()
    assert replica.client().info("replication")["role"] == "master"

    # It keeps firing after the promotion, from the new master.
    after = receiver.wait_for(
        lambda rs: [r for r in rs if r.received_at > promoted_at], timeout=15,
        message="a fire after the promotion",
    )
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 3, timeout=10, message="three more fires after the promotion")
    daemon.terminate()
    assert daemon.wait(15) == 0, daemon.output()

    requests = receiver.requests
    assert after
    assert replica.client().hget("{sentinel}:slots", "tick"), "the watermark lives on the new master"
    assert max(fence(r) for r in requests) > old_epoch, "the daemon took a new epoch on the new master"
    assert all(r.header("authorization") == f"Bearer {TOKEN}" for r in requests)
    # Every slot once as a first attempt, and no hole: missed slots were made up (CATCHUP=all).
    assert_exactly_once(requests, {"tick": sched.parse("every 1s")})
    print(f"failover: killed at {killed_at:.3f}, promoted after {promoted_at - killed_at:.2f}s, "
          f"{len(requests)} requests, epochs {sorted({fence(r) for r in requests})}")


def test_planned_sentinel_failover_repeats_no_slot(sentinel_setup, receiver, daemon_factory, tmp_path):
    """SENTINEL FAILOVER promotes the replica while the old master still accepts writes
    until the sentinels announce the switch; a claim written there in that window is
    lost with the old master's data. With Sentinel every claim waits for a replica's
    acknowledgement (WAIT 1) before its fire goes out, so such a claim never fires: no slot
    reaches the target twice as attempt 1."""
    master, replica, sentinels = sentinel_setup
    daemons = [daemon_factory(daemon_env(sentinels, receiver), cwd=tmp_path) for _ in range(2)]
    receiver.wait_for_count(3, timeout=15)
    with sentinels[0].client() as c:
        assert c.execute_command("SENTINEL", "FAILOVER", MASTER_NAME) in (True, "OK")
    started = time.time()
    wait_until(lambda: sentinels[0].master_addr() == ("127.0.0.1", replica.port),
               timeout=20, interval=0.1, message="sentinel promoted the replica")
    promoted_s = time.time() - started
    wait_until(lambda: master.client().info("replication")["role"] == "slave",
               timeout=30, interval=0.2, message="sentinel turned the old master into a replica")
    demoted_s = time.time() - started
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 3, timeout=15, message="fires after the old master was demoted")
    for d in daemons:
        d.terminate()
    for d in daemons:
        assert d.wait(15) == 0, d.output()
    requests = receiver.requests
    print(f"planned failover: promoted after {promoted_s:.2f}s, old master demoted after {demoted_s:.2f}s; "
          f"epochs {sorted({fence(r) for r in requests})}")
    firsts: dict[str, list] = {}
    for r in requests:
        if r.header("x-scheduler-attempt") == "1":
            firsts.setdefault(r.header("idempotency-key"), []).append(r)
    repeated = {k: rs for k, rs in firsts.items() if len(rs) > 1}
    assert not repeated, f"slots fired twice as attempt 1: {sorted(repeated)}"
    slots = sorted({slot_of(r) for r in requests})
    assert slots == list(range(slots[0], slots[-1] + 1)), "a slot was lost"


def test_a_connection_busy_when_the_master_moves_is_not_used_again(sentinel_setup):
    """A claim waits up to 500 ms for a replica (WAIT), holding its pooled connection. When
    the master moves meanwhile, the pool closes only its idle connections: the busy one,
    still connected to the old master (which accepts writes until the sentinels demote it),
    must not go back into service when its call ends. Used again, it would send a new
    leadership's reads and claims to the old master while other connections reach the new
    one: a batch planned from one master's watermark, claimed on the other, advances the
    watermark past slots whose claims exist only on the old master, and those are lost."""
    master, replica, sentinels = sentinel_setup

    async def main() -> None:
        store = RedisStore(None, "moved", 3.0, sentinels=[("127.0.0.1", s.port) for s in sentinels],
                           sentinel_master=MASTER_NAME)
        try:
            assert not await store.replicas.master_moved()
            pool = store.redis.connection_pool
            busy = await pool.get_connection()
            assert busy.port == master.port
            with sentinels[0].client() as c:
                assert c.execute_command("SENTINEL", "FAILOVER", MASTER_NAME) in (True, "OK")
            moved = lambda: all(s.master_addr() == ("127.0.0.1", replica.port) for s in sentinels)  # noqa: E731
            await asyncio.to_thread(wait_until, moved, timeout=20, interval=0.1, message="sentinels promoted the replica")
            assert await store.replicas.master_moved()
            await pool.release(busy)
            for _ in range(3):
                port = int((await store.redis.config_get("port"))["port"])
                assert port == replica.port, "a command went to the old master"
        finally:
            await store.close()

    asyncio.run(main())
