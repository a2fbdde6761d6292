"""The Redis store: its keys and clients, atomic claims, outcomes.

Every key lives under `{namespace}:`; the braces are a Redis Cluster hash tag, so all keys
share one slot and each script touches keys of one slot only; `redis_cluster` tells
whether the URL names a cluster node and routes what has no key. The scripts are in
`scripts`; the lease and fencing epoch in `lease`; reading the state in
`reads`, and parsing its records, which may be malformed, in `records`; the
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

from . import cluster
from . import scripts
from ...model import Claim, Finished
from .acl import ScriptNames, refusal
from .connect import SOCKET_TIMEOUT_S, connect
from .control import ControlCommands
from .gc import GC_JOB, redis_format_problem, redis_gc, redis_quarantined
from .lease import LeaseCommands
from .notices import Notices
from .quarantine import QUARANTINE_FIELD, QUARANTINE_KEYS, Quarantine, configuration_warnings
from .reads import LOAD_RECORDS, StateReads
from ..protocol import LeaseLost, StoreForbidden, StoreUnavailable, new_replica_id

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
        self.k_sources = f"{ns}:sources"  # refresh and accept requests of the job sources
        self.k_sources_state = f"{ns}:sources_state"  # each replica's view of its sources, for status
        self.k_trigger, self.k_triggered = f"{ns}:trigger", f"{ns}:triggered"
        self.k_quarantine = f"{ns}:quarantine"
        self.job_prefix, self.history_prefix = f"{ns}:job:", f"{ns}:history:"
        self.call_timeout_s = SOCKET_TIMEOUT_S * 2 + 0.5
        self.key_types = {
            self.k_leader: "string", self.k_epoch: "counter", self.k_meta: "hash", self.k_slots: "hash",
            self.k_inflight: "hash", self.k_paused: "set", self.k_trigger: "list", self.k_triggered: "hash",
            self.k_quarantine: "hash", self.k_sources: "hash", self.k_sources_state: "hash",
        }
        self.wait_replicas = 0  # with Sentinel or a cluster: 1 while the master has a live replica
        self._master_name = sentinel_master
        self._url, self._sentinels = url, tuple(sentinels)
        # A URL may name a plain server or any node of a Redis Cluster: None until the server
        # has said which (`_find_mode`), and the clients are plain ones meanwhile.
        self.cluster: bool | None = False if sentinels else None
        self._next_probe = 0.0
        self._told_cluster = False
        self._connect(False)
        self.quarantine = Quarantine(self)

    def _connect(self, cluster: bool) -> None:
        self._sentinel, self.redis, self.lease_redis = connect(self._url, self._sentinels, self._master_name, cluster)
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
        self._script_names = ScriptNames([
            scripts.ACQUIRE, scripts.RENEW, scripts.RELEASE, scripts.CLAIM, scripts.NOTE_ATTEMPT, scripts.FINISH,
            scripts.REQUEST_TRIGGER, QUARANTINE_FIELD, QUARANTINE_KEYS, LOAD_RECORDS, GC_JOB])

    async def open(self) -> None:
        """Ask the server whether it is a cluster node before the first call (the CLI's
        commands and the daemon's start). Not reachable yet: the first call asks again."""
        try:
            await self._find_mode()
        except Exception as exc:  # a URL a cluster client refuses: the calls report it
            log.warning("could not connect to the Redis Cluster", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def _find_mode(self) -> bool:
        """While it is not known whether the URL names a cluster node, ask (at most once a
        second); on a cluster, replace the plain clients. True when they were replaced."""
        now = time.monotonic()
        if self.cluster is not None or now < self._next_probe:
            return False
        self._next_probe = now + 1.0
        assert self._url is not None  # only a URL leaves the mode open
        found = await cluster.probe(self._url)
        if not found:
            self.cluster = found
            return False
        old = (self.notices, self.redis, self.lease_redis)
        self._connect(True)
        self.cluster = True
        for client in old:
            await client.aclose()
        log.info("Redis Cluster: the namespace's keys live in one hash slot",
                 extra={**await cluster.where(self.redis, self.k_leader), "namespace": self.namespace})
        return True

    async def _count_replicas(self) -> None:
        if not self.cluster:
            return await super()._count_replicas()
        # As with Sentinel (lease.py): claims wait for a replica of the slot's master only
        # while it has one online; after a failover the promoted replica has none yet.
        info = await self._call(self._master_replication())
        states = [v.get("state") for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        self.wait_replicas = 1 if "online" in states else 0

    async def _master_replication(self) -> dict:
        target = await cluster.owner_target(self.lease_redis, self.k_leader)
        return await self.lease_redis.execute_command("INFO", "replication", **target)

    async def _call(self, coro, jobs: Collection[str] = ()):
        try:
            async with asyncio.timeout(self.call_timeout_s):
                if self.cluster is None and await self._find_mode():
                    coro.close()  # made on the plain client: the caller's retry uses the cluster's
                    raise StoreUnavailable("redis: the URL names a Redis Cluster node; connected to the cluster")
                return await coro
        except ResponseError as exc:
            refused = refusal(exc, self.namespace, self._script_names)
            if refused is not None:
                raise StoreForbidden(refused) from None
            if cluster.cluster_reply(exc):
                await self._cluster_reply(exc)
                raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from None
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

    async def _publish(self, channel: str, message: str) -> str | None:
        """A notice, sent after the write it announces: why it could not be sent, if it
        could not (the write stands either way; the listeners see it at their next poll)."""
        try:
            await self._call(self.redis.publish(channel, message))
        except StoreUnavailable as exc:
            return str(exc)
        return None
    async def _cluster_reply(self, exc: ResponseError) -> None:
        """A reply only a cluster node gives. To a cluster client, a MOVED that a pipeline
        did not follow: the slot map is corrected for the next call. To a plain client,
        said once, plainly, and the mode is asked again."""
        if self.cluster:
            await cluster.follow_redirect(self.redis, exc)
            return
        self.cluster, self._next_probe = None, 0.0
        if not self._told_cluster:
            self._told_cluster = True
            log.error("Redis answered as a Redis Cluster node, but this client is not in cluster mode: "
                      "cluster detection (INFO, CLUSTER INFO) failed or was refused; it keeps asking",
                      extra={"reply": str(exc)[:120]})

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
            result, acked = await self._call(self._claim_and_wait(keys, args), {c.job for c in claims})
            if result != -1 and acked < self.wait_replicas:
                raise ClaimNotReplicated(f"no replica confirmed the claim within {REPLICA_WAIT_MS} ms")
        if result == -1:
            raise LeaseLost()
        return [int(x) for x in result]

    async def _claim_and_wait(self, keys: list[str], args: list[Any]) -> list:
        # One coroutine for `_call`: on a cluster, entering the pipeline may read the slot map.
        async with self.redis.pipeline(transaction=False) as pipe:
            await cluster.queue_script(pipe, self._claim, keys, args)
            # WAIT counts the replicas that have this connection's writes: on a cluster it is
            # sent to the slot's master, beside the claim, and a MOVED is not followed, which
            # would send the claim again on another connection.
            pipe.execute_command("WAIT", self.wait_replicas, REPLICA_WAIT_MS,
                                 **await cluster.owner_target(self.redis, self.k_leader))
            return await pipe.execute(**self._no_redirect)

    async def note_attempt(self, epoch: int, claim: Claim, attempt: int) -> None:
        await self._call(self._note(keys=[self.k_inflight], args=[claim.field, epoch, attempt]))

    async def finish(self, items: Sequence[Finished]) -> list[int]:
        if not items:
            return []
        payload = json.dumps([_finish_entry(item) for item in items])
        args: list[Any] = [self.job_prefix, payload, self.history_prefix, self.history_keep]
        result = await self._call(self._finish(keys=[self.k_inflight], args=args), {i.claim.job for i in items})
        return [int(x) for x in result]

    async def _refused_named(self, coro):
        """For the `state` commands' calls, which may run longer than `_call` allows: a
        refused permission as StoreForbidden, with its sentence; any other error as it is."""
        try:
            return await coro
        except ResponseError as exc:
            refused = refusal(exc, self.namespace, self._script_names)
            if refused is None:
                raise
            raise StoreForbidden(refused) from None

    async def gc(self, keep_jobs: Sequence[str], older_than_s: float, dry_run: bool = False) -> list[str]:
        return await self._refused_named(redis_gc(self, keep_jobs, older_than_s, dry_run))

    async def quarantined(self, delete: bool = False) -> list[dict]:
        return await self._refused_named(redis_quarantined(self, delete))

    async def check_format(self) -> str | None:
        return await self._refused_named(redis_format_problem(self))

    async def warnings(self) -> list[str]:
        return await configuration_warnings(self)

    @property
    def _no_redirect(self) -> dict[str, bool]:
        return {"allow_redirections": False} if self.cluster else {}

    @property
    def malformed(self) -> int:
        return self.quarantine.count

    async def ping(self) -> bool:
        try:
            return bool(await self._call(self._ping()))
        except StoreUnavailable:
            return False

    async def _ping(self) -> bool:
        # On a cluster, the slot's master: any other node answering says nothing of the state.
        return bool(await self.redis.execute_command("PING", **await cluster.owner_target(self.redis, self.k_leader)))

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
