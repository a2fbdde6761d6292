"""The Redis store: its keys and clients, atomic claims, outcomes.

Every key lives under `{namespace}:`; the braces are a Redis Cluster hash tag, so all keys
share one slot and each script touches keys of one slot only. The scripts are in
`redis_scripts`; the lease and fencing epoch in `redis_lease`; reading the state in
`redis_reads`, and parsing its records, which may be malformed, in `redis_records`; the
control commands in `redis_control`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from redis.exceptions import RedisError, ResponseError

from . import scripts
from ...model import Claim, Finished
from .connect import SOCKET_TIMEOUT_S, connect
from .control import ControlCommands
from .gc import redis_format_problem, redis_gc, redis_quarantined
from .lease import LeaseCommands
from .notices import Notices
from .quarantine import Quarantine, configuration_warnings
from .reads import LOAD_RECORDS, StateReads
from ..protocol import LeaseLost, StoreUnavailable, new_replica_id

log = logging.getLogger("scheduler.redis")

# With Sentinel, a claim counts only once a replica has it: a planned failover promotes a
# replica, and a claim the old master took but never passed on would be claimed again.
REPLICA_WAIT_MS = 500


class ClaimNotReplicated(LeaseLost):
    """The claim was written, but no replica confirmed it in time."""


class RedisStore(LeaseCommands, StateReads, ControlCommands):
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
        self._load_records = self.redis.register_script(LOAD_RECORDS)
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

    async def wait_wake(self, timeout_s: float) -> None:
        await self.notices.wait(self.k_wake, timeout_s)

    async def claim(self, epoch: int, claims: Sequence[Claim]) -> list[int]:
        if not claims:
            return []
        if await self._master_moved():
            raise LeaseLost("the Redis master moved")
        payload = json.dumps([[c.kind, c.job, str(c.slot), str(c.attempt), c.trigger or "", c.field, c.reason or ""]
                              for c in claims])
        args: list[Any] = [self.replica_id, epoch, int(self.clock() * 1000), payload, self.job_prefix, self.max_ahead_ms,
                           self.history_prefix, self.history_keep]
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

    async def gc(self, keep_jobs: Sequence[str], older_than_s: float, dry_run: bool = False) -> list[str]:
        return await redis_gc(self, keep_jobs, older_than_s, dry_run)

    async def quarantined(self, delete: bool = False) -> list[dict]:
        return await redis_quarantined(self, delete)

    async def check_format(self) -> str | None:
        return await redis_format_problem(self)

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
