"""Slot math of scheduler/schedule/slots.py: pure functions of (expression, zone, instant).

Every instant here is fixed and zone-aware; nothing reads the clock. Expected slots in the
DST tables were worked out from the zones' published rules (the UTC instant of each
transition and the local times it skips or repeats), not taken from the module's output.
"""

from __future__ import annotations

import json
from datetime import datetime, UTC

import pytest

from scheduler.schedule import slots as sched
from tests.support import run_cli

UTC = UTC


def ts(text: str) -> int:
    """RFC 3339 -> Unix seconds."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def rfc(slot: int) -> str:
    return datetime.fromtimestamp(slot, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_slots(expr: str, start: str, count: int, tz: str = "UTC", job: str = "job") -> list[str]:
    spec = sched.parse(expr, tz, job)
    out: list[str] = []
    t: float = ts(start)
    for _ in range(count):
        slot = sched.next_after(spec, t)
        if slot is None:
            break
        out.append(rfc(slot))
        t = slot
    return out


# ---------------------------------------------------------------------------
# cron, 5 and 6 fields
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, tz, start, expected",
    [
        pytest.param(
            "0 3 * * *", "UTC", "2026-11-22T00:00:00Z",
            ["2026-11-22T03:00:00Z", "2026-11-23T03:00:00Z", "2026-11-24T03:00:00Z"],
            id="5-field-daily-utc",
        ),
        pytest.param(
            "*/20 * * * *", "UTC", "2026-11-22T10:05:00Z",
            ["2026-11-22T10:20:00Z", "2026-11-22T10:40:00Z", "2026-11-22T11:00:00Z"],
            id="5-field-step",
        ),
        pytest.param(
            # 2026-11-22 is a Sunday; New York is on EST (UTC-5) in November.
            "0 9 * * 1-5", "America/New_York", "2026-11-22T12:00:00Z",
            ["2026-11-23T14:00:00Z", "2026-11-24T14:00:00Z", "2026-11-25T14:00:00Z"],
            id="5-field-weekdays-in-zone",
        ),
        pytest.param(
            # Vixie cron: day-of-month and day-of-week both restricted -> either matches.
            "0 0 1 * 1", "UTC", "2026-11-22T00:00:00Z",
            ["2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z", "2026-12-07T00:00:00Z"],
            id="5-field-dom-or-dow",
        ),
        pytest.param(
            "*/10 * * * * *", "UTC", "2026-11-22T10:00:05Z",
            ["2026-11-22T10:00:10Z", "2026-11-22T10:00:20Z", "2026-11-22T10:00:30Z"],
            id="6-field-every-10-seconds",
        ),
        pytest.param(
            "30 15 4 * * *", "UTC", "2026-11-22T04:15:30Z",
            ["2026-11-23T04:15:30Z", "2026-11-24T04:15:30Z"],
            id="6-field-seconds-first",
        ),
        pytest.param(
            "0 0 12 * * *", "Asia/Tokyo", "2026-11-22T00:00:00Z",
            ["2026-11-22T03:00:00Z", "2026-11-23T03:00:00Z"],
            id="6-field-in-zone",
        ),
    ],
)
def test_cron_next_slots(expr: str, tz: str, start: str, expected: list[str]) -> None:
    assert next_slots(expr, start, len(expected), tz) == expected


# ---------------------------------------------------------------------------
# H: a stable per-job value
# ---------------------------------------------------------------------------

NAMES = [f"job-{i}" for i in range(40)]


def test_hash_minute_is_stable_for_a_job_name() -> None:
    a = next_slots("H * * * *", "2026-11-22T00:00:00Z", 5, job="data-refresh")
    b = next_slots("H * * * *", "2026-11-22T00:00:00Z", 5, job="data-refresh")
    assert a == b
    minutes = {datetime.fromisoformat(s.replace("Z", "+00:00")).minute for s in a}
    assert len(minutes) == 1  # the same minute of every hour
    gaps = {ts(y) - ts(x) for x, y in zip(a, a[1:])}
    assert gaps == {3600}


def test_hash_value_differs_across_job_names() -> None:
    minutes = set()
    for name in NAMES:
        slot = sched.next_after(sched.parse("H * * * *", "UTC", name), ts("2026-11-22T00:00:00Z"))
        minutes.add(datetime.fromtimestamp(slot, UTC).minute)
    # 40 names over 60 minutes: spread, not all piled on one value.
    assert len(minutes) >= 10


@pytest.mark.parametrize("name", NAMES[:10])
def test_hash_values_stay_within_their_field_range(name: str) -> None:
    start = ts("2026-11-22T00:00:00Z")
    daily = sched.parse("H H * * *", "UTC", name)
    s1 = sched.next_after(daily, start)
    s2 = sched.next_after(daily, s1)
    assert s2 - s1 == 86400
    d = datetime.fromtimestamp(s1, UTC)
    assert 0 <= d.hour <= 23 and 0 <= d.minute <= 59 and d.second == 0

    quarter = sched.parse("H/15 * * * *", "UTC", name)
    slots = list(sched.slots_between(quarter, start, start + 3600))
    assert len(slots) == 4
    assert {b - a for a, b in zip(slots, slots[1:])} == {900}
    offsets = {datetime.fromtimestamp(s, UTC).minute % 15 for s in slots}
    assert len(offsets) == 1 and offsets.pop() < 15

    per_second = sched.parse("H * * * * *", "UTC", name)
    s = sched.next_after(per_second, start)
    assert 0 < s - start <= 60
    assert sched.next_after(per_second, s) - s == 60


# ---------------------------------------------------------------------------
# macros
# ---------------------------------------------------------------------------

# 2026-11-22T10:15:00Z is a Sunday.
@pytest.mark.parametrize(
    "expr, tz, expected",
    [
        ("@hourly", "UTC", "2026-11-22T11:00:00Z"),
        ("@daily", "UTC", "2026-11-23T00:00:00Z"),
        ("@midnight", "UTC", "2026-11-23T00:00:00Z"),
        ("@weekly", "UTC", "2026-11-29T00:00:00Z"),
        ("@monthly", "UTC", "2026-12-01T00:00:00Z"),
        ("@yearly", "UTC", "2027-01-01T00:00:00Z"),
        ("@annually", "UTC", "2027-01-01T00:00:00Z"),
        ("@daily", "Europe/Berlin", "2026-11-22T23:00:00Z"),
        ("@yearly", "Asia/Kolkata", "2026-12-31T18:30:00Z"),
    ],
)
def test_macros(expr: str, tz: str, expected: str) -> None:
    assert next_slots(expr, "2026-11-22T10:15:00Z", 1, tz) == [expected]


# ---------------------------------------------------------------------------
# intervals: aligned to the Unix epoch
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("every 15m", ["2026-11-22T10:15:00Z", "2026-11-22T10:30:00Z", "2026-11-22T10:45:00Z", "2026-11-22T11:00:00Z"]),
        ("900", ["2026-11-22T10:15:00Z", "2026-11-22T10:30:00Z", "2026-11-22T10:45:00Z", "2026-11-22T11:00:00Z"]),
        ("@every 1h", ["2026-11-22T11:00:00Z", "2026-11-22T12:00:00Z"]),
        ("every 90s", ["2026-11-22T10:07:30Z", "2026-11-22T10:09:00Z", "2026-11-22T10:10:30Z"]),
        # 5400 s divides a day, so the slots are 00:00, 01:30, ..., 10:30, 12:00 UTC.
        ("every 1h30m", ["2026-11-22T10:30:00Z", "2026-11-22T12:00:00Z"]),
        ("every 2d", ["2026-11-23T00:00:00Z", "2026-11-25T00:00:00Z"]),
    ],
)
def test_intervals_are_epoch_aligned(expr: str, expected: list[str]) -> None:
    assert next_slots(expr, "2026-11-22T10:07:13Z", len(expected)) == expected
    for slot in expected:
        assert ts(slot) % sched.parse(expr).period_s == 0  # type: ignore[union-attr]


def test_interval_ignores_the_job_zone() -> None:
    # Kolkata is UTC+5:30: an hourly interval still fires on the UTC hour (:30 local).
    assert next_slots("every 1h", "2026-11-22T10:07:13Z", 2, "Asia/Kolkata") == [
        "2026-11-22T11:00:00Z",
        "2026-11-22T12:00:00Z",
    ]


def test_interval_slot_on_the_boundary_is_not_repeated() -> None:
    assert next_slots("every 15m", "2026-11-22T10:15:00Z", 1) == ["2026-11-22T10:30:00Z"]


# ---------------------------------------------------------------------------
# daily times and one-shots
# ---------------------------------------------------------------------------


def test_daily_times_in_a_zone_winter_and_summer() -> None:
    # Berlin: CET (UTC+1) in November, CEST (UTC+2) in July.
    assert next_slots("daily 07:00,13:00", "2026-11-22T00:00:00Z", 4, "Europe/Berlin") == [
        "2026-11-22T06:00:00Z",
        "2026-11-22T12:00:00Z",
        "2026-11-23T06:00:00Z",
        "2026-11-23T12:00:00Z",
    ]
    assert next_slots("daily 07:00,13:00", "2026-07-01T08:00:00Z", 3, "Europe/Berlin") == [
        "2026-07-01T11:00:00Z",
        "2026-07-02T05:00:00Z",
        "2026-07-02T11:00:00Z",
    ]


def test_daily_single_time() -> None:
    assert next_slots("daily 03:00", "2026-11-22T03:00:00Z", 2) == ["2026-11-23T03:00:00Z", "2026-11-24T03:00:00Z"]


def test_at_fires_once_then_none() -> None:
    spec = sched.parse("at 2026-12-01T03:00:00Z")
    slot = ts("2026-12-01T03:00:00Z")
    assert sched.next_after(spec, ts("2026-11-22T00:00:00Z")) == slot
    assert sched.next_after(spec, slot - 0.5) == slot
    assert sched.next_after(spec, slot) is None
    assert sched.next_after(spec, slot + 3600) is None
    assert list(sched.iter_slots(spec, 0)) == [slot]


def test_at_with_an_offset_is_the_same_instant() -> None:
    assert sched.parse("at 2026-12-01T04:00:00+01:00") == sched.parse("at 2026-12-01T03:00:00Z")


def test_format_slot_is_rfc3339_utc_whole_seconds() -> None:
    assert sched.format_slot(ts("2026-11-22T03:00:00Z")) == "2026-11-22T03:00:00Z"


# ---------------------------------------------------------------------------
# invariants of next_after, slots_between and recent_slots
# ---------------------------------------------------------------------------

INVARIANT_CASES = [
    ("*/5 * * * *", "UTC"),
    ("*/10 * * * * *", "UTC"),
    ("30 2 * * *", "America/New_York"),
    ("30 * * * *", "Europe/Berlin"),
    ("*/15 * * * *", "Australia/Lord_Howe"),
    ("45 1 * * *", "Australia/Lord_Howe"),
    ("H H * * *", "Australia/Sydney"),
    ("every 15m", "UTC"),
    ("@weekly", "Europe/Berlin"),
    ("daily 02:30,14:00", "America/New_York"),
]
INSTANTS = [
    "2026-03-08T06:59:59Z", "2026-03-08T07:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:29:59Z",
    "2026-03-29T00:59:30Z", "2026-10-25T00:30:00Z", "2026-04-04T14:59:59Z", "2026-10-03T15:29:00Z",
    "2026-04-04T15:59:59Z", "2026-10-03T15:59:59Z", "2026-11-22T10:07:13Z",
]


@pytest.mark.parametrize("expr, tz", INVARIANT_CASES)
def test_next_after_is_strictly_later_and_the_first_such_slot(expr: str, tz: str) -> None:
    spec = sched.parse(expr, tz, "inv")
    for text in INSTANTS:
        t = ts(text)
        for after in (t, t + 0.25):
            s = sched.next_after(spec, after)
            assert s is not None and s > after and s == int(s)
            # nothing between `after` and s: asking from just before s gives s again
            assert sched.next_after(spec, s - 1) == s
            assert sched.next_after(spec, s - 0.5) == s
            assert sched.next_after(spec, s) > s
        # iterating from a slot never goes backwards or repeats
        seq = list(_take(sched.iter_slots(spec, t), 6))
        assert seq == sorted(set(seq))


def _take(it, n):
    for _, item in zip(range(n), it):
        yield item


def test_slots_between_excludes_after_includes_until() -> None:
    spec = sched.parse("every 15m")
    a, b = ts("2026-11-22T10:00:00Z"), ts("2026-11-22T11:00:00Z")
    assert [rfc(s) for s in sched.slots_between(spec, a, b)] == [
        "2026-11-22T10:15:00Z", "2026-11-22T10:30:00Z", "2026-11-22T10:45:00Z", "2026-11-22T11:00:00Z",
    ]
    # limited: the newest ones, oldest first
    assert [rfc(s) for s in sched.slots_between(spec, a, b, limit=2)] == [
        "2026-11-22T10:45:00Z", "2026-11-22T11:00:00Z",
    ]
    assert sched.slots_between(spec, a, a + 899) == []


def test_slots_between_across_a_spring_forward() -> None:
    spec = sched.parse("30 2 * * *", "America/New_York")
    got = sched.slots_between(spec, ts("2026-03-07T00:00:00Z"), ts("2026-03-10T00:00:00Z"))
    assert [rfc(s) for s in got] == ["2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]


def test_slots_between_a_spent_one_shot() -> None:
    spec = sched.parse("at 2026-12-01T03:00:00Z")
    slot = ts("2026-12-01T03:00:00Z")
    assert sched.slots_between(spec, slot - 10, slot + 10) == [slot]
    assert sched.slots_between(spec, slot, slot + 10) == []


def test_recent_slots_within_limit() -> None:
    spec = sched.parse("*/15 * * * *")
    got, truncated = sched.recent_slots(spec, ts("2026-11-22T10:00:00Z"), ts("2026-11-22T11:00:00Z"), 100)
    assert [rfc(s) for s in got] == [
        "2026-11-22T10:15:00Z", "2026-11-22T10:30:00Z", "2026-11-22T10:45:00Z", "2026-11-22T11:00:00Z",
    ]
    assert truncated is False
    got, truncated = sched.recent_slots(spec, ts("2026-11-22T10:00:00Z"), ts("2026-11-22T11:00:00Z"), 4)
    assert len(got) == 4 and truncated is False


def test_recent_slots_keeps_the_newest_and_reports_the_rest() -> None:
    spec = sched.parse("*/15 * * * *")
    got, truncated = sched.recent_slots(spec, ts("2026-11-22T10:00:00Z"), ts("2026-11-22T11:00:00Z"), 2)
    assert [rfc(s) for s in got] == ["2026-11-22T10:45:00Z", "2026-11-22T11:00:00Z"]
    assert truncated is True


def test_recent_slots_of_a_per_second_job_after_a_year_down() -> None:
    spec = sched.parse("* * * * * *")
    until = ts("2026-11-22T11:00:00Z")
    got, truncated = sched.recent_slots(spec, until - 365 * 86400, until, 100)
    assert got == list(range(until - 99, until + 1))
    assert truncated is True


def test_recent_slots_of_a_rare_job_over_a_long_range() -> None:
    spec = sched.parse("@yearly")
    got, truncated = sched.recent_slots(spec, ts("2020-06-01T00:00:00Z"), ts("2026-11-22T00:00:00Z"), 100)
    assert [rfc(s) for s in got] == [f"{y}-01-01T00:00:00Z" for y in range(2021, 2027)]
    assert truncated is False


def test_recent_slots_nothing_due() -> None:
    spec = sched.parse("at 2026-12-01T03:00:00Z")
    assert sched.recent_slots(spec, ts("2026-11-01T00:00:00Z"), ts("2026-11-22T00:00:00Z"), 100) == ([], False)


# ---------------------------------------------------------------------------
# expressions that do not parse
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "", "   ", "61 * * * *", "* 24 * * *", "0 0 * * * * *", "0 0 *", "0 0 30 2 *", "0 0 31 4 *",
        "@fortnightly", "every 0s", "every 500ms", "every soon", "daily 25:00", "daily 7am", "daily 07:00,",
        "at 2026-13-01T03:00:00Z", "at 2026-12-01T03:00:00", "at tomorrow",
    ],
)
def test_bad_expressions_raise_schedule_error(expr: str) -> None:
    with pytest.raises(sched.ScheduleError):
        sched.parse(expr, "UTC", "job")


# ---------------------------------------------------------------------------
# cron input that cannot be read correctly is refused, naming field and token
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, field, token",
    [
        # A zero step: `5-5/0` was read as `5`.
        ("5-5/0 * * * *", "minute", "5-5/0"),
        ("0 0 * * sun-sun/0", "day-of-week", "sun-sun/0"),
        # Steps wider than the field can only ever name their start.
        ("*/61 * * * *", "minute", "*/61"),
        ("*/61 * * * * *", "second", "*/61"),
        ("0 */25 * * *", "hour", "*/25"),
        ("0 0 */32 * *", "day-of-month", "*/32"),
        ("0 0 1-31/40 * *", "day-of-month", "1-31/40"),
        ("0 0 * */13 *", "month", "*/13"),
        ("0 0 * * */8", "day-of-week", "*/8"),
        ("H/61 * * * *", "minute", "H/61"),
        ("0 H(0-23)/25 * * *", "hour", "H(0-23)/25"),
        # R picks a random value, which every replica would pick differently.
        ("R * * * *", "minute", "R"),
        ("0 R(0-5) * * *", "hour", "R(0-5)"),
    ],
)
def test_unreadable_cron_input_is_refused_naming_field_and_token(expr: str, field: str, token: str) -> None:
    with pytest.raises(sched.ScheduleError) as info:
        sched.parse(expr, "UTC", "job")
    assert f"{field} field {token!r}" in str(info.value)


@pytest.mark.parametrize(
    "expr, field, token",
    [
        ("61 * * * *", "minute", "61"),
        ("0 24 * * *", "hour", "24"),
        ("0 0 0 * *", "day-of-month", "0"),
        ("0 0 * 13 *", "month", "13"),
        ("0 0 * * 8", "day-of-week", "8"),
        ("0 0 * * 1,mon-fry", "day-of-week", "1,mon-fry"),
        ("0 0 * * 5L", "day-of-week", "5L"),
        ("0 0 * * 1#2,3", "day-of-week", "1#2,3"),
        ("0 0 1-5W * *", "day-of-month", "1-5W"),
        ("0 ? * * *", "hour", "?"),
        ("60 * * * * *", "second", "60"),
    ],
)
def test_cron_errors_name_the_field_and_the_token(expr: str, field: str, token: str) -> None:
    with pytest.raises(sched.ScheduleError) as info:
        sched.parse(expr, "UTC", "job")
    assert f"{field} field {token!r}" in str(info.value)


def test_a_too_wide_minute_step_suggests_an_interval() -> None:
    with pytest.raises(sched.ScheduleError, match="every 90m"):
        sched.parse("*/90 * * * *", "UTC", "job")


def test_a_huge_cron_token_is_shortened_in_the_error() -> None:
    with pytest.raises(sched.ScheduleError) as info:
        sched.parse("9" * 5000 + " * * * *", "UTC", "job")
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    "expr, same_as",
    [
        # Steps up to the field's width are read as cronie, robfig/cron and cronsim read them.
        ("*/60 * * * *", "0 * * * *"),
        ("0 */24 * * *", "0 0 * * *"),
        ("0 0 * * */7", "0 0 * * 0"),
        ("5-5/2 * * * *", "5 * * * *"),
        # 7 is Sunday; a range ending at Sunday runs to the end of the week.
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 * * 7/2", "0 0 * * 0,2,4,6"),
        ("0 0 * * 5-7", "0 0 * * 0,5,6"),
        ("0 0 * * fri-sun", "0 0 * * 0,5,6"),
        ("0 0 * * 0-7/2", "0 0 * * 0,2,4,6"),
        ("0 0 * * 1-7/3", "0 0 * * 0,1,4"),
        # Names in any case, `?` as `*` in the day fields.
        ("0 0 * JAN-mar Mon", "0 0 * 1-3 1"),
        ("0 0 ? * 1", "0 0 * * 1"),
        ("0 0 1 * ?", "0 0 1 * *"),
        # A reversed range wraps (Quartz), the step carried across the end of the field.
        ("0 23-3/2 * * *", "0 1,3,23 * * *"),
        ("0 0 * * sat-tue/2", "0 0 * * 1,6"),
        ("0 0 * * sat-tue", "0 0 * * 0,1,2,6"),
        ("0 0 * nov-feb/2 *", "0 0 * 1,11 *"),
        ("0 0 25-5/3 * *", "0 0 3,25,28,31 * *"),
    ],
)
def test_cron_forms_that_mean_another(expr: str, same_as: str) -> None:
    start = ts("2026-01-01T00:00:00Z")
    a = sched.slots_between(sched.parse(expr, "UTC", "job"), start, start + 2 * 366 * 86400)
    b = sched.slots_between(sched.parse(same_as, "UTC", "job"), start, start + 2 * 366 * 86400)
    assert a and a == b


def test_lower_case_h_is_the_same_per_job_hash_as_upper_case() -> None:
    start = ts("2026-01-01T00:00:00Z")
    for name in NAMES[:10]:
        lower = sched.next_after(sched.parse("h h * * *", "UTC", name), start)
        upper = sched.next_after(sched.parse("H H * * *", "UTC", name), start)
        assert lower == upper, name


def test_unknown_zone_raises_schedule_error() -> None:
    with pytest.raises(sched.ScheduleError):
        sched.parse("0 3 * * *", "Mars/Olympus_Mons", "job")


@pytest.mark.parametrize(
    "text, seconds",
    [("90", 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), ("1d2h3m4s", 93784), ("0", 0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert sched.parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "1.5h", "-5s", "10x", "1m1h", "soon"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        sched.parse_duration_s(text)


# ---------------------------------------------------------------------------
# DST: Vixie cron semantics
#
# Transitions (all 2026):
#   America/New_York    spring Mar 8 07:00Z (02:00 EST -> 03:00 EDT, gap 02:00-03:00)
#                       fall   Nov 1 06:00Z (02:00 EDT -> 01:00 EST, 01:00-02:00 repeated:
#                              first 05:00-06:00Z, second 06:00-07:00Z)
#   Europe/Berlin       spring Mar 29 01:00Z (gap 02:00-03:00)
#                       fall   Oct 25 01:00Z (02:00-03:00 repeated: 00:00-01:00Z, 01:00-02:00Z)
#   Australia/Lord_Howe fall   Apr 5 local, Apr 4 15:00Z (02:00 +11 -> 01:30 +10:30,
#                              01:30-02:00 repeated: 14:30-15:00Z, 15:00-15:30Z)
#                       spring Oct 4 local, Oct 3 15:30Z (02:00 +10:30 -> 02:30 +11, gap 02:00-02:30)
#   Australia/Sydney    fall   Apr 5 local, Apr 4 16:00Z (03:00 +11 -> 02:00 +10,
#                              02:00-03:00 repeated: 15:00-16:00Z, 16:00-17:00Z)
#                       spring Oct 4 local, Oct 3 16:00Z (02:00 +10 -> 03:00 +11, gap 02:00-03:00)
#   America/Havana      spring Mar 8 05:00Z (00:00 -> 01:00: midnight does not exist)
#                       fall   Nov 1 05:00Z (01:00 CDT -> 00:00 CST, 00:00-01:00 repeated)
#   Antarctica/Troll    spring Mar 29 01:00Z (01:00 +00 -> 03:00 +02, a two-hour gap)
#                       fall   Oct 25 01:00Z (03:00 +02 -> 01:00 +00, 01:00-03:00 repeated)
# ---------------------------------------------------------------------------

DST_TABLE = [
    # --- America/New_York, spring forward ---
    pytest.param(
        "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"],
        id="ny-spring-fixed-in-gap-fires-at-transition",
    ),
    pytest.param(
        "0 2 * * *", "America/New_York", "2026-03-08T00:00:00Z",
        ["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"],
        id="ny-spring-fixed-gap-start",
    ),
    pytest.param(
        "daily 02:30", "America/New_York", "2026-03-07T12:00:00Z",
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        id="ny-spring-daily-in-gap",
    ),
    pytest.param(
        "0 30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        id="ny-spring-6-field-fixed-in-gap",
    ),
    pytest.param(
        "30 * * * *", "America/New_York", "2026-03-08T05:00:00Z",
        ["2026-03-08T05:30:00Z", "2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z", "2026-03-08T08:30:00Z"],
        id="ny-spring-star-hour-skips-gap",
    ),
    pytest.param(
        "*/30 * * * *", "America/New_York", "2026-03-08T06:00:00Z",
        ["2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"],
        id="ny-spring-star-minute-skips-gap",
    ),
    pytest.param(
        # 02:00 is skipped (fires at the transition), 03:00 EDT is the same instant: one slot.
        "0 1-3 * * *", "America/New_York", "2026-03-08T05:00:00Z",
        ["2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-09T05:00:00Z"],
        id="ny-spring-fixed-range-one-slot-per-instant",
    ),
    # --- America/New_York, fall back ---
    pytest.param(
        "30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        id="ny-fall-fixed-in-repeat-fires-once",
    ),
    pytest.param(
        "30 1 * * *", "America/New_York", "2026-11-01T05:45:00Z",
        ["2026-11-02T06:30:00Z"],
        id="ny-fall-fixed-no-second-occurrence-from-inside",
    ),
    pytest.param(
        "30 1 * * *", "America/New_York", "2026-11-01T06:10:00Z",
        ["2026-11-02T06:30:00Z"],
        id="ny-fall-fixed-no-second-occurrence-from-second-hour",
    ),
    pytest.param(
        "0 1-3 * * *", "America/New_York", "2026-11-01T04:00:00Z",
        ["2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z", "2026-11-01T08:00:00Z"],
        id="ny-fall-fixed-range-once",
    ),
    pytest.param(
        "0 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
        ["2026-11-01T05:00:00Z", "2026-11-02T06:00:00Z"],
        id="ny-fall-fixed-at-start-of-repeat-once",
    ),
    pytest.param(
        # 02:00 EDT never shows (the clock goes 01:59:59 EDT -> 01:00 EST); 02:00 EST happens once.
        "0 2 * * *", "America/New_York", "2026-10-31T12:00:00Z",
        ["2026-11-01T07:00:00Z", "2026-11-02T07:00:00Z"],
        id="ny-fall-fixed-at-end-of-repeat",
    ),
    pytest.param(
        "30 * * * *", "America/New_York", "2026-11-01T04:00:00Z",
        ["2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"],
        id="ny-fall-star-hour-both-occurrences",
    ),
    pytest.param(
        "*/30 * * * *", "America/New_York", "2026-11-01T05:00:00Z",
        ["2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"],
        id="ny-fall-star-minute-both-occurrences",
    ),
    pytest.param(
        "*/30 * * * *", "America/New_York", "2026-11-01T05:59:59Z",
        ["2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"],
        id="ny-fall-star-from-end-of-first-hour",
    ),
    pytest.param(
        "0 * * * *", "America/New_York", "2026-11-01T04:30:00Z",
        ["2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"],
        id="ny-fall-hourly-both-occurrences",
    ),
    # --- Europe/Berlin ---
    pytest.param(
        "30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z",
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
        id="berlin-spring-fixed-in-gap",
    ),
    pytest.param(
        "15 * * * *", "Europe/Berlin", "2026-03-28T23:30:00Z",
        ["2026-03-29T00:15:00Z", "2026-03-29T01:15:00Z", "2026-03-29T02:15:00Z"],
        id="berlin-spring-star-hour-skips-gap",
    ),
    pytest.param(
        "30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z",
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        id="berlin-fall-fixed-once",
    ),
    pytest.param(
        "0 30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z",
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        id="berlin-fall-6-field-fixed-once",
    ),
    pytest.param(
        "*/30 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z",
        ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z",
         "2026-10-25T02:00:00Z"],
        id="berlin-fall-star-both-occurrences",
    ),
    pytest.param(
        "30 0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z",
        ["2026-10-25T00:00:30Z", "2026-10-25T01:00:30Z", "2026-10-25T02:00:30Z"],
        id="berlin-fall-6-field-star-hour-both-occurrences",
    ),
    # --- Australia/Lord_Howe: 30-minute shifts ---
    pytest.param(
        "45 1 * * *", "Australia/Lord_Howe", "2026-04-04T00:00:00Z",
        ["2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"],
        id="lord-howe-fall-fixed-once",
    ),
    pytest.param(
        "*/15 * * * *", "Australia/Lord_Howe", "2026-04-04T14:20:00Z",
        ["2026-04-04T14:30:00Z", "2026-04-04T14:45:00Z", "2026-04-04T15:00:00Z", "2026-04-04T15:15:00Z",
         "2026-04-04T15:30:00Z"],
        id="lord-howe-fall-star-both-occurrences",
    ),
    pytest.param(
        # 02:00 local happens once (after the repeat), at +10:30.
        "0 * * * *", "Australia/Lord_Howe", "2026-04-04T14:00:00Z",
        ["2026-04-04T15:30:00Z", "2026-04-04T16:30:00Z"],
        id="lord-howe-fall-hourly",
    ),
    pytest.param(
        "15 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z",
        ["2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"],
        id="lord-howe-spring-fixed-in-gap",
    ),
    pytest.param(
        "0 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z",
        ["2026-10-03T15:30:00Z", "2026-10-04T15:00:00Z"],
        id="lord-howe-spring-fixed-gap-start",
    ),
    pytest.param(
        "*/15 * * * *", "Australia/Lord_Howe", "2026-10-03T15:00:00Z",
        ["2026-10-03T15:15:00Z", "2026-10-03T15:30:00Z", "2026-10-03T15:45:00Z"],
        id="lord-howe-spring-star-skips-gap",
    ),
    # --- Australia/Sydney (southern hemisphere: spring in October) ---
    pytest.param(
        "30 2 * * *", "Australia/Sydney", "2026-10-03T00:00:00Z",
        ["2026-10-03T16:00:00Z", "2026-10-04T15:30:00Z"],
        id="sydney-spring-fixed-in-gap",
    ),
    pytest.param(
        "0,30 * * * *", "Australia/Sydney", "2026-10-03T15:00:00Z",
        ["2026-10-03T15:30:00Z", "2026-10-03T16:00:00Z", "2026-10-03T16:30:00Z"],
        id="sydney-spring-star-skips-gap",
    ),
    pytest.param(
        "30 2 * * *", "Australia/Sydney", "2026-04-04T00:00:00Z",
        ["2026-04-04T15:30:00Z", "2026-04-05T16:30:00Z"],
        id="sydney-fall-fixed-once",
    ),
    pytest.param(
        "30 * * * *", "Australia/Sydney", "2026-04-04T14:00:00Z",
        ["2026-04-04T14:30:00Z", "2026-04-04T15:30:00Z", "2026-04-04T16:30:00Z", "2026-04-04T17:30:00Z"],
        id="sydney-fall-star-both-occurrences",
    ),
    # --- America/Havana: the transition is at midnight ---
    pytest.param(
        "@daily", "America/Havana", "2026-03-07T12:00:00Z",
        ["2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"],
        id="havana-spring-midnight-missing",
    ),
    pytest.param(
        "@daily", "America/Havana", "2026-10-31T12:00:00Z",
        ["2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"],
        id="havana-fall-midnight-once",
    ),
    # --- Antarctica/Troll: two-hour shifts ---
    pytest.param(
        "30 2 * * *", "Antarctica/Troll", "2026-03-28T12:00:00Z",
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
        id="troll-spring-fixed-in-two-hour-gap",
    ),
    pytest.param(
        "30 * * * *", "Antarctica/Troll", "2026-03-29T00:00:00Z",
        ["2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z"],
        id="troll-spring-star-skips-two-hour-gap",
    ),
    pytest.param(
        "30 1 * * *", "Antarctica/Troll", "2026-10-24T12:00:00Z",
        ["2026-10-24T23:30:00Z", "2026-10-26T01:30:00Z"],
        id="troll-fall-fixed-once",
    ),
    pytest.param(
        "30 * * * *", "Antarctica/Troll", "2026-10-24T22:00:00Z",
        ["2026-10-24T22:30:00Z", "2026-10-24T23:30:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z",
         "2026-10-25T02:30:00Z", "2026-10-25T03:30:00Z"],
        id="troll-fall-star-every-real-hour",
    ),
]


@pytest.mark.parametrize("expr, tz, start, expected", DST_TABLE)
def test_dst_transitions(expr: str, tz: str, start: str, expected: list[str]) -> None:
    assert next_slots(expr, start, len(expected), tz, job="dst-job") == expected


@pytest.mark.parametrize("expr, tz, start, expected", DST_TABLE)
def test_dst_slots_between_agrees_with_next_after(expr: str, tz: str, start: str, expected: list[str]) -> None:
    spec = sched.parse(expr, tz, "dst-job")
    got = sched.slots_between(spec, ts(start), ts(expected[-1]))
    assert [rfc(s) for s in got] == expected


def _row(row_id: str):
    return next(p for p in DST_TABLE if p.id == row_id)


@pytest.mark.parametrize(
    "row_id",
    ["ny-spring-fixed-in-gap-fires-at-transition", "lord-howe-fall-star-both-occurrences", "berlin-fall-fixed-once"],
)
def test_check_cli_prints_the_same_slots(row_id: str, tmp_path) -> None:
    expr, tz, start, expected = _row(row_id).values
    env = {
        "SCHEDULER_JOB_DST_PROBE_SCHEDULE": expr,
        "SCHEDULER_JOB_DST_PROBE_URL": "/dst",
        "SCHEDULER_JOB_DST_PROBE_TIMEZONE": tz,
    }
    result = run_cli(["check", "--json", "--from", start, "--count", str(len(expected))], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)["jobs"]
    assert len(jobs) == 1
    job = jobs[0]
    assert job["name"] == "dst-probe"
    assert job["schedule"] == expr
    assert job["timezone"] == tz
    assert job["url"] == "http://localhost:8000/dst"
    assert job["next"] == expected


def test_check_cli_hash_is_the_same_in_another_process(tmp_path) -> None:
    env = {"SCHEDULER_JOB_SPREAD_ME_SCHEDULE": "H H * * *", "SCHEDULER_JOB_SPREAD_ME_URL": "/x"}
    start = "2026-11-22T00:00:00Z"
    result = run_cli(["check", "--json", "--from", start, "--count", "3"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["jobs"][0]["next"] == next_slots("H H * * *", start, 3, job="spread-me")
