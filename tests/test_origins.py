"""The per-origin limiter's logic (scheduler/origins.py) on a hand-moved clock: the fast path,
AIMD (multiplicative decrease once per round trip, additive increase up to the maximum, the
floor), Retry-After holding the whole origin, slow answers, the rate, and waiters served in
slot order. The daemon against an overloaded app is tests/test_origin_limits.py."""

from __future__ import annotations

import asyncio

import pytest

from scheduler import origins
from scheduler.config import loader as config
from scheduler.dispatch import Dispatcher
from scheduler.origins import Lane, Origins


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _never(_: float) -> None:  # the timer's sleep: these tests move the clock by hand
    await asyncio.Event().wait()


def lane(most: int = 64, rate: float | None = None) -> tuple[Lane, Clock]:
    clock = Clock()
    return Lane("http://app:8000", most, rate, clock, _never), clock


def answer(lane_: Lane, clock: Clock, status: int | None = 200, latency: float = 0.01,
           retry_after: float | None = None, job: str = "j") -> None:
    """One call from take to answer, `latency` long."""
    assert lane_.take()
    began = clock.now
    clock.now += latency
    lane_.done(began, job, status, retry_after)


def test_under_the_limit_a_call_takes_a_place_at_once_and_gives_it_back() -> None:
    ln, clock = lane(most=2)
    assert ln.take() and ln.take()
    assert not ln.take()  # the third waits
    ln.done(clock.now, "j", 200, None)
    assert ln.in_flight == 1 and ln.take()
    assert ln.limit == 2


def round_trip(lane_: Lane, clock: Clock, calls: int, status: int | None = 200, latency: float = 0.01) -> None:
    """`calls` calls sent together, answered together."""
    began = clock.now
    for _ in range(calls):
        assert lane_.take()
    clock.now += latency
    for _ in range(calls):
        lane_.done(began, "j", status, None)


def steady(lane_: Lane, clock: Clock, answers: int) -> None:
    """A load that keeps the limit full: each answer makes room for the next call (the calls
    in flight stay in flight)."""
    for _ in range(answers):
        while lane_.take():
            pass
        clock.now += 0.001
        lane_.done(clock.now - 0.01, "j", 200, None)


@pytest.mark.parametrize("status", [429, 503])
def test_a_refusal_lowers_the_limit_below_what_was_in_flight_once_per_round_trip(status: int) -> None:
    ln, clock = lane(most=64)
    round_trip(ln, clock, 10, status)  # ten answers to calls sent before the decrease: one decrease
    assert ln.limit == 10 * origins.DECREASE  # below the 10 the app refused, not 70 % of 64
    round_trip(ln, clock, 5, status)  # calls sent after it: the next round trip lowers it again
    assert ln.limit == 5 * origins.DECREASE


def test_the_limit_never_falls_below_the_floor() -> None:
    ln, clock = lane(most=8)
    for _ in range(20):
        round_trip(ln, clock, 1, 503)
    assert ln.limit == origins.FLOOR
    assert ln.take()  # one call at a time still goes


def test_healthy_answers_raise_the_limit_by_about_one_per_round_trip_up_to_the_maximum() -> None:
    ln, clock = lane(most=64)
    round_trip(ln, clock, 20, 503)
    cut = 20 * origins.DECREASE
    assert ln.limit == cut
    steady(ln, clock, int(cut))  # a round trip's worth of answers with the limit in use
    assert cut + 0.9 < ln.limit < cut + 1.1
    steady(ln, clock, 10_000)
    assert ln.limit == 64


def test_growth_slows_within_one_call_of_the_load_last_refused() -> None:
    ln, clock = lane(most=64)
    round_trip(ln, clock, 10, 503)  # refused at 10 in flight: 7
    steady(ln, clock, 7)
    assert 7.9 < ln.limit < 8.1  # +1 a round trip below 9
    while ln.limit < 9.0:
        steady(ln, clock, 1)
    before = ln.limit
    steady(ln, clock, 9)  # a round trip near 10: +PROBE
    assert origins.PROBE - 0.05 < ln.limit - before < origins.PROBE + 0.05


def test_a_limit_not_in_use_does_not_grow() -> None:
    ln, clock = lane(most=64)
    round_trip(ln, clock, 20, 503)
    for _ in range(1000):  # one call at a time: the 14 places are never tried
        round_trip(ln, clock, 1)
    assert ln.limit == 20 * origins.DECREASE


def test_a_healthy_app_keeps_the_maximum() -> None:
    ln, clock = lane(most=64)
    for latency in [0.01, 0.02, 0.005, 0.2, 0.01] * 100:  # jitter under SLOW_MIN_S is no sign
        answer(ln, clock, 200, latency)
    assert ln.limit == 64


def test_an_answer_far_slower_than_the_jobs_baseline_lowers_the_limit() -> None:
    ln, clock = lane(most=64)
    for _ in range(50):
        answer(ln, clock, 200, 0.02)
    answer(ln, clock, 200, 0.02 * origins.SLOW_FACTOR + origins.SLOW_MIN_S + 0.01)
    assert ln.limit == 64 * origins.DECREASE  # the limit's share: a slow answer says nothing of how many
    # Another job of the same origin that is always slow has its own baseline: no sign.
    for _ in range(50):
        answer(ln, clock, 200, 5.0, job="report")
    assert ln.limit == 64 * origins.DECREASE


