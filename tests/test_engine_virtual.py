"""The engine in-process on a virtual clock: CATCHUP, CONCURRENCY, jitter, claim-ahead and
the lease, against a real LocalStore on a temporary file (and a real redis-server), with a
scripted dispatcher. Time moves only when a test moves it, so no result depends on how fast
the machine is.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from scheduler.config import loader as config
from scheduler.engine.leader import Engine, jitter_offset_s
from scheduler.store.sqlite.store import LocalStore
from scheduler.store.redis.store import RedisStore
from tests.virtual_clock import ScriptedDispatcher, VirtualClock, WatchedStore

# Fixed, so the jitter offsets are too; in the past, as the stores set aside watermarks far
# ahead of the real clock.
T = 1_700_000_000


def settings_for(tmp_path, jobs: dict[str, dict[str, str]], **extra: str):
    env = {"SCHEDULER_STATE_FILE": str(tmp_path / "state.db"), **extra}
    for name, fields in jobs.items():
        for key, value in fields.items():
            env[f"SCHEDULER_JOB_{name.upper()}_{key}"] = value
    return config.load(env)


class Run:
    """One engine on one virtual clock: start it, move time, stop it."""

    def __init__(self, settings, store, start: float, duration_s: dict[str, float] | None = None):
        self.store = WatchedStore(store)
        self.clock = VirtualClock(start, busy=self.store.busy)
        self.dispatcher = ScriptedDispatcher(self.clock, duration_s)
        self.engine = Engine(settings, self.store, self.dispatcher, clock=self.clock)
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Run:
        self.task = asyncio.create_task(self.engine.run())
        await self.clock.settle()
        assert self.engine.is_leader
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.engine.stop()
        deadline = time.monotonic() + 20
        while not self.task.done() and time.monotonic() < deadline:
            await self.clock.advance(1.0)  # the drain's grace runs on the virtual clock too
        await asyncio.wait_for(self.task, 5)


def local(tmp_path, settings):
    return LocalStore(settings.state_file)


@pytest.fixture(params=["local", "redis"])
def make_store(request, tmp_path):
    """A fresh store object on one state: a LocalStore's file, or a real redis-server.
    The virtual clock is not the server's, so the Redis store is told to allow the skew."""
    if request.param == "local":
        return lambda settings: LocalStore(settings.state_file)
    server = request.getfixturevalue("redis_server")
    return lambda settings: RedisStore(server.url, "virtual", settings.lease_ttl_s, max_skew_s=10 * 365 * 86400.0)


async def inflight_slots(run: Run, job: str) -> list[int]:
    state = await run.store.load([job])
    return sorted(f.slot for f in state.inflight if f.job == job)


# -- CATCHUP after a gap ----------------------------------------------------------------------

def test_catchup_latest_all_none_after_a_gap(tmp_path, make_store):
    jobs = {name: {"SCHEDULE": "every 10s", "URL": f"/{name}", "CATCHUP": name} for name in ("latest", "all", "none")}
    jobs["window"] = {"SCHEDULE": "every 10s", "URL": "/window", "CATCHUP": "all", "CATCHUP_WINDOW": "15s"}
    settings = settings_for(tmp_path, jobs)

    async def main():
        async with Run(settings, make_store(settings), T + 5.5) as first:
            await first.clock.advance_to(T + 12)
        assert {j: first.dispatcher.slots(j, T) for j in jobs} == {j: [10] for j in jobs}
        # Down from T+12 to T+45.5: slots 20, 30 and 40 were missed.
        async with Run(settings, make_store(settings), T + 45.5) as second:
            made_up = {j: second.dispatcher.slots(j, T) for j in jobs}
            await second.clock.advance_to(T + 50.5)
        assert made_up == {"latest": [40], "all": [20, 30, 40], "none": [], "window": [30, 40]}
        assert second.dispatcher.times("all", T) == [45.5, 45.5, 45.5, 50]  # one after another, then on time
        assert {j: second.dispatcher.slots(j, T)[-1] for j in jobs} == {j: 50 for j in jobs}

    asyncio.run(main())


# -- CONCURRENCY with a slow fire -------------------------------------------------------------

