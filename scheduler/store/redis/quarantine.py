"""Setting aside what the Redis store cannot read (SPEC 3, rule 8), and the checks of the
server's own configuration that could lose or repeat runs.

An unreadable hash field or list entry moves to `{ns}:quarantine` (`"<key> <field>"` -> its
raw value), a key of the wrong type is renamed `<key>:quarantined:<unix ms>`; each is logged
once (key and field, never a value), counted, and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence

from .caller import Caller
from .keys import Keys
from ..protocol import StoreUnavailable

# Move one unreadable hash field or list entry into the quarantine hash, only if it still
# holds the value that was read (a concurrent writer may have fixed it meanwhile).
# KEYS: quarantine source  ARGV: kind (hash|list) field raw_value replacement ('' = none)
QUARANTINE_FIELD = """
if ARGV[1] == 'hash' then
  if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[3] then return 0 end
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])  -- a readable value that stands in for it
  else
    redis.call('HDEL', KEYS[2], ARGV[2])
  end
else
  if redis.call('LREM', KEYS[2], 1, ARGV[3]) == 0 then return 0 end
end
redis.call('HSET', KEYS[1], KEYS[2] .. ' ' .. ARGV[2], ARGV[3])
return 1
"""

# Rename aside every key that holds the wrong type for what the scheduler keeps there (a
# string where a hash belongs, say), and an epoch that is not a number, so no later call
# fails on it. KEYS: the keys to check  ARGV: now_ms, then each key's expected type.
# Returns the names of the keys moved, each with the type it held.
QUARANTINE_KEYS = """
local moved = {}
for i, key in ipairs(KEYS) do
  local want = ARGV[i + 1]
  local have = redis.call('TYPE', key)['ok']
  local bad
  if want == 'counter' then
    bad = have ~= 'none' and (have ~= 'string' or not string.match(redis.call('GET', key), '^%-?%d+$'))
  else
    bad = have ~= 'none' and have ~= want
  end
  if bad then
    redis.call('RENAME', key, key .. ':quarantined:' .. ARGV[1])
    moved[#moved + 1] = key .. ' (' .. have .. ')'
  end
end
return moved
"""

log = logging.getLogger("scheduler.redis")

# (kind: hash|list, key, field, raw value, problem) and optionally a replacement value
Bad = tuple[str, ...]


class Quarantine:
    def __init__(self, keys: Keys, caller: Caller):
        self.keys, self.caller = keys, caller
        self.count = 0
        self.read_only = False  # a dry run's view: unreadable records are skipped, not moved
        self.on_malformed: Callable[[str], None] | None = None
        self._reported: set[tuple[str, str]] = set()
        # The scripts run on the caller's client of the moment (it changes when the store
        # finds a Redis Cluster), so they are registered once and given it at each call.
        self._field = caller.redis.register_script(QUARANTINE_FIELD)
        self._keys = caller.redis.register_script(QUARANTINE_KEYS)

    def report(self, key: str, field: str, problem: str) -> None:
        self.count += 1
        if self.on_malformed is not None:
            self.on_malformed(key)
        if (key, field) not in self._reported:  # logged once, however often it is met
            self._reported.add((key, field))
            log.warning("unreadable record set aside", extra={"key": key, "field": field[:120], "problem": problem})

    async def set_aside(self, bad: Sequence[Bad]) -> None:
        """Move unreadable records into the quarantine hash (a dry run only skips them)."""
        for kind, key, field, raw, problem, *replacement in bad:
            self.report(key, field, problem)
            if self.read_only:
                continue
            try:
                args = [kind, field, raw, replacement[0] if replacement else ""]
                await self.caller.call(self._field(keys=[self.keys.quarantine, key], args=args, client=self.caller.redis))
            except StoreUnavailable:
                pass  # moved on a later read

    async def repair_keys(self, jobs: Collection[str]) -> None:
        """After an error reply: rename aside every key of the wrong type, so a retry works."""
        types = self.keys.types(jobs)
        try:
            async with asyncio.timeout(self.caller.timeout_s):
                moved = await self._keys(keys=list(types), args=[int(time.time() * 1000), *types.values()],
                                         client=self.caller.redis)
        except Exception as exc:  # the caller reports the outage; this was only a repair
            log.debug("could not check the namespace's key types", extra={"error": str(exc)})
            return
        for name in moved or ():
            self.report(name, "", "a key of the wrong type, renamed aside")


async def configuration_warnings(caller: Caller) -> list[str]:
    """What about the Redis server's own configuration could lose or repeat runs."""
    out = []
    try:
        config = {}
        for name in ("maxmemory-policy", "appendonly", "save"):
            config.update(await caller.call(caller.redis.config_get(name)))
    except StoreUnavailable:
        return ["could not read the Redis configuration (CONFIG GET refused?); eviction and persistence unchecked"]
    policy, aof, save = config.get("maxmemory-policy", ""), config.get("appendonly", ""), config.get("save", "")
    if policy and policy != "noeviction":
        out.append(
            f"Redis maxmemory-policy is {policy}: under memory pressure Redis may evict the scheduler's "
            "keys (watermarks, lease), so slots could fire twice or be lost; use noeviction"
        )
    if aof != "yes" and not save.strip():
        out.append(
            "Redis persistence is off (appendonly no, no save points): a Redis restart forgets every "
            "watermark and in-flight fire; enable appendonly yes"
        )
    return out
