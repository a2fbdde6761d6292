"""The state store: what the engine needs from Redis or SQLite, and nothing more.

Two implementations (`redis_store.RedisStore`, `local_store.LocalStore`) behind one
protocol; the engine never knows which one it has.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Protocol, Sequence

FIRE, SKIP, REDELIVER, TRIGGER, INIT = "fire", "skip", "redeliver", "trigger", "init"
# What a claim came to: not claimed (an older or already claimed slot, a spent trigger id),
# claimed, or passed over because the job is paused (its watermark still advances).
STALE, CLAIMED, PAUSED = 0, 1, 2


class LeaseLost(Exception):
    """The store refused a claim because this replica does not hold the lease."""


class StoreUnavailable(Exception):
    """The store could not be reached or timed out; the caller retries later."""


@dataclass(frozen=True)
class Claim:
    """One slot to claim. `fire` advances the watermark and records the fire in flight;
    `skip` only advances the watermark; `redeliver` takes over an in-flight record left by
    an earlier leader (same slot, next attempt, this leader's epoch); `trigger` takes a
    manual fire request (`trigger` is its id; `slot` the second it was asked for) once;
    `init` sets the watermark of a job that has none (a leader saw it from that second on,
    so an outage after it is made up by CATCHUP)."""

    job: str
    slot: int
    kind: str = FIRE
    attempt: int = 1
    trigger: str | None = None
    reason: str | None = field(default=None, compare=False)  # why a skip; for logs only

    @property
    def field(self) -> str:
        return inflight_field(self.job, self.slot, self.trigger)


@dataclass(frozen=True)
class InFlight:
    job: str
    slot: int
    epoch: int
    attempt: int
    trigger: str | None = None


@dataclass(frozen=True)
class TriggerRequest:
    id: str
    job: str
    requested_at: int  # whole seconds; the fire's slot


def inflight_field(job: str, slot: int, trigger: str | None = None) -> str:
    """How an in-flight fire is named in the store: job@<unix slot>, or job@manual:<id>."""
    return f"{job}@manual:{trigger}" if trigger else f"{job}@{slot}"


@dataclass(frozen=True)
class Outcome:
    """How one fire ended. status: ok, failed or cancelled."""

    status: str
    attempts: int
    duration_s: float
    finished_at: float
    http_status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class JobHealth:
    last_success_at: float | None = None
    consecutive_failures: int = 0


@dataclass
class State:
    watermarks: dict[str, int] = field(default_factory=dict)
    inflight: list[InFlight] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)
    health: dict[str, JobHealth] = field(default_factory=dict)


class Store(Protocol):
    replica_id: str

    async def acquire(self) -> int | None:
        """Take the lease if free; return the new fencing epoch, or None if another holds it."""

    async def renew(self) -> bool:
        """Extend the lease if this replica still holds it; False when it was lost."""

    async def release(self) -> None:
        """Give the lease up (only if held) and tell standbys at once."""

    async def wait_released(self, timeout_s: float) -> None:
        """Return after timeout_s, or earlier when the holder releases the lease."""

    async def load(self, jobs: Sequence[str]) -> State:
        """Watermarks, in-flight fires, pauses and each job's last success and failure
        streak, in a constant number of round trips."""

    async def claim(self, epoch: int, claims: Sequence[Claim]) -> list[int]:
        """Claim many slots in one atomic step: STALE, CLAIMED or PAUSED for each.
        Raises LeaseLost when the lease is not ours."""

    async def note_attempt(self, epoch: int, claim: Claim, attempt: int) -> None:
        """Record that attempt `attempt` of an in-flight fire is being sent."""

    async def finish(self, outcomes: Sequence[tuple[Claim, Outcome]]) -> list[int]:
        """Record fires' outcomes and drop them from the in-flight set, in one step; returns
        each job's consecutive failures after its outcome."""

    async def warnings(self) -> list[str]:
        """What about the store's own configuration could lose or repeat runs."""

    async def pending_triggers(self) -> list[TriggerRequest]:
        """Manual fire requests not yet claimed."""

    async def wait_wake(self, timeout_s: float) -> None:
        """Return after timeout_s, or earlier when a control command asks the leader to look."""

    # Control commands (any replica, or the CLI): they never need the lease.

    async def set_paused(self, job: str, paused: bool) -> bool:
        """Pause or resume a job; False when it already was in that state."""

    async def request_trigger(self, request: TriggerRequest) -> TriggerRequest | None:
        """Queue a manual fire; returns the pending or in-flight request it joins, if any."""

    async def status(self, jobs: Sequence[str]) -> dict:
        """Leader, epoch, lease time left, watermarks, in-flight fires, pauses, outcomes."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def new_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
