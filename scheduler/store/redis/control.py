"""The Redis store's control commands: pause, resume, trigger, the sources' requests and history. Any
replica or the CLI runs them; none needs the lease (SPEC section 5). `status` is a read
(reads.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from . import records
from . import scripts
from .caller import Caller
from .keys import Keys
from ..sources_records import noted, request_count
from ...model import SlotRequest, TriggerRequest


# Queue fires of named slots of one job (redrive, backfill), each under its in-flight field:
# not one in flight, already queued, or past the job's watermark (the schedule claims those).
# KEYS: redrive inflight slots  ARGV: job, a JSON array of [field, slot, raw_request]
# Returns the slots queued, in the order given.
REQUEST_SLOTS = """
local mark = tonumber(redis.call('HGET', KEYS[3], ARGV[1]))
local out = {}
if not mark then return out end
for _, r in ipairs(cjson.decode(ARGV[2])) do
  if tonumber(r[2]) <= mark and redis.call('HEXISTS', KEYS[2], r[1]) == 0 and
      redis.call('HSETNX', KEYS[1], r[1], r[3]) == 1 then
    out[#out + 1] = r[2]
  end
end
return out
"""


class Control:
    def __init__(self, keys: Keys, caller: Caller, history_keep: int):
        self.keys, self.caller = keys, caller
        self.history_keep = history_keep
        # Run on the caller's client of the moment, given at each call (see caller).
        self._request = caller.redis.register_script(scripts.REQUEST_TRIGGER)
        self._request_slots = caller.redis.register_script(REQUEST_SLOTS)

    async def set_paused(self, job: str, paused: bool) -> bool:
        if paused:
            changed = await self.caller.call(self.caller.redis.sadd(self.keys.paused, job), [job])
        else:
            changed = await self.caller.call(self.caller.redis.srem(self.keys.paused, job), [job])
        return bool(changed)

    async def drop_pauses(self, jobs: Sequence[str]) -> int:
        if not jobs:
            return 0
        return int(await self.caller.call(self.caller.redis.srem(self.keys.paused, *jobs), jobs))

    async def request_trigger(self, request: TriggerRequest) -> TriggerRequest | None:
        raw = json.dumps({"id": request.id, "job": request.job, "requested_at": request.requested_at})
        keys = [self.keys.trigger, self.keys.inflight, self.keys.triggered]
        found = await self.caller.call(self._request(keys=keys, args=[request.job, request.id, raw, self.keys.wake],
                                                      client=self.caller.redis), [request.job])
        if not found:
            return None
        try:
            rec = json.loads(found)
            return TriggerRequest(str(rec["id"]), request.job, records.whole(rec.get("requested_at") or rec.get("slot") or 0, "time"))
        except (ValueError, KeyError, TypeError):
            return TriggerRequest(request.id, request.job, 0)

    async def request_slots(self, job: str, requests: Sequence[SlotRequest]) -> list[int]:
        if not requests:
            return []
        payload = json.dumps([[r.field, r.slot, records.slot_request_raw(r)] for r in requests])
        keys = [self.keys.redrive, self.keys.inflight, self.keys.slots]
        found = await self.caller.call(self._request_slots(keys=keys, args=[job, payload], client=self.caller.redis), [job])
        return [int(slot) for slot in found]

    async def request_sources(self, what: str) -> None:
        await self.caller.call(self.caller.redis.hincrby(self.keys.sources, what, 1))

    async def note_sources(self, replica: str, sources: list[dict]) -> None:
        raw = json.dumps({"at": time.time(), "sources": sources})
        await self.caller.call(self.caller.redis.hset(self.keys.sources_state, replica, raw))

    async def noted_sources(self) -> list[dict]:
        found = await self.caller.call(self.caller.redis.hgetall(self.keys.sources_state))
        return noted(found.items())

    async def sources_requests(self) -> tuple[int, int]:
        raw = await self.caller.call(self.caller.redis.hmget(self.keys.sources, ["refresh", "accept"]))
        return tuple(request_count(v) for v in raw)  # type: ignore[return-value]

    async def wake_leader(self) -> str | None:
        return await self.caller.publish(self.keys.wake, "trigger")
