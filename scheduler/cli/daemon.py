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


def make_store(settings: config.Settings):
    if settings.standalone:
        from ..store.sqlite.store import LocalStore

        return LocalStore(settings.state_file, history=settings.history)
    from ..store.redis.store import RedisStore

    from ..engine.leader import claim_ahead_s

    return RedisStore(
        settings.redis_url, settings.namespace, settings.lease_ttl_s,
        sentinels=settings.redis_sentinels, sentinel_master=settings.redis_sentinel_master,
        max_skew_s=settings.max_clock_skew_s, claim_ahead_s=claim_ahead_s(settings.lease_ttl_s),
        history=settings.history,
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
    (a dry run changes nothing anywhere, so it has neither). None when the port is 0."""
    from ..http.server.server import HTTPServer
    from ..observe.routes import routes

    if not settings.http_port:
        return None
    router = routes(metrics, health)
    paths = "/metrics /healthz /readyz"
    if settings.control_token and not dry_run:
        from ..control.api import ControlApi, add_routes

        add_routes(router, ControlApi(catalog, store, asyncio.get_running_loop(), str(settings.control_token)))
        paths += " /api/v1/jobs /"
    try:
        server = HTTPServer(settings.http_host, settings.http_port, router)
    except OSError as exc:
        problem = bind_problem(exc, settings.http_host, settings.http_port)
        if problem is None:
            log.error("cannot listen for /metrics and health", extra={"port": settings.http_port, "error": str(exc)})
            raise PortProblem(EX_FAILURE) from None
        print(f"config error: {problem}", file=sys.stderr)
        raise PortProblem(EX_CONFIG) from None
    log.info("metrics and probes listening", extra={"host": settings.http_host, "port": server.port, "paths": paths})
    return server


async def run(settings: config.Settings, *, dry_run: bool = False) -> int:
    from ..dispatch import Dispatcher
    from ..engine.leader import Engine
    from ..observe import Health, Metrics, OverdueCollector
    from ..store.protocol import StoreUnavailable

    try:
        store = make_store(settings)
        if settings.standalone:
            await store.open()  # a file that cannot be opened is the configuration's problem
    except StoreUnavailable as exc:
        print(f"config error: SCHEDULER_STATE_FILE: cannot open the state file: {exc}", file=sys.stderr)
        return EX_CONFIG
    if dry_run:
        from ..store.read_only import ReadOnlyStore

        store = ReadOnlyStore(store)
    metrics, health = Metrics(), Health()
    catalog = Catalog(settings)
    try:
        server = serve_port(settings, metrics, health, catalog, store, dry_run)
    except PortProblem as exc:
        await store.close()
        return exc.code
    from ..observe import Redactor

    # The app's error text goes to logs, status and history: scrubbed of every secret first.
    dispatcher = Dispatcher(settings, dry_run=dry_run, scrub=Redactor(config.secret_values(settings)).scrub)
    engine = Engine(settings, store, dispatcher, metrics=metrics, health=health)
    metrics.registry.register(OverdueCollector(engine.overdue_source))
    from ..control.pauses import RemovedPauses

    pauses = RemovedPauses(store)
    sources = await start_sources(settings, engine, catalog, metrics, pauses)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, engine, sig)
    log.info(
        "starting",
        extra={
            "version": __version__, "replica": store.replica_id,
            "mode": "standalone" if settings.standalone else "redis",
            "store": store_target(settings),
            "namespace": settings.namespace, "jobs": len(engine.jobs), "dry_run": dry_run,
        },
    )
    _settle_runtime()
    try:
        await engine.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if sources is not None:
            await sources.aclose()
        await pauses.aclose()
        await dispatcher.aclose()
        await store.close()
        if server is not None:
            server.shutdown()
    log.info("stopped")
    return EX_OK


def _settle_runtime() -> None:
    # Everything built so far lives as long as the process: keep the collector from walking
    # it again on every full collection, which shows up as pauses of several milliseconds.
    gc.freeze()
    # A thread that holds the GIL (a source's document being validated) hands it over
    # when another thread has waited this long: the event loop, which takes it for every
    # claim's reply and every fire's answer, waits at most 1 ms each time rather than 5.
    sys.setswitchinterval(SWITCH_INTERVAL_S)


async def start_sources(settings: config.Settings, engine, catalog: Catalog, metrics, pauses):
    """Every replica reads SCHEDULER_JOBS_FILE/URL (the leader fires from its current view);
    a change goes to the engine, applied between two claims, to the catalog the control
    API reads, and, for a removed job, to `pauses` (control.pauses: every replica that sees
    the removal drops its pause, leader or not)."""
    if not (settings.jobs_file or settings.jobs_url):
        return None
    from ..observe.metrics import SourcesCollector
    from ..sources.watch import JobSources

    env = {j.name for j in settings.jobs}

    def changed(jobs: dict, source_of: dict, names: set[str]) -> None:
        rejected = sources.rejected()
        engine.apply_source_jobs(jobs, source_of, names)
        catalog.update(jobs, source_of, rejected)
        # A job still in its source but rejected (a bad edit the app will fix) keeps its
        # pause: only one gone from every source loses it.
        kept = env | {r["name"] for r in rejected}
        pauses.removed(n for n in names if n not in jobs and n not in kept)

    sources = JobSources(settings, on_change=changed)
    catalog._rejected = sources.rejected
    metrics.registry.register(SourcesCollector(sources.states))
    await sources.start()
    return sources


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
