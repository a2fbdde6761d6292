"""Where the Redis master is, and whether claims must wait for a replica of it: with
Sentinel or on a Redis Cluster, a claim counts only once a replica has it (SPEC section 3)."""

from __future__ import annotations

import logging

from . import cluster
from .caller import Caller
from .keys import Keys

log = logging.getLogger("scheduler.redis")


class Replicas:
    def __init__(self, keys: Keys, caller: Caller):
        self.keys, self.caller = keys, caller
        self.wait = 0  # with Sentinel or a cluster: 1 while the master has a live replica

    async def master_moved(self) -> bool:
        """With Sentinel: ask the sentinels where the master is now. After a failover the old
        master can stay up, and a master to the connections it has, for seconds; whatever
        is written there is lost. redis-py asks only when it opens a connection, so the
        lease keeper and the claims ask before they write."""
        caller = self.caller
        if caller.sentinel is None:
            return False
        moved = None
        for pool in (caller.redis.connection_pool, caller.lease_redis.connection_pool):
            before = pool.master_address
            now = await caller.call(pool.get_master_address())  # drops idle connections on a move
            if before is not None and now != before:
                moved = (before, now)
        if moved is None:
            return False
        before, now = moved
        caller.notices.stale = True  # its reader drops it; closing it here would pull it from under that reader
        log.warning("Redis master moved", extra={"from": f"{before[0]}:{before[1]}", "to": f"{now[0]}:{now[1]}"})
        return True

    async def count(self) -> None:
        """Claims wait for a replica only while there is a live one to wait for: after the
        master died and its replica took over, no one is left to ask."""
        caller = self.caller
        if caller.cluster:
            # As with Sentinel: claims wait for a replica of the slot's master only while it
            # has one online; after a failover the promoted replica has none yet.
            info = await caller.call(self._master_replication())
            states = [v.get("state") for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            self.wait = 1 if "online" in states else 0
            return
        if caller.sentinel is None:
            return
        alive = await caller.call(caller.sentinel.discover_slaves(caller.master_name))
        if not alive:
            self.wait = 0
            return
        # Just after a failover the old master rejoins as a replica and copies the new one's
        # data for seconds: connected, not yet online. There is then no replica up to date to
        # lose a claim to, so claims go ahead. A master that lists no replica at all while the
        # sentinels see one is the other case: its replica may be taking over from it.
        info = await caller.call(caller.lease_redis.info("replication"))
        states = [v.get("state") for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        self.wait = 0 if states and "online" not in states else 1

    async def _master_replication(self) -> dict:
        client = self.caller.lease_redis
        target = await cluster.owner_target(client, self.keys.leader)
        return await client.execute_command("INFO", "replication", **target)
