"""The planner on tables of fixed instants: CATCHUP x CONCURRENCY x jitter x claim-ahead.

Instants are written as offsets from T (a multiple of 10) and claims as "kind@offset", so a
row reads like the schedule it pins. Every job runs "every 10s".
"""

from __future__ import annotations

import heapq
import math
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.schedule import slots as sched
from scheduler.config.loader import JobSpec
from scheduler.model import EXPIRE, FIRE, INIT, Claim, InFlight, State
from scheduler.engine.plan import CATCHUP_ALL_LIMIT, Plan, claim_ahead_s, fire_at, jitter_offset_s

T = 1_800_000_000  # a multiple of 10: slots of "every 10s" fall on T + 10k


def job(name="j", *, catchup="latest", window=None, concurrency="forbid", jitter=0.0, every="every 10s"):
    return JobSpec(name, every, sched.parse(every), "/x", jitter_s=jitter, catchup=catchup,
                   catchup_window_s=window, concurrency=concurrency)


def shown(claims):
    return [f"{c.kind}@{c.slot - T}" + (f":{c.reason}" if c.reason else "") for c in claims]


def planner(*jobs, ahead=0.25):
    return Plan({j.name: j for j in jobs}, ahead)


# -- leadership start: CATCHUP after a gap ------------------------------------------------

START = [
    # catchup, window, jitter, watermark, now, expected claims
    ("latest", None, 0.0, 0, 35.5, ["fire@30"]),
    ("all", None, 0.0, 0, 35.5, ["fire@10", "fire@20", "fire@30"]),
    ("none", None, 0.0, 0, 35.5, []),
    ("latest", 15.0, 0.0, 0, 35.5, ["fire@30"]),
    ("all", 15.0, 0.0, 0, 35.5, ["fire@20", "fire@30"]),
    ("latest", 3.0, 0.0, 0, 35.5, []),
    ("all", 3.0, 0.0, 0, 35.5, []),
    ("none", 15.0, 0.0, 0, 35.5, []),
    # A slot whose jittered moment may still be ahead is not missed yet.
    ("latest", None, 9.0, 0, 35.5, ["fire@20"]),
    ("all", None, 9.0, 0, 35.5, ["fire@10", "fire@20"]),
    ("all", None, 0.0, 30, 35.5, []),  # no gap
    ("all", None, 0.0, 30, 40.0, ["fire@40"]),  # the slot of this very second is missed
]


@pytest.mark.parametrize("catchup,window,jitter,mark,now,expected", START)
def test_catch_up_at_leadership_start(catchup, window, jitter, mark, now, expected):
    plan = planner(job(catchup=catchup, window=window, jitter=jitter))
    assert shown(plan.start(State(watermarks={"j": T + mark}), T + now)) == expected


def test_catch_up_all_makes_up_the_newest_hundred_only():
    plan = planner(job(catchup="all", every="every 1s"))
    claims = plan.start(State(watermarks={"j": T}), T + 500.5)
    assert len(claims) == CATCHUP_ALL_LIMIT
    assert shown(claims)[0] == "fire@401" and shown(claims)[-1] == "fire@500"


def test_first_sighting_claims_init_at_now_and_nothing_past():
    plan = planner(job(catchup="all"))
    [init] = plan.start(State(), T + 35.7)
    assert shown([init]) == ["init@35"]
    assert plan.heap[0][1:] == (T + 40, "j") and plan.deadline(init) == T + 40


def test_redeliveries_come_first_oldest_first_and_skip_what_runs_here():
    a, b = job("a"), job("b")
    state = State(watermarks={"a": T + 30, "b": T + 30}, inflight=[
        InFlight("b", T + 30, 7, 2), InFlight("a", T + 20, 7, 1), InFlight("gone", T, 7, 1),
        InFlight("a", T + 25, 7, 1, trigger="t1"),
    ])
    claims = planner(a, b).start(state, T + 35, running={"a@manual:t1"})
    assert [(c.kind, c.job, c.slot - T, c.attempt) for c in claims] == [
        ("redeliver", "a", 20, 2), ("redeliver", "b", 30, 3)]


# -- an instant in the loop: CONCURRENCY x busy x jitter x claim-ahead --------------------

