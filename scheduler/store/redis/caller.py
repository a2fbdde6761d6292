"""The Redis store's one way of making a call: the clients of the moment (plain, Sentinel
or a Redis Cluster's), a deadline on each call, and its errors translated for the store's
callers (SPEC section 3): unreachable, refused by the ACL, a cluster's reply, or an error
reply after which the keys of the wrong type are moved aside.

A URL may name a plain server or any node of a Redis Cluster: `cluster` is None until the
server has said which, and the clients are plain ones meanwhile; on a cluster they are
replaced, so the other parts of the store ask for `redis` and `lease_redis` at each call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable, Sequence
from typing import Any

from redis.exceptions import RedisError, ResponseError

from . import cluster
from .acl import ScriptNames, refusal
from .connect import SOCKET_TIMEOUT_S, connect
from .keys import Keys
from .notices import Notices
from ..protocol import StoreForbidden, StoreUnavailable

log = logging.getLogger("scheduler.redis")


class Caller:
    def __init__(self, keys: Keys, url: str | None, sentinels: Sequence[tuple[str, int]], master_name: str | None,
                 scripts: Iterable[str], name: str | None = None):
        self.keys = keys
        self.name = name  # every connection's client name, until the ACL refuses CLIENT SETNAME
        self.master_name = master_name
        self._url, self._sentinels = url, tuple(sentinels)
        self.timeout_s = SOCKET_TIMEOUT_S * 2 + 0.5
        self.cluster: bool | None = False if sentinels else None
        self._next_probe = 0.0
        self._told_cluster = False
        self._script_names = ScriptNames(scripts)
        # After an error reply: what moves aside the keys of the wrong type (the quarantine's).
        self.repair: Callable[[Collection[str]], Awaitable[None]] | None = None
        self._connect(False)

    def _connect(self, cluster: bool) -> None:
        self.sentinel, self.redis, self.lease_redis = connect(self._url, self._sentinels, self.master_name, cluster,
                                                              self.name)
        self.notices = Notices(self.redis, (self.keys.released, self.keys.wake))

    async def open(self) -> None:
        """Ask the server whether it is a cluster node before the first call (the CLI's
        commands and the daemon's start). Not reachable yet: the first call asks again."""
        try:
            await self._find_mode()
        except Exception as exc:  # a URL a cluster client refuses: the calls report it
            log.warning("could not connect to the Redis Cluster", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def _find_mode(self) -> bool:
        """While it is not known whether the URL names a cluster node, ask (at most once a
        second); on a cluster, replace the plain clients. True when they were replaced."""
        now = time.monotonic()
        if self.cluster is not None or now < self._next_probe:
            return False
        self._next_probe = now + 1.0
        assert self._url is not None  # only a URL leaves the mode open
        found = await cluster.probe(self._url)
        if not found:
            self.cluster = found
            return False
        old = (self.notices, self.redis, self.lease_redis)
        self._connect(True)
        self.cluster = True
        for client in old:
            await client.aclose()
        log.info("Redis Cluster: the namespace's keys live in one hash slot",
                 extra={**await cluster.where(self.redis, self.keys.leader), "namespace": self.keys.namespace})
        return True

    async def call(self, coro: Coroutine[Any, Any, Any], jobs: Collection[str] = ()) -> Any:
        """`coro`'s result, within the call's deadline; any failure as StoreUnavailable (or
        StoreForbidden). `jobs`: whose keys an error reply may have found of the wrong type."""
        try:
            async with asyncio.timeout(self.timeout_s):
                if self.cluster is None and await self._find_mode():
                    coro.close()  # made on the plain client: the caller's retry uses the cluster's
                    raise StoreUnavailable("redis: the URL names a Redis Cluster node; connected to the cluster")
                return await coro
        except ResponseError as exc:
            if await self._unnamed(exc):
                raise StoreUnavailable("redis: CLIENT SETNAME refused; connected again without client names") from None
            refused = refusal(exc, self.keys.namespace, self._script_names)
            if refused is not None:
                raise StoreForbidden(refused) from None
            if cluster.cluster_reply(exc):
                await self._cluster_reply(exc)
                raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from None
            # An error reply: most likely a key of the wrong type or an epoch that is no
            # number (a stray write). Move such keys aside so the caller's retry succeeds.
            if self.repair is not None:
                await self.repair(jobs)
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from None
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from None
        except Exception as exc:
            # A client in a state it does not expect (say, a connection torn by a failover)
            # is an unreachable store too: the loop retries, the process never dies of it.
            raise StoreUnavailable(f"redis client: {type(exc).__name__}: {exc}") from None

    async def _unnamed(self, exc: ResponseError) -> bool:
        """A connection refused because the ACL refuses CLIENT SETNAME: connect again without
        names (said once). A standby then cannot tell that this replica's process died, and
        waits out its lease (handover.py)."""
        if self.name is None or "client|setname" not in str(exc).lower():
            return False
        self.name = None
        old = (self.notices, self.redis, self.lease_redis)
        self._connect(bool(self.cluster))
        for client in old:
            await client.aclose()
        log.warning("the Redis user may not name its connections (CLIENT SETNAME): if this replica's process dies "
                    "while it leads, the standbys notice when its lease runs out, not within a second",
                    extra={"error": str(exc)})
        return True

    async def publish(self, channel: str, message: str) -> str | None:
        """A notice, sent after the write it announces: why it could not be sent, if it
        could not (the write stands either way; the listeners see it at their next poll)."""
        try:
            await self.call(self.redis.publish(channel, message))
        except StoreUnavailable as exc:
            return str(exc)
        return None

    async def refused_named(self, coro: Awaitable[Any]) -> Any:
        """For the `state` commands' calls, which may run longer than `call` allows: a
        refused permission as StoreForbidden, with its sentence; any other error as it is."""
        try:
            return await coro
        except ResponseError as exc:
            refused = refusal(exc, self.keys.namespace, self._script_names)
            if refused is None:
                raise
            raise StoreForbidden(refused) from None

    async def _cluster_reply(self, exc: ResponseError) -> None:
        """A reply only a cluster node gives. To a cluster client, a MOVED that a pipeline
        did not follow: the slot map is corrected for the next call. To a plain client,
        said once, plainly, and the mode is asked again."""
        if self.cluster:
            await cluster.follow_redirect(self.redis, exc)
            return
        self.cluster, self._next_probe = None, 0.0
        if not self._told_cluster:
            self._told_cluster = True
            log.error("Redis answered as a Redis Cluster node, but this client is not in cluster mode: "
                      "cluster detection (INFO, CLUSTER INFO) failed or was refused; it keeps asking",
                      extra={"reply": str(exc)[:120]})

    @property
    def no_redirect(self) -> dict[str, bool]:
        """For a pipeline that must not be sent again elsewhere: on a cluster, no MOVED followed."""
        return {"allow_redirections": False} if self.cluster else {}

    async def close(self) -> None:
        await self.notices.aclose()
        await self.redis.aclose()
        await self.lease_redis.aclose()
