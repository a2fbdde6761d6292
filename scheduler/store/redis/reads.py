"""The Redis store's reads of the state: watermarks, in-flight fires, pauses, job records and
queued manual fires, checked as they are read; an unreadable record is set aside
(quarantine) and, for a watermark, stood in for by the newest slot known claimed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import records
from ...model import JobHealth, MalformedRecord, SlotRequest, State, TriggerRequest
from .caller import Caller
from .cluster import queue_script
from .keys import Keys
from .quarantine import Quarantine

LOAD_FIELDS = ("last_success_at", "consecutive_failures", "first_seen_at", "slot")

# The chosen fields of many job records in few commands: a hundred thousand HMGETs in one
# pipeline took 4.3-4.9 s to load (3.0-3.5 s with hiredis), mostly the client's cost per
# command; through this script, 1.3-1.6 s (the server spends about 5 us a job). A key of the
# wrong type answers false instead of failing the script: the reader sets it aside and reads
# the job as recordless.
# ARGV: job_prefix, number of fields, the fields, then the job names joined by newlines (no
# name holds one): one argument instead of 10,000, whose packing cost the client 0.2 s a load
# of 100,000 jobs.
LOAD_RECORDS = """
local prefix, n = ARGV[1], tonumber(ARGV[2])
local fields = {}
for i = 1, n do fields[i] = ARGV[2 + i] end
local out = {}
for name in string.gmatch(ARGV[3 + n], '[^\\n]+') do
  local ok, values = pcall(redis.call, 'HMGET', prefix .. name, unpack(fields))
  out[#out + 1] = ok and values or false
end
return out
"""
LOAD_CHUNK = 10_000  # job names per script call: one call blocks the server about 50 ms


def _health(typed: dict[str, dict]) -> dict[str, JobHealth]:
    """Each job's health from its typed record. Equal ones share one (frozen) JobHealth:
    jobs sighted together have the same first sighting and nothing else, and 100,000 of
    them at a leadership start then cost a few objects, not 100,000 (0.12 s)."""
    made: dict[tuple, JobHealth] = {}
    health = {}
    for job, rec in typed.items():
        if rec:
            key = (rec.get("last_success_at"), rec.get("consecutive_failures") or 0, rec.get("first_seen_at"))
            found = made.get(key)
            if found is None:
                found = made[key] = JobHealth(*key)
            health[job] = found
    return health


class StateReads:
    def __init__(self, keys: Keys, caller: Caller, quarantine: Quarantine):
        self.keys, self.caller, self.quarantine = keys, caller, quarantine
        # Run on the caller's client of the moment, given at each call (see caller).
        self._load_records = caller.redis.register_script(LOAD_RECORDS)

    async def read_state(self, jobs: Sequence[str], extra: Callable, fields: Sequence[str] = ()) -> tuple[State, dict, list]:
        """Watermarks, in-flight fires, pauses and job records, read in one round trip and
        checked; unreadable records are set aside. `extra` adds commands to the pipeline;
        `fields`: only these of each job's record (all when empty)."""
        chunks = range(0, len(jobs), LOAD_CHUNK) if fields else range(0)

        # One coroutine for `call`: on a cluster, entering the pipeline may read the slot map.
        async def read() -> list:
            async with self.caller.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(self.keys.slots)
                pipe.hgetall(self.keys.inflight)
                pipe.smembers(self.keys.paused)
                for start in chunks:
                    # The watermarks' key names the slot on a cluster; the script reads ARGV only.
                    await queue_script(pipe, self._load_records, [self.keys.slots],
                                       [self.keys.job_prefix, len(fields), *fields, "\n".join(jobs[start:start + LOAD_CHUNK])])
                if not fields:
                    for job in jobs:
                        pipe.hgetall(self.keys.job(job))
                extra(pipe)
                return await pipe.execute()

        slots, inflight, paused, *rest = await self.caller.call(read(), jobs)
        bad: list[tuple[str, ...]] = []
        if fields:
            raw_jobs, more = await self._chosen_fields(jobs, fields, rest[:len(chunks)]), rest[len(chunks):]
        else:
            raw_jobs, more = rest[:len(jobs)], rest[len(jobs):]
        marks = {}
        for job, value in slots.items():
            try:
                marks[job] = records.watermark(value)
            except MalformedRecord as exc:
                bad.append(("hash", self.keys.slots, job, value, str(exc)))
        fires = []
        for name, value in inflight.items():
            try:
                fires.append(records.inflight(name, value))
            except MalformedRecord as exc:
                bad.append(("hash", self.keys.inflight, name, value, str(exc)))
        typed = {}
        for job, raw in zip(jobs, raw_jobs):
            typed[job], fields = records.job_record(raw)
            bad += [("hash", self.keys.job(job), f, raw[f], f"unreadable {f}") for f in fields]
        for i, entry in enumerate(bad):
            if entry[1] != self.keys.slots:
                continue
            # An unreadable watermark: the newest slot known to have been claimed (its last
            # outcome, a fire in flight) stands in for it, here and in the store (whoever reads
            # it first, a leader or `status`), so CATCHUP still makes up what was missed
            # instead of the job starting over as if first seen.
            job = entry[2]
            known = [f.slot for f in fires if f.job == job and f.trigger is None]
            if (typed.get(job) or {}).get("slot") is not None:
                known.append(typed[job]["slot"])
            if known:
                marks[job] = max(known)
                bad[i] = (*entry, str(marks[job]))
        await self.quarantine.set_aside(bad)
        return State(marks, fires, set(paused), _health(typed)), typed, more

    async def _chosen_fields(self, jobs: Sequence[str], fields: Sequence[str], replies: list) -> list[dict]:
        """Each job's record from LOAD_RECORDS' replies; a key of the wrong type is renamed
        aside and read as no record."""
        raw_jobs, wrong = [], []
        for job, values in zip(jobs, (values for reply in replies for values in reply)):
            if values is None:
                wrong.append(job)
                values = ()
            raw_jobs.append({f: v for f, v in zip(fields, values) if v is not None})
        if wrong:
            await self.quarantine.repair_keys(wrong)
        return raw_jobs

    async def load(self, jobs: Sequence[str]) -> State:
        # A leader needs only these of each job's record: a few bytes a job, not the whole
        # last outcome, when a hundred thousand jobs are loaded at once.
        state, _, _ = await self.read_state(jobs, lambda pipe: None, LOAD_FIELDS)
        return state

    async def pending_triggers(self) -> list[TriggerRequest]:
        raws = await self.caller.call(self.caller.redis.lrange(self.keys.trigger, 0, -1))
        out, bad = [], []
        for raw in raws:
            try:
                out.append(records.trigger(raw))
            except MalformedRecord as exc:
                bad.append(("list", self.keys.trigger, "", raw, str(exc)))
        await self.quarantine.set_aside(bad)
        return out

    async def pending_slots(self) -> list[SlotRequest]:
        raws = await self.caller.call(self.caller.redis.hgetall(self.keys.redrive))
        out, bad = [], []
        for field, raw in raws.items():
            try:
                out.append(records.slot_request(field, raw))
            except MalformedRecord as exc:
                bad.append(("hash", self.keys.redrive, field, raw, str(exc)))
        await self.quarantine.set_aside(bad)
        out.sort(key=lambda r: (r.job, r.slot))
        return out

    async def status(self, jobs: Sequence[str]) -> dict:
        def extra(pipe):
            pipe.get(self.keys.leader)
            pipe.pttl(self.keys.leader)
            pipe.get(self.keys.epoch)
            pipe.lrange(self.keys.trigger, 0, -1)

        state, typed, (leader, pttl, epoch, triggers) = await self.read_state(jobs, extra)
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
