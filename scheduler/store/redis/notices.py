"""The Redis store's notifications: the lease's release (standbys take over at once) and
the trigger command's wake-up (the leader looks at once), on one pub/sub subscription
(on a Redis Cluster, at the master of the namespace's slot: redis_cluster.pubsub)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoPermissionError
from .cluster import pubsub

SOCKET_TIMEOUT_S = 2.0
log = logging.getLogger("scheduler.redis")


class Notices:
    def __init__(self, client: Any, channels: Sequence[str]):
        self.client = client
        self.channels = tuple(channels)
        self.stale = False  # set when the master moved: the subscription is on the old one
        self._pubsub: Any = None  # a redis.asyncio PubSub, made on first use
        self.refused = False  # the user may not subscribe: every wait is then a poll of at most a second

    async def wait(self, channel: str, timeout_s: float) -> bool:
        """Until a message on `channel` (True) or the timeout. One subscription serves every
        channel: a replica waits on one of them at a time, and drops the others' news."""
        deadline = time.monotonic() + timeout_s
        try:
            if self.stale:
                self.stale = False
                await self.aclose()
            if self._pubsub is None:
                self._pubsub = await pubsub(self.client)
                await self._pubsub.subscribe(*self.channels)
            while (left := deadline - time.monotonic()) > 0 and not self.stale:
                async with asyncio.timeout(left + SOCKET_TIMEOUT_S):
                    msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=min(left, 1.0))
                if msg is not None and msg.get("channel") == channel:
                    return True
        except Exception as exc:  # RedisError, OSError, a timeout, or a client in a state it did not expect
            # The subscription died with its connection; the next call subscribes again.
            await self.aclose()
            if isinstance(exc, NoPermissionError) and not self.refused:
                # Best effort: a replica works without the notices, only a little later.
                self.refused = True
                log.warning("the Redis user may not subscribe to the notices; lease releases and triggers are seen "
                            "at the next poll (within a second) instead of at once",
                            extra={"channels": " ".join(self.channels), "error": str(exc)})
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A cancellation that arrived as a TimeoutError (asyncio.timeout in 3.11):
                # it is still the caller's to honour, not an error to wait out.
                raise asyncio.CancelledError from None
            await asyncio.sleep(max(0.0, min(deadline - time.monotonic(), 1.0)))
        return False

    async def aclose(self) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except Exception:
                pass
            self._pubsub = None