# (concurrency, busy, overlapping, jitter, ahead, [(instant, expected claims), ...])
# busy: an HTTP call of the job is under way; overlapping: one started by the loop itself
# (not by the backlog made up at leadership start).
DUE = [
    ("forbid", False, False, 0.0, 0.25, [(39.7, []), (39.8, ["fire@40"]), (40.0, [])]),
    ("forbid", True, True, 0.0, 0.25, [(39.8, []), (39.99, []), (40.0, ["skip@40:overlap"])]),
    ("forbid", True, False, 0.0, 0.25, [(39.8, []), (40.0, ["fire@40"])]),  # behind the backlog
    ("allow", True, True, 0.0, 0.25, [(39.8, ["fire@40"])]),
    ("allow", False, False, 0.0, 0.25, [(39.8, ["fire@40"])]),
    ("replace", True, True, 0.0, 0.25, [(39.8, []), (40.0, ["fire@40"])]),
    ("replace", False, False, 0.0, 0.25, [(39.8, ["fire@40"])]),
    ("forbid", False, False, 0.0, 0.0, [(39.8, []), (39.999, []), (40.0, ["fire@40"])]),
    ("allow", True, True, 0.0, 0.0, [(39.8, []), (40.0, ["fire@40"])]),
    ("forbid", True, True, 0.0, 0.0, [(40.0, ["skip@40:overlap"])]),
]
JITTER_S = 5.0
MOMENT = jitter_offset_s("j", T + 40, JITTER_S)  # 40 + this is when the jittered fire goes out
DUE += [
    ("forbid", False, False, JITTER_S, 0.25, [(40.0, []), (40 + MOMENT - 0.26, []), (40 + MOMENT - 0.25, ["fire@40"])]),
    ("allow", True, True, JITTER_S, 0.25, [(40 + MOMENT - 0.25, ["fire@40"])]),
    ("forbid", True, True, JITTER_S, 0.25, [(40 + MOMENT - 0.25, []), (40 + MOMENT, ["skip@40:overlap"])]),
    ("replace", True, True, JITTER_S, 0.25, [(40 + MOMENT - 0.01, []), (40 + MOMENT, ["fire@40"])]),
    ("replace", True, True, JITTER_S, 0.0, [(40 + MOMENT - 0.01, []), (40 + MOMENT, ["fire@40"])]),
]


@pytest.mark.parametrize("concurrency,busy,overlapping,jitter,ahead,steps", DUE)
def test_what_is_due_at_an_instant(concurrency, busy, overlapping, jitter, ahead, steps):
    assert 1 < MOMENT < JITTER_S  # the jitter rows are only meaningful if it is spread
    plan = planner(job(concurrency=concurrency, jitter=jitter), ahead=ahead)
    assert plan.start(State(watermarks={"j": T + 30}), T + 30.5) == []
    for now, expected in steps:
        got = plan.due(T + now, busy=lambda j: busy, overlapping=lambda j: overlapping)
        assert shown(got) == expected, f"at T+{now}"


def test_a_queue_jobs_slot_waits_for_the_call_one_at_most_and_fires_when_it_ends():
    plan = planner(job(concurrency="queue"))
    assert plan.start(State(watermarks={"j": T + 30}), T + 30.5) == []
    busy = {"j": True}
    due = lambda now: shown(plan.due(T + now, busy=lambda j: busy[j], overlapping=lambda j: busy[j]))  # noqa: E731
    assert due(39.8) == []  # not claimed ahead while the call runs
    assert due(40.0) == []  # due: it waits, unclaimed
    assert due(45.0) == []
    assert due(50.0) == ["skip@40:replaced by a newer slot"]  # a newer slot takes its place
    busy["j"] = False
    assert due(52.0) == ["fire@50"]  # the call ended: the waiting slot goes at once
    assert due(53.0) == []
    assert due(59.8) == ["fire@60"]  # nothing runs: as any job


# -- a loop that fell behind takes several slots at once ----------------------------------

BEHIND = [
    # catchup, window, concurrency, overlapping, now, expected
    ("latest", None, "forbid", False, 75.0, ["skip@40:missed", "skip@50:missed", "skip@60:missed", "fire@70"]),
    ("all", None, "forbid", False, 75.0, ["fire@40", "fire@50", "fire@60", "fire@70"]),
    ("all", 15.0, "allow", False, 75.0, ["skip@40:missed", "skip@50:missed", "fire@60", "fire@70"]),
    ("none", None, "allow", False, 75.0, ["skip@40:missed", "skip@50:missed", "skip@60:missed", "fire@70"]),
    ("all", None, "forbid", True, 75.0, ["skip@40:overlap", "skip@50:overlap", "skip@60:overlap", "skip@70:overlap"]),
    ("all", None, "replace", True, 52.0, ["fire@40", "fire@50"]),
]


