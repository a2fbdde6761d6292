"""The Redis store's reads of the ledger (SPEC 8): a job's runs by page, one run by id, and
the log of leaderships. The writes are in the CLAIM and FINISH scripts (scripts.LEDGER)."""

from __future__ import annotations

import json

from ..ledger import decode_cursor, page, read_entry
from .caller import Caller
from .keys import Keys


def _bound(value: int | None, default: str) -> str:
    return default if value is None else f"({value}"


class LedgerReads:
    def __init__(self, keys: Keys, caller: Caller):
        self.keys, self.caller = keys, caller

    async def runs(self, job: str, before: int | None, after: int | None, limit: int,
                   cursor: str | None) -> tuple[list[dict], str | None]:
        z = self.keys.runs_at(job)
        tie_slot: int | None = None
        tie_id = ""
        if cursor:
            tie_slot, tie_id = decode_cursor(cursor)
        # The cursor's own second goes on with the ids below its id; then the older seconds.
        ties = tie_slot is not None and (before is None or tie_slot < before) and (after is None or tie_slot > after)
        if tie_slot is not None:
            before = tie_slot if before is None else min(before, tie_slot)

        async def read() -> list:
            async with self.caller.redis.pipeline(transaction=False) as pipe:
                pipe.zrevrangebyscore(z, _bound(before, "+inf"), _bound(after, "-inf"), start=0, num=limit + 1,
                                      withscores=True)
                if ties:
                    pipe.zrangebyscore(z, tie_slot, tie_slot)
                return await pipe.execute()

        found = await self.caller.call(read(), [job])
        ids: list[tuple[int, str]] = []
        if ties and tie_slot is not None:
            ids = [(tie_slot, m) for m in sorted(found[1], reverse=True) if m < tie_id]
        ids += [(int(score), m) for m, score in found[0]]
        ids = ids[:limit + 1]
        if not ids:
            return [], None
        raws = await self.caller.call(self.caller.redis.hmget(self.keys.runs(job), [m for _, m in ids]), [job])
        entries = [e for (_, m), raw in zip(ids, raws) if (e := read_entry(m, raw)) is not None]
        return page(entries, limit)

    async def run(self, job: str, run_id: str) -> dict | None:
        raw = await self.caller.call(self.caller.redis.hget(self.keys.runs(job), run_id), [job])
        return read_entry(run_id, raw)

    async def leaderships(self) -> list[dict]:
        out = []
        for raw in await self.caller.call(self.caller.redis.lrange(self.keys.leaderships, 0, -1)):
            try:
                rec = json.loads(raw)
            except (ValueError, RecursionError):
                continue
            if isinstance(rec, dict) and isinstance(rec.get("acquired_at"), (int, float)):
                out.append(rec)
        return out