def test_retry_after_holds_every_call_to_the_origin_until_it_passes() -> None:
    ln, clock = lane(most=64)
    answer(ln, clock, 503, retry_after=2.0)
    assert ln.limit == origins.FLOOR
    assert not ln.take()  # held: another fire's call waits too
    clock.now += 1.9
    assert not ln.take()
    clock.now += 0.2
    assert ln.take()
    ln.done(clock.now, "j", 200, None)
    assert ln.take()  # the hold is over: the fast path again
    assert not ln.paced


def test_a_retry_after_holds_the_origin_at_most_hold_cap() -> None:
    ln, clock = lane()
    answer(ln, clock, 429, retry_after=86_400.0)
    clock.now += origins.HOLD_CAP_S + 0.01
    assert ln.take()


def test_a_rate_spaces_the_calls() -> None:
    ln, clock = lane(rate=2.0)
    assert ln.take()
    assert not ln.take()
    clock.now += 0.5
    assert ln.take()
    assert not ln.take()


def test_waiting_calls_go_oldest_slot_first_then_in_the_order_they_came() -> None:
    async def go() -> list[str]:
        ln = Lane("http://app", 1, None, lambda: 0.0, asyncio.sleep)
        assert ln.take()
        order: list[str] = []

        async def call(name: str, slot: float) -> None:
            await ln.wait(slot)
            order.append(name)
            ln.give()

        tasks = []
        for name, slot in [("c", 30.0), ("a1", 10.0), ("b", 20.0), ("a2", 10.0)]:
            tasks.append(asyncio.create_task(call(name, slot)))
            await asyncio.sleep(0)
        cancelled = asyncio.create_task(call("x", 5.0))
        await asyncio.sleep(0)
        cancelled.cancel()  # a waiter that leaves (CONCURRENCY=replace) takes no place with it
        await asyncio.sleep(0)
        assert len(ln.waiting) == 5 and not order
        ln.give()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert ln.in_flight == 0
        return order

    assert asyncio.run(go()) == ["a1", "a2", "b", "c"]


def test_a_retry_after_hold_wakes_the_waiters_when_it_passes() -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()
        ln = Lane("http://app", 4, None, loop.time, asyncio.sleep)
        assert ln.take()
        ln.done(loop.time(), "j", 503, 0.05)
        started = loop.time()
        await asyncio.wait_for(ln.wait(1.0), 5)
        assert loop.time() - started >= 0.04

    asyncio.run(go())


def test_urls_of_one_origin_share_a_lane() -> None:
    o = Origins(8)
    assert o.lane("http://app:8000/a") is o.lane("http://app:8000/b?x=1")
    assert o.lane("http://app:8000/a") is not o.lane("http://app:8001/a")
    assert o.lane("http://APP:80/") is o.lane("http://app/")
    assert [s["origin"] for s in o.states()] == ["http://app:8000", "http://app:8001", "http://app"]


@pytest.mark.parametrize("text", ["0", "-1", "fast", "1e3"])
def test_a_bad_rate_is_a_config_error_naming_its_variable(text: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.load({"SCHEDULER_TARGET_RATE": text})
    assert any(p.startswith("SCHEDULER_TARGET_RATE") for p in err.value.problems), err.value.problems


JOB = {"SCHEDULER_JOB_A_SCHEDULE": "@hourly", "SCHEDULER_JOB_A_URL": "/a"}


def test_rate_and_max_in_flight_are_read() -> None:
    s = config.load({**JOB, "SCHEDULER_TARGET_RATE": "12.5/s", "SCHEDULER_TARGET_MAX_IN_FLIGHT": "20"})
    assert (s.target_rate, s.target_max_in_flight) == (12.5, 20)
    default = config.load({**JOB, "SCHEDULER_MAX_CONCURRENCY": "1024"})
    assert (default.target_rate, default.target_max_in_flight) == (None, None)
    assert Dispatcher(default).origins.most == 1024  # unset: the global cap, so a healthy app sees no change


def test_a_change_of_limit_is_logged_at_most_every_ten_seconds_and_on_recovery(caplog) -> None:
    ln, clock = lane(most=64)
    with caplog.at_level("INFO", logger="scheduler.origins"):
        for _ in range(5):
            round_trip(ln, clock, int(ln.limit), 503)
        clock.now += origins.LOG_EVERY_S
        round_trip(ln, clock, 1, 503)
        steady(ln, clock, 10_000)
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == ["WARNING", "WARNING", "INFO"], said
    assert said[0][1] == "calls to http://app:8000: limit lowered: HTTP 503"
    assert said[-1][1] == "calls to http://app:8000: limit back at its maximum"


def test_each_origin_is_a_metric_and_a_line_on_the_page() -> None:
    from scheduler.control import page
    from scheduler.observe import Metrics
    from scheduler.observe.metrics import OriginsCollector

    o = Origins(64)
    ln = o.lane("http://app:8000/hook")
    for _ in range(64):
        ln.take()
    ln.done(0.0, "j", 503, 3.0)
    metrics = Metrics()
    metrics.registry.register(OriginsCollector(o.states))
    text = metrics.exposition().decode()
    assert 'cron_sidecar_target_limit{origin="http://app:8000"} 44.0' in text
    assert 'cron_sidecar_target_in_flight{origin="http://app:8000"} 63.0' in text
    assert 'cron_sidecar_target_waiting{origin="http://app:8000"} 0.0' in text
    html = page.render({"leader": None, "jobs": [], "origins": o.states()}, "n")
    assert "<b>http://app:8000</b>: limit 44 of 64, 63 in flight, 0 waiting, held " in html