@pytest.mark.parametrize("catchup,window,concurrency,overlapping,now,expected", BEHIND)
def test_a_loop_that_fell_behind_takes_the_slots_together(catchup, window, concurrency, overlapping, now, expected):
    plan = planner(job(catchup=catchup, window=window, concurrency=concurrency))
    plan.start(State(watermarks={"j": T + 30}), T + 30.5)
    assert shown(plan.due(T + now, busy=lambda j: False, overlapping=lambda j: overlapping)) == expected
    assert plan.heap[0][1] == T + (now // 10 + 1) * 10 and plan.period_s["j"] == 10


def test_a_loop_far_behind_takes_the_newest_hundred():
    plan = planner(job(catchup="all", every="every 1s"))
    plan.start(State(watermarks={"j": T}), T + 0.5)
    claims = plan.due(T + 1000.5, busy=lambda j: False, overlapping=lambda j: False)
    assert len(claims) == CATCHUP_ALL_LIMIT and claims[-1].slot == T + 1000


@pytest.mark.parametrize("behind", [0.76, 0.9, 0.99])
def test_a_loop_behind_by_most_of_a_period_claims_the_next_slot_ahead_too(behind):
    """Slow store calls (network latency) keep the loop behind: at `now` the due slot is
    past and the next one is within claim-ahead. Both are claimed; none is passed over."""
    plan = planner(job(catchup="all", every="every 1s"))
    plan.start(State(watermarks={"j": T}), T + 0.1)
    claimed = [c.slot - T for c in plan.due(T + behind, busy=lambda j: False, overlapping=lambda j: False)]
    claimed += [c.slot - T for c in plan.due(T + 2 + behind, busy=lambda j: False, overlapping=lambda j: False)]
    claimed += [c.slot - T for c in plan.due(T + 10, busy=lambda j: False, overlapping=lambda j: False)]
    assert claimed == list(range(1, 11))


def test_the_slot_claimed_ahead_with_a_late_one_leaves_the_late_one_due_under_catchup_latest():
    plan = planner(job(catchup="latest", every="every 1s"))
    plan.start(State(watermarks={"j": T + 1}), T + 1.1)
    assert shown(plan.due(T + 2.8, busy=lambda j: False, overlapping=lambda j: False)) == ["fire@2", "fire@3"]


# -- wake-ups, moments, deadlines ---------------------------------------------------------

def test_next_wake_up_is_the_claim_ahead_instant_or_a_held_moment():
    plan = planner(job("a"), job("b", every="every 5s"), ahead=0.25)
    plan.start(State(watermarks={"a": T + 30, "b": T + 30}), T + 30.5)  # b's next slot: T+35
    assert plan.wake_in(T + 30.5) == pytest.approx(35 - 0.25 - 30.5)
    plan.due(T + 34.75, busy=lambda j: True, overlapping=lambda j: True)  # b is held until T+35
    assert plan.wake_in(T + 34.75) == pytest.approx(0.25)
    assert shown(plan.due(T + 35, busy=lambda j: True, overlapping=lambda j: True)) == ["skip@35:overlap"]
    assert plan.wake_in(T + 35) == pytest.approx(4.75)
    assert planner().wake_in(T) == 3600.0


def test_retry_deadline_is_the_jobs_next_slot_and_none_for_a_manual_fire():
    plan = planner(job())
    plan.start(State(watermarks={"j": T + 30}), T + 30.5)
    [claim] = plan.due(T + 40, busy=lambda j: False, overlapping=lambda j: False)
    assert plan.deadline(claim) == T + 50
    from scheduler.model import TRIGGER, Claim
    assert plan.deadline(Claim("j", T + 41, TRIGGER, 1, "r1")) is None


def test_a_one_off_schedule_leaves_no_next_slot_and_no_deadline():
    at = "at 2027-01-15T08:00:00Z"
    plan = planner(job(every=at))
    slot = sched.next_after(sched.parse(at), 0)
    plan.start(State(watermarks={"j": slot - 100}), slot - 50)
    assert shown(plan.due(slot, busy=lambda j: False, overlapping=lambda j: False)) == [f"fire@{slot - T}"]
    assert plan.heap == [] and plan.upcoming == {}


PASSED_AT = [
    # catchup, window, how long before its first sighting the instant was, expected kind
    ("latest", None, 10, FIRE),
    ("all", None, 3600, FIRE),
    ("latest", None, 3601, EXPIRE),  # SCHEDULER_AT_GRACE (1h) bounds it without a window
    ("latest", None, 2 * 365 * 86400, EXPIRE),
    ("none", None, 10, EXPIRE),
    ("latest", 60.0, 61, EXPIRE),
    ("latest", 7200.0, 5400, FIRE),  # a window longer than the grace applies instead
]


@pytest.mark.parametrize("catchup,window,age,kind", PASSED_AT)
def test_an_at_first_seen_after_its_instant_fires_once_or_expires(catchup, window, age, kind):
    """The same at a leadership start (no watermark) as for a job added while one runs."""
    slot, now = T - age, float(T)
    once = job(every=_at(slot), catchup=catchup, window=window)
    started = planner(once).start(State(watermarks={}), now)
    added = planner().add_many([once], now)
    for claims in (started, added):
        assert [(c.kind, c.slot) for c in claims] == [(kind, slot), (INIT, T)]
    if kind == EXPIRE:
        assert started[0].reason and "after its instant" in started[0].reason
    assert planner(once).start(State(watermarks={"j": slot}), now) == []  # seen before: done
    assert Plan({"j": once}, 0.25, at_grace_s=7 * 86400).start(State(watermarks={}), now)[0].kind == (
        FIRE if catchup != "none" and (window or 7 * 86400) >= age else EXPIRE)


def test_fire_moment_and_claim_ahead():
    assert fire_at(job(), T + 40) == T + 40
    assert fire_at(job(jitter=JITTER_S), T + 40) == T + 40 + MOMENT
    assert jitter_offset_s("j", T + 40, JITTER_S) == MOMENT  # the same on every replica
    assert all(0 <= jitter_offset_s("j", T + s, 0.9) <= 0.9 for s in range(0, 2000, 10))
    assert claim_ahead_s(30.0) == 0.25 and claim_ahead_s(1.0) == 0.1


# -- a large addition at once gives the plan that one add per job gives ---------------------


def _at(slot):
    return "at " + datetime.fromtimestamp(slot, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


EXPRS = ["every 10s", "every 7s", "*/5 * * * * *", "H * * * *", "0 3 * * *", _at(T + 25), _at(T - 5)]


def add_one(plan, job, now):
    """SPEC 6 rule 2 for one added job, written out on its own as the reference: it fires from
    its next slot after `now`, nothing from before is made up, except a one-shot `at` whose
    instant has just passed (claimed once, unless its CATCHUP is `none` or the instant is
    older than its CATCHUP_WINDOW); its INIT claim records the first sighting."""
    claims = []
    cursor = math.floor(now)
    if isinstance(job.schedule, sched.At) and job.schedule.slot <= cursor:
        window = job.catchup_window_s
        bound = 3600 if window is None else window  # SCHEDULER_AT_GRACE's default
        fires = job.catchup != "none" and now - job.schedule.slot <= bound
        claims.append(Claim(job.name, job.schedule.slot, FIRE if fires else EXPIRE))
    claims.append(Claim(job.name, cursor, INIT))
    nxt = sched.next_after(job.schedule, cursor)
    if nxt is None:
        plan.upcoming.pop(job.name, None)
    else:
        plan.upcoming[job.name] = nxt
        plan.period_s.pop(job.name, None)
        heapq.heappush(plan.heap, (fire_at(job, nxt), nxt, job.name))
    return claims


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(EXPRS), st.floats(0, 5)), min_size=0, max_size=150),
       st.integers(0, 3), st.floats(0, 100))
