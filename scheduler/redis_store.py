"""The Redis store: lease, fencing epoch, atomic claims, outcomes.

Every key lives under `{namespace}:`; the braces are a Redis Cluster hash tag, so all keys
share one slot and each script touches keys of one slot only. The scripts are in
`redis_scripts`; reading records, which may be malformed, is in `redis_records`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from redis.exceptions import RedisError, ResponseError

from . import __version__
from . import redis_records as records
from . import redis_scripts as scripts
from .model import Claim, Finished, JobHealth, MalformedRecord, State, TriggerRequest
from .redis_connect import SOCKET_TIMEOUT_S, connect
from .redis_control import ControlCommands
from .redis_notices import Notices
from .redis_quarantine import Quarantine, configuration_warnings
from .store import LeaseLost, StoreUnavailable, new_replica_id

log = logging.getLogger("scheduler.redis")

# With Sentinel, a claim counts only once a replica has it: a planned failover promotes a
# replica, and a claim the old master took but never passed on would be claimed again.
REPLICA_WAIT_MS = 500


LOAD_FIELDS = ("last_success_at", "consecutive_failures", "first_seen_at", "slot")


class ClaimNotReplicated(LeaseLost):
    """The claim was written, but no replica confirmed it in time."""


class RedisStore(ControlCommands):
    dry_run = False

    def __init__(
        self,
        url: str | None,
        namespace: str,
        lease_ttl_s: float,
        *,
        sentinels: Sequence[tuple[str, int]] = (),
        sentinel_master: str | None = None,
        replica_id: str | None = None,
        max_skew_s: float = 1.0,
        claim_ahead_s: float = 0.25,
        history: int = 20,
        clock: Callable[[], float] = time.time,
    ):
        self.replica_id = replica_id or new_replica_id()
        self.namespace = namespace
        self.lease_ttl_ms = int(lease_ttl_s * 1000)
        self.max_skew_ms = int(max_skew_s * 1000)
        # A slot may be claimed this far ahead of the server's clock: the engine's claim-ahead
        # plus the skew that is tolerated.
        self.max_ahead_ms = int((claim_ahead_s + max_skew_s) * 1000)
        self.history_keep = history
        self.clock = clock  # this replica's wall clock, compared with the server's
        self.clock_skew_s: float | None = None  # ours minus the server's, at the last lease call
        self.format_problem: str | None = None  # set when the state is newer than this version reads
        self.read_only = False  # a dry run's view: unreadable records are skipped, not moved
        self.on_malformed: Callable[[str], None] | None = None
        ns = "{" + namespace + "}"
        self.k_leader, self.k_epoch, self.k_meta = f"{ns}:leader", f"{ns}:epoch", f"{ns}:meta"
        self.k_slots, self.k_inflight, self.k_paused = f"{ns}:slots", f"{ns}:inflight", f"{ns}:paused"
        self.k_released, self.k_wake = f"{ns}:released", f"{ns}:wake"
        self.k_trigger, self.k_triggered = f"{ns}:trigger", f"{ns}:triggered"
        self.k_quarantine = f"{ns}:quarantine"
        self.job_prefix, self.history_prefix = f"{ns}:job:", f"{ns}:history:"
        self.call_timeout_s = SOCKET_TIMEOUT_S * 2 + 0.5
        self.key_types = {
            self.k_leader: "string", self.k_epoch: "counter", self.k_meta: "hash", self.k_slots: "hash",
            self.k_inflight: "hash", self.k_paused: "set", self.k_trigger: "list", self.k_triggered: "hash",
            self.k_quarantine: "hash",
        }
        self.wait_replicas = 0  # with Sentinel: 1 while the sentinels see a live replica
        self._master_name = sentinel_master
        self._sentinel, self.redis, self.lease_redis = connect(url, sentinels, sentinel_master)
        self._acquire = self.lease_redis.register_script(scripts.ACQUIRE)
        self._renew = self.lease_redis.register_script(scripts.RENEW)
        self._release = self.lease_redis.register_script(scripts.RELEASE)
        self._claim = self.redis.register_script(scripts.CLAIM)
        self._note = self.redis.register_script(scripts.NOTE_ATTEMPT)
        self._finish = self.redis.register_script(scripts.FINISH)
        self._request = self.redis.register_script(scripts.REQUEST_TRIGGER)
        self.notices = Notices(self.redis, (self.k_released, self.k_wake))
        self.quarantine = Quarantine(self)

    async def _call(self, coro, jobs: Collection[str] = ()):
        try:
            async with asyncio.timeout(self.call_timeout_s):
                return await coro
        except ResponseError as exc:
            # An error reply: most likely a key of the wrong type or an epoch that is no
            # number (a stray write). Move such keys aside so the caller's retry succeeds.
            await self.quarantine.repair_keys(jobs)
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from None
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
            before = pool.master_address  # type: ignore[union-attr]  # a SentinelConnectionPool
            now = await self._call(pool.get_master_address())  # type: ignore[union-attr]  # drops idle connections on a move
            if before is not None and now != before:
                moved = (before, now)
        if moved is None:
            return False
        before, now = moved
        self.notices.stale = True  # its reader drops it; closing it here would pull it from under that reader
        log.warning("Redis master moved", extra={"from": f"{before[0]}:{before[1]}", "to": f"{now[0]}:{now[1]}"})
        return True

    async def _count_replicas(self) -> None:
        """With Sentinel, claims wait for a replica only while there is a live one to wait
        for: after the master died and its replica took over, no one is left to ask."""
        if self._sentinel is None:
            return
        alive = await self._call(self._sentinel.discover_slaves(self._master_name))
        if not alive:
            self.wait_replicas = 0
            return
        # Just after a failover the old master rejoins as a replica and copies the new one's
        # data for seconds: connected, not yet online. There is then no replica up to date to
        # lose a claim to, so claims go ahead. A master that lists no replica at all while the
        # sentinels see one is the other case: its replica may be taking over from it.
        info = await self._call(self.lease_redis.info("replication"))
        states = [v.get("state") for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        self.wait_replicas = 0 if states and "online" not in states else 1

    async def acquire(self) -> int | None:
        await self._master_moved()
        await self._count_replicas()
        args: list[Any] = [self.replica_id, self.lease_ttl_ms, int(self.clock() * 1000), self.max_skew_ms, scripts.FORMAT,
                __version__]
        status, value, skew_ms = await self._call(
            self._acquire(keys=[self.k_leader, self.k_epoch, self.k_meta], args=args))
        self.clock_skew_s = skew_ms / 1000
        if status == 3:
            self.format_problem = (f"the state in namespace {self.namespace!r} has format {value}; this version "
                                   f"({__version__}) reads format {scripts.FORMAT} and older")
            return None
        self.format_problem = None
        return int(value) if status == 1 else None

    def clock_ok(self) -> bool:
        return self.clock_skew_s is None or abs(self.clock_skew_s) * 1000 <= self.max_skew_ms

    async def renew(self) -> bool:
        if await self._master_moved():
            return False  # the lease and the claims since the move may be gone: start over
        await self._count_replicas()
        args: list[Any] = [self.replica_id, self.lease_ttl_ms, int(self.clock() * 1000), self.max_skew_ms]
        status, skew_ms = await self._call(self._renew(keys=[self.k_leader, self.k_released], args=args))
        self.clock_skew_s = skew_ms / 1000
        return status == 1

    async def release(self) -> None:
        await self._call(self._release(keys=[self.k_leader, self.k_released], args=[self.replica_id]))

    async def wait_released(self, timeout_s: float) -> None:
        await self.notices.wait(self.k_released, timeout_s)

    async def wait_wake(self, timeout_s: float) -> None:
        await self.notices.wait(self.k_wake, timeout_s)

    async def _read_state(self, jobs: Sequence[str], extra: Callable, fields: Sequence[str] = ()) -> tuple[State, dict, list]:
        """Watermarks, in-flight fires, pauses and job records, read in one round trip and
        checked; unreadable records are set aside. `extra` adds commands to the pipeline;
        `fields`: only these of each job's record (all when empty)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.k_slots)
            pipe.hgetall(self.k_inflight)
            pipe.smembers(self.k_paused)
            for job in jobs:
                if fields:
                    pipe.hmget(self.job_prefix + job, list(fields))
                else:
                    pipe.hgetall(self.job_prefix + job)
            extra(pipe)
            slots, inflight, paused, *rest = await self._call(pipe.execute(), jobs)
        raw_jobs, more = rest[:len(jobs)], rest[len(jobs):]
        if fields:
            raw_jobs = [{f: v for f, v in zip(fields, values) if v is not None} for values in raw_jobs]
        bad: list[tuple[str, ...]] = []
        marks = {}
        for job, value in slots.items():
            try:
                marks[job] = records.watermark(value)
            except MalformedRecord as exc:
                bad.append(("hash", self.k_slots, job, value, str(exc)))
        fires = []
        for name, value in inflight.items():
            try:
                fires.append(records.inflight(name, value))
            except MalformedRecord as exc:
                bad.append(("hash", self.k_inflight, name, value, str(exc)))
        typed = {}
        for job, raw in zip(jobs, raw_jobs):
            typed[job], fields = records.job_record(raw)
            bad += [("hash", self.job_prefix + job, f, raw[f], f"unreadable {f}") for f in fields]
        for i, entry in enumerate(bad):
            if entry[1] != self.k_slots:
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
        health = {
            job: JobHealth(rec.get("last_success_at"), rec.get("consecutive_failures") or 0, rec.get("first_seen_at"))
            for job, rec in typed.items() if rec
        }
        return State(marks, fires, set(paused), health), typed, more

    async def load(self, jobs: Sequence[str]) -> State:
        # A leader needs only these of each job's record: a few bytes a job, not the whole
        # last outcome, when a hundred thousand jobs are loaded at once.
        state, _, _ = await self._read_state(jobs, lambda pipe: None, LOAD_FIELDS)
        return state

    async def claim(self, epoch: int, claims: Sequence[Claim]) -> list[int]:
        if not claims:
            return []
        if await self._master_moved():
            raise LeaseLost("the Redis master moved")
        payload = json.dumps([[c.kind, c.job, str(c.slot), str(c.attempt), c.trigger or "", c.field] for c in claims])
        args: list[Any] = [self.replica_id, epoch, int(self.clock() * 1000), payload, self.job_prefix, self.max_ahead_ms]
        keys = [self.k_leader, self.k_slots, self.k_inflight, self.k_paused, self.k_trigger, self.k_triggered]
        if not self.wait_replicas:
            result = await self._call(self._claim(keys=keys, args=args), {c.job for c in claims})
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                await self._claim(keys=keys, args=args, client=pipe)
                pipe.execute_command("WAIT", self.wait_replicas, REPLICA_WAIT_MS)
                result, acked = await self._call(pipe.execute(), {c.job for c in claims})
            if result != -1 and acked < self.wait_replicas:
                raise ClaimNotReplicated(f"no replica confirmed the claim within {REPLICA_WAIT_MS} ms")
        if result == -1:
            raise LeaseLost()
        return [int(x) for x in result]

    async def note_attempt(self, epoch: int, claim: Claim, attempt: int) -> None:
        await self._call(self._note(keys=[self.k_inflight], args=[claim.field, epoch, attempt]))

    async def finish(self, items: Sequence[Finished]) -> list[int]:
        if not items:
            return []
        payload = json.dumps([_finish_entry(item) for item in items])
        args: list[Any] = [self.job_prefix, payload, self.history_prefix, self.history_keep]
        result = await self._call(self._finish(keys=[self.k_inflight], args=args), {i.claim.job for i in items})
        return [int(x) for x in result]

    async def pending_triggers(self) -> list[TriggerRequest]:
        raws = await self._call(self.redis.lrange(self.k_trigger, 0, -1))
        out, bad = [], []
        for raw in raws:
            try:
                out.append(records.trigger(raw))
            except MalformedRecord as exc:
                bad.append(("list", self.k_trigger, "", raw, str(exc)))
        await self.quarantine.set_aside(bad)
        return out

    async def warnings(self) -> list[str]:
        return await configuration_warnings(self)

    @property
    def malformed(self) -> int:
        return self.quarantine.count

    async def ping(self) -> bool:
        try:
            return bool(await self._call(self.redis.ping()))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        await self.notices.aclose()
        await self.redis.aclose()
        await self.lease_redis.aclose()


def _finish_entry(item: Finished) -> list[str]:
    claim, o = item.claim, item.outcome
    excerpt = o.excerpt
    lateness = "" if item.lateness_s is None else f"{item.lateness_s * 1000:.1f}"
    return [
        claim.job, claim.field, o.status, str(claim.slot), f"{o.finished_at:.3f}", str(int(o.duration_s * 1000)),
        str(o.http_status or ""), o.error or "", str(o.attempts), str(item.epoch), claim.trigger or "",
        excerpt or "", lateness,
    ]
