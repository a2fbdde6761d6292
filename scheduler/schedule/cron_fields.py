"""The cron grammar, checked field by field before croniter reads an expression.

croniter accepts some input that it then misreads, and its errors name neither the field
nor the token. Each field is checked here against one grammar (docs/jobs.md, "Accepted cron
syntax"); what is refused names its field and token, and the few forms croniter misreads
are rewritten into explicit lists that it reads correctly. Pure: strings in, strings out.

Rules, and the reference each one follows:

* A step is 1 to the number of values in the field (60 seconds or minutes, 24 hours,
  31 days, 12 months, 7 weekdays). Zero is refused, as by Vixie cron/cronie, robfig/cron
  and cronsim. A wider step can only ever name its start, and is nearly always a mistaken
  interval (`*/90` for "every 90 minutes"), so it is refused too; cronie warns about it.
* A range from a value to itself (`5-5`, `5-5/2`) is that value, as in robfig/cron;
  croniter reads `a-a` as the whole field.
* A reversed range wraps around the end of its field, and a step carries across the wrap:
  Quartz's `CronExpression.addToSet` (`stopAt += max`, then each value modulo the field
  size). `23-3/2` in the hour field is 23, 1, 3; `sat-tue/2` is Saturday and Monday;
  `nov-feb` is November to February. croniter means the same (its comment on `Apr-Jan/3`)
  but restarts the step one value late after the wrap.
* In the day-of-week field 7 is Sunday as 0 is, and a range ending at Sunday (`fri-sun`,
  `5-0`) runs to the end of the week, as in Vixie cron/cronie.
"""

from __future__ import annotations

import binascii
import re

FIVE = ("minute", "hour", "day-of-month", "month", "day-of-week")
# Lowest and highest value of each field; day-of-week also takes 7 (Sunday).
BOUNDS = {
    "second": (0, 59), "minute": (0, 59), "hour": (0, 23),
    "day-of-month": (1, 31), "month": (1, 12), "day-of-week": (0, 6),
}
NAMES = {
    "month": {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)},
    "day-of-week": {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
}
_ITEM = re.compile(r"(?P<a>\*|\w+)(?:-(?P<b>\w+))?(?:/(?P<step>\w*))?", re.ASCII)
_HASH = re.compile(r"h(?:\((?P<a>\d{1,3})-(?P<b>\d{1,3})\))?(?:/(?P<step>\d{1,3}))?", re.ASCII)
_NEAREST_WEEKDAY = re.compile(r"(\d{1,3})w|w(\d{1,3})", re.ASCII)
_NTH_WEEKDAY = re.compile(r"(?P<day>\w+)#(?P<nth>\d{1,3})", re.ASCII)
_LAST_WEEKDAY = re.compile(r"l(?P<day>\w+)", re.ASCII)


class CronFieldError(ValueError):
    """A field that is refused; the message names the field and the token."""


def normalize(fields: list[str], seconds: bool) -> list[str]:
    """The fields, checked, with the forms croniter misreads rewritten; raises CronFieldError."""
    names = (("second",) if seconds else ()) + FIVE
    return [_field(name, text) for name, text in zip(names, fields)]


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _fail(field: str, token: str, why: str) -> CronFieldError:
    return CronFieldError(f"{field} field {_shown(token)}: {why}")


def _field(field: str, text: str) -> str:
    low = text.lower()
    if low == "?":
        if field not in ("day-of-month", "day-of-week"):
            raise _fail(field, text, "'?' is only allowed in the day-of-month and day-of-week fields")
        return text
    if low.startswith("h"):
        return _hash(field, text)
    if low.startswith("r"):
        raise _fail(field, text, "R (random) is not supported: every replica would pick its own value; "
                                 "use H for a stable value per job")
    items = low.split(",")
    if "" in items:
        raise _fail(field, text, "a list item is empty")
    if any(i in ("?", "*") for i in items) and len(items) > 1:
        raise _fail(field, text, "'*' and '?' stand alone, not in a list")
    if field == "day-of-month" and any(_NEAREST_WEEKDAY.fullmatch(i) for i in items):
        return _nearest_weekday(field, text, items)
    if field == "day-of-week" and any("#" in i or _LAST_WEEKDAY.fullmatch(i) for i in items):
        return _nth_weekdays(field, text, items)
    return ",".join(_item(field, text, item) for item in items)


def _value(field: str, token: str, word: str, *, end: bool = False) -> int:
    lo, hi = BOUNDS[field]
    if field == "day-of-month" and end and word == "l":
        return hi  # `29-L`: to the last day of the month
    if word.isdigit() and len(word) <= 3:
        value = int(word)
    elif word in NAMES.get(field, {}):
        value = NAMES[field][word]
    else:
        names = {"month": "; month names are jan-dec", "day-of-week": "; day names are sun-sat"}.get(field, "")
        top = 7 if field == "day-of-week" else hi
        raise _fail(field, token, f"{_shown(word)} is not a value of this field (expected {lo}-{top}{names})")
    top = 7 if field == "day-of-week" else hi  # 7 is Sunday too
    if not lo <= value <= top:
        raise _fail(field, token, f"{value} is out of range (expected {lo}-{top})")
    return value


