"""The Redis store's handover (SPEC 8): a leader that stops gives the lease up at once while
its fires in flight go on, and a standby that finds the holder's process gone deletes its
lease instead of waiting it out.

Every connection of a replica carries its id as its client name (connect.py), so a holder
whose connections are all gone from `CLIENT LIST` has no process left that talks to
Redis: it crashed, or its connections were reset. Either way the takeover holds the holder's
fires in flight until it would have stopped sending (at most two thirds of the TTL),
so detection decides only when new slots are claimed, never whether a fire goes out twice. A
paused process (SIGSTOP) or a partition keeps its sockets open on the server and is waited
out, as before. A user the ACL refuses CLIENT LIST (or SETNAME) waits out the lease too.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from redis.asyncio.cluster import RedisCluster

from . import cluster
from .caller import Caller
from .keys import Keys
from ..protocol import StoreForbidden, StoreUnavailable

log = logging.getLogger("scheduler.redis")

# How often a standby looks for the holder's connections while it waits (SPEC 8: a dead
# holder is noticed within 1 s; CLIENT LIST is one call of a few hundred bytes per client).
LOOK_EVERY_S = 0.3

# Compare-and-delete, and in the same step each of the holder's fires named in ARGV[4] that
# is still in flight under its epoch is marked as the holder's until now + ARGV[3] ms by the
# server's clock: CLAIM refuses to redeliver it before (its 'redeliver' branch).
# KEYS: leader inflight  ARGV: replica epoch hold_ms fields(JSON)
# Returns 1 released, 0 not ours.
HANDOVER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local untl = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[3])
for _, field in ipairs(cjson.decode(ARGV[4])) do
  local cur = redis.call('HGET', KEYS[2], field)
  if cur then
    local fine, rec = pcall(cjson.decode, cur)
    if fine and type(rec) == 'table' and tostring(rec['epoch']) == ARGV[2] then
      rec['owner'] = ARGV[1]
      rec['until'] = untl
      redis.call('HSET', KEYS[2], field, cjson.encode(rec))
    end
  end
end
redis.call('DEL', KEYS[1])
return 1
"""

# A holder found gone: compare-and-delete its lease, and hold every fire in flight not held
# longer already until the holder would have stopped sending had it been alive after all:
# it sends only while two thirds of the TTL since the start of its last renewal have not
# passed (engine/lease.py), and that renewal began before the lease's expiry was last set,
# so it sent nothing after the lease's expiry (PTTL from now) minus a third of the TTL.
# KEYS: leader inflight  ARGV: holder ttl_ms
# Returns 1 deleted, 0 the lease is no longer that holder's.
TAKEOVER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local left = math.max(0, redis.call('PTTL', KEYS[1]) - math.floor(tonumber(ARGV[2]) / 3))
local untl = t[1] * 1000 + math.floor(t[2] / 1000) + left
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local fine, rec = pcall(cjson.decode, all[i + 1])
  if fine and type(rec) == 'table' and not ((tonumber(rec['until']) or 0) > untl) then
    rec['owner'] = ARGV[1]
    rec['until'] = untl
    redis.call('HSET', KEYS[2], all[i], cjson.encode(rec))
  end
end
redis.call('DEL', KEYS[1])
return 1
"""


class Handover:
    def __init__(self, keys: Keys, caller: Caller, replica_id: str, ttl_ms: int):
        self.keys, self.caller, self.replica_id, self.ttl_ms = keys, caller, replica_id, ttl_ms
        self._handover = caller.lease_redis.register_script(HANDOVER)
        self._takeover = caller.lease_redis.register_script(TAKEOVER)
        self.blind = False  # the ACL refuses CLIENT LIST: a dead holder is waited out
        self._next_look = 0.0
        # The holder last seen with a connection, and the ids of our own connections that
        # saw it: only a holder seen alive from the very connection that now misses it is
        # taken for dead. A replica the ACL refused CLIENT SETNAME has no name to be seen
        # by, and is waited out; and after a failover (Sentinel, Cluster) or a reconnect,
        # the holder's connections to the new server may not be open yet when ours is:
        # it is seen there first, or waited out.
        self._seen: str | None = None
        self._seen_from: set[str] = set()

    async def hand_over(self, epoch: int, fields: list[str], hold_s: float) -> bool:
        args: list[Any] = [self.replica_id, epoch, int(hold_s * 1000), json.dumps(fields)]
        keys = [self.keys.leader, self.keys.inflight]
        return bool(await self.caller.call(self._handover(keys=keys, args=args, client=self.caller.lease_redis)))

    async def holder_gone(self) -> bool:
        """While standing by, at most every LOOK_EVERY_S: when the lease's holder has no
        connection left, delete its lease (TAKEOVER) and say so."""
        now = time.monotonic()
        if self.blind or now < self._next_look:
            return False
        self._next_look = now + LOOK_EVERY_S
        client = self.caller.lease_redis
        try:
            holder = await self.caller.call(client.get(self.keys.leader))
            if not holder or holder == self.replica_id:
                return False
            clients = await self.caller.call(self._clients(client))
            entries = _flat(clients)
            me = next((str(c.get("id")) for c in entries
                       if c.get("name") == self.replica_id and str(c.get("cmd", "")).startswith("client")), None)
            if holder != self._seen:
                self._seen, self._seen_from = holder, set()
            if any(c.get("name") == holder for c in entries):
                if me is not None:
                    self._seen_from.add(me)
                return False
            if me is None or me not in self._seen_from:
                return False
            keys = [self.keys.leader, self.keys.inflight]
            deleted = await self.caller.call(self._takeover(keys=keys, args=[holder, self.ttl_ms], client=client))
        except StoreForbidden as exc:
            self.blind = True
            log.warning("the Redis user may not list clients (CLIENT LIST): a leader that crashed is noticed when "
                        "its lease runs out, not within a second", extra={"error": str(exc)})
            return False
        except StoreUnavailable:
            return False
        if deleted:
            log.warning("the lease holder's connections to Redis are gone: its lease deleted, its fires in flight "
                        "held until it would have stopped sending", extra={"holder": holder})
        return bool(deleted)

    async def _clients(self, client: Any) -> Any:
        """CLIENT LIST TYPE normal of the server that holds the lease (a cluster's: the
        master of the namespace's slot)."""
        if isinstance(client, RedisCluster):
            return await client.client_list(_type="normal", **await cluster.owner_target(client, self.keys.leader))
        return await client.client_list(_type="normal")


def _flat(clients: Any) -> list[dict]:
    """CLIENT LIST as a list of dicts, from a plain client or a cluster's (per node)."""
    if isinstance(clients, dict):
        return [c for node in clients.values() for c in (node if isinstance(node, list) else [])]
    return list(clients or [])
