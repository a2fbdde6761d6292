"""The status page's route: the jobs with their ledgers, the sources, the origins and the
audit log, drawn by control/page/ under a Content-Security-Policy with a nonce."""

from __future__ import annotations

import logging
import secrets

from .. import audit
from .. import ledger
from .. import operations as ops
from .. import page
from ...http.server.server import Request, Response
from ...store.protocol import StoreUnavailable
from .answers import COMMON_HEADERS, Api
from .sources import origins_of, sources_of

log = logging.getLogger("scheduler.api")

# Nothing on the page comes from elsewhere; its one script carries the response's nonce.
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; connect-src 'self'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def status_page(api: Api, request: Request) -> Response:
    view = api.call(ops.jobs_view(api.settings, api.store))
    for job in view["jobs"]:  # each job's ledger, skipped and dropped slots with their reasons
        job["history"] = api.call(ledger.recent(api.store, job["name"]))
    view["sources"] = sources_of(api)
    view["origins"] = origins_of(api)
    try:
        view["audit"] = api.call(api.store.audit(audit.PAGE_ENTRIES))
    except (StoreUnavailable, TimeoutError) as exc:  # the rest of the page is still worth showing
        log.warning("control API: could not read the audit log for the page", extra={"error": str(exc)})
        view["audit"] = None
    who = api.caller(request)
    nonce = secrets.token_urlsafe(16)
    headers = COMMON_HEADERS + [("Content-Security-Policy", PAGE_CSP.format(nonce=nonce)), ("X-Frame-Options", "DENY")]
    body = page.render(view, nonce, viewer=None if who is None or who.operator else who.name)
    return Response(200, body.encode(), "text/html; charset=utf-8", headers)
