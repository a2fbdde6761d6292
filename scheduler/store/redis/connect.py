"""The Redis store's connections: one pool for claims, outcomes and reads, and a small one
of its own for the lease, through a URL, through Sentinel discovery, or to a Redis Cluster
(redis_cluster tells which a URL names)."""

from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import asyncio

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

POOL_SIZE = 32  # connections for claims, outcomes and reads; outcomes are batched
LEASE_POOL_SIZE = 2
CLUSTER_HEADROOM = 8  # connections per node beyond the gated calls: pipelines, the subscription
# Short enough that no single call can outlive a lease renewal period.
SOCKET_TIMEOUT_S = 2.0


def _master_pool_class() -> type:
    """A Sentinel pool that never puts a connection to a former master back into service.

    redis-py closes only the idle connections when it learns that the master moved; one in
    use at that moment (a claim waiting for its replica, a read) keeps its socket to the
    old master and returns to the pool, first in line for the next call. The old master
    can accept writes for seconds after the promotion, so without this the calls of one
    leadership would be split between two masters: a batch planned from one watermark and
    claimed on the other advances it past slots claimed only where they are later lost."""
    from redis.asyncio.sentinel import SentinelConnectionPool

    class MasterPool(SentinelConnectionPool):
        async def release(self, connection: Any) -> None:
            if self.master_address is not None and (connection.host, connection.port) != self.master_address:
                await connection.disconnect()  # reconnects, through the sentinels, when next used
            await super().release(connection)

    return MasterPool


class WaitingCluster(RedisCluster):
    """A cluster client whose callers wait for a free connection, as with the blocking pool
    of a plain client: a node's pool raises once it has `max_connections` in use, and a
    burst of outcomes must never fail for want of a connection. Pipelines and the pub/sub
    subscription take theirs outside this gate, within the pool's headroom."""

    def __init__(self, *args: Any, calls: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._gate = asyncio.Semaphore(calls)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._gate:
            return await super().execute_command(*args, **kwargs)


def connect(url: str | None, sentinels: Sequence[tuple[str, int]], master: str | None,
            cluster: bool = False, name: str | None = None) -> tuple[Any, Any, Any]:
    """(the Sentinel or None, the main client, the lease's client): plain or Sentinel
    `redis.asyncio.Redis` clients, or with `cluster`, `RedisCluster` ones. `name`: every
    connection's client name (CLIENT SETNAME), the replica id, by which a standby tells
    whether the leader's process still talks to Redis (handover.py)."""
    opts: dict[str, Any] = dict(
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        decode_responses=True,
        # Any bytes a person or a bug left in the namespace decode, and encode back to the
        # same bytes, so an unreadable value can still be named and moved aside.
        encoding_errors="surrogateescape",
        # One immediate retry replaces a pooled connection that died with the server;
        # longer waits are the caller's backoff, never hidden inside a call.
        retry=Retry(NoBackoff(), 1),
    )
    if name is not None:
        opts["client_name"] = name
    if sentinels:
        from redis.asyncio.sentinel import Sentinel

        kw = {}
        if url:
            ck = aioredis.ConnectionPool.from_url(url).connection_kwargs  # user, password, db only
            kw = {k: ck[k] for k in ("username", "password", "db") if ck.get(k) is not None}
        sentinel = Sentinel(list(sentinels), **opts)
        pool_class = _master_pool_class()

        def client(size: int) -> Any:
            assert master is not None  # config requires both Sentinel settings
            return sentinel.master_for(master, connection_pool_class=pool_class, max_connections=size, **opts, **kw)
    elif cluster:
        sentinel = None
        # No retry inside redis-py: a claim and its WAIT must go out on one connection, and
        # a cluster pipeline sent again after a lost connection can send the WAIT elsewhere.
        # The callers retry (the lease keeper within the lease), and a call that lost its
        # connection has the client read the slot map again before the next one.
        cluster_opts = {**opts, "retry": Retry(NoBackoff(), 0)}

        def client(size: int) -> Any:
            assert url is not None
            return WaitingCluster.from_url(url, calls=size, max_connections=size + CLUSTER_HEADROOM,
                                           require_full_coverage=False, **cluster_opts)
    else:
        sentinel = None

        def client(size: int) -> Any:
            # A caller waits for a free connection instead of failing: a burst of outcomes
            # must never fail for want of a connection.
            assert url is not None  # standalone mode never builds a Redis store
            pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=size, timeout=SOCKET_TIMEOUT_S, **opts)
            return aioredis.Redis(connection_pool=pool)

    # The lease is kept on connections of its own, so no burst of other calls can make a
    # renewal wait its turn past the lease.
    return sentinel, client(POOL_SIZE), client(LEASE_POOL_SIZE)
