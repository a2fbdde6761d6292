"""First sightings (INIT claims), written beside the leader's loop rather than before it.

A job seen for the first time gets an INIT claim: its watermark (from then on an outage is
made up by CATCHUP) and its first_seen_at, each set only where the store has none. 100,000
new jobs are 200 store calls; written in line, they held up every slot due meanwhile by
about 2 s. Written here, the loop's own claims go between two of them. A sighting written
after the job's first fire changes nothing (the store keeps the watermark it has); one not
written when the leadership ends is written by the next, which finds no watermark either.

An `at` job first seen after its instant fires or expires (next_slots.passed_at) with the
loop's own claims, ahead of its sighting: claimed behind it, an expiry would find a
watermark and record nothing (the job would still be done, with no `expired` to show).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .lease import Lease
from ..model import INIT, Claim

CHUNK = 500  # claims per store call, as the engine's


class Sightings:
    def __init__(self, claim: Callable[[Lease, list[Claim]], Awaitable[bool]]):
        self._claim = claim  # the engine's claim-and-fire: False once the leadership ended
        self._todo: list[Claim] = []
        self._names: list[tuple[list[str], int]] = []  # (names, slot), their claims not made yet
        self._task: asyncio.Task | None = None

    def write_later(self, lease: Lease, claims: list[Claim], names: list[str] | None = None, slot: int = 0) -> list[Claim]:
        """The claims less the first sightings, which are written from now on; `names` are
        more jobs first seen at `slot` (their claims are made a call's worth at a time)."""
        inits = [c for c in claims if c.kind == INIT]
        if not inits and not names:
            return claims
        self._todo += inits
        if names:
            self._names.append((names, slot))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write(lease), name="first-sightings")
        return [c for c in claims if c.kind != INIT] if inits else claims

    def end(self) -> list[asyncio.Task]:
        """At the end of a leadership: the task to cancel (if any); what is left is dropped."""
        task, self._task, self._todo, self._names = self._task, None, [], []
        return [task] if task is not None else []

    @property
    def pending(self) -> int:
        return len(self._todo) + sum(len(names) for names, _ in self._names)

    async def _write(self, lease: Lease) -> None:
        while self._todo or self._names:
            if not self._todo:
                names, slot = self._names[0]
                self._todo = [Claim(name, slot, INIT) for name in names[:CHUNK]]
                del names[:CHUNK]
                if not names:
                    self._names.pop(0)
            chunk, self._todo = self._todo[:CHUNK], self._todo[CHUNK:]
            if not await self._claim(lease, chunk):
                return
            await asyncio.sleep(0)  # the loop's own claims go first
