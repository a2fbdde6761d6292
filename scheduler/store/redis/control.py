"""The Redis store's control commands: pause, resume, trigger, history and status. Any
replica or the CLI runs them; none needs the lease (SPEC section 5)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from . import records
from ..noted import noted
from ...model import MalformedRecord, TriggerRequest


class ControlCommands:
    """Mixed into RedisStore, whose keys, clients and reads these use."""

    # Provided by RedisStore.
    redis: Any
    k_paused: str
    k_trigger: str
    k_inflight: str
    k_triggered: str
    k_wake: str
    k_sources: str
    k_sources_state: str
    replica_id: str
    k_leader: str
    k_epoch: str
    history_prefix: str
    history_keep: int
    _request: Any
    _call: Any
    _publish: Any
    _read_state: Any

    async def set_paused(self, job: str, paused: bool) -> bool:
        if paused:
            changed = await self._call(self.redis.sadd(self.k_paused, job), [job])
        else:
            changed = await self._call(self.redis.srem(self.k_paused, job), [job])
        return bool(changed)

    async def drop_pauses(self, jobs: Sequence[str]) -> int:
        if not jobs:
            return 0
        return int(await self._call(self.redis.srem(self.k_paused, *jobs), jobs))

    async def request_trigger(self, request: TriggerRequest) -> TriggerRequest | None:
        raw = json.dumps({"id": request.id, "job": request.job, "requested_at": request.requested_at})
        keys = [self.k_trigger, self.k_inflight, self.k_triggered]
        found = await self._call(self._request(keys=keys, args=[request.job, request.id, raw, self.k_wake]), [request.job])
        if not found:
            return None
        try:
            rec = json.loads(found)
            return TriggerRequest(str(rec["id"]), request.job, records.whole(rec.get("requested_at") or rec.get("slot") or 0, "time"))
        except (ValueError, KeyError, TypeError):
            return TriggerRequest(request.id, request.job, 0)

    async def request_sources(self, what: str) -> None:
        await self._call(self.redis.hincrby(self.k_sources, what, 1))

    async def note_sources(self, sources: list[dict]) -> None:
        raw = json.dumps({"at": time.time(), "sources": sources})
        await self._call(self.redis.hset(self.k_sources_state, self.replica_id, raw))

    async def noted_sources(self) -> list[dict]:
        found = await self._call(self.redis.hgetall(self.k_sources_state))
        return noted(found.items())

    async def sources_requests(self) -> tuple[int, int]:
        raw = await self._call(self.redis.hmget(self.k_sources, ["refresh", "accept"]))
        return tuple(_count(v) for v in raw)  # type: ignore[return-value]
    async def wake_leader(self) -> str | None:
        return await self._publish(self.k_wake, "trigger")

    async def history(self, job: str, limit: int | None = None) -> list[dict]:
        raws = await self._call(self.redis.lrange(self.history_prefix + job, 0, (limit or self.history_keep or 1) - 1), [job])
        out = []
        for raw in raws:
            try:
                entry = json.loads(raw)
            except (ValueError, RecursionError):
                entry = None
            if isinstance(entry, dict):
                out.append(entry)
        return out

    async def status(self, jobs: Sequence[str]) -> dict:
        def extra(pipe):
            pipe.get(self.k_leader)
            pipe.pttl(self.k_leader)
            pipe.get(self.k_epoch)
            pipe.lrange(self.k_trigger, 0, -1)

        state, typed, (leader, pttl, epoch, triggers) = await self._read_state(jobs, extra)
        pending = []
        for raw in triggers:
            try:
                req = records.trigger(raw)
            except MalformedRecord:
                continue  # set aside by the leader's next look at the queue
            pending.append({"id": req.id, "job": req.job, "requested_at": req.requested_at})
        try:
            epoch_value = records.whole(epoch, "epoch") if epoch else None
        except MalformedRecord:
            epoch_value = None
        return {
            "leader": leader,
            "lease_left_s": pttl / 1000 if leader and pttl and pttl > 0 else None,
            "epoch": epoch_value,
            "watermarks": state.watermarks,
            "inflight": state.inflight,
            "paused": state.paused,
            "pending_triggers": pending,
            "jobs": typed,
        }


def _count(raw: Any) -> int:
    """A request counter; an unreadable one reads as -1, which differs from every count, so
    a replica acts on it once rather than never."""
    if raw is None:
        return 0
    try:
        return int(raw)
    except (TypeError, ValueError):
        return -1
