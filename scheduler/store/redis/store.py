"""The Redis store: the `Store` protocol over parts that each depend on the namespace's key
names (`keys`) and one way of making a call (`caller`), nothing else of the store.

`lease` holds the lease and the fencing epoch; `replicas`, where the master is and whether
claims wait for a replica; `claims`, the claims and outcomes; `reads`, the state as read and
checked (its records, which may be malformed, parsed in `records`); `control`, the operator's
commands; `quarantine`, what is set aside as unreadable; `gc`, the `state` commands. The
scripts are in `scripts`, or beside the code that runs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from . import cluster
from . import scripts
from .audit import AUDIT_APPEND, AUDIT_READ, Audit
from ..audit_records import AUDIT_KEEP
from ...model import Claim, Finished, SlotRequest, State, TriggerRequest
from .caller import Caller
from .claims import Claims
from .control import REQUEST_SLOTS, Control
from .handover import HANDOVER, LOOK_EVERY_S, TAKEOVER, Handover
from .gc import GC_JOB, redis_format_problem, redis_gc, redis_quarantined
from .keys import Keys
from .ledger import LedgerReads
from ..ledger import PASSED, RUNS_LIMIT
from .lease import Lease
from .quarantine import QUARANTINE_FIELD, QUARANTINE_KEYS, Quarantine, configuration_warnings
from .reads import LOAD_RECORDS, StateReads
from .replicas import Replicas
from ..protocol import LeaseLost, StoreUnavailable, new_replica_id

# Every script the store runs: a refused command inside one is named by its line (acl).
SCRIPTS = (HANDOVER, TAKEOVER, scripts.ACQUIRE, scripts.RENEW, scripts.RELEASE, scripts.CLAIM, scripts.NOTE_ATTEMPT, scripts.FINISH,
           scripts.REQUEST_TRIGGER, REQUEST_SLOTS, QUARANTINE_FIELD, QUARANTINE_KEYS, LOAD_RECORDS, GC_JOB, AUDIT_APPEND, AUDIT_READ)


class RedisStore:
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
        history_age_s: float | None = None,  # SCHEDULER_HISTORY_AGE; None: no age bound
        clock: Callable[[], float] = time.time,
        audit_keep: int = AUDIT_KEEP,
        name_connections: bool = False,
    ):
        self.replica_id = replica_id or new_replica_id()
        self.namespace = namespace
        self.keys = keys = Keys(namespace)
        self.caller = caller = Caller(keys, url, sentinels, sentinel_master, SCRIPTS,
                                      self.replica_id if name_connections else None)
        self.quarantine = Quarantine(keys, caller)
        caller.repair = self.quarantine.repair_keys
        self.replicas = Replicas(keys, caller)
        self.lease = Lease(keys, caller, self.replica_id, ttl_ms=int(lease_ttl_s * 1000),
                           max_skew_ms=int(max_skew_s * 1000), clock=clock)
        # A slot may be claimed this far ahead of the server's clock: the engine's claim-ahead
        # plus the skew that is tolerated.
        self.claims = Claims(keys, caller, self.replica_id, max_ahead_ms=int((claim_ahead_s + max_skew_s) * 1000),
                             history_keep=history, clock=clock, history_age_s=history_age_s)
        self.reads = StateReads(keys, caller, self.quarantine)
        self.handover = Handover(keys, caller, self.replica_id, int(lease_ttl_s * 1000))
        self.control = Control(keys, caller, history)
        self.audit_log = Audit(keys, caller, audit_keep)
        self.ledger = LedgerReads(keys, caller)

    # What the engine, the CLI and the tests read or set on a store, kept where it lives.

    @property
    def clock_skew_s(self) -> float | None:
        return self.lease.clock_skew_s

    @clock_skew_s.setter
    def clock_skew_s(self, value: float | None) -> None:
        self.lease.clock_skew_s = value

    @property
    def format_problem(self) -> str | None:
        return self.lease.format_problem

    @format_problem.setter
    def format_problem(self, value: str | None) -> None:
        self.lease.format_problem = value

    @property
    def read_only(self) -> bool:
        return self.quarantine.read_only

    @read_only.setter
    def read_only(self, value: bool) -> None:
        self.quarantine.read_only = value

    @property
    def on_malformed(self) -> Callable[[str], None] | None:
        return self.quarantine.on_malformed

    @on_malformed.setter
    def on_malformed(self, hook: Callable[[str], None] | None) -> None:
        self.quarantine.on_malformed = hook

    @property
    def wait_replicas(self) -> int:
        return self.replicas.wait

    @wait_replicas.setter
    def wait_replicas(self, value: int) -> None:
        self.replicas.wait = value

    @property
    def malformed(self) -> int:
        return self.quarantine.count

    @property
    def cluster(self) -> bool | None:
        return self.caller.cluster

    @property
    def redis(self) -> Any:  # the main client of the moment: plain, Sentinel or a cluster's
        return self.caller.redis

    @property
    def k_leader(self) -> str:
        return self.keys.leader

    @property
    def k_slots(self) -> str:
        return self.keys.slots

    async def open(self) -> None:
        await self.caller.open()

    # The lease. Before each write the sentinels are asked where the master is (replicas).

    async def acquire(self) -> int | None:
        await self.replicas.master_moved()
        await self.replicas.count()
        return await self.lease.acquire()

    def clock_ok(self) -> bool:
        return self.lease.clock_ok()

    async def renew(self) -> bool:
        if await self.replicas.master_moved():
            return False  # the lease and the claims since the move may be gone: start over
        await self.replicas.count()
        return await self.lease.renew()

    async def release(self) -> str | None:
        return await self.lease.release()

    async def hand_over(self, epoch: int, fields: Sequence[str], hold_s: float) -> str | None:
        if await self.handover.hand_over(epoch, list(fields), hold_s):
            return await self.caller.publish(self.keys.released, self.replica_id)
        return None

    async def wait_released(self, timeout_s: float) -> None:
        """Also, every LOOK_EVERY_S, whether the holder's process is gone (handover.py)."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if await self.handover.holder_gone():
                return
            if self.handover.blind:
                await self.caller.notices.wait(self.keys.released, left)
                return
            if await self.caller.notices.wait(self.keys.released, min(left, LOOK_EVERY_S)):
                return

    async def wait_wake(self, timeout_s: float) -> None:
        await self.caller.notices.wait(self.keys.wake, timeout_s)

    # A leadership's reads and writes.

    async def load(self, jobs: Sequence[str]) -> State:
        return await self.reads.load(jobs)

    async def pending_triggers(self) -> list[TriggerRequest]:
        return await self.reads.pending_triggers()

    async def pending_slots(self) -> list[SlotRequest]:
        return await self.reads.pending_slots()

    async def claim(self, epoch: int, claims: Sequence[Claim]) -> list[int]:
        if not claims:
            return []
        if await self.replicas.master_moved():
            raise LeaseLost("the Redis master moved")
        return await self.claims.claim(epoch, claims, self.replicas.wait)

    async def note_attempt(self, epoch: int, claim: Claim, attempt: int) -> None:
        await self.claims.note_attempt(epoch, claim, attempt)

    async def finish(self, items: Sequence[Finished]) -> list[int]:
        return await self.claims.finish(items)

    # The operator's commands.

    async def set_paused(self, job: str, paused: bool) -> bool:
        return await self.control.set_paused(job, paused)

    async def drop_pauses(self, jobs: Sequence[str]) -> int:
        return await self.control.drop_pauses(jobs)

    async def request_trigger(self, request: TriggerRequest) -> TriggerRequest | None:
        return await self.control.request_trigger(request)

    async def request_slots(self, job: str, requests: Sequence[SlotRequest]) -> list[int]:
        return await self.control.request_slots(job, requests)

    async def request_sources(self, what: str) -> None:
        await self.control.request_sources(what)

    async def sources_requests(self) -> tuple[int, int]:
        return await self.control.sources_requests()

    async def note_sources(self, sources: list[dict]) -> None:
        await self.control.note_sources(self.replica_id, sources)

    async def noted_sources(self) -> list[dict]:
        return await self.control.noted_sources()

    async def wake_leader(self) -> str | None:
        return await self.control.wake_leader()

    async def history(self, job: str, limit: int | None = None) -> list[dict]:
        # As before the ledger: finished fires only, without the ledger's ids.
        entries = (await self.runs(job, limit=limit or self.claims.history_keep or 1))[0]
        return [{k: v for k, v in e.items() if k != "id"} for e in entries if e["outcome"] not in PASSED]

    async def runs(self, job: str, before: int | None = None, after: int | None = None, limit: int = RUNS_LIMIT,
                   cursor: str | None = None) -> tuple[list[dict], str | None]:
        return await self.ledger.runs(job, before, after, limit, cursor)

    async def run(self, job: str, run_id: str) -> dict | None:
        return await self.ledger.run(job, run_id)

    async def leaderships(self) -> list[dict]:
        return await self.ledger.leaderships()

    async def status(self, jobs: Sequence[str]) -> dict:
        return await self.reads.status(jobs)

    async def audit_append(self, entry: dict) -> int:
        return await self.audit_log.append(entry)

    async def audit(self, limit: int, before: int | None = None) -> list[dict]:
        return await self.audit_log.read(limit, before)

    async def gc(self, keep_jobs: Sequence[str], older_than_s: float, dry_run: bool = False) -> list[str]:
        return await self.caller.refused_named(redis_gc(self.caller.redis, self.keys, keep_jobs, older_than_s, dry_run))

    async def quarantined(self, delete: bool = False) -> list[dict]:
        return await self.caller.refused_named(redis_quarantined(self.caller.redis, self.keys, delete))

    async def check_format(self) -> str | None:
        return await self.caller.refused_named(redis_format_problem(self.caller.redis, self.keys))

    async def warnings(self) -> list[str]:
        return await configuration_warnings(self.caller)

    async def ping(self) -> bool:
        try:
            return bool(await self.caller.call(self._ping()))
        except StoreUnavailable:
            return False

    async def _ping(self) -> bool:
        # On a cluster, the slot's master: any other node answering says nothing of the state.
        client = self.caller.redis
        return bool(await client.execute_command("PING", **await cluster.owner_target(client, self.keys.leader)))

    async def close(self) -> None:
        await self.caller.close()
