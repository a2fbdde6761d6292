"""What every route of the control API answers with: JSON and its headers, the error
object, the one field check, and the core's face as the routes see it (`Api`)."""

from __future__ import annotations

import json
from typing import Any, Protocol
from collections.abc import Callable, Coroutine

from .. import operations as ops
from ...config.loader import Settings
from ...config.tokens import NamedToken
from ...http.server.server import Request, Response
from ...store.protocol import Store

STORE_TIMEOUT_S = 10.0
JSON = "application/json"
COMMON_HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]


def json_response(status: int, value: Any, extra: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(value, ensure_ascii=False).encode() + b"\n"
    return Response(status, body, JSON, COMMON_HEADERS + (extra or []))


def error(status: int, message: str, extra: list[tuple[str, str]] | None = None) -> Response:
    return json_response(status, {"error": message}, extra)


def only(body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ops.BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; this route takes {', '.join(sorted(allowed))}")


def empty(body: dict) -> None:
    if body:
        raise ops.BadRequest("this route takes an empty object, {}")


class SourceControl(Protocol):
    """The daemon's job sources, as the API steers them (sources.watch.JobSources)."""

    async def refresh_now(self) -> list[dict]: ...

    def accept(self) -> list[dict]: ...

    def sources(self) -> list[dict]: ...


class Api(Protocol):
    """The API's core as its routes use it (api.ControlApi)."""

    store: Store
    sources: SourceControl | None
    origins: Callable[[], list[dict]] | None

    @property
    def settings(self) -> Settings: ...

    def caller(self, request: Request) -> NamedToken | None: ...

    def call(self, coro: Coroutine, timeout_s: float = STORE_TIMEOUT_S) -> Any: ...
