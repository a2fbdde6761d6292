"""The network pieces of the chaos harness: a TCP proxy per replica, and the target.

`Proxy` sits between one replica and Redis and can pass, hold, drop or delay its traffic:
a network partition without root. `Target` is the application: it records every request
and can answer 503, hang, or reset the connection for a fraction of calls.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

HOST = "127.0.0.1"




class Proxy:
    """A TCP relay from one replica to Redis that can cut it off without root.

    - pass: bytes flow (after `delay_s`, each way, when set);
    - hold: nothing flows, connections stay open, bytes queue up and are delivered late
      when the partition heals (what TCP retransmission does after a short partition);
    - drop: nothing flows and bytes are thrown away; a connection that lost bytes is
      closed when the partition heals (its stream can no longer be parsed), as a reset
      after a long partition.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.mode = "pass"
        self.delay_s = 0.0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[_Link] = set()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def blackhole(self, drop: bool = False) -> None:
        self.mode = "drop" if drop else "hold"
        self._flowing.clear()

    def heal(self) -> None:
        dropped = self.mode == "drop"
        self.mode = "pass"
        self.delay_s = 0.0
        if dropped:
            for link in list(self._links):
                if link.corrupt:
                    link.close()
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(self, reader, writer)
        self._links.add(link)
        try:
            await link.run()
        finally:
            self._links.discard(link)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()
        self._flowing.set()


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: Proxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.proxy = proxy
        self.client = (reader, writer)
        self.upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.to_upstream: asyncio.Queue = asyncio.Queue()
        self.to_client: asyncio.Queue = asyncio.Queue()
        self.corrupt = False
        self.closed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def run(self) -> None:
        self._tasks.append(asyncio.create_task(self._read(self.client[0], self.to_upstream)))
        self._tasks.append(asyncio.create_task(self._connect()))
        await self.closed.wait()

    async def _connect(self) -> None:
        # A connection made during a partition reaches Redis only once it heals.
        await self.proxy._flowing.wait()
        if self.closed.is_set():
            return
        try:
            self.upstream = await asyncio.wait_for(asyncio.open_connection(HOST, self.proxy.upstream_port), 2.0)
        except (OSError, TimeoutError):
            self.close()  # Redis is down: the client sees its connection closed
            return
        self._tasks.append(asyncio.create_task(self._read(self.upstream[0], self.to_client)))
        self._tasks.append(asyncio.create_task(self._write(self.to_client, self.client[1])))
        await self._write(self.to_upstream, self.upstream[1])

    async def _read(self, reader: asyncio.StreamReader, queue: asyncio.Queue) -> None:
        try:
            while not self.closed.is_set():
                data = await reader.read(65536)
                if not data:
                    break
                if self.proxy.mode == "drop":
                    self.corrupt = True
                    continue
                queue.put_nowait((time.monotonic(), data))
        except (OSError, asyncio.IncompleteReadError):
            pass
        queue.put_nowait(None)  # end of stream, after what was read before it

    async def _write(self, queue: asyncio.Queue, writer: asyncio.StreamWriter) -> None:
        try:
            while not self.closed.is_set():
                item = await queue.get()
                if item is None:
                    break
                received, data = item
                await self.proxy._flowing.wait()
                if self.closed.is_set():
                    return
                wait = received + self.proxy.delay_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for pair in (self.client, self.upstream):
            if pair is not None:
                pair[1].transport.abort()


@dataclass
class Arrival:
    t: float  # time.time() when the request (headers and body) had arrived
    key: str
    job: str
    slot: int
    attempt: int
    epoch: int
    answer: str  # what the target did: 200, 503, hang, reset
    manual: bool = False  # a manual trigger's fire (key job@manual:<id>), not a scheduled slot


class Target:
    """The application: records every request, answers 200, or misbehaves on demand."""

    def __init__(self, seed: int):
        self.arrivals: list[Arrival] = []
        self.rng = random.Random(seed)
        self.fail_rate = self.hang_rate = self.reset_rate = 0.0
        self.hang_s = 5.0
        self.slow: dict[str, float] = {}  # job -> how long each of its calls is held (rolling-slow)
        self.limit, self.serve_s, self.open = 0, 0.0, 0  # overloaded: calls served at once, each this long
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def misbehave(self, fail: float = 0.0, hang: float = 0.0, reset: float = 0.0, hang_s: float = 5.0) -> None:
        self.fail_rate, self.hang_rate, self.reset_rate, self.hang_s = fail, hang, reset, hang_s

    def overload(self, limit: int = 0, serve_s: float = 0.0) -> None:
        """Serve at most `limit` calls at once, each `serve_s` long, and answer 503 at once beyond
        (0: no limit)."""
        self.limit, self.serve_s = limit, serve_s

    async def start(self) -> Target:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        now = time.time()
        roll = self.rng.random()
        answer = "200"
        busy = 0 < self.limit <= self.open
        if busy or roll < self.fail_rate:
            answer = "503"
        elif roll < self.fail_rate + self.hang_rate:
            answer = "hang"
        elif roll < self.fail_rate + self.hang_rate + self.reset_rate:
            answer = "reset"
        h = request.headers
        key = h.get("Idempotency-Key", "").strip('"')
        manual = "@manual:" in key
        try:
            try:
                slot = int(datetime.fromisoformat(h.get("X-Scheduler-Slot", "").replace("Z", "+00:00")).timestamp())
            except ValueError:
                if not manual:
                    raise
                slot = 0
            arrival = Arrival(
                now, key, h.get("X-Scheduler-Job", ""), slot,
                int(h.get("X-Scheduler-Attempt", "0")), int(h.get("X-Scheduler-Fencing-Token", "0")), answer, manual,
            )
        except ValueError:
            return web.Response(status=400, text="not a scheduler request")
        self.arrivals.append(arrival)
        held = self.slow.get(arrival.job)
        if held:
            await asyncio.sleep(held)  # a slow call of a healthy app: answered 200 after it
        if answer == "503":
            return web.Response(status=503, text="chaos")
        if self.limit:
            self.open += 1
            try:
                await asyncio.sleep(self.serve_s)
            finally:
                self.open -= 1
        if answer == "hang":
            await asyncio.sleep(self.hang_s)
        elif answer == "reset":
            transport = request.transport
            if transport is not None:
                sock = transport.get_extra_info("socket")
                if sock is not None:  # linger 0: close() sends RST, not FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
        return web.json_response({})

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
