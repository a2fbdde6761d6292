"""The state store: what the engine needs from Redis or SQLite, and nothing more.

Two implementations (`store.redis.store.RedisStore`, `store.sqlite.store.LocalStore`) behind one
protocol; the engine never knows which one it has.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Protocol
from collections.abc import Callable, Sequence

from ..model import (  # noqa: F401  (the values, re-exported for the stores)
    CLAIMED, EXPIRE, FIRE, HELD, INIT, PAUSED, REDELIVER, REDRIVE, SKIP, STALE, TRIGGER, Claim, Finished, InFlight, JobHealth,
    Outcome, SlotRequest, State, TriggerRequest,
)


class LeaseLost(Exception):
    """The store refused a claim because this replica does not hold the lease."""


class StoreUnavailable(Exception):
    """The store could not be reached or timed out; the caller retries later."""


class StoreForbidden(StoreUnavailable):
    """The store refused a call for want of a permission (a Redis ACL): the message names
    it. Retrying helps only once an operator grants it, so it is reported once, not as an
    outage in a loop."""


class Store(Protocol):
    replica_id: str
    clock_skew_s: float | None  # this replica's clock minus the store's; None without a reference clock
    format_problem: str | None  # why this version may not lead on this state, if it may not
    dry_run: bool  # a read-only view (read_only.ReadOnlyStore)
    # Set by whoever runs the store, the same way for every backend (no backend has a hook
    # of its own): `read_only` skips unreadable records without moving them aside (a dry
    # run writes nothing, SPEC section 5); `on_malformed` is told where each unreadable
    # record was found (the engine counts them in a metric).
    read_only: bool
    on_malformed: Callable[[str], None] | None

    def clock_ok(self) -> bool:
        """Whether the clock is within SCHEDULER_MAX_CLOCK_SKEW of the store's (always, without one)."""

    async def acquire(self) -> int | None:
        """Take the lease if free; return the new fencing epoch, or None if another holds it."""

    async def renew(self) -> bool:
        """Extend the lease if this replica still holds it; False when it was lost."""

    async def release(self) -> str | None:
        """Give the lease up (only if held) and tell standbys at once; returns why they
        could not be told, if they could not (the lease is released all the same)."""

    async def hand_over(self, epoch: int, fields: Sequence[str], hold_s: float) -> str | None:
        """Release the lease at once while this replica's fires `fields` (in flight under
        `epoch`) go on: in the same step each is recorded as this replica's until `hold_s`
        from now (by the store's clock), and no leader redelivers it before (its CLAIM
        answers HELD). Standbys are told; returns why they could not be, as release does."""

    async def wait_released(self, timeout_s: float) -> None:
        """Return after timeout_s, or earlier when the holder releases the lease or (Redis)
        its process is found gone: then its lease is deleted and its fires held (hand_over)
        for one lease TTL, so that only the next acquire decides."""

    async def load(self, jobs: Sequence[str]) -> State:
        """Watermarks, in-flight fires, pauses and each job's last success and failure
        streak, in a constant number of round trips."""

    async def claim(self, epoch: int, claims: Sequence[Claim]) -> list[int]:
        """Claim many slots in one atomic step: STALE, CLAIMED or PAUSED for each.
        Raises LeaseLost when the lease is not ours."""

    async def note_attempt(self, epoch: int, claim: Claim, attempt: int) -> None:
        """Record that attempt `attempt` of an in-flight fire is being sent."""

    async def finish(self, outcomes: Sequence[Finished]) -> list[int]:
        """Record fires' outcomes and drop them from the in-flight set, in one step; returns
        each job's consecutive failures after its outcome."""

    async def warnings(self) -> list[str]:
        """What about the store's own configuration could lose or repeat runs."""

    async def pending_triggers(self) -> list[TriggerRequest]:
        """Manual fire requests not yet claimed."""

    async def pending_slots(self) -> list[SlotRequest]:
        """Queued fires of named slots (redrive, backfill), each job's oldest slot first."""

    async def wait_wake(self, timeout_s: float) -> None:
        """Return after timeout_s, or earlier when a control command asks the leader to look."""

    # Control commands (any replica, or the CLI): they never need the lease.

    async def set_paused(self, job: str, paused: bool) -> bool:
        """Pause or resume a job; False when it already was in that state."""

    async def drop_pauses(self, jobs: Sequence[str]) -> int:
        """Forget the pauses of jobs removed from their sources (SPEC 8: one added back later
        starts unpaused); returns how many there were."""

    async def request_trigger(self, request: TriggerRequest) -> TriggerRequest | None:
        """Queue a manual fire; returns the pending or in-flight request it joins, if any."""

    async def request_slots(self, job: str, requests: Sequence[SlotRequest]) -> list[int]:
        """Queue fires of named slots of one job (redrive, backfill), each under its own
        slot's key; the job's watermark never moves. A slot in flight, already queued, or
        past the job's watermark (the schedule has yet to claim it) is left out. Returns the
        slots queued, in the order asked."""

    async def request_sources(self, what: str) -> None:
        """Ask every replica to `refresh` its job sources now, or to `accept` its held reads
        (SPEC section 8): a counter per request that each replica watches."""

    async def sources_requests(self) -> tuple[int, int]:
        """The counters of `refresh` and `accept` requests (0 when none was ever made)."""

    async def note_sources(self, sources: list[dict]) -> None:
        """This replica's view of its job sources (read, unreadable, held), for `status`."""

    async def noted_sources(self) -> list[dict]:
        """Every replica's last noted view: [{"replica", "at", "sources": [...]}]."""
    async def wake_leader(self) -> str | None:
        """Tell the leader to look at the trigger queue now; returns why it could not be told,
        if it could not (it then finds the request at its next look)."""

    async def history(self, job: str, limit: int | None = None) -> list[dict]:
        """A job's newest ledger entries, newest first (the first page of `runs`)."""

    async def runs(self, job: str, before: int | None = None, after: int | None = None, limit: int = 50,
                   cursor: str | None = None) -> tuple[list[dict], str | None]:
        """A page of the job's ledger (SPEC 8), newest first: entries whose slot lies strictly
        between `after` and `before` (Unix seconds), at most `limit`, after `cursor` (from the
        previous page); and the next page's cursor, None on the last page. Each entry is the
        stored JSON object with its `id` (store.ledger). ValueError for a cursor not made here."""

    async def run(self, job: str, run_id: str) -> dict | None:
        """One ledger entry by its id: the slot in Unix seconds, or `manual:<request id>`."""

    async def leaderships(self) -> list[dict]:
        """The last acquisitions of the lease, newest first: epoch, replica, acquired_at (Unix
        ms), previous (replica) and previous_seen_at (Unix ms: its last renewal), if known."""

    async def audit_append(self, entry: dict) -> int:
        """Add one entry (a JSON object) to the audit log, which keeps the newest AUDIT_KEEP
        (audit_records.py); returns the id it was given, higher than every earlier one's."""

    async def audit(self, limit: int, before: int | None = None) -> list[dict]:
        """The audit log's newest `limit` entries, each with its "id", newest first; with
        `before`, only those whose id is lower (the next page)."""

    async def status(self, jobs: Sequence[str]) -> dict:
        """Leader, epoch, lease time left, watermarks, in-flight fires, pauses, outcomes."""

    async def gc(self, keep_jobs: Sequence[str], older_than_s: float, dry_run: bool = False) -> list[str]:
        """`state gc`: delete the state of jobs not in keep_jobs, idle for older_than_s (gc.py);
        returns what was deleted (or, with dry_run, would be)."""

    async def quarantined(self, delete: bool = False) -> list[dict]:
        """`state quarantine`: the records set aside as unreadable (where, what, and when
        known, why and when); with delete, each is deleted too."""

    async def check_format(self) -> str | None:
        """Read the state's format now: why this version may not write it, if it may not."""

    async def ping(self) -> bool: ...

    async def open(self) -> None:
        """Before the first call: open the SQLite file (raising StoreUnavailable), or ask a
        Redis server whether it is a cluster node (never raising: asked again later)."""

    async def close(self) -> None: ...


def new_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
