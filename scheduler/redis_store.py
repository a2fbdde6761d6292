"""The Redis store: lease, fencing epoch, atomic claims, outcomes.

Every key lives under `{namespace}:`; the braces are a Redis Cluster hash tag, so all keys
share one slot and each script touches keys of one slot only.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .store import Claim, InFlight, LeaseLost, Outcome, State, StoreUnavailable, new_replica_id

# Short enough that no single call can outlive a lease renewal period.
SOCKET_TIMEOUT_S = 2.0

# SET NX PX, and on success INCR the fencing epoch in the same atomic step, so an epoch is
# never handed to two holders. A replica that still holds its own key (it lost track of
# it, for instance after a timeout on a renewal that did succeed) takes a new epoch too.
ACQUIRE = """
local ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if not ok then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('INCR', KEYS[2])
"""

# Compare-and-pexpire: never extend a lease another replica holds (redbeat #127).
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Compare-and-delete, then tell the standbys so the next one takes over at once.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

# All claims of one moment in one step. The lease check and every watermark advance happen
# atomically, so a replica that lost its lease can never claim, and no slot is claimed
# twice. Returns -1 when the lease is not ours, else one 0/1 per claim.
CLAIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local epoch, now = ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV, 4 do
  local kind, job, slot, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local field = job .. '@' .. slot
  local record = '{"epoch":' .. epoch .. ',"attempt":' .. attempt .. ',"claimed_at":' .. now .. '}'
  local ok = 0
  if kind == 'redeliver' then
    if redis.call('HEXISTS', KEYS[3], field) == 1 then
      redis.call('HSET', KEYS[3], field, record)
      ok = 1
    end
  else
    local mark = tonumber(redis.call('HGET', KEYS[2], job))
    if not mark or tonumber(slot) > mark then
      redis.call('HSET', KEYS[2], job, slot)
      if kind == 'fire' then redis.call('HSET', KEYS[3], field, record) end
      ok = 1
    elseif kind == 'fire' and tonumber(slot) == mark then
      -- A retry of a claim whose reply was lost: it is ours if recorded under our epoch.
      local cur = redis.call('HGET', KEYS[3], field)
      if cur and tostring(cjson.decode(cur)['epoch']) == epoch then ok = 1 end
    end
  end
  out[#out + 1] = ok
end
return out
"""

# Only while the fire is still recorded under this epoch: a newer leader's redelivery owns it.
NOTE_ATTEMPT = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local rec = cjson.decode(cur)
if tostring(rec['epoch']) ~= ARGV[2] then return 0 end
rec['attempt'] = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return 1
"""

FINISH = """
redis.call('HDEL', KEYS[1], ARGV[1])
local fails = 0
if ARGV[2] == 'ok' then
  redis.call('HSET', KEYS[2], 'consecutive_failures', 0, 'last_success_at', ARGV[4])
else
  fails = redis.call('HINCRBY', KEYS[2], 'consecutive_failures', 1)
end
redis.call('HSET', KEYS[2], 'status', ARGV[2], 'slot', ARGV[3], 'finished_at', ARGV[4],
  'duration_ms', ARGV[5], 'http_status', ARGV[6], 'error', ARGV[7], 'attempts', ARGV[8])
