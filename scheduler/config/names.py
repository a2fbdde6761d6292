"""SCHEDULER_* names that are not the scheduler's own.

The app often shares its env file with the sidecar and uses the prefix for its own settings,
so an unknown name is not fatal by itself. It is an error only when it is close to a name the
scheduler reads (a typo, a wrong case), and then the message suggests that name, which is
always one the scheduler would accept and never the name itself. The names of the schedulers
this replaces get a hint how to write the job here. Everything else is a warning, which
`check --strict` turns into an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .env_file import PREFIX
from .jobs import JOB_FIELDS, JOB_PREFIX
from .reader import show

NAME_RE = re.compile(r"[A-Z0-9]+(?:_[A-Z0-9]+)*")  # a job's <NAME>, with fullmatch
# Longest first, so CATCHUP_WINDOW is never read as field WINDOW of job X_CATCHUP.
FIELDS_BY_LENGTH = sorted(JOB_FIELDS, key=len, reverse=True)
# The fields a job is started with: a job variable of a job not configured yet is suggested
# only for these, since any other field alone makes a job without SCHEDULE and URL.
_STARTING = ("SCHEDULE", "URL")
_LEGACY_INTERVAL = re.compile(r"SCHEDULER_([A-Z0-9]+(?:_[A-Z0-9]+)*)_INTERVAL")
_IGNORED = "not a setting of cron-sidecar, ignored (the app may read it; check --strict makes it an error)"


@dataclass(frozen=True)
class Unknown:
    """What the unknown names come to: error lines, warning lines, and the names ignored."""

    problems: tuple[str, ...]
    warnings: tuple[str, ...]
    ignored: tuple[str, ...]


def split_job_name(name: str) -> tuple[str, str] | None:
    """(NAME, FIELD) of a well-formed SCHEDULER_JOB_<NAME>_<FIELD>, else None."""
    if not name.startswith(JOB_PREFIX):
        return None
    rest = name[len(JOB_PREFIX):]
    for fld in FIELDS_BY_LENGTH:
        if rest.endswith("_" + fld) and NAME_RE.fullmatch(rest[: -len(fld) - 1]):
            return rest[: -len(fld) - 1], fld
    return None


def sort_unknown(names: Iterable[str], values: dict[str, str], globals_: Iterable[str],
                 jobs: Iterable[str]) -> Unknown:
    """Each unknown name to an error, a warning with a hint, or a plain warning."""
    known = list(globals_)
    configured = set(jobs)
    problems: list[str] = []
    warnings: list[str] = []
    ignored: list[str] = []
    for name in names:
        shown = show(name, quote=False)
        if name.startswith(JOB_PREFIX):
            # The scheduler's own prefix: an unreadable job variable is always an error.
            better = _job_variable(name[len(JOB_PREFIX):], configured, same_job=True)
            hint = f"; did you mean {show(better, quote=False)}?" if better else _replaced(
                PREFIX + name[len(JOB_PREFIX):], values.get(name, ""))
            problems.append(
                f"{shown}: unknown job variable; expected SCHEDULER_JOB_<NAME>_<FIELD> with NAME of "
                f"A-Z, 0-9 and single underscores and FIELD one of {', '.join(JOB_FIELDS)}{hint}"
            )
            continue
        better = _close_setting(name, known, configured)
        if better is not None:
            problems.append(f"{shown}: unknown setting; did you mean {show(better, quote=False)}?")
            continue
        ignored.append(name)
        warnings.append(f"{shown}: {_IGNORED}{_replaced(name, values.get(name, ''))}")
    return Unknown(tuple(problems), tuple(warnings), tuple(ignored))


def _replaced(name: str, value: str) -> str:
    """A hint for the names of the schedulers this one replaces, else nothing."""
    upper = name.upper()
    if upper == "SCHEDULER_TICK_SECONDS":
        return ("; there is no tick here: each job fires at its own slots, to the second: "
                "SCHEDULER_JOB_<NAME>_SCHEDULE='every 60s' (or a cron expression) and SCHEDULER_JOB_<NAME>_URL=...")
    m = _LEGACY_INTERVAL.fullmatch(upper)
    if m is None:
        return ""
    job = m.group(1)
    from ..schedule.slots import ScheduleError, parse_duration_s

    try:
        seconds = parse_duration_s(value.strip())
    except (ScheduleError, ValueError):
        seconds = 0
    if seconds >= 1 and seconds == int(seconds):
        every, period = f"every {int(seconds)} s", f"every {int(seconds)}s"
    else:
        every, period = "at an interval", "every <N>s"
    return (f"; to run a job {every} here: SCHEDULER_JOB_{job}_SCHEDULE='{period}' "
            f"and SCHEDULER_JOB_{job}_URL=...")


def _close_setting(name: str, known: list[str], configured: set[str]) -> str | None:
    """The name the operator meant: a global setting a typo or a case away, or a job variable
    with a mistyped SCHEDULER_JOB_ prefix; None when nothing is that close."""
    upper = name.upper()
    tail = upper[len(PREFIX):]
    if not tail:
        return None
    best: tuple[int, str] | None = None
    for candidate in known:
        limit = 1 if len(candidate) - len(PREFIX) <= 6 else 2
        d = distance(tail, candidate[len(PREFIX):], limit)
        if d <= limit and (best is None or d < best[0]):
            best = (d, candidate)
    if best is not None:
        return best[1]
    # SCHEDULER_JOBS_PING_SCHEDULE, SCHEDULER_JBO_PING_URL: a job variable behind a typo.
    head, _, rest = tail.partition("_")
    if rest and head != "JOB" and distance(head, "JOB", 1) <= 1:
        return _job_variable(rest, configured, same_job=False)
    return None


def _job_variable(rest: str, configured: set[str], same_job: bool) -> str | None:
    """A valid SCHEDULER_JOB_<NAME>_<FIELD> for the text after the prefix: its upper-case
    form, or the closest field of the same <NAME>. The job must be configured, or the field
    one that starts a job; `same_job`: the operator wrote this job's prefix right, so the
    job is theirs whatever its field."""
    upper = JOB_PREFIX + rest.upper()
    parsed = split_job_name(upper)
    if parsed is not None:
        return upper if (same_job or parsed[0] in configured or parsed[1] in _STARTING) else None
    best: tuple[int, int, str] | None = None
    parts = rest.upper().split("_")
    for cut in range(1, len(parts)):
        key, tail = "_".join(parts[:cut]), "_".join(parts[cut:])
        if not NAME_RE.fullmatch(key):
            continue
        for fld in JOB_FIELDS:
            limit = 1 if len(fld) <= 6 else 2
            d = distance(tail, fld, limit)
            if d > limit or not (same_job or key in configured or fld in _STARTING):
                continue
            rank = (d, 0 if key in configured else 1, f"{JOB_PREFIX}{key}_{fld}")
            if best is None or rank < best:
                best = rank
    return best[2] if best else None


def distance(a: str, b: str, limit: int) -> int:
    """Edit distance of a and b (a swap of two neighbours counts one), or limit + 1 when over."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        if min(row) > limit:
            return limit + 1
        prev2, prev = prev, row
    return prev[len(b)]
