"""Ending the side tasks of a leadership: cancelled, and waited for until they stopped."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("scheduler.engine")

CANCEL_AGAIN_S = 1.0  # a task that outlives its cancellation is cancelled again this often
CANCEL_WAIT_S = 10.0  # and given up on after this long, so a leadership always ends


async def cancel(*tasks: asyncio.Future) -> None:
    """Cancel and wait until each has stopped, so none is still reading a connection that
    the next step uses. A cancellation can be lost (Python 3.11's asyncio.timeout turns one
    that coincides with its own deadline into TimeoutError, which a loop then catches as an
    error and goes on): such a task is cancelled again, and after CANCEL_WAIT_S left behind
    with a log line rather than holding up the step down, the drain and the release."""
    pending = {t for t in tasks if not t.done()}
    waited = 0.0
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_AGAIN_S)
        waited += CANCEL_AGAIN_S
        if pending and waited >= CANCEL_WAIT_S:
            log.error("a task did not stop when cancelled; leaving it", extra={"tasks": len(pending)})
            return
    for task in tasks:  # retrieve what each ended with, so none is reported as never retrieved
        if task.done() and not task.cancelled():
            task.exception()
