"""Many new jobs at once (a source's first 100,000) get their first sightings written beside
the leader's loop: a slot due meanwhile is claimed before them, not after 200 store calls.
The engine runs in-process on a virtual clock against a real LocalStore and redis-server."""

from __future__ import annotations

import asyncio
import threading
import time

from scheduler.config.jobs import JobSpec
from scheduler.engine.jobset import JobSet
from scheduler.schedule import slots as sched
from tests.test_engine_virtual import T, Run, make_store, settings_for  # noqa: F401,F811  (a fixture)


def daily(i: int) -> JobSpec:
    return JobSpec(f"tenant-{i}", "0 3 * * *", sched.parse("0 3 * * *", job=f"tenant-{i}"), f"http://127.0.0.1:1/t/{i}")


def hold_the_preparing(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Make the worker thread's preparing of a change wait until `release` is set; `entered`
    is set when it starts waiting."""
    entered, release = threading.Event(), threading.Event()
    prepare = JobSet.prepare

    def held(self, now, snapshot=None):
        if snapshot is not None:  # the worker thread's call
            entered.set()
            assert release.wait(20)
        return prepare(self, now, snapshot)

    monkeypatch.setattr(JobSet, "prepare", held)
    return entered, release


async def until(run, done, what):
    """Until done(), the virtual clock standing still: a change prepared in the worker
    thread takes real time."""
    deadline = time.monotonic() + 20
    while not done():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)
        await run.clock.settle()


def test_a_slot_due_while_new_jobs_are_sighted_is_claimed_first(tmp_path, make_store):  # noqa: F811
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}})

    async def main():
        async with Run(settings, make_store(settings), T + 0.1) as run:
            calls: list[set[str]] = []
            claim = run.store.claim

            async def watched(epoch, claims):
                calls.append({c.kind for c in claims} | ({"tick"} if any(c.job == "tick" for c in claims) else set()))
                return await claim(epoch, claims)

            run.store.claim = watched
            await run.clock.advance_to(T + 0.5)
            calls.clear()
            run.clock.now = T + 0.8  # the tick's slot at T + 1 is now due (claimed 0.25 s ahead)
            run.engine.apply_source_jobs({f"tenant-{i}": daily(i) for i in range(3000)})
            await until(run, lambda: "tenant-0" in run.engine.jobs and run.engine.sightings.pending == 0,
                        "the jobs to be committed and sighted")
            inits = [i for i, kinds in enumerate(calls) if kinds == {"init"}]
            ticks = [i for i, kinds in enumerate(calls) if "tick" in kinds]
            assert len(inits) == 6, calls  # 3,000 sightings in calls of 500
            assert ticks and ticks[0] < inits[-1], calls
            assert run.engine.sightings.pending == 0
            state = await run.store.load(["tenant-0", "tenant-2999"])
            assert {"tenant-0", "tenant-2999"} <= set(state.watermarks)  # every sighting written

    asyncio.run(main())


def test_a_large_change_is_prepared_beside_the_loop_and_a_newer_one_follows(tmp_path, make_store, monkeypatch):  # noqa: F811
    """10,000 jobs or more are prepared in a worker thread (held here until the test lets it
    go): the loop goes on firing meanwhile, the change is then committed whole, and a set
    offered during the preparing is applied after it."""
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}})
    entered, release = hold_the_preparing(monkeypatch)
    big = {f"tenant-{i}": daily(i) for i in range(12_000)}

    async def main():
        async with Run(settings, make_store(settings), T + 0.1) as run:
            run.engine.apply_source_jobs(big)
            await until(run, entered.is_set, "the preparing thread to start")
            await run.clock.advance_to(T + 3.5)
            assert run.dispatcher.slots("tick", T) == [1, 2, 3]  # fired while the change was held
            assert "tenant-0" not in run.engine.jobs  # nothing half-applied
            run.engine.apply_source_jobs({**big, "late": daily(99_999)})  # offered meanwhile
            release.set()
            await until(run, lambda: "late" in run.engine.jobs, "both changes to be committed")
            assert len(run.engine.jobs) == 12_002 and run.engine.jobset.pending is None
            await run.clock.advance_to(T + 5.5)
            assert run.dispatcher.slots("tick", T) == [1, 2, 3, 4, 5]

    asyncio.run(main())


def test_a_leadership_that_ends_while_a_change_is_prepared_leaves_the_set_pending(tmp_path, make_store, monkeypatch):  # noqa: F811
    """The engine stops while the worker thread still prepares a large change: the step down
    waits for the thread, nothing of the change is applied, and the set stays pending, so
    the next leadership plans from it."""
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}})
    entered, release = hold_the_preparing(monkeypatch)
    big = {f"tenant-{i}": daily(i) for i in range(12_000)}

    async def main():
        run = Run(settings, make_store(settings), T + 0.1)
        async with run:
            run.engine.apply_source_jobs(big)
            await until(run, entered.is_set, "the preparing thread to start")
            run.engine.stop()
            await asyncio.sleep(0.05)
            assert not run.task.done()  # the step down waits for the thread
            release.set()
        assert "tenant-0" not in run.engine.jobs
        assert run.engine.jobset.pending is big
        run.engine.jobset.take_pending()  # what the next leadership does first
        assert len(run.engine.jobs) == 12_001

    asyncio.run(main())
