"""The jobs' routes: the list and one job, a manual fire, pause and resume."""

from __future__ import annotations

from .. import operations as ops
from ...http.server.server import Request, Response
from .answers import Api, empty, json_response
from .sources import origins_of, refresh_sources, sources_of


def list_jobs(api: Api, request: Request) -> Response:
    view = api.call(ops.jobs_view(api.settings, api.store))
    view["sources"] = sources_of(api)
    view["origins"] = origins_of(api)
    return json_response(200, view)


def one_job(api: Api, request: Request) -> Response:
    return json_response(200, api.call(ops.job_view(api.settings, api.store, request.params["name"])))


def trigger(api: Api, request: Request, body: dict) -> Response:
    unknown = sorted(set(body) - {"id"})
    if unknown:
        raise ops.BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; send {{}} or {{\"id\": \"...\"}}")
    rid = body.get("id")
    if rid is not None and not isinstance(rid, str):
        raise ops.BadRequest("id must be a string")
    name = request.params["name"]
    try:
        done = api.call(ops.trigger(api.settings, api.store, name, rid))
    except ops.UnknownJob:
        # Created a moment ago in the app: read the sources once, then ask again.
        refresh_sources(api)
        done = api.call(ops.trigger(api.settings, api.store, name, rid))
    # `"notified": false` when the leader could not be told at once: the request is queued
    # all the same, and the leader finds it at its next look at the queue.
    unsaid = {"notified": False} if done.unsaid is not None else {}
    return json_response(202, {"id": done.id, "result": done.result, **unsaid})


def pause(api: Api, request: Request, body: dict) -> Response:
    return _set_paused(api, request, body, True)


def resume(api: Api, request: Request, body: dict) -> Response:
    return _set_paused(api, request, body, False)


def _set_paused(api: Api, request: Request, body: dict, paused: bool) -> Response:
    empty(body)
    name = request.params["name"]
    api.call(ops.set_paused(api.settings, api.store, name, paused))
    view = api.call(ops.jobs_view(api.settings, api.store))
    return json_response(200, next(j for j in view["jobs"] if j["name"] == name))
