"""`M H * * *` in UTC has its next slot worked out by arithmetic (cron_time.daily_second),
not by croniter: here the two agree, and the expressions it takes are the ones croniter
accepts. Any other form, or another zone, still goes to croniter."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.schedule import cron_time
from scheduler.schedule import slots as sched

EPOCH_2100 = 4_102_444_800


@settings(max_examples=400, deadline=None)
@given(minute=st.integers(0, 59), hour=st.integers(0, 23), t=st.integers(0, EPOCH_2100),
       zone=st.sampled_from(sorted(cron_time._UTC_NAMES)))  # noqa: SLF001
def test_the_arithmetic_agrees_with_croniter(minute: int, hour: int, t: int, zone: str) -> None:
    expr = f"{minute} {hour} * * *"
    assert cron_time.daily_second(expr) == hour * 3600 + minute * 60
    want = int(croniter(expr, datetime.fromtimestamp(t, UTC)).get_next(float))
    assert cron_time._next_cron(expr, "", False, True, zone, t) == want  # noqa: SLF001
    assert cron_time._next_cron_locked(expr, "", False, True, zone, t) == want  # noqa: SLF001  (croniter's way)


@given(t=st.integers(0, EPOCH_2100))
def test_a_slot_at_the_instant_itself_is_not_next(t: int) -> None:
    day_start = t - t % 86400
    expr = f"{(t % 3600) // 60} {(t % 86400) // 3600} * * *"
    on_the_minute = day_start + (t % 86400) // 60 * 60
    got = cron_time._next_cron(expr, "", False, True, "UTC", on_the_minute)  # noqa: SLF001
    assert got == on_the_minute + 86400


@given(minute=st.integers(0, 99), hour=st.integers(0, 99))
def test_it_takes_only_what_croniter_accepts(minute: int, hour: int) -> None:
    expr = f"{minute} {hour} * * *"
    if cron_time.daily_second(expr) is not None:
        assert croniter.is_valid(expr)
    else:
        assert minute > 59 or hour > 23


def test_other_forms_are_not_taken() -> None:
    for expr in ("*/5 3 * * *", "0 3 * * 1-5", "0 3 1 * *", "0-5 3 * * *", "0 3,15 * * *", "0 0 3 * * *"):
        assert cron_time.daily_second(expr) is None, expr


def test_a_daily_expression_elsewhere_still_follows_the_dst_rules() -> None:
    # 02:30 does not happen in Berlin on 2026-03-29: a fixed-time job fires at the jump (03:00 CEST)
    spec = sched.parse("30 2 * * *", "Europe/Berlin", "any")
    before = int(datetime(2026, 3, 29, 0, 0, tzinfo=UTC).timestamp())
    assert sched.next_after(spec, before) == int(datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp())