def test_concurrency_forbid_allow_replace_with_a_slow_fire(tmp_path, caplog, make_store):
    jobs = {mode: {"SCHEDULE": "every 1s", "URL": f"/{mode}", "CONCURRENCY": mode} for mode in ("forbid", "allow", "replace")}
    settings = settings_for(tmp_path, jobs)
    caplog.set_level(logging.INFO, "scheduler.engine")

    async def main():
        async with Run(settings, make_store(settings), T + 0.5, {j: 2.5 for j in jobs}) as run:
            await run.clock.advance_to(T + 10.5)
        return run

    run = asyncio.run(main())
    d = run.dispatcher
    # forbid: a slot whose moment comes while the previous call runs is skipped; calls never overlap.
    assert d.slots("forbid", T) == [1, 4, 7, 10]
    assert d.times("forbid", T) == [1, 4, 7, 10]
    starts, ends = d.times("forbid", T), [round(at - T, 6) for at, job, _ in d.ended if job == "forbid"]
    assert all(end <= start for end, start in zip(ends, starts[1:])), "forbid let two calls overlap"
    skipped = [r.slot for r in caplog.records if r.getMessage() == "skipped: previous fire still running" and r.job == "forbid"]
    assert len(skipped) == 6
    # allow: every slot on time although each call takes 2.5 s.
    assert d.slots("allow", T) == list(range(1, 11)) and d.times("allow", T) == list(range(1, 11))
    # replace: every slot on time; each newer slot cancels the call still running.
    assert d.slots("replace", T) == list(range(1, 11))
    cancelled = [r for r in caplog.records if r.getMessage() == "fired" and r.job == "replace" and r.outcome == "cancelled"]
    assert len(cancelled) == 9 and all(r.error == "replaced by a newer slot" for r in cancelled)
    assert not [r for r in caplog.records if r.getMessage() == "fired" and r.job == "allow" and r.outcome != "ok"][:-1]


# -- jitter and claim-ahead -------------------------------------------------------------------

def test_jittered_fires_go_out_at_their_derived_moment(tmp_path):
    settings = settings_for(tmp_path, {"spread": {"SCHEDULE": "every 10s", "URL": "/s", "JITTER": "5s"}})

    async def main():
        async with Run(settings, local(tmp_path, settings), T + 0.5) as run:
            await run.clock.advance_to(T + 60)
        return run

    run = asyncio.run(main())
    slots = run.dispatcher.slots("spread")
    assert slots == [T + s for s in range(10, 60, 10)]
    assert run.dispatcher.times("spread") == [round(s + jitter_offset_s("spread", s, 5.0), 6) for s in slots]
    assert len({round(at - s, 3) for at, s in zip(run.dispatcher.times("spread"), slots)}) > 1


def test_a_slot_is_claimed_ahead_of_its_moment_and_sent_not_before_it(tmp_path):
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 10s", "URL": "/t"}})

    async def main():
        async with Run(settings, local(tmp_path, settings), T + 0.5) as run:
            await run.clock.advance_to(T + 9.74)
            assert await inflight_slots(run, "tick") == []
            await run.clock.advance_to(T + 9.76)  # claim-ahead: 0.25 s before the moment
            assert await inflight_slots(run, "tick") == [T + 10]
            assert run.dispatcher.sent == []
            await run.clock.advance_to(T + 9.999)
            assert run.dispatcher.sent == []
            await run.clock.advance_to(T + 10.5)
            assert run.dispatcher.times("tick", T) == [10]
            assert await inflight_slots(run, "tick") == []

    asyncio.run(main())


# -- the lease --------------------------------------------------------------------------------

def test_lease_run_out_before_the_moment_leaves_the_fire_to_the_next_leader(tmp_path, caplog):
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 10s", "URL": "/t"}})
    caplog.set_level(logging.INFO, "scheduler.engine")

    async def main():
        async with Run(settings, local(tmp_path, settings), T + 0.5) as run:
            first_epoch = run.engine.keeper.epoch
            await run.clock.advance_to(T + 9.8)
            assert await inflight_slots(run, "tick") == [T + 10]  # claimed, waiting for its moment
            run.store.failing.add("renew")
            await run.clock.jump(30.0)  # a paused process: the moment and the lease's end pass at once
            assert any(r.getMessage().startswith("lease ran out before the moment") for r in caplog.records)
            # Nothing went out in the first leadership; the next one redelivers the fire.
            assert [(s - T, e) for _, _, s, _, e in run.dispatcher.sent if e == first_epoch] == []
            assert run.engine.keeper.epoch > first_epoch
            redelivered = [(s - T, a) for _, _, s, a, e in run.dispatcher.sent if e == run.engine.keeper.epoch]
            assert redelivered[0] == (10, 2)

    asyncio.run(main())


