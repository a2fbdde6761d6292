"""Leadership start with many jobs sharing schedules: Plan.start works out one next slot per
(schedule, watermark) and shares it. Each job must still get what it would get alone, with
its own watermark, jitter and CATCHUP."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.schedule import slots as sched
from scheduler.config.loader import JobSpec
from scheduler.model import State
from scheduler.engine.plan import Plan

T = 1_800_000_000
SCHEDULES = [sched.parse(text) for text in ("every 10s", "every 7s", "*/2 * * * * *", "0 3 * * *", "H * * * *",
                                            f"at 2027-01-15T08:00:{T % 60:02d}Z")]

jobs_st = st.lists(
    st.tuples(st.integers(0, len(SCHEDULES) - 1), st.sampled_from(["latest", "all", "none"]),
              st.sampled_from([0.0, 3.0]), st.one_of(st.none(), st.integers(-200, 40))),
    min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(specs=jobs_st, now=st.floats(0, 60))
def test_each_job_is_planned_as_it_would_be_alone(specs, now) -> None:
    jobs, marks = {}, {}
    for i, (s, catchup, jitter, mark) in enumerate(specs):
        name = f"job-{i}"
        jobs[name] = JobSpec(name, "x", SCHEDULES[s], "/x", jitter_s=jitter, catchup=catchup)
        if mark is not None:
            marks[name] = T + mark
    together = Plan(jobs, 0.25)
    claims = together.start(State(watermarks=marks), T + now)
    for name, job in jobs.items():
        alone = Plan({name: job}, 0.25)
        own = alone.start(State(watermarks={name: marks[name]} if name in marks else {}), T + now)
        assert [c for c in claims if c.job == name] == own, name
        assert together.upcoming.get(name) == alone.upcoming.get(name), name
        assert sorted(e for e in together.heap if e[2] == name) == alone.heap, name
