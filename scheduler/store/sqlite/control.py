"""The standalone store's operator commands (any replica, or the CLI), over its
transactions: pauses, manual fires, requests to the sources, and the status read."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import sources_meta
from . import state as ops
from .transactions import Transactions
from ...model import TriggerRequest


class Control:
    def __init__(self, tx: Transactions, replica_id: str, leader_anywhere: Callable[[], bool]):
        self.tx, self.replica_id = tx, replica_id
        self.leader_anywhere = leader_anywhere  # whether the lock is held, for the status

    async def set_paused(self, job: str, paused: bool) -> bool:
        return await self.tx.writing(lambda db, _: ops.set_paused(db, job, paused))

    async def request_sources(self, what: str) -> None:
        await self.tx.writing(lambda db, _: sources_meta.request(db, what))

    async def note_sources(self, sources: list[dict]) -> None:
        await self.tx.writing(lambda db, _: sources_meta.note(db, self.replica_id, sources))

    async def noted_sources(self) -> list[dict]:
        return await self.tx.reading(lambda db, _: sources_meta.noted_all(db))

    async def sources_requests(self) -> tuple[int, int]:
        return await self.tx.reading(lambda db, _: sources_meta.requests(db))

    async def drop_pauses(self, jobs: Sequence[str]) -> int:
        if not jobs:
            return 0
        names = list(jobs)
        return await self.tx.writing(lambda db, _: ops.drop_pauses(db, names))

    async def request_trigger(self, request: TriggerRequest) -> TriggerRequest | None:
        return await self.tx.writing(lambda db, bad: ops.request_trigger(db, self.tx.quarantine, bad, request))

    async def status(self, jobs: Sequence[str]) -> dict:
        q = self.tx.quarantine
        return await self.tx.reading(lambda db, bad: ops.status(db, q, bad, jobs, self.leader_anywhere()))
