"""The values every part of the scheduler passes around, with no I/O.

A fire's identity lives here and only here: `FireId` knows how it is named in the store's
in-flight set, what its idempotency key is, and how to read a stored name back.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime, UTC

FIRE, SKIP, REDELIVER, TRIGGER, INIT, EXPIRE = "fire", "skip", "redeliver", "trigger", "init", "expire"
# A named slot sent again (redrive, backfill): under the slot's own in-flight field and
# idempotency key, taken from the queue of slot requests, never moving the watermark.
REDRIVE = "redrive"
EXPIRED = "expired"  # the outcome a store records for an `expire` claim: it never fires
# Why a slot of a CONCURRENCY=queue job was skipped: a newer one took its place in the queue.
REPLACED = "replaced by a newer slot"
# What a claim came to: not claimed (an older or already claimed slot, a spent trigger id),
# claimed, or passed over because the job is paused (its watermark still advances).
STALE, CLAIMED, PAUSED = 0, 1, 2
# A redelivery refused: the fire's owner (a replica that handed the lease over while the fire
# ran) holds it until its deadline (SPEC 8, "Handover without a stall").
HELD = 4

# Manual request ids (CLI and API): SPEC section 7. Neither `@` nor `:` can appear, so a
# stored fire name always splits back into its parts.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
REQUEST_ID_RULE = "1-128 characters of A-Z a-z 0-9 . _ -"
MANUAL = "manual:"


def request_id_problem(text: str) -> str | None:
    """Why `text` is not a valid trigger request id, or None when it is."""
    if REQUEST_ID.fullmatch(text):
        return None
    if not text:
        return f"a trigger id must not be empty; use {REQUEST_ID_RULE}"
    if len(text) > 128:
        return f"a trigger id is at most 128 characters (got {len(text)}); use {REQUEST_ID_RULE}"
    bad = next(ch for ch in text if not REQUEST_ID.fullmatch(ch))
    return f"a trigger id may hold only {REQUEST_ID_RULE}; {bad!r} is not allowed"


@functools.lru_cache(maxsize=4096)  # many jobs share a slot; a fire names its slot several times
def format_slot(slot: int) -> str:
    """RFC 3339 UTC, whole seconds: 2026-11-22T03:00:00Z."""
    return datetime.fromtimestamp(slot, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MalformedRecord(ValueError):
    """A record read from the store that this version cannot read."""


def fire_key(job: str, slot: int, trigger: str | None) -> str:
    """A fire's idempotency key (its inner string): job@<RFC 3339 slot>, or job@manual:<id>.
    Plain arguments rather than a FireId: every fire asks for it on its hot path."""
    return f"{job}@{MANUAL}{trigger}" if trigger else f"{job}@{format_slot(slot)}"


def fire_field(job: str, slot: int, trigger: str | None) -> str:
    """How a fire is named in the in-flight set: job@<unix slot>, or job@manual:<id>. Plain
    arguments rather than a FireId, since a claim asks for it several times per fire."""
    return f"{job}@{MANUAL}{trigger}" if trigger else f"{job}@{slot}"


@dataclass(frozen=True, slots=True)
class FireId:
    """One fire: a job's scheduled slot, or a manual request (`trigger` is its id and `slot`
    the second it was asked for)."""

    job: str
    slot: int
    trigger: str | None = None

    @property
    def field(self) -> str:
        """The fire's name in the in-flight set (fire_field)."""
        return fire_field(self.job, self.slot, self.trigger)

    @property
    def key(self) -> str:
        """The idempotency key's inner string: job@<RFC 3339 slot>, or job@manual:<id>."""
        return fire_key(self.job, self.slot, self.trigger)

    @staticmethod
    def parse_field(name: str) -> tuple[str, int | None, str | None]:
        """(job, slot, trigger id) from a stored in-flight name; a manual fire's slot is in
        its record, not its name, so it comes back None. Raises MalformedRecord."""
        job, sep, rest = name.partition("@")
        if not sep or not job:
            raise MalformedRecord(f"in-flight name without job@: {name[:80]!r}")
        if rest.startswith(MANUAL):
            trigger = rest[len(MANUAL):]
            if request_id_problem(trigger) is not None:
                raise MalformedRecord(f"in-flight name with an unreadable trigger id: {name[:80]!r}")
            return job, None, trigger
        if not rest.isascii() or not rest.isdigit() or len(rest) > 12:
            raise MalformedRecord(f"in-flight name with an unreadable slot: {name[:80]!r}")
        return job, int(rest), None


