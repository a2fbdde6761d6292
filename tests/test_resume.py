"""A source job that reaches a leadership after it began, but that an earlier leadership
fired (a deploy whose new leader took the lease before its first read of the app's URL came
back): its missed slots are made up by CATCHUP and its fires left in flight are sent again,
as at a leadership start. A job new to the store, or removed and added back within the
leadership, is an addition (SPEC 6 rule 2). In-process on a virtual clock, against a real
LocalStore and a real redis-server."""

from __future__ import annotations

import asyncio

from scheduler.schedule import slots as sched
from scheduler.config.jobs import JobSpec
from scheduler.model import REDELIVER, FIRE, InFlight, State
from scheduler.engine.resume import resumed
from tests.test_engine_virtual import T, Run, make_store, settings_for  # noqa: F401,F811  (a fixture)


def every10(name: str, catchup: str = "latest") -> JobSpec:
    return JobSpec(name, "every 10s", sched.parse("every 10s"), f"http://127.0.0.1:1/{name}", catchup=catchup)


def test_a_source_job_read_after_the_leadership_began_makes_up_its_missed_slot(tmp_path, make_store):  # noqa: F811
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}})
    source = {"src": every10("src"), "gone": every10("gone"), "all": every10("all", "all")}

    async def main():
        first = Run(settings, make_store(settings), T + 5.5)
        first.engine.apply_source_jobs(source)
        async with first:
            await first.clock.advance_to(T + 12)
        assert first.dispatcher.slots("src", T) == [10]
        # Down from T+12 to T+45.5 (slots 20, 30, 40 missed); the new leader reads its
        # source only after it took the lease.
        async with Run(settings, make_store(settings), T + 45.5) as second:
            await second.clock.advance_to(T + 46.5)
            assert second.dispatcher.slots("src", T) == []
            source["new"] = every10("new")
            second.engine.apply_source_jobs(dict(source))
            await second.clock.advance_to(T + 47.5)
            assert second.dispatcher.slots("src", T) == [40]  # CATCHUP latest
            assert second.dispatcher.slots("all", T) == [20, 30, 40]
            assert second.dispatcher.slots("new", T) == []  # new: from its next slot on
            # Removed and added back within this leadership: nothing made up.
            second.engine.apply_source_jobs({k: v for k, v in source.items() if k != "gone"})
            await second.clock.advance_to(T + 61)
            second.engine.apply_source_jobs(dict(source))
            await second.clock.advance_to(T + 72)
        assert second.dispatcher.slots("gone", T) == [40, 70]  # not 60: removed then
        assert second.dispatcher.slots("src", T)[-3:] == [50, 60, 70]
        assert second.dispatcher.slots("new", T) == [50, 60, 70]

    asyncio.run(main())


def test_the_fires_left_in_flight_go_first_and_only_for_the_jobs_resumed():
    state = State(watermarks={"a": T + 10, "b": T + 30},
                  inflight=[InFlight("a", T + 10, 7, 1, None), InFlight("other", T + 20, 7, 1, None)])
    claims = resumed([every10("a"), every10("b")], state, T + 45.5)
    assert [(c.job, c.slot - T, c.kind) for c in claims] == [("a", 10, REDELIVER), ("a", 40, FIRE), ("b", 40, FIRE)]
    assert claims[0].attempt == 2
    running = {claims[0].field}
    assert [c.kind for c in resumed([every10("a")], state, T + 45.5, running)] == [FIRE]


def test_a_fire_left_in_flight_before_its_moment_is_redelivered_at_its_moment(tmp_path, make_store):  # noqa: F811
    """A leader claimed a slot ahead of its moment and went away before it (its clock jumped,
    its lease ran out): the next leader redelivers the fire at its moment, not at once."""
    from scheduler.model import Claim

    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 10s", "URL": "/tick"}})

    async def main():
        earlier = make_store(settings)
        epoch = await earlier.acquire()
        assert await earlier.claim(epoch, [Claim("tick", T + 10, FIRE)]) == [1]  # claimed ahead
        await earlier.release()
        await earlier.close()
        async with Run(settings, make_store(settings), T + 9.8) as run:
            assert run.dispatcher.sent == []  # not before its moment
            await run.clock.advance_to(T + 10.5)
            assert [(round(at - T, 3), slot - T, attempt) for at, _, slot, attempt, _ in run.dispatcher.sent] == [
                (10.0, 10, 2)]

    asyncio.run(main())
