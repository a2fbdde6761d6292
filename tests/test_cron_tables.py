"""Cron expressions checked against other libraries' published test cases.

Each table row is (expression, start instant, the next instants), taken from the named
test file and translated to this grammar: 6-field rows keep seconds first (robfig/cron's
order; croniter's own 6-field form puts them last and is rewritten), every instant is UTC,
and rows whose meaning differs here on purpose are left out or listed with the reason.
The sources, at the commits read:

* robfig/cron bc59245 (spec_test.go TestNext and TestActivation, parser_test.go TestRange)
* gorhill/cronexpr 88b0669 (cronexpr_test.go crontests)
* kiorky/croniter d813502 (src/croniter/tests/test_croniter.py)
* Quartz Scheduler's CronExpression.addToSet, for reversed ranges (no table of its own:
  the rows under "reversed ranges" were worked out by hand from its rule)
"""

from __future__ import annotations

from datetime import datetime, UTC

import pytest

from scheduler.schedule import slots as sched


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def iso(slot: int) -> str:
    return datetime.fromtimestamp(slot, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def following(expr: str, start: str, count: int) -> list[str]:
    spec = sched.parse(expr, "UTC", "job")
    out, t = [], ts(start)
    for _ in range(count):
        t = sched.next_after(spec, t)
        out.append(iso(t))
    return out


NEXT = [
    # robfig/cron spec_test.go TestNext (the rows without a zone; DST rows differ on purpose:
    # robfig skips a time lost to a DST gap, Vixie cron's rule here fires right after it).
    ("0 0/15 * * * *", "2012-07-09T14:45:00", ["2012-07-09T15:00:00"]),
    ("0 0/15 * * * *", "2012-07-09T14:59:00", ["2012-07-09T15:00:00"]),
    ("0 0/15 * * * *", "2012-07-09T14:59:59", ["2012-07-09T15:00:00"]),
    ("0 20-35/15 * * * *", "2012-07-09T15:45:00", ["2012-07-09T16:20:00"]),
    ("0 */15 * * * *", "2012-07-09T23:46:00", ["2012-07-10T00:00:00"]),
    ("0 20-35/15 * * * *", "2012-07-09T23:45:00", ["2012-07-10T00:20:00"]),
    ("15/35 20-35/15 * * * *", "2012-07-09T23:35:51", ["2012-07-10T00:20:15"]),
    ("15/35 20-35/15 1/2 * * *", "2012-07-09T23:35:51", ["2012-07-10T01:20:15"]),
    ("15/35 20-35/15 10-12 * * *", "2012-07-09T23:35:51", ["2012-07-10T10:20:15"]),
    ("15/35 20-35/15 1/2 */2 * *", "2012-07-09T23:35:51", ["2012-07-11T01:20:15"]),
    ("15/35 20-35/15 * 9-20 * *", "2012-07-09T23:35:51", ["2012-07-10T00:20:15"]),
    ("15/35 20-35/15 * 9-20 Jul *", "2012-07-09T23:35:51", ["2012-07-10T00:20:15"]),
    ("0 0 0 9 Apr-Oct ?", "2012-07-09T23:35:00", ["2012-08-09T00:00:00"]),
    ("0 0 0 */5 Apr,Aug,Oct Mon", "2012-07-09T23:35:00", ["2012-08-01T00:00:00"]),
    ("0 0 0 */5 Oct Mon", "2012-07-09T23:35:00", ["2012-10-01T00:00:00"]),
    ("0 0 0 * Feb Mon", "2012-07-09T23:35:00", ["2013-02-04T00:00:00"]),
    ("0 0 0 * Feb Mon/2", "2012-07-09T23:35:00", ["2013-02-01T00:00:00"]),
    ("0 * * * * *", "2012-12-31T23:59:45", ["2013-01-01T00:00:00"]),
    ("0 0 0 29 Feb ?", "2012-07-09T23:35:00", ["2016-02-29T00:00:00"]),
    # gorhill/cronexpr cronexpr_test.go (its 7-field rows are seconds first, year last;
    # here without the year field).
    ("*/5 * * * * *", "2013-01-01T00:00:00", ["2013-01-01T00:00:05"]),
    ("*/5 * * * * *", "2013-01-01T00:00:59", ["2013-01-01T00:01:00"]),
    ("*/5 * * * * *", "2016-02-28T23:59:59", ["2016-02-29T00:00:00"]),
    ("* * * * *", "2013-02-28T23:59:00", ["2013-03-01T00:00:00"]),
    ("* * * * *", "2012-12-31T23:59:00", ["2013-01-01T00:00:00"]),
    ("17-43/5 * * * *", "2013-01-01T00:00:00", ["2013-01-01T00:17:00"]),
    ("17-43/5 * * * *", "2013-01-01T00:16:59", ["2013-01-01T00:17:00"]),
    ("17-43/5 * * * *", "2013-01-01T00:30:00", ["2013-01-01T00:32:00"]),
    ("17-43/5 * * * *", "2013-01-01T00:50:00", ["2013-01-01T01:17:00"]),
    ("17-43/5 * * * *", "2016-02-28T23:50:00", ["2016-02-29T00:17:00"]),
    ("15-30/4,55 * * * *", "2013-01-01T00:00:00", ["2013-01-01T00:15:00"]),
    ("15-30/4,55 * * * *", "2013-01-01T00:16:00", ["2013-01-01T00:19:00"]),
    ("15-30/4,55 * * * *", "2013-01-01T00:30:00", ["2013-01-01T00:55:00"]),
    ("15-30/4,55 * * * *", "2013-01-01T00:55:00", ["2013-01-01T01:15:00"]),
    ("15-30/4,55 * * * *", "2012-12-31T23:54:00", ["2012-12-31T23:55:00"]),
    ("0 0 * * MON", "2013-01-01T00:00:00", ["2013-01-07T00:00:00"]),
    ("0 0 * * MON", "2013-12-30T00:30:00", ["2014-01-06T00:00:00"]),
    ("0 0 * * 6,7", "2013-01-01T00:00:00", ["2013-01-05T00:00:00", "2013-01-06T00:00:00"]),
    ("0 0 * * 6,7", "2013-12-30T00:30:00", ["2014-01-04T00:00:00"]),
    ("0 0 * * 6#5", "2013-09-02T00:00:00", ["2013-11-30T00:00:00"]),
    ("0 0 14W * *", "2013-03-31T00:00:00", ["2013-04-15T00:00:00"]),
    ("0 0 14W * *", "2013-08-31T00:00:00", ["2013-09-13T00:00:00"]),
    ("0 0 30W * *", "2013-03-02T00:00:00", ["2013-03-29T00:00:00"]),
    ("0 0 30W * *", "2013-06-02T00:00:00", ["2013-06-28T00:00:00"]),
    ("0 0 30W * *", "2013-09-02T00:00:00", ["2013-09-30T00:00:00"]),
    ("0 0 30W * *", "2013-11-02T00:00:00", ["2013-11-29T00:00:00"]),
    ("0 0 L * *", "2013-09-02T00:00:00", ["2013-09-30T00:00:00"]),
    ("0 0 L * *", "2014-02-01T00:00:00", ["2014-02-28T00:00:00"]),
    ("0 0 L * *", "2016-02-15T00:00:00", ["2016-02-29T00:00:00"]),
    # kiorky/croniter test_croniter.py
    ("0 0 * * sat", "2010-02-25T00:00:00", ["2010-02-27T00:00:00", "2010-03-06T00:00:00"]),  # testWeekDay
    ("0 0 1 * wed", "2010-01-25T00:00:00",
     ["2010-01-27T00:00:00", "2010-02-01T00:00:00", "2010-02-03T00:00:00"]),  # testWeekDay
    ("0 0 * * sat#1", "2010-02-25T00:00:00", ["2010-03-06T00:00:00", "2010-04-03T00:00:00"]),  # testNthWeekDay
    ("0 0 * * wed#5", "2010-01-25T00:00:00",
     ["2010-03-31T00:00:00", "2010-06-30T00:00:00", "2010-09-29T00:00:00"]),  # testNthWeekDay
    ("0 0 l * *", "2015-09-04T00:00:00",
     ["2015-09-30T00:00:00", "2015-10-31T00:00:00", "2015-11-30T00:00:00", "2015-12-31T00:00:00"]),  # testLastDayOfMonth
    ("0 0 29-L * *", "2015-09-04T00:00:00", ["2015-09-29T00:00:00", "2015-09-30T00:00:00"]),  # testRangeWithUppercaseLastDayOfMonth
    ("30 22 * * sun-thu", "2010-08-25T15:56:00", ["2010-08-25T22:30:00"]),  # testSundayToThursdayWithAlphaConversion
    ("0 0 1 * ?", "2010-08-25T15:56:00", ["2010-09-01T00:00:00"]),  # test_question_mark
    ("0 16 */2 * sat", "2023-05-02T00:00:00",  # testDomDowVixieCronBug: either day field matches
     ["2023-05-03T16:00:00", "2023-05-05T16:00:00", "2023-05-06T16:00:00", "2023-05-07T16:00:00"]),
    ("0 0 * * L5", "1987-01-15T00:00:00",  # test_lwom_friday: the last Friday of each month
     ["1987-01-30T00:00:00", "1987-02-27T00:00:00", "1987-03-27T00:00:00", "1987-04-24T00:00:00",
      "1987-05-29T00:00:00", "1987-06-26T00:00:00", "1987-07-31T00:00:00", "1987-08-28T00:00:00"]),
    ("0 0 1 Nov-Mar *", "2024-01-01T00:00:00",  # test_mth_ranges_from: a range that wraps
     ["2024-02-01T00:00:00", "2024-03-01T00:00:00", "2024-11-01T00:00:00", "2024-12-01T00:00:00",
      "2025-01-01T00:00:00"]),
    ("0 0 1 Apr-Feb *", "2024-01-01T00:00:00",  # test_mth_ranges_from
     ["2024-02-01T00:00:00", "2024-04-01T00:00:00", "2024-05-01T00:00:00"]),
    ("0 0 * * Tue-Sun", "2024-01-01T00:00:00",  # test_sunday_ranges_to (1 Jan 2024 is a Monday)
     ["2024-01-02T00:00:00", "2024-01-03T00:00:00", "2024-01-04T00:00:00", "2024-01-05T00:00:00",
      "2024-01-06T00:00:00", "2024-01-07T00:00:00", "2024-01-09T00:00:00"]),
]


@pytest.mark.parametrize("expr, start, expected", NEXT, ids=[f"{r[0]} from {r[1]}" for r in NEXT])
def test_next_instants_match_the_published_cases(expr: str, start: str, expected: list[str]) -> None:
    assert following(expr, start, len(expected)) == expected


# robfig/cron spec_test.go TestActivation: does the schedule fire at exactly this instant?
ACTIVATION = [
    ("0/15 * * * *", "2012-07-09T15:00:00", True),
    ("0/15 * * * *", "2012-07-09T15:45:00", True),
    ("0/15 * * * *", "2012-07-09T15:40:00", False),
    ("5/15 * * * *", "2012-07-09T15:05:00", True),
    ("5/15 * * * *", "2012-07-09T15:20:00", True),
    ("5/15 * * * *", "2012-07-09T15:50:00", True),
    ("0/15 * * Jul *", "2012-07-15T15:00:00", True),
    ("0/15 * * Jun *", "2012-07-15T15:00:00", False),
    ("30 08 ? Jul Sun", "2012-07-15T08:30:00", True),
    ("30 08 15 Jul ?", "2012-07-15T08:30:00", True),
    ("30 08 ? Jul Sun", "2012-07-16T08:30:00", False),
    ("30 08 15 Jul ?", "2012-07-16T08:30:00", False),
    ("@hourly", "2012-07-09T15:00:00", True),
    ("@hourly", "2012-07-09T15:04:00", False),
    ("@daily", "2012-07-09T15:00:00", False),
    ("@daily", "2012-07-09T00:00:00", True),
    ("@weekly", "2012-07-09T00:00:00", False),
    ("@weekly", "2012-07-08T00:00:00", True),
    ("@weekly", "2012-07-08T01:00:00", False),
    ("@monthly", "2012-07-08T00:00:00", False),
    ("@monthly", "2012-07-01T00:00:00", True),
    ("* * 1,15 * Sun", "2012-07-15T00:00:00", True),
    ("* * 1,15 * Sun", "2012-06-15T00:00:00", True),
    ("* * 1,15 * Sun", "2012-08-01T00:00:00", True),
    ("* * */10 * Sun", "2012-07-15T00:00:00", True),
    ("* * * * Mon", "2012-07-15T00:00:00", False),
    ("* * 1,15 * *", "2012-07-09T00:00:00", False),
    ("* * 1,15 * *", "2012-07-15T00:00:00", True),
    ("* * */2 * Sun", "2012-07-15T00:00:00", True),
]


@pytest.mark.parametrize("expr, at, fires", ACTIVATION, ids=[f"{r[0]} at {r[1]}" for r in ACTIVATION])
def test_fires_exactly_at_the_published_instants(expr: str, at: str, fires: bool) -> None:
    spec = sched.parse(expr, "UTC", "job")
    assert (sched.next_after(spec, ts(at) - 1) == ts(at)) is fires


# Reversed ranges wrap around the end of their field with the step carried across
# (Quartz's CronExpression.addToSet). robfig/cron and cronsim refuse them instead
# (parser_test.go TestRange: "5-3" -> "beyond end of range"); croniter reads them as
# wrapping, but restarts a step one value late after the wrap.
REVERSED = [
    ("0 23-3/2 * * *", "2026-01-01T00:00:00",
     ["2026-01-01T01:00:00", "2026-01-01T03:00:00", "2026-01-01T23:00:00", "2026-01-02T01:00:00"]),
    # 3 Jan 2026 is a Saturday: sat-tue/2 is Saturday and Monday.
    ("0 0 * * sat-tue/2", "2026-01-01T00:00:00",
     ["2026-01-03T00:00:00", "2026-01-05T00:00:00", "2026-01-10T00:00:00"]),
    ("0 0 * * 6-2/2", "2026-01-01T00:00:00",
     ["2026-01-03T00:00:00", "2026-01-05T00:00:00", "2026-01-10T00:00:00"]),
    ("50-10/7 * * * *", "2026-01-01T00:00:00",
     ["2026-01-01T00:04:00", "2026-01-01T00:50:00", "2026-01-01T00:57:00", "2026-01-01T01:04:00"]),
    ("0 0 25-5/3 * *", "2026-01-01T00:00:00",
     ["2026-01-03T00:00:00", "2026-01-25T00:00:00", "2026-01-28T00:00:00", "2026-01-31T00:00:00",
      "2026-02-03T00:00:00"]),
    ("0 0 1 nov-feb/2 *", "2026-01-01T00:00:00",
     ["2026-11-01T00:00:00", "2027-01-01T00:00:00", "2027-11-01T00:00:00"]),
    # A range ending at Sunday runs to the end of the week (Vixie cron: x-0 is x-7).
    ("0 0 * * fri-sun/2", "2026-01-01T00:00:00", ["2026-01-02T00:00:00", "2026-01-04T00:00:00"]),
    ("0 0 * * 5-0/2", "2026-01-01T00:00:00", ["2026-01-02T00:00:00", "2026-01-04T00:00:00"]),
]


@pytest.mark.parametrize("expr, start, expected", REVERSED, ids=[r[0] for r in REVERSED])
def test_reversed_ranges_wrap_around_with_the_step_carried_across(expr: str, start: str, expected: list[str]) -> None:
    assert following(expr, start, len(expected)) == expected


# Refused input, and the field each error must name.
REFUSED = [
    # robfig/cron parser_test.go TestRange and TestParseScheduleErrors
    ("5--5 * * * *", "minute"),
    ("0 0 * jan-x *", "month"),
    ("*/-12 * * * *", "minute"),
    ("*//2 * * * *", "minute"),
    ("*/0 * * * *", "minute"),
    ("* 5 j * * *", "hour"),  # seconds first: j is in the hour field
    # robfig/cron spec_test.go TestNext, "Unsatisfiable"
    ("0 0 0 30 Feb ?", "never matches"),
    ("0 0 0 31 Apr ?", "never matches"),
    # kiorky/croniter test_croniter.py testError, test_invalid_zerorepeat, test_nth_out_of_range,
    # test_last_out_of_range, test_invalid_question_mark
    ("-90 * * * *", "minute"),
    ("a * * * *", "minute"),
    ("* * * janu-jun *", "month"),
    ("1-1_0 * * * *", "minute"),
    ("0-10/error * * * *", "minute"),
    ("0-10/ * * * *", "minute"),
    ("0-1& * * * *", "minute"),
    ("* * 5-100 * *", "day-of-month"),
    ("0 0 * * 1#7", "day-of-week"),
    ("0 0 * * 1#0", "day-of-week"),
    ("0 0 * * L-1", "day-of-week"),
    ("0 0 * * L8", "day-of-week"),
    ("? * * * *", "minute"),
    ("* ? * * *", "hour"),
    ("* * ?,* * *", "day-of-month"),
    # gorhill/cronexpr cronexpr_test.go: full day names and LW are its extensions, not ours
    ("0 0 * * friday", "day-of-week"),
    ("0 0 LW * *", "day-of-month"),
]


@pytest.mark.parametrize("expr, named", REFUSED, ids=[r[0] for r in REFUSED])
def test_published_bad_expressions_are_refused_naming_the_field(expr: str, named: str) -> None:
    with pytest.raises(sched.ScheduleError) as info:
        sched.parse(expr, "UTC", "job")
    assert named in str(info.value)


# Every form docs/jobs.md's "Accepted cron syntax" lists, with its first slot from a Thursday.
ACCEPTED = [
    ("30 * * * * *", "2026-01-01T00:00:30"),
    ("5/15 * * * *", "2026-01-01T00:05:00"),
    ("10-40/15 * * * *", "2026-01-01T00:10:00"),
    ("0 0 L * *", "2026-01-31T00:00:00"),
    ("0 0 29-L * *", "2026-01-29T00:00:00"),
    ("0 0 15W * *", "2026-01-15T00:00:00"),
    ("0 0 W17 * *", "2026-01-16T00:00:00"),  # 17 Jan 2026 is a Saturday
    ("0 0 ? * 1", "2026-01-05T00:00:00"),
    ("0 0 * Feb *", "2026-02-01T00:00:00"),
    ("0 0 * * 7", "2026-01-04T00:00:00"),
    ("0 0 * * mon#2", "2026-01-12T00:00:00"),
    ("0 0 * * mon#1,fri#3", "2026-01-05T00:00:00"),
    ("0 0 * * L5", "2026-01-30T00:00:00"),
    ("0 0 * * SUN", "2026-01-04T00:00:00"),
]


@pytest.mark.parametrize("expr, first", ACCEPTED, ids=[r[0] for r in ACCEPTED])
def test_the_documented_forms_are_accepted(expr: str, first: str) -> None:
    assert following(expr, "2026-01-01T00:00:00", 1) == [first]


@pytest.mark.parametrize("expr", ["H(0-29)/10 * * * *", "h * * * *", "H H(0-3) * * *", "0 H/6 * * *"])
def test_the_documented_hash_forms_are_accepted(expr: str) -> None:
    sched.parse(expr, "UTC", "job")


@pytest.mark.parametrize("expr", ["@reboot", "*,5 * * * *", "0 0 * * 1L"])
def test_the_documented_refusals(expr: str) -> None:
    with pytest.raises(sched.ScheduleError):
        sched.parse(expr, "UTC", "job")
