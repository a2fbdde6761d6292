"""The routes that send slots again (SPEC 8): retry one finished slot, backfill a range."""

from __future__ import annotations

from .. import operations as ops
from .. import redrive
from ...http.server.server import Request, Response
from ...model import format_slot
from .answers import Api, json_response, only


def retry(api: Api, request: Request, body: dict) -> Response:
    """Send a finished slot again under its own key, as its next attempt (SPEC 8)."""
    only(body, {"reason"})
    reason = redrive.reason_value(body.get("reason"))
    done = api.call(redrive.redrive(api.settings, api.store, request.params["name"], request.params["slot"], reason))
    unsaid = {"notified": False} if done.unsaid is not None else {}
    return json_response(202, {"job": done.job, "slot": format_slot(done.slot), "key": done.key,
                               "attempt": done.attempt, "result": "queued", **unsaid})


def backfill(api: Api, request: Request, body: dict) -> Response:
    """Send every slot of a range with no ok run, oldest first, each under its own key."""
    only(body, {"from", "to", "reason"})
    if not isinstance(body.get("from"), str) or not isinstance(body.get("to"), str):
        raise ops.BadRequest('send {"from": "<RFC 3339>", "to": "<RFC 3339>"}')
    reason = redrive.reason_value(body.get("reason"))
    done = api.call(redrive.backfill(api.settings, api.store, request.params["name"], body["from"], body["to"], reason))
    unsaid = {"notified": False} if done.unsaid is not None else {}
    return json_response(202, {"job": done.job, "queued": [format_slot(s) for s in done.queued], **unsaid})
