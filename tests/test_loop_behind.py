"""The engine's loop behind by most of a period (slow store calls, a blocked loop): every
slot of a one-second job still goes out once, on the virtual clock against a real store."""

from __future__ import annotations

import asyncio

import pytest

from tests.test_engine_virtual import T, Run, local, settings_for


@pytest.mark.parametrize("catchup", ["all", "latest"])
def test_a_loop_woken_late_by_most_of_a_period_passes_over_no_slot(tmp_path, catchup):
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 1s", "URL": "/t", "CATCHUP": catchup}})

    async def main():
        async with Run(settings, local(tmp_path, settings), T + 0.5) as run:
            await run.clock.advance_to(T + 1.7)  # slot 2 is claimed ahead at 1.75
            await run.clock.jump(1.1)  # woken at 2.8: slot 2 past, slot 3 within claim-ahead
            await run.clock.advance_to(T + 6.5)
            assert run.dispatcher.slots("tick", T) == [1, 2, 3, 4, 5, 6]

    asyncio.run(main())


def test_fires_of_a_job_claimed_together_go_out_without_waiting_for_each_others_record(tmp_path):
    """Two slots of a job claimed in one call go out one after the other: the second after
    the first one's call, not after its outcome is written (the store slow or down then, as
    under network latency), which would send it late, after the leadership may have ended."""
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 10s", "URL": "/t", "CATCHUP": "all"}})

    async def main():
        store = local(tmp_path, settings)
        async with Run(settings, store, T + 0.5) as run:
            run.store.failing.add("finish")  # every outcome write fails and is tried again
            await run.clock.jump(20.0)  # woken at 20.5: slots 10 and 20 claimed together
            await run.clock.advance(0.01)
            assert run.dispatcher.times("tick", T) == [20.5, 20.5]
            assert run.dispatcher.slots("tick", T) == [10, 20]
            run.store.failing.clear()

    asyncio.run(main())
