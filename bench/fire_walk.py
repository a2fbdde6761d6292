#!/usr/bin/env python3
"""The walk of one fire through the engine: every function of the `scheduler` package it
passes through from the claim's reply to the store's `finish`, counted by a profiler hook.

One job due every second; a real Engine on a LocalStore (a temporary file), a real
Dispatcher firing at a real HTTP receiver on 127.0.0.1. The hook (sys.setprofile) is set
when the store answers a claim that holds the job's fire, and cleared when the store's
`finish` is called. Counted:

  stays    new frames of the package on the fire's walk: called, directly or not, by the
           frame that got the claim's reply, or started by the event loop as a new task or
           timer callback (the fire's task, the outcome writer, a gate's timer). The
           Dispatcher's `send`, a store's methods and the metrics are one stay each: what
           they call is theirs, not the walk's.
  returns  stays that came back to a frame of the walk (a plain return, or a coroutine's end)
  engine   stays in engine/leader.py (the Engine)
  yields   a coroutine of the walk suspended (an await that gave the loop its turn)

"all" counts every stay; "core" leaves out the helpers a step asks and gets an answer from
(the clock's reads, the lease's checks, the metrics, the concurrency counter, the model's
helpers), the steps a reader follows.

    uv run python bench/fire_walk.py
    uv run python bench/fire_walk.py --src /tmp/old   # a `scheduler` package elsewhere
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
import tempfile
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


SPAWNERS = ("create_task", "ensure_future", "call_later", "call_at", "call_soon")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", metavar="DIR", help="import the `scheduler` package found in DIR")
    ap.add_argument("--quiet", action="store_true", help="only the totals, not each stay")
    a = ap.parse_args()
    if a.src:
        sys.path.insert(0, str(Path(a.src).resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(walk(tmp, a.quiet))


class Walk:
    def __init__(self, package: Path):
        self.package = str(package) + os.sep
        self.walk: set[FrameType] = set()  # frames on the fire's walk
        self.leaves: set[FrameType] = set()  # counted, but what they call is not
        self.seen: set[FrameType] = set()
        self.stays: list[str] = []
        self.plain_returns: set[FrameType] = set()
        self.order: list[FrameType] = []
        self.awaited: set[FrameType] = set()  # coroutines of the walk awaited by one of the walk
        self.returned: dict[FrameType, int] = {}  # coroutine frame -> its suspensions and end
        self.spawners: set[FrameType] = set()  # asyncio calls of the walk that start a task or timer
        self.tasks: set[asyncio.Future] = set()  # tasks the walk started
        self.callbacks: set[object] = set()  # code of timer callbacks the walk set

    def name(self, frame: FrameType) -> str:
        file = frame.f_code.co_filename[len(self.package):]
        return f"{file}:{frame.f_code.co_qualname}"

    def caller(self, frame: FrameType) -> FrameType | None:
        """The nearest frame of the package that called this one (through asyncio and the stdlib)."""
        back = frame.f_back
        while back is not None and not back.f_code.co_filename.startswith(self.package):
            back = back.f_back
        return back

    def leaf(self, frame: FrameType) -> bool:
        file = frame.f_code.co_filename[len(self.package):]
        return (file.startswith(("store" + os.sep, "observe" + os.sep))
                or frame.f_code.co_qualname == "Dispatcher.send")

    def hook(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and not frame.f_code.co_filename.startswith(self.package):
            if frame.f_back in self.walk and frame.f_back not in self.leaves and frame.f_code.co_name in SPAWNERS:
                self.spawners.add(frame)
        elif event == "return" and frame in self.spawners:
            if isinstance(arg, asyncio.Future):
                self.tasks.add(arg)
            elif isinstance(arg, asyncio.Handle):
                callback = arg._callback  # type: ignore[attr-defined]
                self.callbacks.add(getattr(callback, "__code__", None) or callback.__func__.__code__)
        elif event == "call":
            if frame in self.seen:
                return  # an await's resumption: not a new stay
            self.seen.add(frame)
            back = self.caller(frame)
            if back is None:
                # started by the loop: a task or timer callback of the walk's, or another's
                task = asyncio.current_task()
                started = task in self.tasks if task is not None else frame.f_code in self.callbacks
                if task is not None and started and task.get_coro().cr_frame is not frame:  # type: ignore[union-attr]
                    started = False  # a new frame in the walk's task with no caller of ours: asyncio's
            else:
                started = back in self.walk and back not in self.leaves
            if started:
                self.walk.add(frame)
                self.stays.append(self.name(frame))
                self.order.append(frame)
                if back is not None:
                    self.awaited.add(frame)
                if self.leaf(frame):
                    self.leaves.add(frame)
        elif event == "return" and frame in self.walk:
            if frame.f_code.co_flags & inspect.CO_COROUTINE:
                self.returned[frame] = self.returned.get(frame, 0) + 1  # the last one may be its end
            elif self.caller(frame) in self.walk:  # not a callback's return to the loop
                self.plain_returns.add(frame)


async def walk(tmp: str, quiet: bool) -> None:
    import scheduler
    from harness.receiver import Receiver
    from scheduler.config import loader as config
    from scheduler.dispatch import Dispatcher
    from scheduler.engine.leader import Engine
    from scheduler.model import FIRE
    from scheduler.store.sqlite.store import LocalStore

    package = Path(scheduler.__file__).resolve().parent
    receiver = Receiver()
    settings = config.load({
        "SCHEDULER_STATE_FILE": f"{tmp}/state.db", "SCHEDULER_LOG_LEVEL": "WARNING",
        "SCHEDULER_JOB_TICK_SCHEDULE": "* * * * * *", "SCHEDULER_JOB_TICK_URL": receiver.url + "/tick",
    })
    walk = Walk(package)
    done = asyncio.Event()
    alive: set[FrameType] = set()

    class Traced(LocalStore):
        async def claim(self, epoch, claims):
            results = await super().claim(epoch, claims)
            if not walk.seen and not done.is_set() and [c.kind for c in claims] == [FIRE]:
                sys.setprofile(walk.hook)
                # the frame that gets the reply: above this one, the lease keeper's retry
                frame = sys._getframe(0).f_back
                while frame is not None and (frame.f_code.co_name == "<lambda>" or "lease" in frame.f_code.co_filename):
                    frame = frame.f_back
                assert frame is not None
                walk.walk.add(frame)
                walk.seen.add(frame)
            return results

        async def finish(self, outcomes):
            if walk.seen and not done.is_set():
                sys.setprofile(None)
                # coroutines of the walk still running (suspended, or under this call) did not end
                frame = sys._getframe(0)
                while frame is not None:
                    alive.add(frame)
                    frame = frame.f_back
                for task in asyncio.all_tasks():
                    coro = task.get_coro()
                    while getattr(coro, "cr_frame", None) is not None:  # down its chain of awaits
                        alive.add(coro.cr_frame)  # type: ignore[union-attr]
                        coro = coro.cr_await  # type: ignore[union-attr]
                done.set()
            return await super().finish(outcomes)

    store = Traced(settings.state_file)
    dispatcher = Dispatcher(settings)
    engine = Engine(settings, store, dispatcher)
    runner = asyncio.create_task(engine.run())
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        sys.setprofile(None)
        engine.stop()
        await asyncio.wait_for(runner, 30)
        await dispatcher.aclose()
        receiver.close()
    # A coroutine's last "return" is its end unless it was still running at `finish`; a
    # task's coroutine that ended returned to the loop, not to the walk.
    ended = {f for f in walk.returned if f not in alive and f in walk.awaited} | walk.plain_returns
    yields = sum(walk.returned.values()) - len(ended - walk.plain_returns)
    if not quiet:
        for i, frame in enumerate(walk.order, 1):
            back = " (returned)" if frame in ended else ""
            print(f"{i:3} {'' if core(walk.name(frame)) else '  (helper) '}{walk.name(frame)}{back}")
    for what, frames in (("all", walk.order), ("core", [f for f in walk.order if core(walk.name(f))])):
        names = [walk.name(f) for f in frames]
        files = {n.split(":")[0] for n in names}
        engine_stays = sum(1 for n in names if n.startswith(f"engine{os.sep}leader.py:"))
        returns = sum(1 for f in frames if f in ended)
        print(f"{what:5} stays {len(frames)}  files {len(files)}  returns {returns}  engine {engine_stays}")
    print(f"yields to the loop {yields}")


def core(name: str) -> bool:
    """The walk's own steps: not the clock's reads, the lease's checks, the metrics, the
    concurrency counter or the model's helpers, which a step calls and gets an answer from."""
    file, _, qualname = name.partition(":")
    helper = (file.startswith("observe") or file in (f"engine{os.sep}clock.py", f"engine{os.sep}lease.py", "model.py")
              or qualname.startswith("Places.") or "<listcomp>" in qualname)
    return not helper


if __name__ == "__main__":
    main()
