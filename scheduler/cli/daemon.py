"""The daemon's wiring: the store, the HTTP port, the engine, signals and the event loop.

`cli` and `demo` both start the daemon through `run`; neither imports the other's module
for it.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable

from .. import __version__
from ..config import loader as config
from ..sources.catalog import Catalog

EX_OK, EX_FAILURE, EX_CONFIG = 0, 1, 78
SHUTDOWN_BACKSTOP_S = 10.0

# A port that cannot be had is the configuration's doing: another process holds it (a
# second replica on one host), it is privileged, or the host is not an address of this
# machine. Each is fixed by changing a setting, so each exits 78 like any other.
_BIND_PROBLEMS = {
    errno.EADDRINUSE: "is already in use (another replica on this host?)",
    errno.EACCES: "needs privileges this process does not have",
    errno.EADDRNOTAVAIL: "is not an address of this machine",
}

SWITCH_INTERVAL_S = 0.001
log = logging.getLogger("scheduler")


def event_loop_runner() -> asyncio.Runner:
    """uvloop when it is installed (the `fast` extra), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def make_store(settings: config.Settings, on_damaged: Callable[[Exception], None] | None = None, named: bool = False):
    """`on_damaged`: called once if the standalone state file turns out to be damaged;
    `named`: the daemon's Redis connections carry its replica id (a standby's crash check)."""
    if settings.standalone:
        from ..store.sqlite.store import LocalStore

        return LocalStore(settings.state_file, history=settings.history, history_age_s=settings.history_age_s,
                          lease_ttl_s=settings.lease_ttl_s,
                          on_damaged=on_damaged)
    from ..store.redis.store import RedisStore

    from ..engine.leader import claim_ahead_s

    return RedisStore(
        settings.redis_url, settings.namespace, settings.lease_ttl_s,
        sentinels=settings.redis_sentinels, sentinel_master=settings.redis_sentinel_master,
        max_skew_s=settings.max_clock_skew_s, claim_ahead_s=claim_ahead_s(settings.lease_ttl_s),
        history=settings.history, history_age_s=settings.history_age_s, name_connections=named,
    )


def store_target(settings: config.Settings) -> str:
    """Where the state lives, fit for a log line: a Redis URL with only its password masked."""
    if settings.standalone:
        return settings.state_file
    if settings.redis_sentinels:
        hosts = ",".join(f"{h}:{p}" for h, p in settings.redis_sentinels)
        return f"sentinel {hosts} master {settings.redis_sentinel_master}"
    return config.mask_url(settings.redis_url or "")


def bind_problem(exc: OSError, host: str, port: int) -> str | None:
    """The sentence for a port that cannot be bound, or None for an unexpected error."""
    what = _BIND_PROBLEMS.get(exc.errno) if exc.errno is not None else None
    if what is None:
        return None
    return (
        f"SCHEDULER_HTTP_PORT: cannot listen on {host}:{port} for /metrics and the probes: the port {what}; "
        "set SCHEDULER_HTTP_PORT to a free port (each replica on one host needs its own), "
        "or to 0 to turn the endpoints off"
    )


class PortProblem(Exception):
    """The HTTP port could not be had; `code` is the exit status (78: a setting fixes it)."""

    def __init__(self, code: int):
        self.code = code


