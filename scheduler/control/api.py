"""The control API and the status page on SCHEDULER_HTTP_PORT (SPEC section 7).

Handlers take a `Request` and return a `Response` of the HTTP port's server, in its worker
threads. The store's connections belong to the daemon's event loop, so each store call is
handed to that loop and waited for here. Every route needs a control token, as Bearer or
as the Basic password; a route that changes state takes only a POST of application/json,
which a cross-site form cannot send and a cross-site script cannot send without a CORS
preflight, which nothing here ever allows. A viewer's token may only read (GET). Every POST
goes through `changing`, which records it in the audit log: a route added with it is
audited with no more code.

This is the core: the route table, the auth, the audit and the call to the loop. The routes
themselves are in routes/, by concern.
"""

from __future__ import annotations

import asyncio
import json
import logging
from functools import partial
from typing import Any
from collections.abc import Callable, Coroutine

from . import audit
from . import operations as ops
from .access import READS, Access
from .routes import audit as audit_routes
from .routes import jobs, ledger, page, redrive, sources
from .routes.answers import JSON, STORE_TIMEOUT_S, SourceControl, error, json_response
from ..sources.catalog import Catalog
from ..config.loader import Settings
from ..config.tokens import NamedToken
from ..http.server.server import Request, Response
from ..store.protocol import Store, StoreForbidden, StoreUnavailable

log = logging.getLogger("scheduler.api")

__all__ = ["ControlApi", "SourceControl", "add_routes", "error", "json_response"]

MAX_BODY = 4096  # bytes of a request body; a trigger's is at most ~150
MAX_DOCUMENT_BODY = 4 << 20  # a document to validate: some 40,000 jobs
AUDIT_TIMEOUT_S = 2.0  # an audit entry not written by then costs a warning, not the answer
REALM = 'Basic realm="cron-sidecar", charset="UTF-8"'


class ControlApi:
    """The routes, bound to the settings, the store and the loop that owns the store."""

    def __init__(self, catalog: Catalog | Settings, store: Store, loop: asyncio.AbstractEventLoop,
                 tokens: tuple[NamedToken, ...]):
        self.catalog = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
        self.store, self.loop = store, loop
        self.access = Access(tokens)
        self.sources: SourceControl | None = None  # set once the daemon's sources start
        self.origins: Callable[[], list[dict]] | None = None  # this replica's calls per origin (origins.Origins.states)

    @property
    def settings(self) -> Settings:
        """The jobs as they stand now, source jobs included."""
        return self.catalog.view()

    def routes(self) -> list[tuple[str, str, Callable[[Request], Response], int]]:
        """(method, path, handler, max body bytes) for the HTTP port's router."""
        def reading(handler: Callable[[ControlApi, Request], Response]) -> Callable[[Request], Response]:
            return self.guard(partial(handler, self))

        def changing(handler: Callable[[ControlApi, Request, dict], Response], *,
                     audited: bool = True) -> Callable[[Request], Response]:
            return self.guard(self.changing(partial(handler, self), audited=audited))

        return [
            ("GET", "/", reading(page.status_page), 0),
            ("GET", "/api/v1/jobs", reading(jobs.list_jobs), 0),
            ("GET", "/api/v1/jobs/{name}", reading(jobs.one_job), 0),
            ("GET", "/api/v1/jobs/{name}/runs", reading(ledger.runs), 0),
            ("GET", "/api/v1/jobs/{name}/runs/{run}", reading(ledger.one_run), 0),
            ("POST", "/api/v1/jobs/{name}/trigger", changing(jobs.trigger), MAX_BODY),
            ("POST", "/api/v1/jobs/{name}/runs/{slot}/retry", changing(redrive.retry), MAX_BODY),
            ("POST", "/api/v1/jobs/{name}/backfill", changing(redrive.backfill), MAX_BODY),
            ("POST", "/api/v1/jobs/{name}/pause", changing(jobs.pause), MAX_BODY),
            ("POST", "/api/v1/jobs/{name}/resume", changing(jobs.resume), MAX_BODY),
            ("POST", "/api/v1/sources/refresh", changing(sources.refresh), MAX_BODY),
            ("POST", "/api/v1/sources/accept", changing(sources.accept), MAX_BODY),
            # changes nothing, so it is not audited; still a POST, so not a viewer's
            ("POST", "/api/v1/validate", changing(sources.validate, audited=False), MAX_DOCUMENT_BODY),
            ("GET", "/api/v1/audit", reading(audit_routes.audit_log), 0),
        ]

    # -- auth and the rules every route shares -------------------------------------------

    def caller(self, request: Request) -> NamedToken | None:
        return self.access.who(request.headers.get("authorization", ""))

    def guard(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def checked(request: Request) -> Response:
            who = self.caller(request)
            if who is None:
                # The challenge makes a browser ask; the same realm covers the page's fetches.
                return error(401, "unauthorized", [("WWW-Authenticate", REALM)])
            if request.method not in READS and not who.operator:
                return error(403, f"the token {who.name!r} is a viewer's: it may only read (GET); "
                                  "this needs an operator's token")
            return self.answer(lambda: handler(request))

        return checked

    def answer(self, handler: Callable[[], Response]) -> Response:
        """The handler's response, or the one its exception stands for."""
        try:
            return handler()
        except ops.UnknownJob as exc:
            return error(404, str(exc))
        except ops.BadRequest as exc:
            return error(400, str(exc))
        except ops.Conflict as exc:
            return error(409, str(exc))
        except StoreForbidden as exc:
            log.warning("control API: the state store refused the call", extra={"error": str(exc)})
            return error(503, "the state store refused the call (a Redis ACL permission is missing; see the log)")
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("control API: the state store did not answer", extra={"error": str(exc)})
            return error(503, "the state store is unreachable; try again")

    def changing(self, handler: Callable[[Request, dict], Response], *,
                 audited: bool = True) -> Callable[[Request], Response]:
        """A state-changing route: application/json only, and a JSON object as its body.
        Audited, its answer is recorded with the caller's name and the body's `"reason"`,
        which the handler never sees."""

        def checked(request: Request) -> Response:
            value, reason = self._body(request), None
            if isinstance(value, Response):
                response = value
            else:
                given = value.pop("reason", None) if audited else None
                problem = audit.reason_problem(given)
                if problem is not None:
                    response = error(400, problem)
                else:
                    reason = given
                    response = self.answer(lambda: handler(request, value))
            if audited:
                self._record(request, response.status, reason)
            return response

        return checked

    def _body(self, request: Request) -> dict | Response:
        """The body of a state-changing request as a JSON object, or the answer refusing it."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != JSON:
            return error(415, f"send Content-Type: {JSON}")
        body = request.body.strip() or b"{}"
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):
            return error(400, "the body is not valid JSON")
        if not isinstance(value, dict):
            return error(400, "the body must be a JSON object")
        return value

    def _record(self, request: Request, status: int, reason: str | None) -> None:
        """The audit entry of an answered request; never fails it (a warning at most)."""
        who = self.caller(request)
        value = audit.entry(who.name if who else "?", request.method, request.path, request.params.get("name"),
                            status, reason)
        try:
            self.call(audit.record(self.store, value), AUDIT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a timeout here; the answer stands whatever happens
            log.warning("could not write the audit entry", extra={"entry": value, "error": repr(exc)})

    def call(self, coro: Coroutine, timeout_s: float = STORE_TIMEOUT_S) -> Any:
        """Run a store operation on the daemon's loop and wait for it here."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise


def add_routes(router, api: ControlApi) -> None:
    for method, path, handler, max_body in api.routes():
        router.add(method, path, handler, max_body=max_body)
