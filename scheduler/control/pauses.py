"""A job removed from its sources loses its pause, so one added back later starts unpaused
(SPEC section 8: `enabled` is the app's switch, a pause the operator's override of one job).

Every replica reads the sources, leader or standby, so each one that sees a removal drops
the pause in the store; the drop is idempotent, and it happens while no replica leads too.
A pause taken after the removal (of the job added back) is never dropped by it: the drop is
sent as soon as the removal is seen, retried only while the store cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from ..store.protocol import Store, StoreUnavailable

log = logging.getLogger("scheduler.control")

RETRY_FIRST_S, RETRY_MAX_S = 1.0, 30.0


class RemovedPauses:
    def __init__(self, store: Store, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.store, self.sleep = store, sleep
        self._todo: set[str] = set()
        self._task: asyncio.Task | None = None

    def removed(self, names: Iterable[str]) -> None:
        """Jobs just removed from the sources (not env jobs: they are never removed while
        the process runs); their pauses are dropped from now on, on the running loop."""
        self._todo.update(names)
        if self._todo and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._drop(), name="drop-pauses")

    async def _drop(self) -> None:
        failures = 0
        while self._todo:
            names, self._todo = sorted(self._todo), set()
            try:
                dropped = await self.store.drop_pauses(names)
            except StoreUnavailable as exc:
                self._todo.update(names)
                failures += 1
                if failures == 1:
                    log.warning("could not drop the pauses of removed jobs yet; retrying",
                                extra={"jobs": len(names), "error": str(exc)})
                await self.sleep(min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failures - 1)))
                continue
            failures = 0
            if dropped:
                log.info("removed jobs lose their pause", extra={"jobs": names[:20], "dropped": dropped})

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