def serve_port(settings: config.Settings, metrics, health, catalog: Catalog, store, dry_run: bool):
    """The HTTP port: /metrics and the probes, and with a control token the API and the page
    (a dry run changes nothing anywhere, so it has neither): (server, API), None for each
    that is off."""
    from ..http.server.open_files import open_files_limit, port_connection_cap
    from ..http.server.server import HTTPServer
    from ..observe.routes import routes

    if not settings.http_port:
        return None, None
    router = routes(metrics, health)
    paths = "/metrics /healthz /readyz"
    api = None
    if (settings.control_token or settings.control_tokens) and not dry_run:
        from ..config.tokens import all_tokens
        from ..control.api import ControlApi, add_routes

        api = ControlApi(catalog, store, asyncio.get_running_loop(), all_tokens(settings.control_token, settings.control_tokens))
        add_routes(router, api)
        paths += " /api/v1/jobs /api/v1/audit /"
    # The port's share of the open-files limit: fires, the store and the job sources keep
    # theirs however many clients connect (open_files.port_connection_cap has the rule).
    cap = port_connection_cap(open_files_limit(), settings.max_concurrency)
    try:
        server = HTTPServer(settings.http_host, settings.http_port, router, max_connections=cap)
    except OSError as exc:
        problem = bind_problem(exc, settings.http_host, settings.http_port)
        if problem is None:
            log.error("cannot listen for /metrics and health", extra={"port": settings.http_port, "error": str(exc)})
            raise PortProblem(EX_FAILURE) from None
        print(f"config error: {problem}", file=sys.stderr)
        raise PortProblem(EX_CONFIG) from None
    log.info("metrics and probes listening", extra={
        "host": settings.http_host, "port": server.port, "paths": paths, "max_connections": cap})
    return server, api


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
    from ..control.pauses import RemovedPauses

    pauses = RemovedPauses(store)
    from .sources import start_sources

    sources = await start_sources(settings, engine, catalog, metrics, store, api, pauses,
                                  None if notifier is None else source_notices(notifier, lambda: engine.is_leader))
    if sources is not None:
        health.sources = sources.states
    if stop_on_hangup:
        hangup.stop = lambda: _on_signal(engine, signal.SIGHUP)
    elif sources is not None:
        hangup.reload = sources.reload
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, engine, sig)
    log.info("starting", extra={
        "version": __version__, "replica": store.replica_id, "mode": "standalone" if settings.standalone else "redis",
        "store": store_target(settings), "namespace": settings.namespace, "jobs": len(engine.jobs), "dry_run": dry_run})
    _settle_runtime()
    try:
        await engine.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if sources is not None:
            await sources.aclose()
        await pauses.aclose()
        if notifier is not None:
            await notifier.aclose()
        await dispatcher.aclose()
        await store.close()
        if server is not None:
            server.shutdown()
    log.info("stopped")
    if damaged.problem is not None:
        print(f"config error: SCHEDULER_STATE_FILE: {damaged.problem}", file=sys.stderr)
        return EX_CONFIG
    return EX_OK


async def open_store(settings: config.Settings, damaged: Damaged, dry_run: bool):
    """The state store, opened (a dry run's read-only view of it), or the exit code."""
    from ..store.protocol import StoreUnavailable
    from ..store.sqlite.schema import StateDamaged

    try:
        store = make_store(settings, damaged, named=True)
        # Standalone: a file that cannot be opened is the configuration's problem. Redis:
        # whether the URL names a cluster node; an unreachable server is asked again later.
        await store.open()
    except StateDamaged as exc:
        print(f"config error: SCHEDULER_STATE_FILE: {exc}", file=sys.stderr)
        return EX_CONFIG
    except StoreUnavailable as exc:
        print(f"config error: SCHEDULER_STATE_FILE: cannot open the state file: {exc}", file=sys.stderr)
        return EX_CONFIG
    if dry_run:
        from ..store.read_only import ReadOnlyStore

        return ReadOnlyStore(store)
    return store


class Damaged:
    """The store's word that the state file is damaged: the daemon stops (in-flight fires
    finish as at a SIGTERM) and exits 78, since only a person can put the file right."""

    def __init__(self) -> None:
        self.problem: Exception | None = None
        self.stop: Callable[[], None] | None = None

    def __call__(self, problem: Exception) -> None:
        if self.problem is None:
            self.problem = problem
            if self.stop is not None:
                self.stop()


def _settle_runtime() -> None:
    # Everything built so far lives as long as the process: keep the collector from walking
    # it again on every full collection, which shows up as pauses of several milliseconds.
    gc.freeze()
    # A thread that holds the GIL (a source's document being validated) hands it over
    # when another thread has waited this long: the event loop, which takes it for every
    # claim's reply and every fire's answer, waits at most 1 ms each time rather than 5.
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def _on_signal(engine, sig: signal.Signals) -> None:
    if not engine.stopping.is_set():
        log.info("shutting down", extra={"signal": sig.name})
        # The drain is bounded by SHUTDOWN_GRACE; this is the backstop if something hangs
        # past it (a store call, a stuck loop), so an orchestrator never has to SIGKILL.
        limit = engine.settings.shutdown_grace_s + SHUTDOWN_BACKSTOP_S
        asyncio.get_running_loop().call_later(limit, _overran, limit)
    engine.stop()


def _overran(limit: float) -> None:
    log.error("shutdown did not finish in time; exiting now", extra={"after_s": limit})
    logging.shutdown()
    os._exit(EX_FAILURE)
