"""One connection to the daemon's HTTP server: it reads requests, runs their handlers and
writes the answers, one request at a time, within bounds that hold however the client behaves.

What a connection holds: at most READ_BYTES of request bytes read ahead (reading pauses after
each read until they are answered); one answer at a time, and only until its last byte is
handed to the kernel, under the server's ResponseBudget; in its transport's buffer, at most
one WRITE_CHUNK, because each piece of an answer is written only once the one before is all
in the kernel. Between requests it keeps no answer. The kernel's share is bounded too: the
socket's send buffer is fixed at SEND_BUFFER_BYTES (Linux doubles it) rather than grown by
autotuning up to megabytes for a client that does not read."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

from .limits import ResponseBudget
from .requests import Messages, Refused
from .routes import Request, Response, Route, Router, no_route

log = logging.getLogger("scheduler.http")

READ_BYTES = 16 * 1024
WRITE_CHUNK = 64 * 1024
SEND_BUFFER_BYTES = 64 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
BUSY_TEXT = b"busy: too many answers are waiting for their clients; try again\n"
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s" % (len(BUSY_TEXT), BUSY_TEXT))


@dataclass
class Serving:
    """What the connections of one server share."""

    router: Router
    pool: ThreadPoolExecutor
    budget: ResponseBudget
    read_timeout: float
    write_timeout: float
    max_header_bytes: int
    # Every read lands here and is copied out at once (the loop runs one callback at a time),
    # so an idle connection holds no read buffer of its own.
    read_buffer: bytearray = field(default_factory=lambda: bytearray(READ_BYTES))
    # Handlers in the pool, running or finished with an answer the loop has not taken yet:
    # no more than the pool's threads, so answers cannot pile up in finished futures while
    # the loop waits for the GIL.
    handlers: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))


class Connection(asyncio.BufferedProtocol):
    """Serves one accepted socket; `gone` is called once its socket is closed."""

    def __init__(self, serving: Serving, gone: Callable[[Connection], None]) -> None:
        self.serving, self.gone = serving, gone
        self.messages = Messages(serving.router, serving.max_header_bytes)
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task | None = None
        self.ended = False  # the client sent EOF, or the socket is closed
        self.lost = False
        self._arrived = asyncio.Event()  # bytes, EOF or the end came in
        self._writable = asyncio.Event()
        self._writable.set()

    # -- the transport's callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        # Writing pauses whenever the kernel leaves anything in the transport's buffer and
        # resumes once it took all of it: `_until_writable` then means "all in the kernel".
        self.transport.set_write_buffer_limits(0, 0)
        self.transport.pause_reading()  # the task reads when it wants a request
        self.task = asyncio.get_running_loop().create_task(self._serve())

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.serving.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.messages.feed(bytes(self.serving.read_buffer[:nbytes]))
        assert self.transport is not None
        self.transport.pause_reading()
        self._arrived.set()

    def eof_received(self) -> bool:
        self.ended = True
        self._arrived.set()
        return True  # keep the socket open to answer what came before the EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = self.lost = True
        self._arrived.set()
        self._writable.set()
        self.serving.budget.release(self)
        self.gone(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def abort(self) -> None:
        """Closes the connection with a reset. A plain close would leave the kernel holding
        the unsent bytes, and the socket, until it gave up on a client that does not read."""
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.transport.abort()

    # -- the task: one request after another --------------------------------------------

    async def _serve(self) -> None:
        assert self.transport is not None
        try:
            while await self._answer_next():
                pass
        except (ConnectionError, TimeoutError):  # broken, or an answer not taken in time
            self.abort()
        except Exception:
            log.exception("HTTP connection failed")
            self.abort()
        else:
            self._close()

    def _close(self) -> None:
        assert self.transport is not None
        self.transport.close()  # after what is still buffered has been sent ...
        if self.transport.get_write_buffer_size():  # ... within the write timeout
            asyncio.get_running_loop().call_later(self.serving.write_timeout, self.transport.abort)

    async def _answer_next(self) -> bool:
        """Reads, answers and forgets one request; False when the connection is to close."""
        item = await self._next_request()
        if item is None:
            return False
        if isinstance(item, Refused):
            await self._send("GET", item.response, False)
            return False
        request, route, allowed, keep_alive = item
        response = await self._respond(request, route, allowed)
        return await self._send(request.method, response, keep_alive) and keep_alive

    async def _next_request(self):
        """The next request (or refusal); None at EOF, or when it did not arrive whole within
        the read timeout."""
        assert self.transport is not None
        deadline = asyncio.get_running_loop().time() + self.serving.read_timeout
        while (item := self.messages.next()) is None:
            if self.ended:
                return None
            if self.messages.continue_:
                self.messages.continue_ = False
                self.transport.write(CONTINUE)
            self._arrived.clear()
            self.transport.resume_reading()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._arrived.wait()
            except TimeoutError:
                return None
        return item

    async def _respond(self, request: Request, route: Route | None, allowed: list[str]) -> Response:
        if route is None:
            return no_route(allowed)
        try:
            if route.inline:
                return route.handler(request)
            async with self.serving.handlers:
                return await asyncio.get_running_loop().run_in_executor(self.serving.pool, route.handler, request)
        except Exception:
            log.exception("HTTP handler failed", extra={"path": request.path})
            return Response(500, b"internal error\n")

    async def _send(self, method: str, response: Response, keep_alive: bool) -> bool:
        """Writes the answer, whole, within the write timeout; False when it was refused for
        want of room in the budget (a 503 went instead)."""
        assert self.transport is not None
        head = _head(response, keep_alive)
        body = response.body if method != "HEAD" else b""
        budget = self.serving.budget
        if not budget.admit(self, len(head) + len(body)):
            self.transport.write(BUSY)
            return False
        try:
            async with asyncio.timeout(self.serving.write_timeout):
                self.transport.write(head)
                view = memoryview(body)
                for start in range(0, len(body), WRITE_CHUNK):
                    await self._until_writable()
                    self.transport.write(view[start:start + WRITE_CHUNK])
                await self._until_writable()
        finally:
            budget.release(self)
        return True

    async def _until_writable(self) -> None:
        if not self._writable.is_set():
            self.serving.budget.stalled(self)
            try:
                await self._writable.wait()
            finally:
                self.serving.budget.moving(self)
        if self.lost:
            raise ConnectionResetError("the connection was closed")


def _head(response: Response, keep_alive: bool) -> bytes:
    reason = HTTPStatus(response.status).phrase
    lines = [f"HTTP/1.1 {response.status} {reason}", f"Content-Type: {response.content_type}",
             f"Content-Length: {len(response.body)}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