def test_a_wall_clock_jump_ends_the_leadership_before_a_fire_goes_out_early(tmp_path, caplog):
    """The wall clock moves 15 s ahead and the monotonic one does not (a clock set by hand):
    the claimed fire must not go out 15 s early; the leadership ends, and the next one
    (after a new check against the store) delivers it as a redelivery."""
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 10s", "URL": "/t"}})
    caplog.set_level(logging.INFO, "scheduler.engine")

    async def main():
        async with Run(settings, local(tmp_path, settings), T + 0.5) as run:
            first_epoch = run.engine.keeper.epoch
            await run.clock.advance_to(T + 9.8)
            assert await inflight_slots(run, "tick") == [T + 10]
            run.clock._mono_offset -= 15.0  # the wall clock alone moves on
            await run.clock.jump(15.0)
            early = [(s - T, e) for _, _, s, _, e in run.dispatcher.sent if e == first_epoch]
            assert early == [], "a fire went out on a wall clock that had jumped"
            assert any("wall clock jumped" in r.getMessage() for r in caplog.records)

    asyncio.run(main())


def test_a_lost_lease_stops_claims(redis_server, tmp_path):
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 1s", "URL": "/t"}},
                            SCHEDULER_REDIS_URL=redis_server.url, SCHEDULER_NAMESPACE="vlost")
    # The virtual clock runs ahead of the server's; the store is told to allow it.
    store = RedisStore(redis_server.url, "vlost", settings.lease_ttl_s, max_skew_s=3600.0)
    start = float(int(time.time())) + 0.5

    async def main():
        async with Run(settings, store, start) as run:
            await run.clock.advance_to(start + 3)
            assert run.dispatcher.slots("tick", int(start)) == [1, 2, 3]
            redis_server.client().set(store.k_leader, "another-replica")  # taken by another replica
            await run.clock.advance_to(start + 3 + settings.lease_renew_s + 5)
            assert not run.engine.is_leader
            sent = run.dispatcher.slots("tick", int(start))
            state = await store.load(["tick"])
            # At most the slots claimed before the renewal noticed the loss; none after it.
            assert sent == list(range(1, len(sent) + 1))
            assert state.watermarks["tick"] - int(start) <= 3 + settings.lease_renew_s + 1
            assert state.watermarks["tick"] - int(start) == sent[-1]
            before = len(run.dispatcher.sent)
            await run.clock.advance(10)
            assert len(run.dispatcher.sent) == before

    asyncio.run(main())


# -- SCHEDULER_MAX_CONCURRENCY ------------------------------------------------------------------

def test_max_concurrency_holds_calls_beyond_the_limit_until_a_place_is_free(tmp_path, make_store):
    jobs = {f"j{i}": {"SCHEDULE": "every 10s", "URL": f"/{i}", "TIMEOUT": "5s"} for i in range(5)}
    settings = settings_for(tmp_path, jobs, SCHEDULER_MAX_CONCURRENCY="2")

    async def main():
        async with Run(settings, make_store(settings), T + 5.5, {j: 3.0 for j in jobs}) as run:
            await run.clock.advance_to(T + 19)
        starts = sorted(at - T for at, *_ in run.dispatcher.sent)
        assert starts == [10, 10, 13, 13, 16]  # two at a time, each call 3 s
        assert sorted(name for _, name, *_ in run.dispatcher.ended) == sorted(jobs)

    asyncio.run(main())


# -- the matrix: CONCURRENCY x jitter x lease expiry, one slot claimed ahead -----------------

