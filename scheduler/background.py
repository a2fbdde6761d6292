"""A worker thread for the CPU-bound work done beside the event loop: decoding and validating
a document of jobs, and preparing a large change of the job set.

One thread, at a lower OS priority (nice +10): where the CPU is short (two replicas and the
app on two cores), the event loop's own thread runs first when both are ready, so a refresh
of 100,000 jobs does not make a fire late by taking the core its loop needed. The default
executor is left alone: its threads also run a standalone store's calls, which must not wait.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
NICE = 10
_pool: ThreadPoolExecutor | None = None


def _lower_priority() -> None:
    try:  # Linux: a thread's own nice value, by its thread id
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE))
    except (AttributeError, OSError):
        pass  # elsewhere, or not allowed: the same priority as the loop


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="beside-loop", initializer=_lower_priority)
    return _pool


async def beside(fn: Callable[..., T], *args) -> T:
    """fn(*args) in the worker thread."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), fn, *args)
