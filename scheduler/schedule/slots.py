"""Slot math: pure functions of (schedule, instant).

A slot is one scheduled instant of one job, as whole seconds since the Unix epoch (UTC).
Nothing here reads the clock; every function takes the instant it reasons about.

Cron expressions are matched with croniter on *naive* local wall-clock times, and the
mapping from wall-clock time to instants is done here, because croniter's own handling of
DST transitions is not what cron users expect in every zone. The rules are Vixie cron's:

* a wall-clock time skipped by a forward jump fires right after the gap, for jobs whose
  minute and hour fields are both fixed ("fixed-time" jobs); jobs with `*` in the minute
  or hour field just run on the times that exist;
* a wall-clock time repeated by a backward jump fires once (its first occurrence) for
  fixed-time jobs, and on both occurrences for `*` jobs, which run on real elapsed time.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, UTC
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from croniter import croniter

from . import cron_fields as cronfields
from .cron_time import _matcher, _next_cron, daily_second  # noqa: F401  (_matcher: its cache is what jobs share)
from ..model import format_slot  # noqa: F401  (slots are named the same everywhere)

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
MAX_DURATION_S = 10 * 366 * 86400
# Slots are shown as RFC 3339 years 0001-9999; keep every one a schedule can name well inside.
MAX_SLOT = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp())
_DAILY_TIME_RE = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


class ScheduleError(ValueError):
    """An expression that does not parse; the message says what is expected."""


def parse_duration_s(text: str) -> float:
    """`90`, `90s`, `15m`, `1h30m`, `2d`, `250ms` -> seconds."""
    text = text.strip()
    m = _DURATION_RE.fullmatch(text) if len(text) <= 40 else None
    if text.isdigit() and len(text) <= 12:
        value = float(int(text))
    elif not text or not m or not any(m.groups()):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"expected a duration like 90, 90s, 15m, 1h30m or 2d, got {shown!r}")
    else:
        d, h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
        value = d * 86400 + h * 3600 + mi * 60 + s + ms / 1000
    if value > MAX_DURATION_S:
        raise ValueError(f"expected a duration of at most 10 years, got {text!r}")
    return value


@dataclass(frozen=True)
class Cron:
    """One or more cron expressions evaluated in one zone; the next slot is the earliest."""

    exprs: tuple[str, ...]
    tz: str
    seconds: bool  # 6 fields, seconds first
    fixed: tuple[bool, ...]  # per expression: minute and hour both fixed (Vixie's rule)
    hash_id: str = ""  # seeds an `H` left in an expression (a Cron made by hand); parse() resolves them


@dataclass(frozen=True)
class Interval:
    period_s: int


@dataclass(frozen=True)
class At:
    slot: int


Schedule = Cron | Interval | At


def parse(text: str, tz: str = "UTC", job: str = "") -> Schedule:
    """Parse a schedule expression; `job` seeds `H` and `tz` is the zone for cron forms."""
    found = _parse_shared(text, tz)
    if not isinstance(found, _CronForm):
        return found
    # `H` becomes the job's numbers here, not in croniter: jobs whose numbers agree then
    # share one expression, hence one croniter expansion (the costly part of a parse).
    expr = " ".join(cronfields.resolve_hash(list(found.fields), found.seconds, job or "job")) if found.hashed else found.raw
    cron = _cron(expr, tz, found.seconds, found.fixed, found.raw)
    if isinstance(cron, ScheduleError):
        raise ScheduleError(str(cron))
    return cron


@functools.lru_cache(maxsize=65536)
def _cron(expr: str, tz: str, seconds: bool, fixed: bool, raw: str) -> Cron | ScheduleError:
    """One Cron per resolved expression and zone, shared by every job that has it: `H` is
    resolved already, so the Cron no longer depends on the job's name. 10,000 `H H * * *`
    jobs then cost 1,440 checks below (about 30 us each), not 10,000, and the planner
    works out one next slot per shared Cron. An expression that never matches is
    remembered too: croniter's search for a date gives up only after years of them."""
    if not seconds and daily_second(expr) is not None:
        return Cron((expr,), tz, seconds, (fixed,))  # every day has the time (or, DST, its gap)
    try:
        _next_cron(expr, "", seconds, fixed, tz, 0)
    except Exception:  # croniter gives up on expressions that never match
        return ScheduleError(f"cron expression {raw!r} never matches a date")
    return Cron((expr,), tz, seconds, (fixed,))


@dataclass(frozen=True)
class _CronForm:
    """A checked cron expression before its `H` fields are given a job's numbers."""

    fields: tuple[str, ...]
    raw: str
    seconds: bool
    fixed: bool
    hashed: bool


