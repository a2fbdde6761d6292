"""The Redis store's writes of a leadership: claims of due slots (one script, SPEC section 3),
a fire's attempts, and its outcomes with their ledger."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from . import cluster
from . import scripts
from .caller import Caller
from .keys import Keys
from ...model import Claim, Finished
from ..protocol import LeaseLost

# With Sentinel, a claim counts only once a replica has it: a planned failover promotes a
# replica, and a claim the old master took but never passed on would be claimed again.
REPLICA_WAIT_MS = 500


class ClaimNotReplicated(LeaseLost):
    """The claim was written, but no replica confirmed it in time."""


class Claims:
    def __init__(self, keys: Keys, caller: Caller, replica_id: str, *, max_ahead_ms: int, history_keep: int,
                 clock: Callable[[], float], history_age_s: float | None = None):
        self.keys, self.caller = keys, caller
        self.replica_id = replica_id
        self.max_ahead_ms = max_ahead_ms
        self.history_keep = history_keep
        self.history_age_s = history_age_s
        self.clock = clock
        # Run on the caller's client of the moment, given at each call (see caller).
        self._claim = caller.redis.register_script(scripts.CLAIM)
        self._note = caller.redis.register_script(scripts.NOTE_ATTEMPT)
        self._finish = caller.redis.register_script(scripts.FINISH)

    async def claim(self, epoch: int, claims: Sequence[Claim], wait_replicas: int) -> list[int]:
        """Claim these slots under `epoch`; with `wait_replicas`, only once that many replicas
        have the claim (ClaimNotReplicated otherwise)."""
        k = self.keys
        payload = json.dumps([[c.kind, c.job, str(c.slot), str(c.attempt), c.trigger or "", c.field, c.reason or "",
                               c.policy or ""] for c in claims])
        args: list[Any] = [self.replica_id, epoch, int(self.clock() * 1000), payload, k.job_prefix, self.max_ahead_ms,
                           k.runs_prefix, self.history_keep, k.runs_at_prefix,
                           "" if self.history_age_s is None else int(self.history_age_s)]
        keys = [k.leader, k.slots, k.inflight, k.paused, k.trigger, k.triggered, k.redrive]
        jobs = {c.job for c in claims}
        if not wait_replicas:
            result = await self.caller.call(self._claim(keys=keys, args=args, client=self.caller.redis), jobs)
        else:
            result, acked = await self.caller.call(self._claim_and_wait(keys, args, wait_replicas), jobs)
            if result != -1 and acked < wait_replicas:
                raise ClaimNotReplicated(f"no replica confirmed the claim within {REPLICA_WAIT_MS} ms")
        if result == -1:
            raise LeaseLost()
        return [int(x) for x in result]

    async def _claim_and_wait(self, keys: list[str], args: list[Any], wait_replicas: int) -> list:
        # One coroutine for `call`: on a cluster, entering the pipeline may read the slot map.
        client = self.caller.redis
        async with client.pipeline(transaction=False) as pipe:
            await cluster.queue_script(pipe, self._claim, keys, args)
            # WAIT counts the replicas that have this connection's writes: on a cluster it is
            # sent to the slot's master, beside the claim, and a MOVED is not followed, which
            # would send the claim again on another connection.
            pipe.execute_command("WAIT", wait_replicas, REPLICA_WAIT_MS,
                                 **await cluster.owner_target(client, self.keys.leader))
            return await pipe.execute(**self.caller.no_redirect)

    async def note_attempt(self, epoch: int, claim: Claim, attempt: int) -> None:
        await self.caller.call(
            self._note(keys=[self.keys.inflight], args=[claim.field, epoch, attempt], client=self.caller.redis))

    async def finish(self, items: Sequence[Finished]) -> list[int]:
        if not items:
            return []
        payload = json.dumps([_finish_entry(item) for item in items])
        args: list[Any] = [self.keys.job_prefix, payload, self.keys.runs_prefix, self.history_keep,
                           self.keys.runs_at_prefix,
                           "" if self.history_age_s is None else int(self.clock() - self.history_age_s)]
        result = await self.caller.call(
            self._finish(keys=[self.keys.inflight], args=args, client=self.caller.redis), {i.claim.job for i in items})
        return [int(x) for x in result]


def _finish_entry(item: Finished) -> list[str]:
    claim, o = item.claim, item.outcome
    excerpt = o.excerpt
    lateness = "" if item.lateness_s is None else f"{item.lateness_s * 1000:.1f}"
    return [
        claim.job, claim.field, o.status, str(claim.slot), f"{o.finished_at:.3f}", str(int(o.duration_s * 1000)),
        str(o.http_status or ""), o.error or "", str(o.attempts), str(item.epoch), claim.trigger or "",
        excerpt or "", lateness,
    ]
