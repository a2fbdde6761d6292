"""The Redis store's audit log (store/audit_records.py): one list, newest first, each element
`<id> <JSON entry>`, the id from a counter taken in the same script, the list trimmed to
the newest AUDIT_KEEP there too. Both scripts use only commands of the ACL the README
lists (INCR, LPUSH, LTRIM, LRANGE)."""

from __future__ import annotations

import json

from .caller import Caller
from .keys import Keys
from ..audit_records import AUDIT_KEEP, read_entries

# KEYS: audit list, audit counter  ARGV: the entry's JSON, how many to keep. Returns the id.
AUDIT_APPEND = """
local id = redis.call('INCR', KEYS[2])
redis.call('LPUSH', KEYS[1], id .. ' ' .. ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return id
"""

# KEYS: audit list  ARGV: how many, the id to read below ('' for the newest). Ids are
# consecutive down the list (each append takes the next and the list loses only its tail),
# so the entry below `before` sits at (newest id - before + 1); a list whose ids are not
# consecutive (its counter was deleted) gives a short page, which the reader filters.
AUDIT_READ = """
local n = tonumber(ARGV[1])
if ARGV[2] == '' then return redis.call('LRANGE', KEYS[1], 0, n - 1) end
local head = redis.call('LRANGE', KEYS[1], 0, 0)[1]
local top = head and tonumber(string.match(head, '^(%d+) '))
if not top then return {} end
local start = math.max(top - tonumber(ARGV[2]) + 1, 0)
return redis.call('LRANGE', KEYS[1], start, start + n - 1)
"""


class Audit:
    def __init__(self, keys: Keys, caller: Caller, keep: int = AUDIT_KEEP):
        self.keys, self.caller, self.keep = keys, caller, keep
        # Run on the caller's client of the moment, given at each call (see caller).
        self._append = caller.redis.register_script(AUDIT_APPEND)
        self._read = caller.redis.register_script(AUDIT_READ)

    async def append(self, entry: dict) -> int:
        raw = json.dumps(entry, ensure_ascii=False)
        return int(await self.caller.call(self._append(
            keys=[self.keys.audit, self.keys.audit_seq], args=[raw, self.keep], client=self.caller.redis)))

    async def read(self, limit: int, before: int | None = None) -> list[dict]:
        raws = await self.caller.call(self._read(
            keys=[self.keys.audit], args=[limit, "" if before is None else before], client=self.caller.redis))
        rows = []
        for raw in raws:
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            ident, _, entry = text.partition(" ")
            rows.append((ident, entry))
        return read_entries(rows, before)[:limit]
