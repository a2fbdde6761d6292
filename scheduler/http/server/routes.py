"""What the daemon's HTTP server serves: requests, responses, and the routes that map one to
the other by method and path (server.py runs them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case; a repeated header's values joined by ", "
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # the route's {name} segments


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    pattern: tuple[str, ...]  # path segments; "{name}" matches one segment
    handler: Handler
    max_body: int
    inline: bool

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.pattern):
            return None
        params = {}
        for want, got in zip(self.pattern, segments):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                params[want[1:-1]] = unquote(got)
            elif want != got:
                return None
        return params


class Router:
    """Routes by method and path. A GET route also answers HEAD, without the body."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, path: str, handler: Handler, *, max_body: int = 0, inline: bool = False) -> None:
        """`max_body`: the most body bytes a request may send (more: 413). `inline`: run on the
        server's loop; only for handlers that never block."""
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        self.routes.append(Route(method.upper(), tuple(path.split("/")[1:]), handler, max_body, inline))

    def find(self, method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        """(route, params, []) or (None, {}, methods allowed on that path: empty means 404)."""
        segments = path.split("/")[1:]
        want = "GET" if method == "HEAD" else method
        allowed: list[str] = []
        for route in self.routes:
            params = route.match(segments)
            if params is None:
                continue
            if route.method == want:
                return route, params, []
            allowed.append(route.method)
        return None, {}, allowed


def no_route(allowed: list[str]) -> Response:
    if allowed:
        methods = ", ".join(sorted(set(allowed) | ({"HEAD"} if "GET" in allowed else set())))
        return Response(405, b"method not allowed\n", headers=[("Allow", methods)])
    return Response(404, b"not found\n")
