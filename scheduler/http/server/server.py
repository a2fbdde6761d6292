"""A small HTTP/1.1 server for the daemon's own port: connections, timeouts, answers.

One asyncio loop in a thread of its own reads every connection (a stalled client costs a
socket and a few kB, not a thread), httptools parses, and a handler runs either on that
loop (`inline`, for answers that take microseconds: the probes) or in a bounded pool of
worker threads. Each request must arrive whole within `read_timeout` of the moment the
server starts waiting for it (an idle keep-alive connection is closed after as long), its
head within `max_header_bytes`, and its body within the route's `max_body` (those limits are
checked as the request is read: http_requests.py; the routes are in http_routes.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

from .requests import Messages, Refused
from .routes import Request, Response, Route, Router, no_route

__all__ = ["HTTPServer", "Request", "Response", "Router"]

log = logging.getLogger("scheduler.http")


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
        messages = Messages(self.router, self.max_header_bytes)
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
                except Refused as exc:
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
            return no_route(allowed)
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
