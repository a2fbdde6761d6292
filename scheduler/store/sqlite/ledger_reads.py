"""The standalone store's reads of the ledger (SPEC 8) and of the log of leaderships, over
its transactions; the SQL is in ledger.py."""

from __future__ import annotations

from . import ledger
from ..ledger import PASSED, RUNS_LIMIT, decode_cursor
from .transactions import Transactions


class LedgerReads:
    def __init__(self, tx: Transactions, history_keep: int):
        self.tx = tx
        self.history_keep = history_keep  # ledger entries kept per job (SCHEDULER_HISTORY); 0: none

    async def history(self, job: str, limit: int | None = None) -> list[dict]:
        """The job's last finished fires, newest first (at most `limit`, or all that are kept)."""
        # As before the ledger: finished fires only, without the ledger's ids.
        entries = (await self.runs(job, limit=limit or self.history_keep or 1))[0]
        return [{k: v for k, v in e.items() if k != "id"} for e in entries if e["outcome"] not in PASSED]

    async def runs(self, job: str, before: int | None = None, after: int | None = None, limit: int = RUNS_LIMIT,
                   cursor: str | None = None) -> tuple[list[dict], str | None]:
        if cursor:
            decode_cursor(cursor)  # a bad one is the caller's ValueError, not the store's failure
        return await self.tx.reading(lambda db, _: ledger.runs(db, job, before, after, limit, cursor))

    async def run(self, job: str, run_id: str) -> dict | None:
        return await self.tx.reading(lambda db, _: ledger.run(db, job, run_id))

    async def leaderships(self) -> list[dict]:
        return await self.tx.reading(lambda db, _: ledger.leaderships(db))