def _step(field: str, token: str, word: str) -> int:
    lo, hi = BOUNDS[field]
    size = hi - lo + 1
    if not word.isdigit() or len(word) > 3 or not 1 <= int(word) <= size:
        hint = ""
        if field in ("second", "minute", "hour") and word.isdigit() and len(word) <= 3 and int(word) > size:
            unit = {"second": "s", "minute": "m", "hour": "h"}[field]
            hint = f"; for a period longer than the field use an interval such as 'every {int(word)}{unit}'"
        raise _fail(field, token, f"a step must be a whole number from 1 to {size}, got {_shown(word)}{hint}")
    return int(word)


def _item(field: str, token: str, item: str) -> str:
    """One list item: `*`, `v`, `a-b`, each optionally `/step`; `L` in day-of-month."""
    if field == "day-of-month" and item == "l":
        return "l"
    m = _ITEM.fullmatch(item)
    if not m:
        raise _fail(field, token, f"{_shown(item)} is not a value, a range (a-b) or a step (*/n, a/n, a-b/n)")
    step = 1 if m["step"] is None else _step(field, token, m["step"])
    if m["a"] == "*":
        if m["b"] is not None:
            raise _fail(field, token, "'*' cannot start a range")
        return item
    a = _value(field, token, m["a"])
    if m["b"] is None:
        if field == "day-of-week" and a == 7 and m["step"] is not None:
            return f"0/{step}"  # `7/2` from Sunday; croniter would read 7-6 backwards
        return item
    b = _value(field, token, m["b"], end=True)
    if a == b:
        return m["a"]  # robfig/cron: a range of one value; croniter reads `a-a` as `*`
    if a < b:
        return item  # croniter reads ordinary ranges correctly (see the cronsim properties)
    # Reversed: wrap around the end of the field, the step carried across (Quartz).
    lo, hi = BOUNDS[field]
    size = hi - lo + 1
    values = sorted({lo + (v - lo) % size for v in range(a, b + size + 1, step)})
    return ",".join(map(str, values))


def _hash(field: str, text: str) -> str:
    m = _HASH.fullmatch(text.lower())
    if not m:
        raise _fail(field, text, "H takes the whole field: H, H/n, H(a-b) or H(a-b)/n")
    lo, hi = BOUNDS[field]
    if m["a"] is not None:
        a, b = int(m["a"]), int(m["b"])
        if not lo <= a < b <= hi:
            raise _fail(field, text, f"H(a-b) needs {lo} <= a < b <= {hi}")
    if m["step"] is not None:
        _step(field, text, m["step"])
    return text.upper()  # `h` is `H`: the job's hash is applied where an H is seen


# croniter's index of each field (seconds come last there) and its bounds for `H`.
_CRONITER_INDEX = {"minute": 0, "hour": 1, "day-of-month": 2, "month": 3, "day-of-week": 4, "second": 5}


def resolve_hash(fields: list[str], seconds: bool, job: str) -> list[str]:
    """Normalized fields with each `H` replaced by the numbers croniter's HashExpander picks
    for `job` (CRC-32 of the name, shifted by croniter's field index), so that jobs whose
    picks agree share one expression and one parse. Only for fields `normalize` accepted."""
    if not any(f.startswith("H") for f in fields):
        return fields
    crc = binascii.crc32(job.encode("utf-8")) & 0xFFFFFFFF
    names = (("second",) if seconds else ()) + FIVE
    return [_pick(crc, name, f) if f.startswith("H") else f for name, f in zip(names, fields)]


def _pick(crc: int, field: str, text: str) -> str:
    m = _HASH.fullmatch(text.lower())
    assert m is not None  # checked by the caller
    idx = _CRONITER_INDEX[field]
    lo, hi = BOUNDS[field]
    if m["a"] is not None:
        lo, hi = int(m["a"]), int(m["b"])
    if m["step"] is None:
        return str((crc >> idx) % (hi - lo + 1) + lo)
    step = int(m["step"])
    x = (crc >> idx) % (min(lo + step - 1, hi) - lo + 1) + lo
    return str(x) if x == hi else f"{x}-{hi}/{step}"


def _nearest_weekday(field: str, text: str, items: list[str]) -> str:
    if len(items) > 1:
        raise _fail(field, text, "W (nearest weekday) takes a single day, not a list")
    m = _NEAREST_WEEKDAY.fullmatch(items[0])
    assert m is not None  # checked by the caller
    day = int(m.group(1) or m.group(2))
    if not 1 <= day <= 31:
        raise _fail(field, text, f"W needs a day from 1 to 31, got {day}")
    return text


def _nth_weekdays(field: str, text: str, items: list[str]) -> str:
    """`day#n` (the n-th such weekday of the month) and `Lday` (the last one), in a list of
    their own: croniter cannot mix them with plain weekdays."""
    for item in items:
        nth, last = _NTH_WEEKDAY.fullmatch(item), _LAST_WEEKDAY.fullmatch(item)
        if nth:
            if not nth["day"].isdigit() and nth["day"] not in NAMES[field]:
                raise _fail(field, text, f"{_shown(item)}: '#' follows a single weekday (0-7 or sun-sat)")
            _value(field, text, nth["day"])
            if not 1 <= int(nth["nth"]) <= 5:
                raise _fail(field, text, f"{_shown(item)}: the n in day#n must be 1 to 5")
        elif last:
            _value(field, text, last["day"])
        else:
            raise _fail(field, text, "day#n and Lday cannot be mixed with plain weekdays in one list")
    return text