@functools.lru_cache(maxsize=4096)  # 100,000 jobs share few expressions, `H` ones too
def _parse_shared(text: str, tz: str) -> Schedule | _CronForm:
    """All of a parse that does not depend on the job: every form but cron, whole."""
    raw = " ".join(text.split())
    if not raw:
        raise ScheduleError("expected a schedule, got an empty value")
    try:
        ZoneInfo(tz)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError for odd keys
        raise ScheduleError(f"unknown time zone {tz!r}") from exc
    low = raw.lower()
    if low.startswith("@every ") or low.startswith("every "):
        return _interval(raw.split(" ", 1)[1])
    if raw.isdigit():
        return _interval(raw)
    if low.startswith("at "):
        return At(_parse_rfc3339(raw[3:].strip()))
    if low.startswith("daily "):
        times = [t.strip() for t in raw[6:].split(",")]
        exprs = []
        for t in times:
            m = _DAILY_TIME_RE.fullmatch(t)
            if not m:
                raise ScheduleError(f"expected daily HH:MM[,HH:MM...], got time {t!r}")
            exprs.append(f"{int(m.group(2))} {int(m.group(1))} * * *")
        return Cron(tuple(dict.fromkeys(exprs)), tz, False, (True,) * len(set(exprs)))
    if raw.startswith("@"):
        if low not in MACROS:
            raise ScheduleError(f"unknown macro {raw!r}; expected one of {', '.join(MACROS)} or @every")
        raw = MACROS[low]
    fields = raw.split(" ")
    if len(fields) not in (5, 6):
        raise ScheduleError(
            "expected a cron expression of 5 fields (or 6 with seconds first), a macro, "
            f"'every 15m', 'daily HH:MM' or 'at <RFC 3339>', got {len(fields)} fields"
        )
    seconds = len(fields) == 6
    try:
        fields = cronfields.normalize(fields, seconds)
    except cronfields.CronFieldError as exc:
        raise ScheduleError(f"cron expression {_shown(raw)}: {exc}") from None
    raw = " ".join(fields)
    minute, hour = (fields[1], fields[2]) if seconds else (fields[0], fields[1])
    if not _valid_cron(raw, seconds):
        raise ScheduleError(f"cron expression {_shown(raw)} is not accepted: {_croniter_reason(raw, seconds)}")
    fixed = not minute.startswith("*") and not hour.startswith("*")
    return _CronForm(tuple(fields), raw, seconds, fixed, any(f.startswith("H") for f in fields))


@functools.lru_cache(maxsize=4096)  # many jobs often share an expression
def _valid_cron(expr: str, seconds: bool) -> bool:
    if not seconds and daily_second(expr) is not None:
        return True  # numbers in range, the rest `*`: croniter accepts it (tests/test_daily_slots.py)
    return croniter.is_valid(expr, hash_id="job", second_at_beginning=seconds)


def _croniter_reason(expr: str, seconds: bool) -> str:
    try:
        croniter.expand(expr, hash_id="job", second_at_beginning=seconds)
    except Exception as exc:  # croniter's own errors
        return str(exc)
    return "croniter refuses it"


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _interval(text: str) -> Interval:
    try:
        period = parse_duration_s(text)
    except ValueError as exc:
        raise ScheduleError(f"expected an interval like 'every 90s' or 'every 1h30m', got {text!r}") from exc
    if period < 1 or period != int(period):
        raise ScheduleError(f"an interval must be a whole number of seconds >= 1, got {text!r}")
    return Interval(int(period))


def _parse_rfc3339(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ScheduleError(f"expected an RFC 3339 instant like 2026-12-01T03:00:00Z, got {text!r}") from exc
    if dt.tzinfo is None:
        raise ScheduleError(f"an 'at' instant needs a UTC offset or Z, got {text!r}")
    slot = int(dt.timestamp())
    if not 0 <= slot <= MAX_SLOT:
        raise ScheduleError(f"an 'at' instant must lie between 1970 and 9000, got {text!r}")
    return slot


def next_after(schedule: Schedule, after: float) -> int | None:
    """The first slot strictly later than `after`, or None when there is none (a spent `at`).

    Not cached by schedule: a Cron is hashed field by field, and 100,000 jobs hold 100,000
    Crons (each names its job); the answers are cached per expression in _next_cron."""
    t = int(after // 1)  # slots are whole seconds; a slot equal to floor(after) is not later
    if isinstance(schedule, Interval):
        return (t // schedule.period_s + 1) * schedule.period_s
    if isinstance(schedule, At):
        return schedule.slot if schedule.slot > after else None
    if len(schedule.exprs) == 1:
        expr = schedule.exprs[0]
        return _next_cron(expr, schedule.hash_id if "H" in expr else "", schedule.seconds, schedule.fixed[0],
                          schedule.tz, t)
    return min(
        # parse() resolves `H` to the job's numbers, so jobs sharing an expression share
        # the answer, and many jobs often do; a Cron made by hand may still hold an `H`.
        _next_cron(expr, schedule.hash_id if "H" in expr else "", schedule.seconds, fixed, schedule.tz, t)
        for expr, fixed in zip(schedule.exprs, schedule.fixed)
    )


def slots_between(schedule: Schedule, after: float, until: float, limit: int | None = None) -> list[int]:
    """Slots s with after < s <= until, oldest first; the newest `limit` when limited."""
    out: list[int] = []
    for slot in iter_slots(schedule, after):
        if slot > until:
            break
        out.append(slot)
        if limit is not None and len(out) > limit:
            out.pop(0)
    return out


def iter_slots(schedule: Schedule, after: float) -> Iterator[int]:
    slot = next_after(schedule, after)
    while slot is not None:
        yield slot
        slot = next_after(schedule, slot)


def recent_slots(schedule: Schedule, after: float, until: float, limit: int) -> tuple[list[int], bool]:
    """The newest `limit` slots s with after < s <= until, oldest first, and whether older
    ones in that range were left out.

    Searches backwards from `until` in growing windows, so a long outage of a per-second
    job costs a few hundred steps, not one per missed slot.
    """
    span = 60.0
    while True:
        lo = max(after, until - span)
        found: list[int] = []
        for slot in iter_slots(schedule, lo):
            if slot > until:
                break
            found.append(slot)
        if len(found) > limit or lo == after:
            return found[-limit:] if limit else [], len(found) > limit
        span *= 16
