"""The control API and the status page on SCHEDULER_HTTP_PORT (SPEC section 7).

Handlers take a `Request` and return a `Response` of the HTTP port's server, in its worker
threads. The store's connections belong to the daemon's event loop, so each store call is
handed to that loop and waited for here. Every route needs a control token, as Bearer or
as the Basic password; a route that changes state takes only a POST of application/json,
which a cross-site form cannot send and a cross-site script cannot send without a CORS
preflight, which nothing here ever allows. A viewer's token may only read (GET). Every POST
goes through `changing`, which records it in the audit log: a route added with it is
audited with no more code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import Any, Protocol
from collections.abc import Callable, Coroutine

from . import audit
from . import ledger
from . import operations as ops
from . import page
from .access import READS, Access
from .queries import MAX_ID, whole_number
from . import redrive
from .validation import BadDocument, validate_document
from ..sources.catalog import Catalog
from ..config.loader import Settings
from ..config.tokens import NamedToken
from ..http.server.server import Request, Response
from ..store.audit_records import AUDIT_MAX_LIMIT
from ..model import format_slot
from ..store.protocol import Store, StoreForbidden, StoreUnavailable

log = logging.getLogger("scheduler.api")

MAX_BODY = 4096  # bytes of a request body; a trigger's is at most ~150
MAX_DOCUMENT_BODY = 4 << 20  # a document to validate: some 40,000 jobs
STORE_TIMEOUT_S = 10.0
AUDIT_TIMEOUT_S = 2.0  # an audit entry not written by then costs a warning, not the answer
REFRESH_TIMEOUT_S = 40.0  # a URL source may take its whole request timeout (30 s at most)
REALM = 'Basic realm="cron-sidecar", charset="UTF-8"'
JSON = "application/json"
# Nothing on the page comes from elsewhere; its one script carries the response's nonce.
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; connect-src 'self'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
COMMON_HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]


def json_response(status: int, value: Any, extra: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(value, ensure_ascii=False).encode() + b"\n"
    return Response(status, body, JSON, COMMON_HEADERS + (extra or []))


def error(status: int, message: str, extra: list[tuple[str, str]] | None = None) -> Response:
    return json_response(status, {"error": message}, extra)


class SourceControl(Protocol):
    """The daemon's job sources, as the API steers them (sources.watch.JobSources)."""

    async def refresh_now(self) -> list[dict]: ...

    def accept(self) -> list[dict]: ...

    def sources(self) -> list[dict]: ...


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
        return [
            ("GET", "/", self.guard(self.status_page), 0),
            ("GET", "/api/v1/jobs", self.guard(self.list_jobs), 0),
            ("GET", "/api/v1/jobs/{name}", self.guard(self.one_job), 0),
            ("GET", "/api/v1/jobs/{name}/runs", self.guard(self.runs), 0),
            ("GET", "/api/v1/jobs/{name}/runs/{run}", self.guard(self.one_run), 0),
            ("POST", "/api/v1/jobs/{name}/trigger", self.guard(self.changing(self.trigger)), MAX_BODY),
            ("POST", "/api/v1/jobs/{name}/runs/{slot}/retry", self.guard(self.changing(self.retry)), MAX_BODY),
            ("POST", "/api/v1/jobs/{name}/backfill", self.guard(self.changing(self.backfill)), MAX_BODY),
            ("POST", "/api/v1/jobs/{name}/pause", self.guard(self.changing(self.pause)), MAX_BODY),
            ("POST", "/api/v1/jobs/{name}/resume", self.guard(self.changing(self.resume)), MAX_BODY),
            ("POST", "/api/v1/sources/refresh", self.guard(self.changing(self.refresh)), MAX_BODY),
            ("POST", "/api/v1/sources/accept", self.guard(self.changing(self.accept)), MAX_BODY),
            # changes nothing, so it is not audited; still a POST, so not a viewer's
            ("POST", "/api/v1/validate", self.guard(self.changing(self.validate, audited=False)), MAX_DOCUMENT_BODY),
            ("GET", "/api/v1/audit", self.guard(self.audit_log), 0),
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

    # -- the routes -----------------------------------------------------------------------

    def list_jobs(self, request: Request) -> Response:
        view = self.call(ops.jobs_view(self.settings, self.store))
        view["sources"] = self.call(self._sources()) if self.sources is not None else []
        view["origins"] = self.call(self._origins())
        return json_response(200, view)

    async def _sources(self) -> list[dict]:
        assert self.sources is not None
        return self.sources.sources()

    async def _origins(self) -> list[dict]:
        return self.origins() if self.origins is not None else []

    # -- the job sources (SPEC section 8: refresh now, guard, validate) -------------------

    def refresh(self, request: Request, body: dict) -> Response:
        """Read every source now; every other replica too (the leader within a second)."""
        if body:
            raise ops.BadRequest("this route takes an empty object, {}")
        return json_response(200, {"sources": self._refresh()})

    def _refresh(self) -> list[dict]:
        self.call(self.store.request_sources("refresh"))
        if self.sources is None:
            return []
        return self.call(self.sources.refresh_now(), REFRESH_TIMEOUT_S)

    def accept(self, request: Request, body: dict) -> Response:
        """Apply the held reads of every source, on every replica."""
        if body:
            raise ops.BadRequest("this route takes an empty object, {}")
        self.call(self.store.request_sources("accept"))
        found = self.call(self._accept()) if self.sources is not None else []
        return json_response(200, {"sources": found})

    async def _accept(self) -> list[dict]:
        assert self.sources is not None
        return self.sources.accept()

    def validate(self, request: Request, body: dict) -> Response:
        """A document checked as the sources would check it, changing nothing."""
        try:
            return json_response(200, validate_document(self.settings, body))
        except BadDocument as exc:
            raise ops.BadRequest(str(exc)) from None

    def one_job(self, request: Request) -> Response:
        return json_response(200, self.call(ops.job_view(self.settings, self.store, request.params["name"])))

    def runs(self, request: Request) -> Response:
        """The job's ledger by page: ?before=&after= (RFC 3339), &limit=, &cursor=."""
        unknown = sorted(set(request.query) - {"before", "after", "limit", "cursor"})
        if unknown:
            raise ops.BadRequest(f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
                                 "this route takes before, after, limit and cursor")
        asked = {k: v[-1] for k, v in request.query.items()}
        return json_response(200, self.call(ledger.runs_view(self.settings, self.store, request.params["name"],
                                                             **asked)))

    def one_run(self, request: Request) -> Response:
        """One run by its slot (RFC 3339) or manual:<id>, with the sentence that explains it."""
        return json_response(200, self.call(ledger.run_view(self.settings, self.store, request.params["name"],
                                                            request.params["run"])))

    def trigger(self, request: Request, body: dict) -> Response:
        unknown = sorted(set(body) - {"id"})
        if unknown:
            raise ops.BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; send {{}} or {{\"id\": \"...\"}}")
        rid = body.get("id")
        if rid is not None and not isinstance(rid, str):
            raise ops.BadRequest("id must be a string")
        name = request.params["name"]
        try:
            done = self.call(ops.trigger(self.settings, self.store, name, rid))
        except ops.UnknownJob:
            # Created a moment ago in the app: read the sources once, then ask again.
            self._refresh()
            done = self.call(ops.trigger(self.settings, self.store, name, rid))
        # `"notified": false` when the leader could not be told at once: the request is queued
        # all the same, and the leader finds it at its next look at the queue.
        unsaid = {"notified": False} if done.unsaid is not None else {}
        return json_response(202, {"id": done.id, "result": done.result, **unsaid})

    def retry(self, request: Request, body: dict) -> Response:
        """Send a finished slot again under its own key, as its next attempt (SPEC 8)."""
        _only(body, {"reason"})
        reason = redrive.reason_value(body.get("reason"))
        done = self.call(redrive.redrive(self.settings, self.store, request.params["name"], request.params["slot"], reason))
        unsaid = {"notified": False} if done.unsaid is not None else {}
        return json_response(202, {"job": done.job, "slot": format_slot(done.slot), "key": done.key,
                                   "attempt": done.attempt, "result": "queued", **unsaid})

    def backfill(self, request: Request, body: dict) -> Response:
        """Send every slot of a range with no ok run, oldest first, each under its own key."""
        _only(body, {"from", "to", "reason"})
        if not isinstance(body.get("from"), str) or not isinstance(body.get("to"), str):
            raise ops.BadRequest('send {"from": "<RFC 3339>", "to": "<RFC 3339>"}')
        reason = redrive.reason_value(body.get("reason"))
        done = self.call(redrive.backfill(self.settings, self.store, request.params["name"], body["from"], body["to"], reason))
        unsaid = {"notified": False} if done.unsaid is not None else {}
        return json_response(202, {"job": done.job, "queued": [format_slot(s) for s in done.queued], **unsaid})

    def pause(self, request: Request, body: dict) -> Response:
        return self._set_paused(request, body, True)

    def resume(self, request: Request, body: dict) -> Response:
        return self._set_paused(request, body, False)

    def _set_paused(self, request: Request, body: dict, paused: bool) -> Response:
        if body:
            raise ops.BadRequest("this route takes an empty object, {}")
        name = request.params["name"]
        self.call(ops.set_paused(self.settings, self.store, name, paused))
        view = self.call(ops.jobs_view(self.settings, self.store))
        return json_response(200, next(j for j in view["jobs"] if j["name"] == name))

    def audit_log(self, request: Request) -> Response:
        """`?limit=` (1-1000, default 50) entries, newest first; `?before=<id>` for the next
        page, whose id `next` gives (null after the last)."""
        limit = whole_number(request, "limit", audit.DEFAULT_LIMIT, AUDIT_MAX_LIMIT)
        before = whole_number(request, "before", 0, MAX_ID)
        entries = self.call(self.store.audit(limit, before or None))
        more = len(entries) == limit and entries[-1]["id"] > 1
        return json_response(200, {"entries": entries, "next": entries[-1]["id"] if more else None})

    def status_page(self, request: Request) -> Response:
        view = self.call(ops.jobs_view(self.settings, self.store))
        for job in view["jobs"]:  # each job's ledger, skipped and dropped slots with their reasons
            job["history"] = self.call(ledger.recent(self.store, job["name"]))
        view["sources"] = self.call(self._sources()) if self.sources is not None else []
        view["origins"] = self.call(self._origins())
        try:
            view["audit"] = self.call(self.store.audit(audit.PAGE_ENTRIES))
        except (StoreUnavailable, TimeoutError) as exc:  # the rest of the page is still worth showing
            log.warning("control API: could not read the audit log for the page", extra={"error": str(exc)})
            view["audit"] = None
        who = self.caller(request)
        nonce = secrets.token_urlsafe(16)
        headers = COMMON_HEADERS + [("Content-Security-Policy", PAGE_CSP.format(nonce=nonce)), ("X-Frame-Options", "DENY")]
        body = page.render(view, nonce, viewer=None if who is None or who.operator else who.name)
        return Response(200, body.encode(), "text/html; charset=utf-8", headers)


def _only(body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ops.BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; this route takes {', '.join(sorted(allowed))}")


def add_routes(router, api: ControlApi) -> None:
    for method, path, handler, max_body in api.routes():
        router.add(method, path, handler, max_body=max_body)
