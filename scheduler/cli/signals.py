"""The daemon's signals: SIGHUP (read the sources again, never the default action), and
SIGTERM or SIGINT (stop, with a backstop past the drain's grace)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

from .exits import EX_FAILURE

SHUTDOWN_BACKSTOP_S = 10.0
log = logging.getLogger("scheduler")


class Hangup:
    """SIGHUP, in every configuration: the job sources are read again when there are any;
    otherwise it is logged and ignored. Never the default action, which ends the process
    at once (exit 129: no drain of the fires in flight, no release of the lease).

    A plain signal handler that only hands the work to the loop, rather than the loop's
    add_signal_handler: removing that one restores the default action, so a SIGHUP in the
    last moments of a shutdown would still kill the process; this one is put back to what
    it was (ignored, from `cli`) in one step."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.reload: Callable[[], None] | None = None  # the job sources' reload, once they run
        self.stop: Callable[[], None] | None = None  # for the demo: SIGHUP then stops like SIGTERM
        self._previous = signal.signal(signal.SIGHUP, self._handle)

    def _handle(self, signum: int, frame) -> None:
        try:
            self.loop.call_soon_threadsafe(self._on_loop)
        except RuntimeError:  # the loop is closed: the process is on its way out
            pass

    def _on_loop(self) -> None:
        if self.stop is not None:
            self.stop()
        elif self.reload is not None:
            log.info("SIGHUP: reading the job sources again")
            self.reload()
        else:
            log.info("SIGHUP: no SCHEDULER_JOBS_FILE or SCHEDULER_JOBS_URL to read again; ignored")

    def close(self) -> None:
        signal.signal(signal.SIGHUP, self._previous)


def on_signal(engine, sig: signal.Signals) -> None:
    if not engine.stopping.is_set():
        log.info("shutting down", extra={"signal": sig.name})
        # The drain is bounded by SHUTDOWN_GRACE; this is the backstop if something hangs
        # past it (a store call, a stuck loop), so an orchestrator never has to SIGKILL.
        limit = engine.settings.shutdown_grace_s + SHUTDOWN_BACKSTOP_S
        asyncio.get_running_loop().call_later(limit, overran, limit)
    engine.stop()


def overran(limit: float) -> None:
    log.error("shutdown did not finish in time; exiting now", extra={"after_s": limit})
    logging.shutdown()
    os._exit(EX_FAILURE)
