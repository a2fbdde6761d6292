"""The side tasks of a leadership: kept running through errors, and ended by cancelling them
and waiting until they stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("scheduler.engine")

SUPERVISE_RESTART_S = 1.0
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


async def supervise(loop: Callable[[], Awaitable[None]], sleep: Callable[[float], Awaitable[None]], what: str,
                    epoch: Callable[[], int | None]) -> None:
    """Run a leader's side loop; if it dies of an error, log it and start it again."""
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None  # a cancellation that arrived as an error
            log.exception(f"{what} failed; restarting it", extra={"epoch": epoch()})
            await sleep(SUPERVISE_RESTART_S)
