"""A small HTTP/1.1 server for the daemon's own port: routes, limits and timeouts.

One asyncio loop in a thread of its own reads every connection (a stalled client costs a
socket and a few kB, not a thread), httptools parses, and a handler runs either on that
loop (`inline`, for answers that take microseconds: the probes) or in a bounded pool of
worker threads. Each request must arrive whole within `read_timeout` of the moment the
server starts waiting for it (an idle keep-alive connection is closed after as long), its
head within `max_header_bytes`, and its body within the route's `max_body`."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from collections.abc import Callable
from urllib.parse import parse_qs, unquote

import httptools

log = logging.getLogger("scheduler.http")


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


class _Refused(Exception):
    """A request answered without reading the rest of it; the connection then closes."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.response = Response(status, f"{message}\n".encode(), headers=headers or [])


def _no_route(allowed: list[str]) -> Response:
    if allowed:
        methods = ", ".join(sorted(set(allowed) | ({"HEAD"} if "GET" in allowed else set())))
        return Response(405, b"method not allowed\n", headers=[("Allow", methods)])
    return Response(404, b"not found\n")


class _Messages:
    """httptools callbacks: collects whole requests (several when a client pipelines)."""

    def __init__(self, router: Router, max_header_bytes: int):
        self.router, self.max_header_bytes = router, max_header_bytes
        self.parser = httptools.HttpRequestParser(self)
        self.done: deque[tuple[Request, Route | None, list[str], bool]] = deque()
        self.continue_: bool = False  # the client waits for "100 Continue" before its body
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.head_bytes = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.route: Route | None = None
        self.request: Request | None = None
        self.allowed: list[str] = []

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refused):
                raise exc.__context__ from None
            raise
        except httptools.HttpParserUpgrade:
            raise _Refused(400, "upgrade is not supported") from None
        except httptools.HttpParserError:
            raise _Refused(400, "malformed request") from None
        if self.request is None and self.head_bytes > self.max_header_bytes:
            raise _Refused(431, "request head too large")

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.head_bytes > self.max_header_bytes:
            raise _Refused(431, "request head too large")
        method = self.parser.get_method().decode("ascii", "replace")
        try:
            parsed = httptools.parse_url(self.url)
        except httptools.HttpParserInvalidURLError:
            raise _Refused(400, "malformed request target") from None
        headers: dict[str, str] = {}
        for name, value in self.raw_headers:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        path = (parsed.path or b"/").decode("latin-1")
        query = parse_qs(parsed.query.decode("latin-1")) if parsed.query else {}
        self.route, params, self.allowed = self.router.find(method, path)
        self.request = Request(method, path, query, headers, params=params)
        length = headers.get("content-length")
        announced = "transfer-encoding" in headers or (length is not None and length != "0")
        if self.route is None and announced:  # answer now; its body is never read
            found = _no_route(self.allowed)
            raise _Refused(found.status, found.body.decode().strip(), found.headers)
        limit = self.route.max_body if self.route else 0
        if length is not None and length.isdigit() and int(length) > limit:
            raise _Refused(413, "request body too large")
        self.continue_ = headers.get("expect", "").lower() == "100-continue"

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > (self.route.max_body if self.route else 0):
            raise _Refused(413, "request body too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        request = self.request
        assert request is not None
        request.body = b"".join(self.body)
        self.done.append((request, self.route, self.allowed, self.parser.should_keep_alive()))
        self._reset()


class HTTPServer:
    """Listens on (host, port) from the constructor on; serves in a thread of its own."""

    def __init__(
        self, host: str, port: int, router: Router, *, workers: int = 4, read_timeout: float = 5.0,
        write_timeout: float = 10.0, max_header_bytes: int = 16384, max_connections: int = 1024,
    ) -> None:
        self.router = router
        self.read_timeout, self.write_timeout = read_timeout, write_timeout
        self.max_header_bytes, self.max_connections = max_header_bytes, max_connections
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        self.socket = socket.create_server((host, port), family=family, backlog=512)
        self.port = self.socket.getsockname()[1]
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http-worker")
        self.loop = asyncio.new_event_loop()
        self.connections: set[asyncio.Task] = set()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._thread.start()
        self._started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._accept, sock=self.socket))
        self._server = server
        self._started.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()
            for task in list(self.connections):
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*self.connections, return_exceptions=True))
            self.loop.run_until_complete(server.wait_closed())
            self.loop.close()

    def shutdown(self) -> None:
        """Stops listening, drops every connection, and waits for the thread (not for handlers
        still running in the pool)."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.connections) >= self.max_connections:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            await self._connection(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("HTTP connection failed")
        finally:
            self.connections.discard(task)
            writer.transport.abort()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        messages = _Messages(self.router, self.max_header_bytes)
        loop = asyncio.get_running_loop()
        while True:
            deadline = loop.time() + self.read_timeout
            while not messages.done:
                async with asyncio.timeout_at(deadline):
                    data = await reader.read(65536)
                if not data:
                    return
                try:
                    messages.feed(data)
                except _Refused as exc:
                    await self._send(writer, "GET", exc.response, False)
                    return
                if messages.continue_:
                    messages.continue_ = False
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request, route, allowed, keep_alive = messages.done.popleft()
            response = await self._respond(request, route, allowed)
            await self._send(writer, request.method, response, keep_alive)
            if not keep_alive:
                return

    async def _respond(self, request: Request, route: Route | None, allowed: list[str]) -> Response:
        if route is None:
            return _no_route(allowed)
        try:
            if route.inline:
                return route.handler(request)
            return await asyncio.get_running_loop().run_in_executor(self.pool, route.handler, request)
        except Exception:
            log.exception("HTTP handler failed", extra={"path": request.path})
            return Response(500, b"internal error\n")

    async def _send(self, writer: asyncio.StreamWriter, method: str, response: Response, keep_alive: bool) -> None:
        reason = HTTPStatus(response.status).phrase
        head = [f"HTTP/1.1 {response.status} {reason}", f"Content-Type: {response.content_type}",
                f"Content-Length: {len(response.body)}"]
        head += [f"{name}: {value}" for name, value in response.headers]
        if not keep_alive:
            head.append("Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if method != "HEAD":
            writer.write(response.body)
        async with asyncio.timeout(self.write_timeout):
            await writer.drain()
