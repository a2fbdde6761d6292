"""The Redis store's lease: acquire, renew and release it with the fencing epoch, the clock
compared with the server's on each call, and with Sentinel, where the master is and whether
claims must wait for a replica (SPEC section 3)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from ... import __version__
from . import scripts
from .notices import Notices

log = logging.getLogger("scheduler.redis")


class LeaseCommands:
    """Mixed into RedisStore, whose keys, clients and scripts these use."""

    # Provided by RedisStore.
    redis: aioredis.Redis
    lease_redis: aioredis.Redis
    _sentinel: Any
    _master_name: str | None
    notices: Notices
    namespace: str
    replica_id: str
    lease_ttl_ms: int
    max_skew_ms: int
    clock: Callable[[], float]
    clock_skew_s: float | None
    format_problem: str | None
    wait_replicas: int
    k_leader: str
    k_epoch: str
    k_meta: str
    k_released: str
    _acquire: Any
    _renew: Any
    _release: Any
    _call: Any
    _publish: Any

    async def _master_moved(self) -> bool:
        """With Sentinel: ask the sentinels where the master is now. After a failover the old
        master can stay up, and a master to the connections it has, for seconds; whatever
        is written there is lost. redis-py asks only when it opens a connection, so the
        lease keeper and the claims ask before they write."""
        if self._sentinel is None:
            return False
        moved = None
        for pool in (self.redis.connection_pool, self.lease_redis.connection_pool):
            before = pool.master_address  # type: ignore[attr-defined]  # a SentinelConnectionPool
            now = await self._call(pool.get_master_address())  # type: ignore[attr-defined]  # drops idle connections on a move
            if before is not None and now != before:
                moved = (before, now)
        if moved is None:
            return False
        before, now = moved
        self.notices.stale = True  # its reader drops it; closing it here would pull it from under that reader
        log.warning("Redis master moved", extra={"from": f"{before[0]}:{before[1]}", "to": f"{now[0]}:{now[1]}"})
        return True

    async def _count_replicas(self) -> None:
        """With Sentinel, claims wait for a replica only while there is a live one to wait
        for: after the master died and its replica took over, no one is left to ask."""
        if self._sentinel is None:
            return
        alive = await self._call(self._sentinel.discover_slaves(self._master_name))
        if not alive:
            self.wait_replicas = 0
            return
        # Just after a failover the old master rejoins as a replica and copies the new one's
        # data for seconds: connected, not yet online. There is then no replica up to date to
        # lose a claim to, so claims go ahead. A master that lists no replica at all while the
        # sentinels see one is the other case: its replica may be taking over from it.
        info = await self._call(self.lease_redis.info("replication"))
        states = [v.get("state") for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        self.wait_replicas = 0 if states and "online" not in states else 1

    async def acquire(self) -> int | None:
        await self._master_moved()
        await self._count_replicas()
        args: list[Any] = [self.replica_id, self.lease_ttl_ms, int(self.clock() * 1000), self.max_skew_ms, scripts.FORMAT,
                __version__]
        status, value, skew_ms = await self._call(
            self._acquire(keys=[self.k_leader, self.k_epoch, self.k_meta], args=args))
        self.clock_skew_s = skew_ms / 1000
        if status == 3:
            self.format_problem = (f"the state in namespace {self.namespace!r} has format {value}; this version "
                                   f"({__version__}) reads format {scripts.FORMAT} and older")
            return None
        self.format_problem = None
        return int(value) if status == 1 else None

    def clock_ok(self) -> bool:
        return self.clock_skew_s is None or abs(self.clock_skew_s) * 1000 <= self.max_skew_ms

    async def renew(self) -> bool:
        if await self._master_moved():
            return False  # the lease and the claims since the move may be gone: start over
        await self._count_replicas()
        args: list[Any] = [self.replica_id, self.lease_ttl_ms, int(self.clock() * 1000), self.max_skew_ms]
        status, skew_ms = await self._call(self._renew(keys=[self.k_leader, self.k_released], args=args))
        self.clock_skew_s = skew_ms / 1000
        return status == 1

    async def release(self) -> str | None:
        released = await self._call(self._release(keys=[self.k_leader], args=[self.replica_id]))
        return await self._publish(self.k_released, self.replica_id) if released else None

    async def wait_released(self, timeout_s: float) -> None:
        await self.notices.wait(self.k_released, timeout_s)
