"""The cyclic garbage collector around the building of many long-lived objects.

100,000 jobs from a source are 100,000 specs, raw objects, heap entries and dict slots,
none in a cycle. Built with the collector on, each of its full passes walks every live
object again (a quarter of a validation's time, and pauses of 50-100 ms on the event loop
when it happens during an apply); left in the collected generations afterwards, each later
full pass walks them again, as a pause of the loop that makes the fires of that moment late.
So a large build runs with the collector paused, and what it built is then frozen (moved to
the permanent generation, which no pass walks): they are freed by reference counting when
they go, as things without cycles are.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

LARGE = 10_000  # objects of a build from which it is frozen afterwards


@contextmanager
def paused(freeze: bool = False) -> Iterator[None]:
    """The collector off meanwhile (process-wide: also for the event loop's thread, which
    makes no cycles either); with `freeze`, what exists afterwards is frozen."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()
