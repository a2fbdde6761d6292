"""First sightings (INIT claims), written beside the leader's loop rather than before it.

A job seen for the first time gets an INIT claim: its watermark (from then on an outage is
made up by CATCHUP) and its first_seen_at, each set only where the store has none. 100,000
new jobs are 200 store calls; written in line, they held up every slot due meanwhile by
about 2 s. Written here, the loop's own claims go between two of them. A sighting written
after the job's first fire changes nothing (the store keeps the watermark it has); one not
written when the leadership ends is written by the next, which finds no watermark either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .lease import Lease
from .model import INIT, Claim

CHUNK = 500  # claims per store call, as the engine's


class Sightings:
    def __init__(self, claim: Callable[[Lease, list[Claim]], Awaitable[bool]]):
        self._claim = claim  # the engine's claim-and-fire: False once the leadership ended
        self._todo: list[Claim] = []
        self._task: asyncio.Task | None = None

    def write_later(self, lease: Lease, claims: list[Claim]) -> list[Claim]:
        """The claims less the first sightings, which are written from now on."""
        inits = [c for c in claims if c.kind == INIT]
        if not inits:
            return claims
        self._todo += inits
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write(lease), name="first-sightings")
        return [c for c in claims if c.kind != INIT]

    def end(self) -> list[asyncio.Task]:
        """At the end of a leadership: the task to cancel (if any); what is left is dropped."""
        task, self._task, self._todo = self._task, None, []
        return [task] if task is not None else []

    @property
    def pending(self) -> int:
        return len(self._todo)

    async def _write(self, lease: Lease) -> None:
        while self._todo:
            chunk, self._todo = self._todo[:CHUNK], self._todo[CHUNK:]
            if not await self._claim(lease, chunk):
                return
            await asyncio.sleep(0)  # the loop's own claims go first
