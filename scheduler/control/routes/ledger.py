"""A job's ledger by route (SPEC 8): its runs by page, and one run explained."""

from __future__ import annotations

from .. import ledger
from .. import operations as ops
from ...http.server.server import Request, Response
from .answers import Api, json_response


def runs(api: Api, request: Request) -> Response:
    """The job's ledger by page: ?before=&after= (RFC 3339), &limit=, &cursor=."""
    unknown = sorted(set(request.query) - {"before", "after", "limit", "cursor"})
    if unknown:
        raise ops.BadRequest(f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
                             "this route takes before, after, limit and cursor")
    asked = {k: v[-1] for k, v in request.query.items()}
    return json_response(200, api.call(ledger.runs_view(api.settings, api.store, request.params["name"], **asked)))


def one_run(api: Api, request: Request) -> Response:
    """One run by its slot (RFC 3339) or manual:<id>, with the sentence that explains it."""
    return json_response(200, api.call(ledger.run_view(api.settings, api.store, request.params["name"],
                                                       request.params["run"])))
