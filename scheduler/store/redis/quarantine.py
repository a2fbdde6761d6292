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
from typing import Any, Protocol
from collections.abc import Awaitable, Callable, Collection, Sequence

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


class Host(Protocol):
    """What the quarantine needs of the store it serves: the client, the keys, and its one
    way of making a call (a timeout, and StoreUnavailable on failure). Declared here, so
    the quarantine never imports the store that holds it."""

    redis: Any
    read_only: bool
    on_malformed: Callable[[str], None] | None
    k_quarantine: str
    job_prefix: str
    history_prefix: str
    call_timeout_s: float
    key_types: dict[str, str]

    def _call(self, coro: Awaitable[Any], jobs: Collection[str] = ()) -> Awaitable[Any]: ...

log = logging.getLogger("scheduler.redis")

# (kind: hash|list, key, field, raw value, problem) and optionally a replacement value
Bad = tuple[str, ...]


class Quarantine:
    def __init__(self, store: Host):
        # The scripts run on the store's client of the moment (it changes when the store
        # finds a Redis Cluster), so they are registered once and given it at each call.
        self.store = store
        self.count = 0
        self._reported: set[tuple[str, str]] = set()
        self._field = store.redis.register_script(QUARANTINE_FIELD)
        self._keys = store.redis.register_script(QUARANTINE_KEYS)

    def report(self, key: str, field: str, problem: str) -> None:
        self.count += 1
        if self.store.on_malformed is not None:
            self.store.on_malformed(key)
        if (key, field) not in self._reported:  # logged once, however often it is met
            self._reported.add((key, field))
            log.warning("unreadable record set aside", extra={"key": key, "field": field[:120], "problem": problem})

    async def set_aside(self, bad: Sequence[Bad]) -> None:
        """Move unreadable records into the quarantine hash (a dry run only skips them)."""
        store = self.store
        for kind, key, field, raw, problem, *replacement in bad:
            self.report(key, field, problem)
            if store.read_only:
                continue
            try:
                args = [kind, field, raw, replacement[0] if replacement else ""]
                await store._call(self._field(keys=[store.k_quarantine, key], args=args, client=store.redis))
            except StoreUnavailable:
                pass  # moved on a later read

    async def repair_keys(self, jobs: Collection[str]) -> None:
        """After an error reply: rename aside every key of the wrong type, so a retry works."""
        store = self.store
        types = dict(store.key_types)
        for job in jobs:
            types[store.job_prefix + job] = "hash"
            types[store.history_prefix + job] = "list"
        try:
            async with asyncio.timeout(store.call_timeout_s):
                moved = await self._keys(keys=list(types), args=[int(time.time() * 1000), *types.values()],
                                        client=store.redis)
        except Exception as exc:  # the caller reports the outage; this was only a repair
            log.debug("could not check the namespace's key types", extra={"error": str(exc)})
            return
        for name in moved or ():
            self.report(name, "", "a key of the wrong type, renamed aside")


async def configuration_warnings(store: Host) -> list[str]:
    """What about the Redis server's own configuration could lose or repeat runs."""
    out = []
    try:
        config = {}
        for name in ("maxmemory-policy", "appendonly", "save"):
            config.update(await store._call(store.redis.config_get(name)))
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
