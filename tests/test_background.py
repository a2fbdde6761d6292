"""The worker beside the event loop runs at a lower OS priority than the loop's thread, so
the loop goes first where the CPU is short; the default executor is left at the loop's."""

from __future__ import annotations

import asyncio
import os
import threading

from scheduler import background


def nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_worker_thread_is_niced_and_the_default_executor_is_not():
    async def main():
        loop_nice = nice_of_this_thread()
        worker = await background.beside(nice_of_this_thread)
        default = await asyncio.to_thread(nice_of_this_thread)
        return loop_nice, worker, default

    loop_nice, worker, default = asyncio.run(main())
    assert worker == min(19, loop_nice + background.NICE)
    assert default == loop_nice
    assert nice_of_this_thread() == loop_nice  # the caller's own thread is untouched
