"""Cron slots in a time zone, by Vixie cron's DST rules: the next instant a cron expression
names after a given one.

Hand-written on purpose: croniter iterates wall-clock times, and with DST a wall-clock
time may happen twice (a repeated hour: fire once) or not at all (a skipped hour: fire
right after the gap); croniter's own handling differs from Vixie cron's there. This maps
croniter's wall-clock matches to instants; tests/test_properties.py checks it against a
reference over random zones and expressions, and tests/test_schedule.py has DST tables.
"""

from __future__ import annotations

import functools
import re
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

# A backward jump longer than this is not searched for repeated wall-clock times. Real
# zones repeat at most 2 hours (Antarctica/Troll); 3 leaves a margin.
_MAX_REPEAT_S = 3 * 3600
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Etc/Zulu", "Universal", "Zulu", "GMT", "Etc/GMT"})


def _instants(naive: datetime, zone: ZoneInfo, fixed: bool) -> tuple[int, ...]:
    """The instants at which the wall-clock time `naive` happens, under Vixie's DST rules."""
    first = naive.replace(tzinfo=zone)
    second = naive.replace(tzinfo=zone, fold=1)
    off0, off1 = first.utcoffset(), second.utcoffset()
    if off0 == off1:
        return (int(first.timestamp()),)
    u0, u1 = int(first.timestamp()), int(second.timestamp())
    if u0 < u1:  # a repeated time: first occurrence (fold 0), then the second
        return (u0,) if fixed else (u0, u1)
    # A skipped time: fold=0 maps with the offset before the jump (past the gap), fold=1
    # with the one after (before the gap); the jump itself lies in between.
    return (_transition(zone, u1, u0),) if fixed else ()


def _transition(zone: ZoneInfo, lo: int, hi: int) -> int:
    """The first instant in (lo, hi] whose UTC offset differs from lo's."""
    base = datetime.fromtimestamp(lo, zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == base:
            lo = mid
        else:
            hi = mid
    return hi


# The matchers are shared, and set then read: a source's validation (in a worker thread)
# and the leader's planning (on the event loop) may ask at once, so one asks at a time.
_ONE_AT_A_TIME = threading.Lock()


_DAILY = re.compile(r"([0-9]{1,2}) ([0-9]{1,2}) \* \* \*")


@functools.lru_cache(maxsize=65536)
def daily_second(expr: str) -> int | None:
    """For `M H * * *` with plain numbers, the second of the day it names; else None.

    The commonest expression of a large document of tenants' jobs (`H H * * *` resolves to
    it, and `daily HH:MM` is it). In UTC its next slot is arithmetic: croniter's expansion
    and search cost 140 + 115 us per expression, and a document whose jobs pick their own
    minute and hour holds 1,440 such expressions. tests/test_daily_slots.py checks the two
    agree; an expression in any other form, or in another zone, goes to croniter."""
    m = _DAILY.fullmatch(expr)
    if m is None:
        return None
    minute, hour = int(m[1]), int(m[2])
    return hour * 3600 + minute * 60 if minute < 60 and hour < 24 else None


@functools.lru_cache(maxsize=16384)
def _next_cron(expr: str, hash_id: str, seconds: bool, fixed: bool, tz: str, t: int) -> int:
    if not seconds and tz in _UTC_NAMES and (at := daily_second(expr)) is not None:
        at += t - t % 86400
        return at if at > t else at + 86400
    with _ONE_AT_A_TIME:
        return _next_cron_locked(expr, hash_id, seconds, fixed, tz, t)


def _next_cron_locked(expr: str, hash_id: str, seconds: bool, fixed: bool, tz: str, t: int) -> int:
    it = _matcher(expr, hash_id, seconds)
    if tz in _UTC_NAMES:
        # No transitions: wall-clock time is the instant; skip the DST search.
        it.set_current(datetime.fromtimestamp(t, UTC).replace(tzinfo=None), force=True)
        return int(it.get_next(datetime).replace(tzinfo=UTC).timestamp())
    zone = ZoneInfo(tz)
    here = datetime.fromtimestamp(t, zone)
    wall = here.replace(tzinfo=None)
    it.set_current(wall - timedelta(seconds=1), force=True)
    again: int | None = None
    while True:
        naive = it.get_next(datetime)
        instants = _instants(naive, zone, fixed)
        later = [u for u in instants if u > t]
        if len(instants) == 2 and instants[0] == t and again is None:
            # t is this repeated time's first occurrence; its second comes after the jump,
            # and the next wall-clock match may come sooner.
            again = instants[1]
            continue
        if later or again is not None:
            # Wall-clock order is instant order, but for one thing: a time in a repeated
            # period happens first at its fold-0 instant, then again after the jump; taking
            # the earliest instant of the first candidate that has one is right, except below.
            best = min(later + ([again] if again is not None else []))
            break
    if fixed:
        return best  # fixed-time jobs fire only at first occurrences: no earlier repeat
    # t may lie in the first pass of a repeated period whose later wall-clock times had no
    # match: then wall-clock times *before* `here` (from the period's start) happen again
    # after the jump, possibly before `best`.
    ahead = datetime.fromtimestamp(t + _MAX_REPEAT_S, zone)
    drop = int((_offset(here) - _offset(ahead)).total_seconds())
    if drop <= 0:
        return best
    jump = _transition(zone, t, t + _MAX_REPEAT_S)
    if not (jump - drop <= t < jump <= best):
        return best
    repeat_start = datetime.fromtimestamp(jump - drop, zone).replace(tzinfo=None)
    it.set_current(repeat_start - timedelta(seconds=1), force=True)
    naive = it.get_next(datetime)
    if naive < wall:
        again = int(naive.replace(tzinfo=zone, fold=1).timestamp())
        if t < again < best:
            return again
    return best


@functools.lru_cache(maxsize=65536)
def _matcher(expr: str, hash_id: str, seconds: bool) -> croniter:
    """A croniter per expression, reset before each use: expanding an expression costs
    several times more than finding the next match, and the same ones are asked again
    and again. Used under _ONE_AT_A_TIME only: it holds the time it was set to."""
    return croniter(expr, datetime(2000, 1, 1), hash_id=hash_id, second_at_beginning=seconds, ret_type=datetime)


def _offset(moment: datetime) -> timedelta:
    """A zone-aware datetime's UTC offset (never None for the zones slots are computed in)."""
    offset = moment.utcoffset()
    assert offset is not None
    return offset
