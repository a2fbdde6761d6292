"""Redis Cluster for real: three masters with a replica each (harness/redis_cluster.py),
started once for the module, and daemons pointed at a node that does not hold the
namespace's hash slot, so every call they make is first answered MOVED.

What must hold: the URL of any node is enough (the store finds the cluster and follows
the slot); the CLI reads and triggers through the same node; a `kill -9` of the slot's
master is followed to the promoted replica, and no slot reaches the receiver twice as a
first attempt; a plain client told MOVED says "cluster" instead of retrying in silence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from harness.redis_cluster import RedisCluster
from scheduler import schedule as sched
from scheduler.model import Claim
from scheduler.store.redis.store import RedisStore
from scheduler.store.protocol import StoreUnavailable
from tests.e2e import assert_exactly_once, env_for, fence
from tests.support import run_cli

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
                                reason="redis-server and redis-cli are not on PATH")


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as c:
        yield c


def daemon_env(url: str, receiver, namespace: str) -> dict[str, str]:
    """e2e's environment of a replica, on the cluster's URL, with an every-second job."""
    return env_for(SimpleNamespace(url=url), receiver, namespace,
                   {"tick": {"SCHEDULE": "every 1s", "URL": "/tick", "CATCHUP": "all"}})


def test_a_daemon_pointed_at_a_node_without_the_slot_leads_and_fires(cluster, receiver, daemon_factory, tmp_path):
    ns = "cl-fires"
    node = cluster.not_owner("{%s}:leader" % ns)
    env = daemon_env(node.url, receiver, ns)
    daemon = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for_count(3, timeout=20)
    assert "Redis Cluster" in daemon.output()
    owner = cluster.owner("{%s}:leader" % ns)
    assert cluster.client(owner).get("{%s}:leader" % ns), "the lease lives on the slot's master"

    status = run_cli(["status", "--json"], env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["leader"] and state["epoch"], state
    trigger = run_cli(["trigger", "tick", "--id", "by-hand-1"], env, cwd=tmp_path)
    assert trigger.returncode == 0, trigger.stderr
    manual = receiver.wait_for(lambda rs: [r for r in rs if "manual" in (r.header("idempotency-key") or "")],
                               timeout=15, message="the manual fire")
    assert "by-hand-1" in manual[0].header("idempotency-key")
    daemon.terminate()
    assert daemon.wait(15) == 0, daemon.output()
    assert_exactly_once([r for r in receiver.requests if "manual" not in r.header("idempotency-key")],
                        {"tick": sched.parse("every 1s")})


def test_claims_wait_for_the_slot_masters_replica(cluster):
    """A claim counts only once the slot master's replica has it (WAIT on the connection
    that carried it), as with Sentinel: the replica that a failover promotes has it."""
    ns = "cl-wait"

    async def main() -> None:
        store = RedisStore(cluster.not_owner("{%s}:leader" % ns).url, ns, 3.0)
        try:
            await store.open()
            assert store.cluster
            epoch = await store.acquire()
            assert epoch is not None and store.wait_replicas == 1
            assert await store.claim(epoch, [Claim("a", 100), Claim("b", 100)]) == [1, 1]
            replica = cluster.replica_of(cluster.owner("{%s}:leader" % ns))
            assert cluster.replica_client(replica).hgetall("{%s}:slots" % ns) == {"a": "100", "b": "100"}
            assert sorted((await store.load(["a", "b"])).watermarks.items()) == [("a", 100), ("b", 100)]
        finally:
            await store.close()

    asyncio.run(main())


def test_the_state_commands_work_through_a_node_without_the_slot(cluster):
    """status, history, pause, trigger, gc, quarantine and the checks: each reads or
    writes the one slot, whichever node the URL names (scans go to every master)."""
    ns = "cl-state"

    async def main() -> None:
        store = RedisStore(cluster.not_owner("{%s}:leader" % ns).url, ns, 3.0)
        try:
            await store.open()
            assert await store.ping()
            epoch = await store.acquire()
            assert epoch is not None
            assert await store.claim(epoch, [Claim("old", 100)]) == [1]
            assert await store.set_paused("old", True)
            assert (await store.status(["old"]))["paused"] == {"old"}
            assert await store.history("old") == []
            assert await store.check_format() is None
            assert isinstance(await store.warnings(), list)
            owner = cluster.client(cluster.owner("{%s}:leader" % ns))
            owner.hset("{%s}:slots" % ns, "stray", "not-a-slot")
            await store.load(["old"])  # sets the unreadable watermark aside
            assert [q["record"] for q in await store.quarantined()] == ["{%s}:slots stray" % ns]
            owner.hset("{%s}:slots" % ns, "gone", "100")
            assert await store.gc(["old"], 0.0) == ["watermark gone"]  # the script runs on the slot's master
        finally:
            await store.close()

    asyncio.run(main())


def test_a_release_wakes_a_standby_subscribed_through_the_cluster(cluster):
    """The lease's release is a PUBLISH inside a script on the slot's master; a standby
    subscribed there (through a node without the slot) hears it at once."""
    ns = "cl-wake"
    url = cluster.not_owner("{%s}:leader" % ns).url

    async def main() -> None:
        a, b = RedisStore(url, ns, 30.0, replica_id="a"), RedisStore(url, ns, 30.0, replica_id="b")
        try:
            await a.open(), await b.open()
            assert await a.acquire() is not None
            await b.wait_released(0.05)  # subscribes
            waiter = asyncio.create_task(b.wait_released(30))
            await asyncio.sleep(0.1)
            await a.release()
            await asyncio.wait_for(waiter, 5)  # well before the 30 s a missed message would take
            assert await b.acquire() is not None
        finally:
            await a.close(), await b.close()

    asyncio.run(main())


def test_a_plain_client_answered_moved_says_cluster(cluster, caplog):
    """A user that may not ask INFO or CLUSTER INFO leaves the store unable to tell; the
    MOVED it then gets is named in one clear line instead of a silent retry."""
    ns = "cl-plain"
    node = cluster.not_owner("{%s}:leader" % ns)
    cluster.client(node).execute_command("ACL", "SETUSER", "blind", "on", ">pw-blind", "~*", "&*", "+@all",
                                         "-info", "-cluster")
    url = f"redis://blind:pw-blind@{node.host}:{node.port}/0"

    async def main() -> None:
        store = RedisStore(url, ns, 3.0)
        try:
            await store.open()
            assert not store.cluster  # taken for a plain server: it could not ask
            with caplog.at_level(logging.ERROR, logger="scheduler.redis"):
                for _ in range(2):
                    with pytest.raises(StoreUnavailable):
                        await store.acquire()
        finally:
            await store.close()

    asyncio.run(main())
    said = [r for r in caplog.records if "Redis Cluster" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]


def test_the_daemon_follows_a_killed_slot_master_to_its_replica(cluster, receiver, daemon_factory, tmp_path):
    """kill -9 of the master that holds the namespace's slot, with a leader and a standby
    running: the replica is promoted, the fires go on from it, and every slot reaches the
    receiver once as attempt 1 (CATCHUP=all makes up the slots of the gap)."""
    ns = "cl-failover"
    key = "{%s}:leader" % ns
    owner = cluster.owner(key)
    replica = cluster.replica_of(owner)
    url = cluster.not_owner(key).url
    daemons = [daemon_factory(daemon_env(url, receiver, ns), cwd=tmp_path) for _ in range(2)]
    receiver.wait_for_count(3, timeout=20)
    old_epoch = max(fence(r) for r in receiver.requests)

    owner.kill()
    killed_at = time.time()
    cluster.wait_promoted(replica)
    promoted_at = time.time()
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 3 and rs[-1].received_at > promoted_at, timeout=20,
                      message="three more fires after the promotion")
    for d in daemons:
        d.terminate()
    for d in daemons:
        assert d.wait(15) == 0, d.output()

    requests = receiver.requests
    assert cluster.client(replica).hget("{%s}:slots" % ns, "tick"), "the watermark lives on the promoted master"
    assert max(fence(r) for r in requests) >= old_epoch
    assert_exactly_once(requests, {"tick": sched.parse("every 1s")})
    times = sorted(r.received_at for r in requests)
    gap = max(b - a for a, b in zip(times, times[1:]))
    print(f"cluster failover: promoted {promoted_at - killed_at:.2f}s after the kill; longest gap between "
          f"fires {gap:.2f}s; {len(requests)} requests, epochs {sorted({fence(r) for r in requests})}")
