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

FIRE, SKIP, REDELIVER = "fire", "skip", "redeliver"


class LeaseLost(Exception):
    """The store refused a claim because this replica does not hold the lease."""


class StoreUnavailable(Exception):
    """The store could not be reached or timed out; the caller retries later."""


@dataclass(frozen=True)
class Claim:
    """One slot to claim. `fire` advances the watermark and records the fire in flight;
    `skip` only advances the watermark; `redeliver` takes over an in-flight record left by
    an earlier leader (same slot, next attempt, this leader's epoch)."""

    job: str
    slot: int
    kind: str = FIRE
    attempt: int = 1


@dataclass(frozen=True)
class InFlight:
    job: str
    slot: int
    epoch: int
    attempt: int


@dataclass(frozen=True)
class Outcome:
    """How one fire ended. status: ok, failed or cancelled."""

    status: str
    attempts: int
    duration_s: float
    finished_at: float
    http_status: int | None = None
    error: str | None = None


@dataclass
class State:
    watermarks: dict[str, int] = field(default_factory=dict)
    inflight: list[InFlight] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)


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

    async def load(self) -> State:
        """Watermarks, in-flight fires and pauses, in a constant number of round trips."""

    async def claim(self, epoch: int, claims: Sequence[Claim]) -> list[bool]:
        """Claim many slots in one atomic step; raises LeaseLost when the lease is not ours."""

    async def note_attempt(self, epoch: int, job: str, slot: int, attempt: int) -> None:
        """Record that attempt `attempt` of an in-flight fire is being sent."""

    async def finish(self, job: str, slot: int, outcome: Outcome) -> None:
        """Record a fire's outcome and drop it from the in-flight set."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def new_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
