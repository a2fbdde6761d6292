"""The Redis store: lease, fencing epoch, atomic claims, outcomes.

Every key lives under `{namespace}:`; the braces are a Redis Cluster hash tag, so all keys
share one slot and each script touches keys of one slot only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .store import Claim, InFlight, JobHealth, LeaseLost, Outcome, State, StoreUnavailable, TriggerRequest, new_replica_id

log = logging.getLogger("scheduler.redis")

POOL_SIZE = 32  # connections for claims, outcomes and reads; outcomes are batched

# Short enough that no single call can outlive a lease renewal period.
SOCKET_TIMEOUT_S = 2.0

# SET NX PX, and on success INCR the fencing epoch in the same atomic step, so an epoch is
# never handed to two holders. A replica that still holds its own key (it lost track of
# it, for instance after a timeout on a renewal that did succeed) takes a new epoch too.
#
# A missing epoch (a new namespace, or a Redis that lost its data) starts from the server's
# clock in milliseconds rather than from 0, so fencing tokens keep growing even across a
# loss of state: a target that refuses tokens lower than one it has seen keeps working.
ACQUIRE = """
local ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if not ok then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[2], now[1] * 1000 + math.floor(now[2] / 1000))
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
# twice. Returns -1 when the lease is not ours, else per claim 0 (stale), 1 (claimed) or
# 2 (paused: the watermark advances, nothing is recorded in flight).
# KEYS: leader slots inflight paused trigger triggered
# ARGV: replica epoch now_ms claims, the claims one JSON array of [kind, job, slot, attempt,
# trigger_id] strings: one argument to encode instead of five per claim, which matters to
# the client when a thousand jobs are due at once.
CLAIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local epoch, now = ARGV[2], ARGV[3]
local out = {}
for _, c in ipairs(cjson.decode(ARGV[4])) do
  local kind, job, slot, attempt, tid = c[1], c[2], c[3], c[4], c[5]
  local field = job .. '@' .. slot
  if tid ~= '' then field = job .. '@manual:' .. tid end
  local record = '{"epoch":' .. epoch .. ',"attempt":' .. attempt .. ',"slot":' .. slot ..
    ',"claimed_at":' .. now .. '}'
  local ok = 0
  if kind == 'redeliver' then
    if redis.call('HEXISTS', KEYS[3], field) == 1 then
      redis.call('HSET', KEYS[3], field, record)
      ok = 1
    end
  elseif kind == 'init' then
    ok = redis.call('HSETNX', KEYS[2], job, slot)
  elseif kind == 'trigger' then
    -- A request id fires once, whichever leader takes it and however often it was sent.
    for _, raw in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
      local ok, rec = pcall(cjson.decode, raw)
      if ok and tostring(rec['id']) == tid then redis.call('LREM', KEYS[5], 0, raw) end
    end
    if redis.call('HSETNX', KEYS[6], tid, now) == 1 then
      redis.call('HSET', KEYS[3], field, record)
      ok = 1
    end
  else
    local mark = tonumber(redis.call('HGET', KEYS[2], job))
    if not mark or tonumber(slot) > mark then
      redis.call('HSET', KEYS[2], job, slot)
      if redis.call('SISMEMBER', KEYS[4], job) == 1 then
        ok = 2
      else
        if kind == 'fire' then redis.call('HSET', KEYS[3], field, record) end
        ok = 1
      end
    elseif kind == 'fire' and tonumber(slot) == mark then
      -- A retry of a claim whose reply was lost: it is ours if recorded under our epoch.
      local cur = redis.call('HGET', KEYS[3], field)
      if cur and tostring(cjson.decode(cur)['epoch']) == epoch then ok = 1 end
    elseif kind == 'skip' and tonumber(slot) == mark then
      ok = 1  -- a skip sent again: only the leader claims, so the mark is its own
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

