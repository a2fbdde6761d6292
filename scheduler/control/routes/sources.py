"""The job sources' routes (SPEC section 8: refresh now, the guard's accept, validate), and
what the jobs' routes read of the sources."""

from __future__ import annotations

from .. import operations as ops
from ..validation import BadDocument, validate_document
from ...http.server.server import Request, Response
from .answers import Api, empty, json_response

REFRESH_TIMEOUT_S = 40.0  # a URL source may take its whole request timeout (30 s at most)


def refresh(api: Api, request: Request, body: dict) -> Response:
    """Read every source now; every other replica too (the leader within a second)."""
    empty(body)
    return json_response(200, {"sources": refresh_sources(api)})


def refresh_sources(api: Api) -> list[dict]:
    api.call(api.store.request_sources("refresh"))
    if api.sources is None:
        return []
    return api.call(api.sources.refresh_now(), REFRESH_TIMEOUT_S)


def accept(api: Api, request: Request, body: dict) -> Response:
    """Apply the held reads of every source, on every replica."""
    empty(body)
    api.call(api.store.request_sources("accept"))
    found = api.call(_accept(api)) if api.sources is not None else []
    return json_response(200, {"sources": found})


async def _accept(api: Api) -> list[dict]:
    assert api.sources is not None
    return api.sources.accept()


def validate(api: Api, request: Request, body: dict) -> Response:
    """A document checked as the sources would check it, changing nothing."""
    try:
        return json_response(200, validate_document(api.settings, body))
    except BadDocument as exc:
        raise ops.BadRequest(str(exc)) from None


def sources_of(api: Api) -> list[dict]:
    """The sources' states for a view of the jobs ([] before the sources start)."""
    return api.call(_sources(api)) if api.sources is not None else []


async def _sources(api: Api) -> list[dict]:
    assert api.sources is not None
    return api.sources.sources()


def origins_of(api: Api) -> list[dict]:
    return api.call(_origins(api))


async def _origins(api: Api) -> list[dict]:
    return api.origins() if api.origins is not None else []
