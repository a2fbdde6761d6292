"""The daemon's main loop: the store, the HTTP port, the engine, the sources and the
notifier started in order, run until a signal, and stopped in the reverse order.

The pieces it wires are beside it: stores.py (the state store), port.py (the HTTP port
and the control API), signals.py (SIGHUP, SIGTERM and SIGINT). `cli` and `demo` both start
the daemon through `run`; neither imports the other's module for it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

from .. import __version__
from ..config import loader as config
from ..sources.catalog import Catalog
from ..store.protocol import Store
from .exits import EX_CONFIG, EX_FAILURE, EX_OK
from .port import PortProblem, serve_port
from .signals import Hangup, on_signal
from .stores import Damaged, make_store, open_store, store_target

__all__ = ["EX_CONFIG", "EX_FAILURE", "EX_OK", "event_loop_runner", "make_store", "run", "store_target"]

SWITCH_INTERVAL_S = 0.001
log = logging.getLogger("scheduler")


def event_loop_runner() -> asyncio.Runner:
    """uvloop when it is installed (the `fast` extra), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


async def run(settings: config.Settings, *, dry_run: bool = False, stop_on_hangup: bool = False) -> int:
    """The daemon until SIGTERM or SIGINT. SIGHUP reads the job sources again (or, with
    stop_on_hangup, for the demo in a terminal, stops like SIGTERM)."""
    hangup = Hangup(asyncio.get_running_loop())  # first: a SIGHUP can come at any moment
    try:
        return await _run(settings, dry_run, hangup, stop_on_hangup)
    finally:
        hangup.close()


async def _run(settings: config.Settings, dry_run: bool, hangup: Hangup, stop_on_hangup: bool) -> int:
    from ..dispatch import Dispatcher
    from ..engine.leader import Engine
    from ..http.server.open_files import raise_open_files_limit
    from ..notify.events import source_notices
    from ..notify.sender import start_notifier
    from ..observe import Health, Metrics, OverdueCollector, Redactor
    from ..observe.metrics import OriginsCollector
    from ..control.pauses import RemovedPauses
    from .sources import start_sources

    raise_open_files_limit(settings.max_concurrency)
    damaged = Damaged()
    store = await open_store(settings, damaged, dry_run)
    if isinstance(store, int):
        return store
    metrics, health = Metrics(__version__), Health()
    catalog = Catalog(settings)
    try:
        server, api = serve_port(settings, metrics, health, catalog, store, dry_run)
    except PortProblem as exc:
        await store.close()
        return exc.code
    # The app's error text goes to logs, status and history: scrubbed of every secret first.
    dispatcher = Dispatcher(settings, dry_run=dry_run, scrub=Redactor(config.secret_values(settings)).scrub)
    notifier, notices = start_notifier(settings, metrics) if settings.notify_url else (None, None)
    engine = Engine(settings, store, dispatcher, metrics=metrics, health=health, notices=notices)
    damaged.stop = engine.stop
    metrics.registry.register(OverdueCollector(engine.overdue_source))
    metrics.registry.register(OriginsCollector(dispatcher.origins.states))
    if api is not None:
        api.origins = dispatcher.origins.states
    pauses = RemovedPauses(store)
    sources = await start_sources(settings, engine, catalog, metrics, store, api, pauses,
                                  None if notifier is None else source_notices(notifier, lambda: engine.is_leader))
    if sources is not None:
        health.sources = sources.states
    if stop_on_hangup:
        hangup.stop = lambda: on_signal(engine, signal.SIGHUP)
    elif sources is not None:
        hangup.reload = sources.reload
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, engine, sig)
    log.info("starting", extra={
        "version": __version__, "replica": store.replica_id, "mode": "standalone" if settings.standalone else "redis",
        "store": store_target(settings), "namespace": settings.namespace, "jobs": len(engine.jobs), "dry_run": dry_run})
    _settle_runtime()
    try:
        await engine.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await _close(sources, pauses, notifier, dispatcher, store)
        if server is not None:
            server.shutdown()
    log.info("stopped")
    if damaged.problem is not None:
        print(f"config error: SCHEDULER_STATE_FILE: {damaged.problem}", file=sys.stderr)
        return EX_CONFIG
    return EX_OK


async def _close(sources, pauses, notifier, dispatcher, store: Store) -> None:
    """Close what the run opened, in order: the sources first (they feed the engine), the
    store last (the others write to it); `sources` and `notifier` may not have started."""
    if sources is not None:
        await sources.aclose()
    await pauses.aclose()
    if notifier is not None:
        await notifier.aclose()
    await dispatcher.aclose()
    await store.close()


def _settle_runtime() -> None:
    # Everything built so far lives as long as the process: keep the collector from walking
    # it again on every full collection, which shows up as pauses of several milliseconds.
    gc.freeze()
    # A thread that holds the GIL (a source's document being validated) hands it over
    # when another thread has waited this long: the event loop, which takes it for every
    # claim's reply and every fire's answer, waits at most 1 ms each time rather than 5.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