# Outcomes of many fires in one call. KEYS[1] is the in-flight hash; ARGV[1] the prefix of
# the job hashes, ARGV[2] a JSON array of [job, field, status, slot, finished_at,
# duration_ms, http_status, error, attempts] strings. The job hashes are named from the
# prefix rather than listed in KEYS (thousands of keys per call otherwise); they carry the
# same {namespace} hash tag, so the script still touches a single Cluster slot. Returns each
# job's failure streak after its outcome.
FINISH = """
local out = {}
for _, o in ipairs(cjson.decode(ARGV[2])) do
  local key, field, status, slot, at = ARGV[1] .. o[1], o[2], o[3], o[4], o[5]
  redis.call('HDEL', KEYS[1], field)
  local fails = 0
  if status == 'ok' then
    redis.call('HSET', key, 'consecutive_failures', 0, 'last_success_at', at)
  else
    fails = redis.call('HINCRBY', key, 'consecutive_failures', 1)
  end
  redis.call('HSET', key, 'status', status, 'slot', slot, 'finished_at', at,
    'duration_ms', o[6], 'http_status', o[7], 'error', o[8], 'attempts', o[9])
  out[#out + 1] = fails
end
return out
"""

# Queue a manual fire unless the same id was already taken, or one for the job is still
# queued or in flight (then the caller is told which one it joins). Wakes the leader.
# KEYS: trigger inflight triggered  ARGV: job id raw_request wake_channel
REQUEST_TRIGGER = """
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then
  return cjson.encode({id = ARGV[2]})
end
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local ok, rec = pcall(cjson.decode, raw)
  if ok and rec['job'] == ARGV[1] then return raw end
end
local prefix = ARGV[1] .. '@manual:'
for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
  if string.sub(field, 1, #prefix) == prefix then
    local rec = cjson.decode(redis.call('HGET', KEYS[2], field))
    rec['id'] = string.sub(field, #prefix + 1)
    return cjson.encode(rec)
  end
end
redis.call('RPUSH', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], 'trigger')
return false
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
        self.k_wake = f"{ns}:wake"
        self.k_trigger = f"{ns}:trigger"
        self.k_triggered = f"{ns}:triggered"
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

            kw = {}
            if url:
                ck = aioredis.ConnectionPool.from_url(url).connection_kwargs
                kw = {k: ck[k] for k in ("username", "password", "db") if ck.get(k) is not None}
            self._sentinel = Sentinel(list(sentinels), **opts)

            def client(size: int) -> aioredis.Redis:
                return self._sentinel.master_for(sentinel_master, max_connections=size, **opts, **kw)
        else:
            self._sentinel = None

            def client(size: int) -> aioredis.Redis:
                # A caller waits for a free connection instead of failing: a burst of
                # outcomes must never fail for want of a connection.
                pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=size, timeout=SOCKET_TIMEOUT_S, **opts)
                return aioredis.Redis(connection_pool=pool)

        self.redis = client(POOL_SIZE)
        # The lease is kept on connections of its own, so no burst of other calls can
        # make a renewal wait its turn past the lease.
        self.lease_redis = client(2)
        self._acquire = self.lease_redis.register_script(ACQUIRE)
        self._renew = self.lease_redis.register_script(RENEW)
        self._release = self.lease_redis.register_script(RELEASE)
        self._claim = self.redis.register_script(CLAIM)
        self._note = self.redis.register_script(NOTE_ATTEMPT)
        self._finish = self.redis.register_script(FINISH)
        self._request = self.redis.register_script(REQUEST_TRIGGER)
        self._pubsub = None
        self._pubsub_stale = False

    async def _call(self, coro):
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT_S * 2 + 0.5):
                return await coro
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from None
        except Exception as exc:
            # A client in a state it does not expect (say, a connection torn by a failover)
            # is an unreachable store too: the loop retries, the process never dies of it.
            raise StoreUnavailable(f"redis client: {type(exc).__name__}: {exc}") from None

    async def _master_moved(self) -> bool:
        """With Sentinel: ask the sentinels where the master is now. After a failover the old
        master can stay up, and a master to the connections it has, for seconds; whatever
        is written there is lost. redis-py asks only when it opens a connection, so the
        lease keeper and the claims ask before they write."""
        if self._sentinel is None:
            return False
        moved = None
        for pool in (self.redis.connection_pool, self.lease_redis.connection_pool):
            before = pool.master_address
            now = await self._call(pool.get_master_address())  # drops idle connections on a move
            if before is not None and now != before:
                moved = (before, now)
        if moved is None:
            return False
        before, now = moved
        self._pubsub_stale = True  # its reader drops it; closing it here would pull it from under that reader
        log.warning("Redis master moved", extra={"from": f"{before[0]}:{before[1]}", "to": f"{now[0]}:{now[1]}"})
        return True

    async def acquire(self) -> int | None:
        await self._master_moved()
        epoch = await self._call(self._acquire(keys=[self.k_leader, self.k_epoch], args=[self.replica_id, self.lease_ttl_ms]))
        return None if epoch is None else int(epoch)

    async def renew(self) -> bool:
        if await self._master_moved():
            return False  # the lease and the claims since the move may be gone: start over
        return bool(await self._call(self._renew(keys=[self.k_leader], args=[self.replica_id, self.lease_ttl_ms])))

    async def release(self) -> None:
        await self._call(self._release(keys=[self.k_leader, self.k_released], args=[self.replica_id]))

    async def wait_released(self, timeout_s: float) -> None:
        await self._wait_message(self.k_released, timeout_s)

    async def wait_wake(self, timeout_s: float) -> None:
        await self._wait_message(self.k_wake, timeout_s)

    async def _wait_message(self, channel: str, timeout_s: float) -> None:
        """Until a message on `channel` or the timeout. One subscription serves both
        channels: a replica waits on one of them at a time, and drops the other's news."""
        deadline = time.monotonic() + timeout_s
        try:
            if self._pubsub_stale:
                self._pubsub_stale = False
                await self._drop_pubsub()
            if self._pubsub is None:
                self._pubsub = self.redis.pubsub()
                await self._pubsub.subscribe(self.k_released, self.k_wake)
            while (left := deadline - time.monotonic()) > 0 and not self._pubsub_stale:
                async with asyncio.timeout(left + SOCKET_TIMEOUT_S):
                    msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=min(left, 1.0))
                if msg is not None and msg.get("channel") == channel:
                    return
        except Exception:  # RedisError, OSError, a timeout, or a client in a state it did not expect
            # The subscription died with its connection; the next call subscribes again.
            await self._drop_pubsub()
            await asyncio.sleep(max(0.0, min(deadline - time.monotonic(), 1.0)))

    async def _drop_pubsub(self) -> None:
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except Exception:
                pass
            self._pubsub = None

    async def load(self, jobs: Sequence[str]) -> State:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.k_slots)
            pipe.hgetall(self.k_inflight)
            pipe.smembers(self.k_paused)
            for job in jobs:
                pipe.hmget(self.job_prefix + job, "last_success_at", "consecutive_failures")
            slots, inflight, paused, *health = await self._call(pipe.execute())
        return State(
            watermarks={job: int(slot) for job, slot in slots.items()},
            inflight=[_parse_inflight(k, v) for k, v in inflight.items()],
            paused=set(paused),
            health={
                job: JobHealth(float(ok) if ok else None, int(fails or 0))
                for job, (ok, fails) in zip(jobs, health)
            },
        )

    async def claim(self, epoch: int, claims: Sequence[Claim]) -> list[int]:
        if not claims:
            return []
        if await self._master_moved():
            raise LeaseLost("the Redis master moved")
        payload = json.dumps([[c.kind, c.job, str(c.slot), str(c.attempt), c.trigger or ""] for c in claims])
        args = [self.replica_id, epoch, int(time.time() * 1000), payload]
        keys = [self.k_leader, self.k_slots, self.k_inflight, self.k_paused, self.k_trigger, self.k_triggered]
        result = await self._call(self._claim(keys=keys, args=args))
        if result == -1:
            raise LeaseLost()
        return [int(x) for x in result]

    async def note_attempt(self, epoch: int, claim: Claim, attempt: int) -> None:
        await self._call(self._note(keys=[self.k_inflight], args=[claim.field, epoch, attempt]))

    async def finish(self, outcomes: Sequence[tuple[Claim, Outcome]]) -> list[int]:
        if not outcomes:
            return []
        payload = json.dumps([
            [claim.job, claim.field, o.status, str(claim.slot), f"{o.finished_at:.3f}", str(int(o.duration_s * 1000)),
             str(o.http_status or ""), o.error or "", str(o.attempts)]
            for claim, o in outcomes
        ])
        result = await self._call(self._finish(keys=[self.k_inflight], args=[self.job_prefix, payload]))
        return [int(x) for x in result]

    async def pending_triggers(self) -> list[TriggerRequest]:
        raws = await self._call(self.redis.lrange(self.k_trigger, 0, -1))
        out = []
        for raw in raws:
            try:
                rec = json.loads(raw)
                req = TriggerRequest(str(rec["id"]), str(rec["job"]), int(rec["requested_at"]))
            except (ValueError, KeyError, TypeError):
                await self._call(self.redis.lrem(self.k_trigger, 0, raw))  # not ours to read
                continue
            out.append(req)
        return out

    async def set_paused(self, job: str, paused: bool) -> bool:
        if paused:
            changed = await self._call(self.redis.sadd(self.k_paused, job))
        else:
            changed = await self._call(self.redis.srem(self.k_paused, job))
        return bool(changed)

    async def request_trigger(self, request: TriggerRequest) -> TriggerRequest | None:
        raw = json.dumps({"id": request.id, "job": request.job, "requested_at": request.requested_at})
        keys = [self.k_trigger, self.k_inflight, self.k_triggered]
        found = await self._call(self._request(keys=keys, args=[request.job, request.id, raw, self.k_wake]))
        if not found:
            return None
        rec = json.loads(found)
        return TriggerRequest(str(rec["id"]), request.job, int(rec.get("requested_at") or rec.get("slot") or 0))

    async def status(self, jobs: Sequence[str]) -> dict:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.k_leader)
            pipe.pttl(self.k_leader)
            pipe.get(self.k_epoch)
            pipe.hgetall(self.k_slots)
            pipe.hgetall(self.k_inflight)
            pipe.smembers(self.k_paused)
            pipe.lrange(self.k_trigger, 0, -1)
            for job in jobs:
                pipe.hgetall(self.job_prefix + job)
            leader, pttl, epoch, slots, inflight, paused, triggers, *records = await self._call(pipe.execute())
        return {
            "leader": leader,
            "lease_left_s": pttl / 1000 if leader and pttl and pttl > 0 else None,
            "epoch": int(epoch) if epoch else None,
            "watermarks": {j: int(s) for j, s in slots.items()},
            "inflight": [_parse_inflight(k, v) for k, v in inflight.items()],
            "paused": set(paused),
            "pending_triggers": [json.loads(t) for t in triggers],
            "jobs": {job: _typed(rec) for job, rec in zip(jobs, records)},
        }

    async def warnings(self) -> list[str]:
        out = []
        try:
            policy = (await self._call(self.redis.config_get("maxmemory-policy"))).get("maxmemory-policy", "")
            aof = (await self._call(self.redis.config_get("appendonly"))).get("appendonly", "")
            save = (await self._call(self.redis.config_get("save"))).get("save", "")
        except StoreUnavailable:
            return ["could not read the Redis configuration (CONFIG GET refused?); eviction and persistence unchecked"]
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

    async def ping(self) -> bool:
        try:
            return bool(await self._call(self.redis.ping()))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        await self._drop_pubsub()
        await self.redis.aclose()
        await self.lease_redis.aclose()


def _parse_inflight(field: str, value: str) -> InFlight:
    job, _, rest = field.rpartition("@")
    rec = json.loads(value)
    if rest.startswith("manual:"):
        return InFlight(job, int(rec["slot"]), int(rec["epoch"]), int(rec["attempt"]), rest[len("manual:"):])
    return InFlight(job, int(rest), int(rec["epoch"]), int(rec["attempt"]))


def _typed(record: dict[str, str]) -> dict:
    out: dict = {}
    for key, value in record.items():
        if key in ("slot", "duration_ms", "http_status", "attempts", "consecutive_failures"):
            out[key] = int(value) if value else None
        elif key in ("finished_at", "last_success_at"):
            out[key] = float(value) if value else None
        else:
            out[key] = value or None
    return out
