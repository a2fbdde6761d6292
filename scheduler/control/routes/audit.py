"""The audit log's route: its entries by page, newest first."""

from __future__ import annotations

from .. import audit
from ..queries import MAX_ID, whole_number
from ...http.server.server import Request, Response
from ...store.audit_records import AUDIT_MAX_LIMIT
from .answers import Api, json_response


def audit_log(api: Api, request: Request) -> Response:
    """`?limit=` (1-1000, default 50) entries, newest first; `?before=<id>` for the next
    page, whose id `next` gives (null after the last)."""
    limit = whole_number(request, "limit", audit.DEFAULT_LIMIT, AUDIT_MAX_LIMIT)
    before = whole_number(request, "before", 0, MAX_ID)
    entries = api.call(api.store.audit(limit, before or None))
    more = len(entries) == limit and entries[-1]["id"] > 1
    return json_response(200, {"entries": entries, "next": entries[-1]["id"] if more else None})
