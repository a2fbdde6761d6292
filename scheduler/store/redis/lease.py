"""The Redis store's lease: acquire, renew and release it with the fencing epoch, and the
clock compared with the server's on each call (SPEC section 3). Where the master is, and
whether claims wait for a replica, is `replicas`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ... import __version__
from . import scripts
from .caller import Caller
from .keys import Keys

log = logging.getLogger("scheduler.redis")


class Lease:
    def __init__(self, keys: Keys, caller: Caller, replica_id: str, *, ttl_ms: int, max_skew_ms: int,
                 clock: Callable[[], float]):
        self.keys, self.caller = keys, caller
        self.replica_id = replica_id
        self.ttl_ms, self.max_skew_ms = ttl_ms, max_skew_ms
        self.clock = clock  # this replica's wall clock, compared with the server's
        self.clock_skew_s: float | None = None  # ours minus the server's, at the last lease call
        self.format_problem: str | None = None  # set when the state is newer than this version reads
        # Run on the lease's own client of the moment, given at each call (see caller).
        self._acquire = caller.lease_redis.register_script(scripts.ACQUIRE)
        self._renew = caller.lease_redis.register_script(scripts.RENEW)
        self._release = caller.lease_redis.register_script(scripts.RELEASE)

    async def acquire(self) -> int | None:
        k = self.keys
        args: list[Any] = [self.replica_id, self.ttl_ms, int(self.clock() * 1000), self.max_skew_ms, scripts.FORMAT,
                           __version__]
        status, value, skew_ms = await self.caller.call(
            self._acquire(keys=[k.leader, k.epoch, k.meta, k.leaderships], args=args, client=self.caller.lease_redis))
        self.clock_skew_s = skew_ms / 1000
        if status == 3:
            self.format_problem = (f"the state in namespace {k.namespace!r} has format {value}; this version "
                                   f"({__version__}) reads format {scripts.FORMAT} and older")
            return None
        self.format_problem = None
        return int(value) if status == 1 else None

    def clock_ok(self) -> bool:
        return self.clock_skew_s is None or abs(self.clock_skew_s) * 1000 <= self.max_skew_ms

    async def renew(self) -> bool:
        args: list[Any] = [self.replica_id, self.ttl_ms, int(self.clock() * 1000), self.max_skew_ms]
        status, skew_ms = await self.caller.call(
            self._renew(keys=[self.keys.leader, self.keys.released, self.keys.meta], args=args, client=self.caller.lease_redis))
        self.clock_skew_s = skew_ms / 1000
        return status == 1

    async def release(self) -> str | None:
        released = await self.caller.call(
            self._release(keys=[self.keys.leader], args=[self.replica_id], client=self.caller.lease_redis))
        return await self.caller.publish(self.keys.released, self.replica_id) if released else None