@dataclass(frozen=True, slots=True)
class Claim:
    """One slot to claim. `fire` advances the watermark and records the fire in flight;
    `skip` only advances the watermark; `redeliver` takes over an in-flight record left by
    an earlier leader (same slot, next attempt, this leader's epoch); `trigger` takes a
    manual fire request (`trigger` is its id; `slot` the second it was asked for) once;
    `init` sets the watermark of a job that has none (a leader saw it from that second on,
    so an outage after it is made up by CATCHUP); `redrive` takes a queued slot request
    (SlotRequest) once, recording the slot in flight under its own field at `attempt`,
    without touching the watermark; `expire`, also only for a job with no
    watermark, sets it to the slot of an `at` job first seen too long after its instant and
    records that slot's outcome as `expired` (with `reason`) in the same step: it never
    fires (SPEC 6 rule 2)."""

    job: str
    slot: int
    kind: str = FIRE
    attempt: int = 1
    trigger: str | None = None
    reason: str | None = field(default=None, compare=False)  # why a skip (logs) or an expiry (recorded)
    # The policy that decided a skip, named in the ledger: CONCURRENCY for an overlap, CATCHUP
    # for a slot missed while the loop was behind.
    policy: str | None = field(default=None, compare=False)
    # The in-flight name (fire_field), asked for several times per fire: computed once.
    field: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", fire_field(self.job, self.slot, self.trigger))

    @property
    def id(self) -> FireId:
        return FireId(self.job, self.slot, self.trigger)


@dataclass(frozen=True)
class InFlight:
    job: str
    slot: int
    epoch: int
    attempt: int
    trigger: str | None = None
    # Set when the leader that ran it handed the lease over (or was found gone) while it
    # ran: the replica that still owns it, and until when (wall-clock seconds, the store's
    # clock); no leader redelivers it before.
    owner: str | None = None
    until: float | None = None

    def held(self, now: float) -> bool:
        return self.until is not None and self.until > now


@dataclass(frozen=True)
class TriggerRequest:
    id: str
    job: str
    requested_at: int  # whole seconds; the fire's slot


@dataclass(frozen=True)
class SlotRequest:
    """A queued fire of a named slot (redrive, backfill): it goes under the slot's own key
    (fire_key(job, slot, None)) as attempt `attempt`. `reason`: the operator's, if given."""

    job: str
    slot: int
    attempt: int = 1
    reason: str | None = None
    requested_at: int = 0  # whole seconds

    @property
    def field(self) -> str:
        return fire_field(self.job, self.slot, None)


@dataclass(frozen=True)
class Outcome:
    """How one fire ended. status: ok, failed or cancelled."""

    status: str
    attempts: int
    duration_s: float
    finished_at: float
    http_status: int | None = None
    error: str | None = None
    excerpt: str | None = None  # the start of a non-2xx answer's body, escaped and scrubbed


@dataclass(frozen=True)
class Finished:
    """A fire's outcome as the store records it. `epoch` is the leadership that ran it: the
    store writes it only while the in-flight record is still that epoch's (a newer leader's
    redelivery owns it otherwise), and never over a newer epoch's last outcome."""

    claim: Claim
    epoch: int
    outcome: Outcome
    lateness_s: float | None = None


@dataclass(frozen=True)
class JobHealth:
    last_success_at: float | None = None
    consecutive_failures: int = 0
    first_seen_at: float | None = None  # when a leader first saw the job: overdue counts from it


@dataclass
class State:
    watermarks: dict[str, int] = field(default_factory=dict)
    inflight: list[InFlight] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)
    health: dict[str, JobHealth] = field(default_factory=dict)
