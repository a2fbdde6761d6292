"""The daemon's HTTP port: /metrics and the probes, and with a control token the control
API and the status page; a port that cannot be had is a sentence and an exit status."""

from __future__ import annotations

import asyncio
import errno
import logging
import sys

from ..config import loader as config
from ..sources.catalog import Catalog
from .exits import EX_CONFIG, EX_FAILURE

log = logging.getLogger("scheduler")

# A port that cannot be had is the configuration's doing: another process holds it (a
# second replica on one host), it is privileged, or the host is not an address of this
# machine. Each is fixed by changing a setting, so each exits 78 like any other.
_BIND_PROBLEMS = {
    errno.EADDRINUSE: "is already in use (another replica on this host?)",
    errno.EACCES: "needs privileges this process does not have",
    errno.EADDRNOTAVAIL: "is not an address of this machine",
}


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
