"""The next slot of a cron expression is the same whether one thread asks or two at once
(a source's validation in a worker thread, the leader's planning on the event loop): the
croniter behind an expression is shared, and holds the time it was last set to."""

from __future__ import annotations

import sys
import threading

from scheduler.schedule import cron_time

EXPR = ("*/7 * * * *", "", False, False, "UTC")
TIMES = range(1_700_000_000, 1_700_000_000 + 7 * 60 * 1200, 59)


def slots(times) -> list[int]:
    return [cron_time._next_cron(*EXPR, t) for t in times]


def test_two_threads_asking_at_once_get_the_slots_one_thread_gets():
    cron_time._next_cron.cache_clear()
    alone = slots(TIMES)
    others = [t + 1 for t in TIMES]
    alone_others = slots(others)
    cron_time._next_cron.cache_clear()
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        got: dict[str, list[int]] = {}
        thread = threading.Thread(target=lambda: got.__setitem__("thread", slots(others)))
        thread.start()
        got["main"] = slots(TIMES)
        thread.join(60)
    finally:
        sys.setswitchinterval(before)
    assert got["main"] == alone
    assert got["thread"] == alone_others