def test_add_many_matches_one_add_per_job(specs, existing, offset):
    def make(i, expr, jitter):
        return JobSpec(f"j{i}", expr, sched.parse(expr, job=f"j{i}"), "/x", jitter_s=jitter)
    jobs = [make(i, e, jit) for i, (e, jit) in enumerate(specs)]
    now = T + offset
    one, many = planner(), planner()
    for plan in (one, many):
        for k in range(existing):  # jobs already planned before the addition
            pre = job(f"pre{k}")
            plan.jobs[pre.name] = pre  # type: ignore[index]
            add_one(plan, pre, now - 50)
    claims_one = [c for j in jobs for c in add_one(one, j, now)]
    claims_many = many.add_many(jobs, now)
    assert claims_one == claims_many
    assert one.upcoming == many.upcoming
    assert {n: one.period(n) for n in one.upcoming} == {n: many.period(n) for n in many.upcoming}
    assert sorted(one.heap) == sorted(many.heap)
    assert [heapq.heappop(one.heap) for _ in range(len(one.heap))] == \
        [heapq.heappop(many.heap) for _ in range(len(many.heap))]


def test_the_period_is_worked_out_when_asked_from_the_next_two_slots():
    plan = planner(job(every="*/10 * * * * *"))
    plan.start(State(watermarks={}), T + 0.5)
    assert plan.period_s == {}  # nothing worked out at planning time
    assert plan.period("j") == 10 and plan.period("unknown") is None
    at = planner(job(every=f"at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(T + 60))}"))
    at.start(State(watermarks={}), T + 0.5)
    assert at.period("j") is None  # one slot only: no period