@pytest.mark.parametrize("lease_runs_out", [False, True], ids=["lease-kept", "lease-ran-out"])
@pytest.mark.parametrize("jitter", ["0", "5s"])
@pytest.mark.parametrize("concurrency", ["forbid", "allow", "replace"])
def test_a_slot_claimed_ahead_goes_out_at_its_moment_unless_the_lease_runs_out(tmp_path, concurrency, jitter, lease_runs_out):
    settings = settings_for(tmp_path, {"job": {"SCHEDULE": "every 10s", "URL": "/j", "CONCURRENCY": concurrency,
                                               "JITTER": jitter}})
    moment = T + 10 + (jitter_offset_s("job", T + 10, 5.0) if jitter != "0" else 0.0)

    async def main():
        async with Run(settings, local(tmp_path, settings), T + 0.5) as run:
            first = run.engine.keeper.epoch
            await run.clock.advance_to(moment - 0.2)
            assert await inflight_slots(run, "job") == [T + 10] and run.dispatcher.sent == []
            if lease_runs_out:
                run.store.failing.add("renew")
                await run.clock.jump(30.0)
                # Left to the next leader, which delivers it first, as the next attempt (then
                # come the slots of the pause that CATCHUP latest makes up, and those due).
                sent = [(s - T, a, e - first) for _, _, s, a, e in run.dispatcher.sent]
                assert sent[0] == (10, 2, 1)
                assert all(s > 10 and a == 1 and e == 1 for s, a, e in sent[1:])
            else:
                await run.clock.advance_to(moment + 0.5)
                assert [(round(at, 6), s, a, e) for at, _, s, a, e in run.dispatcher.sent] == [
                    (round(moment, 6), T + 10, 1, first)]

    asyncio.run(main())


class EarlyTimers(VirtualClock):
    """Timers set more than 10 ms ahead run 2 ms early, as an event loop's may after rounding."""

    def call_at(self, when, callback, *args):
        return super().call_at(when - (0.002 if when - self.now > 0.01 else 0.0), callback, *args)


def test_a_gate_never_opens_before_its_moment_even_when_timers_run_early(tmp_path):
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 10s", "URL": "/t"}})

    async def main():
        run = Run(settings, local(tmp_path, settings), T + 0.5)
        run.clock = EarlyTimers(T + 0.5, busy=run.store.busy)
        run.dispatcher = ScriptedDispatcher(run.clock)
        run.engine = Engine(settings, run.store, run.dispatcher, clock=run.clock)
        async with run:
            await run.clock.advance_to(T + 9.9985)
            assert await inflight_slots(run, "tick") == [T + 10] and run.dispatcher.sent == []
            await run.clock.advance_to(T + 20.5)
        assert run.dispatcher.times("tick", T) == [10, 20]

    asyncio.run(main())


def test_a_task_that_loses_its_cancellation_is_cancelled_again_and_never_holds_up_a_step_down():
    """A side loop that catches the first cancellation as an error and goes on (what an
    asyncio.timeout firing at the same moment can make of it in Python 3.11) must not keep a
    leadership from ending: it is cancelled again until it stops."""
    from scheduler.engine.tasks import cancel as _cancel

    async def main():
        swallowed = []

        async def stubborn():
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    if swallowed:
                        raise
                    swallowed.append(True)  # the first one is lost

        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        await asyncio.wait_for(_cancel(task), 5)
        assert task.cancelled() and swallowed == [True]

    asyncio.run(main())


def test_a_wall_clock_jump_during_a_leadership_start_fires_nothing_early(tmp_path, caplog):
    """The wall clock moves 15 s ahead while the new leader loads its state, after its check
    against the store: by it, slot 20 is already past and would be made up at once, 7.5 s
    early. The leadership must end before it claims; the next one delivers the slot."""
    settings = settings_for(tmp_path, {"tick": {"SCHEDULE": "every 10s", "URL": "/t"}})
    caplog.set_level(logging.INFO, "scheduler.engine")

    async def main():
        async with Run(settings, local(tmp_path, settings), T + 0.5) as first:
            await first.clock.advance_to(T + 10.5)  # slot 10 fired: the watermark
        run = Run(settings, local(tmp_path, settings), T + 12.5)
        epochs: list[int] = []
        acquire, load = run.store.acquire, run.store.load

        async def acquired():
            epoch = await acquire()
            epochs.append(epoch)
            return epoch

        async def loaded(jobs):
            state = await load(jobs)
            if len(epochs) == 1:
                run.clock._mono_offset -= 15.0  # the wall clock alone moves on
                run.clock.now += 15.0
            return state

        run.store.acquire, run.store.load = acquired, loaded
        async with run:
            await run.clock.advance(1.0)
            early = [(s - T) for _, _, s, _, e in run.dispatcher.sent if e == epochs[0]]
            assert early == [], "a fire went out on a wall clock that had jumped"
            assert any("wall clock jumped" in r.getMessage() for r in caplog.records)
            assert [s - T for _, _, s, _, _ in run.dispatcher.sent] == [20]  # by the next leadership

    asyncio.run(main())
