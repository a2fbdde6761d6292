"""A read-only view of the state store for `run --dry-run` (SPEC section 5).

The dry run reads the real state (watermarks, in-flight fires, pauses) once per
"leadership" and plays the claims out in memory, so it shows what would fire and when. It
never takes the lease, claims a slot, takes a trigger or writes an outcome: pointing it at
a live cluster's store changes nothing there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from .protocol import Store
from ..model import (
    CLAIMED, EXPIRE, INIT, PAUSED, REDELIVER, REDRIVE, SKIP, STALE, TRIGGER, Claim, Finished, SlotRequest, State,
    TriggerRequest,
)


class ReadOnlyStore:
    dry_run = True
    read_only = True

    def __init__(self, store: Store):
        self.store = store
        self.replica_id = store.replica_id
        store.read_only = True  # it must not even move an unreadable record aside, on either backend
        self._marks: dict[str, int] = {}
        self._taken: set[str] = set()
        self._paused: set[str] = set()
        self._leading = False

    @property
    def on_malformed(self) -> Callable[[str], None] | None:
        return self.store.on_malformed

    @on_malformed.setter
    def on_malformed(self, hook: Callable[[str], None] | None) -> None:
        self.store.on_malformed = hook

    @property
    def clock_skew_s(self) -> float | None:
        return self.store.clock_skew_s

    @property
    def format_problem(self) -> str | None:
        return self.store.format_problem

    def clock_ok(self) -> bool:
        return self.store.clock_ok()

    async def acquire(self) -> int | None:
        # Always "leads", locally: it competes with no one, and epoch 0 is below any real one.
        self._leading = True
        return 0

    async def renew(self) -> bool:
        return self._leading

    async def release(self) -> str | None:
        self._leading = False
        return None

    async def hand_over(self, epoch: int, fields: Sequence[str], hold_s: float) -> str | None:
        return await self.release()  # a dry run holds nothing in the store

    async def wait_released(self, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s)

    async def wait_wake(self, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s)

    async def wake_leader(self) -> str | None:
        return None  # a dry run queues nothing, so it has no one to wake

    async def load(self, jobs: Sequence[str]) -> State:
        state = await self.store.load(jobs)
        self._marks = dict(state.watermarks)
        self._paused = set(state.paused)
        return state

    async def claim(self, epoch: int, claims: Sequence[Claim]) -> list[int]:
        out = []
        for c in claims:
            mark = self._marks.get(c.job)
            if c.kind == REDELIVER:
                out.append(CLAIMED)
            elif c.kind in (INIT, EXPIRE):
                out.append(STALE if mark is not None else CLAIMED)
                self._marks.setdefault(c.job, c.slot)
            elif c.kind == REDRIVE:
                out.append(STALE)  # a dry run takes no slot request (pending_slots is empty)
            elif c.kind == TRIGGER:
                out.append(STALE if c.field in self._taken else CLAIMED)
                self._taken.add(c.field)
            elif mark is None or c.slot > mark:
                self._marks[c.job] = c.slot
                out.append(PAUSED if c.job in self._paused else CLAIMED)
            else:
                out.append(CLAIMED if c.kind == SKIP and c.slot == mark else STALE)
        return out

    async def note_attempt(self, epoch: int, claim: Claim, attempt: int) -> None:
        return None

    async def finish(self, items: Sequence[Finished]) -> list[int]:
        return [0 for _ in items]

    async def note_sources(self, sources: list[dict]) -> None:
        return None  # a dry run writes nothing

    async def noted_sources(self) -> list[dict]:
        return await self.store.noted_sources()

    async def sources_requests(self) -> tuple[int, int]:
        return await self.store.sources_requests()  # a read: a dry run follows refreshes too
    async def drop_pauses(self, jobs: Sequence[str]) -> int:
        return 0  # a dry run writes nothing; the live replicas drop them

    async def pending_triggers(self) -> list[TriggerRequest]:
        return []  # the live leader takes them; a dry run must not

    async def pending_slots(self) -> list[SlotRequest]:
        return []  # the same: the live leader takes them

    async def warnings(self) -> list[str]:
        return await self.store.warnings()

    async def ping(self) -> bool:
        return await self.store.ping()

    async def status(self, jobs: Sequence[str]) -> dict:
        return await self.store.status(jobs)

    async def audit_append(self, entry: dict) -> int:
        return 0  # a dry run writes nothing (and serves no control API that would ask)

    async def audit(self, limit: int, before: int | None = None) -> list[dict]:
        return await self.store.audit(limit, before)

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()  # it never held the lease, so it releases nothing

    async def runs(self, job: str, before: int | None = None, after: int | None = None, limit: int = 50,
                   cursor: str | None = None) -> tuple[list[dict], str | None]:
        return await self.store.runs(job, before, after, limit, cursor)  # a read: the live ledger

    async def run(self, job: str, run_id: str) -> dict | None:
        return await self.store.run(job, run_id)

    async def leaderships(self) -> list[dict]:
        return await self.store.leaderships()