return fails
"""


class RedisStore:
    def __init__(
        self,
        url: str | None,
        namespace: str,
        lease_ttl_s: float,
        *,
        sentinels: Sequence[tuple[str, int]] = (),
        sentinel_master: str | None = None,
        replica_id: str | None = None,
    ):
        self.replica_id = replica_id or new_replica_id()
        self.namespace = namespace
        self.lease_ttl_ms = int(lease_ttl_s * 1000)
        ns = "{" + namespace + "}"
        self.k_leader = f"{ns}:leader"
        self.k_epoch = f"{ns}:epoch"
        self.k_slots = f"{ns}:slots"
        self.k_inflight = f"{ns}:inflight"
        self.k_paused = f"{ns}:paused"
        self.k_released = f"{ns}:released"
        self.job_prefix = f"{ns}:job:"
        opts = dict(
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            decode_responses=True,
            # One immediate retry replaces a pooled connection that died with the server;
            # longer waits are the caller's backoff, never hidden inside a call.
            retry=Retry(NoBackoff(), 1),
        )
        if sentinels:
            from redis.asyncio.sentinel import Sentinel

            conn = aioredis.Redis.from_url(url) if url else None
            kw = {}
            if conn is not None:
                ck = conn.connection_pool.connection_kwargs
                kw = {k: ck[k] for k in ("username", "password", "db") if ck.get(k) is not None}
            self._sentinel = Sentinel(list(sentinels), **opts)
            self.redis = self._sentinel.master_for(sentinel_master, **opts, **kw)
        else:
            self.redis = aioredis.Redis.from_url(url, **opts)
        self._acquire = self.redis.register_script(ACQUIRE)
        self._renew = self.redis.register_script(RENEW)
        self._release = self.redis.register_script(RELEASE)
        self._claim = self.redis.register_script(CLAIM)
        self._note = self.redis.register_script(NOTE_ATTEMPT)
        self._finish = self.redis.register_script(FINISH)
        self._pubsub = None

    async def _call(self, coro):
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT_S * 2 + 0.5):
                return await coro
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from None

    async def acquire(self) -> int | None:
        epoch = await self._call(self._acquire(keys=[self.k_leader, self.k_epoch], args=[self.replica_id, self.lease_ttl_ms]))
        return None if epoch is None else int(epoch)

    async def renew(self) -> bool:
        return bool(await self._call(self._renew(keys=[self.k_leader], args=[self.replica_id, self.lease_ttl_ms])))

    async def release(self) -> None:
        await self._call(self._release(keys=[self.k_leader, self.k_released], args=[self.replica_id]))

    async def wait_released(self, timeout_s: float) -> None:
        try:
            if self._pubsub is None:
                self._pubsub = self.redis.pubsub()
                await self._pubsub.subscribe(self.k_released)
            deadline = time.monotonic() + timeout_s
            while (left := deadline - time.monotonic()) > 0:
                async with asyncio.timeout(left + 0.5):
                    msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=min(left, 1.0))
                if msg is not None:
                    return
        except (RedisError, OSError, TimeoutError):
            # The subscription died with the connection; poll on the next call.
            await self._drop_pubsub()
            await asyncio.sleep(max(0.0, min(timeout_s, 1.0)))

    async def _drop_pubsub(self) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except Exception:
                pass
            self._pubsub = None

    async def load(self) -> State:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.k_slots)
            pipe.hgetall(self.k_inflight)
            pipe.smembers(self.k_paused)
            slots, inflight, paused = await self._call(pipe.execute())
        state = State(watermarks={job: int(slot) for job, slot in slots.items()}, paused=set(paused))
        for key, value in inflight.items():
            job, _, slot = key.rpartition("@")
            rec = json.loads(value)
            state.inflight.append(InFlight(job, int(slot), int(rec["epoch"]), int(rec["attempt"])))
        return state

    async def claim(self, epoch: int, claims: Sequence[Claim]) -> list[bool]:
        if not claims:
            return []
        args: list = [self.replica_id, epoch, int(time.time() * 1000)]
        for c in claims:
            args += [c.kind, c.job, c.slot, c.attempt]
        result = await self._call(self._claim(keys=[self.k_leader, self.k_slots, self.k_inflight], args=args))
        if result == -1:
            raise LeaseLost()
        return [bool(x) for x in result]

    async def note_attempt(self, epoch: int, job: str, slot: int, attempt: int) -> None:
        await self._call(self._note(keys=[self.k_inflight], args=[f"{job}@{slot}", epoch, attempt]))

    async def finish(self, job: str, slot: int, outcome: Outcome) -> None:
        args = [
            f"{job}@{slot}", outcome.status, slot, f"{outcome.finished_at:.3f}",
            int(outcome.duration_s * 1000), outcome.http_status or "", outcome.error or "", outcome.attempts,
        ]
        await self._call(self._finish(keys=[self.k_inflight, self.job_prefix + job], args=args))

    async def ping(self) -> bool:
        try:
            return bool(await self._call(self.redis.ping()))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        await self._drop_pubsub()
        await self.redis.aclose()

