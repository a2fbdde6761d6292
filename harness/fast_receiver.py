"""Cheap recording HTTP receivers for the benchmarks, each in a thread with its own event
loop: one on aiohttp's low-level server, one on a bare asyncio protocol. They answer 200
to everything (optionally after a hold), record the arrival time and the scheduler's
headers of each request, and count requests open at once. (The test suite's receiver,
with programmable answers, is `harness.receiver`.)"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any

from harness.ports import LOOPBACK, free_port


@dataclass
class Arrival:
    t: float  # time.time() when the request's handler started (headers parsed)
    key: str
    job: str
    slot: str  # X-Scheduler-Slot as sent
    attempt: str
    fencing: str
    inflight: int  # requests open at the receiver, this one included
    status: int = 200  # the answer: 503 when past an overloaded receiver's limit


class AiohttpReceiver:
    """A recording HTTP receiver on aiohttp's low-level server, in a thread with its own
    event loop. Answers 200 to everything, optionally after `hold_ms` (so that requests
    overlap and concurrency is observable). Tracks requests open at once."""

    def __init__(self, hold_ms: float = 0.0) -> None:
        self.hold_s = hold_ms / 1000.0
        self.port = free_port()
        self.arrivals: list[Arrival] = []
        self.open = 0
        self.max_open = 0
        self.connections: set[int] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="receiver", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error:
            raise RuntimeError(f"receiver did not start: {self._error!r}")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def _handle(self, request):
        from aiohttp import web

        t = time.time()
        self.open += 1
        if self.open > self.max_open:
            self.max_open = self.open
        try:
            h = request.headers
            self.arrivals.append(Arrival(
                t, h.get("Idempotency-Key", ""), h.get("X-Scheduler-Job", ""), h.get("X-Scheduler-Slot", ""),
                h.get("X-Scheduler-Attempt", ""), h.get("X-Scheduler-Fencing-Token", ""), self.open,
            ))
            self.connections.add(id(request.transport))
            if self.hold_s:
                await asyncio.sleep(self.hold_s)
            return web.Response(status=200)
        finally:
            self.open -= 1

    def _run(self) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self._loop)

        async def start():
            server = web.Server(self._handle, access_log=None)
            self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
            await self._runner.setup()
            site = web.TCPSite(self._runner, LOOPBACK, self.port, backlog=4096, reuse_address=True)
            await site.start()

        self._serve(start())

    def _serve(self, start: Awaitable[Any]) -> None:
        """Run `start` on this receiver's loop, say ready (or the error), then serve."""
        try:
            self._loop.run_until_complete(start)
        except BaseException as exc:  # noqa: BLE001
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        if self._thread.is_alive():
            try:  # close the connections still open (keep-alive), then stop the loop
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            except Exception:  # noqa: BLE001 - stop the loop regardless
                pass
            try:
                self._loop.call_soon_threadsafe(self._loop.stop)
            except RuntimeError:  # already closed
                pass
            self._thread.join(10)

    def count(self) -> int:
        return len(self.arrivals)

    def since(self, index: int) -> list[Arrival]:
        return self.arrivals[index:]


class RawReceiver(AiohttpReceiver):
    """The same recorder on a bare asyncio.Protocol that understands just enough HTTP/1.1
    (request line, headers, Content-Length body, keep-alive) for the daemon's requests.
    Several times cheaper per request than aiohttp, for when the receiver's own cost would
    show in the figures (about 1000 requests due at the same instant)."""

    _OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    _BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"

    def __init__(self, hold_ms: float = 0.0, limit: int = 0, retry_after_s: int | None = None) -> None:
        self.limit = limit  # > 0: an app serving this many requests at once, answering 503 at once beyond
        self.busy = self._BUSY if retry_after_s is None else (  # the 503, with a Retry-After if given
            f"HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after_s}\r\nContent-Length: 0\r\n\r\n".encode())
        super().__init__(hold_ms)
    _CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        recv = self

        class Proto(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport
                self.buf = b""
                recv.connections.add(id(transport))

            def data_received(self, data: bytes) -> None:
                t = time.time()
                buf = self.buf + data
                while True:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = buf[:end].decode("latin-1").split("\r\n")
                    headers = {}
                    for line in head[1:]:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    chunked = "transfer-encoding" in headers  # not sent by the daemon: answer, then close
                    length = int(headers.get("content-length") or 0)
                    if not chunked and len(buf) < end + 4 + length:
                        break
                    buf = b"" if chunked else buf[end + 4 + length:]
                    recv.open += 1
                    if recv.open > recv.max_open:
                        recv.max_open = recv.open
                    busy = 0 < recv.limit < recv.open
                    recv.arrivals.append(Arrival(
                        t, headers.get("idempotency-key", ""), headers.get("x-scheduler-job", ""),
                        headers.get("x-scheduler-slot", ""), headers.get("x-scheduler-attempt", ""),
                        headers.get("x-scheduler-fencing-token", ""), recv.open, 503 if busy else 200,
                    ))
                    close = chunked or headers.get("connection", "").lower() == "close"
                    if busy:
                        self._answer(close, recv.busy)
                    elif recv.hold_s:
                        recv._loop.call_later(recv.hold_s, self._answer, close)
                    else:
                        self._answer(close)
                self.buf = buf

            def _answer(self, close: bool, answer: bytes = RawReceiver._OK) -> None:
                recv.open -= 1
                if not self.transport.is_closing():
                    self.transport.write(RawReceiver._CLOSE if close and answer is RawReceiver._OK else answer)
                    if close:
                        self.transport.close()

        async def start():
            self._server = await self._loop.create_server(Proto, LOOPBACK, self.port, backlog=4096, reuse_address=True)

        self._serve(start())

    def stop(self) -> None:
        if self._thread.is_alive():
            def close() -> None:
                self._server.close()
                self._loop.stop()
            try:
                self._loop.call_soon_threadsafe(close)
            except RuntimeError:
                pass
            self._thread.join(10)


def first_arrivals(arrivals: Iterable[Arrival]) -> tuple[dict[str, Arrival], int]:
    """The first arrival of each idempotency key, and how many arrivals repeated a key."""
    first: dict[str, Arrival] = {}
    dupes = 0
    for a in arrivals:
        if a.key in first:
            dupes += 1
        else:
            first[a.key] = a
    return first, dupes
