"""A small HTTP/1.1 server for the daemon's own port: the listening socket, its connections'
count, and the thread it runs in.

One asyncio loop in a thread of its own reads every connection (a stalled client costs a
socket and a few kB, not a thread), httptools parses, and a handler runs either on that
loop (`inline`, for answers that take microseconds: the probes) or in a bounded pool of
worker threads. Each request must arrive whole within `read_timeout` of the moment the
server starts waiting for it (an idle keep-alive connection is closed after as long), its
head within `max_header_bytes`, and its body within the route's `max_body` (those limits are
checked as the request is read: http_requests.py; the routes are in http_routes.py; one
connection's reading and writing, and what it may hold, are in http_connection.py).

The server accepts connections itself: at most `max_connections` are open at once (by
default derived from the open-files limit: open_files.py), and one past that is answered 503
and closed at once, so the port holds at most `max_connections` + 2 descriptors whatever
the clients do. When accept() fails for want of descriptors or memory, the server stops
accepting for ACCEPT_PAUSE_S and logs the failures once per interval, with a count."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from .connection import BUSY, SEND_BUFFER_BYTES, Connection, Serving
from .limits import MAX_RESPONSE_BYTES, Every, ResponseBudget
from .open_files import open_files_limit, port_connection_cap
from .routes import Request, Response, Router

__all__ = ["HTTPServer", "Request", "Response", "Router"]

ACCEPT_BATCH = 64  # connections accepted per wake-up, so a flood cannot hold the loop
ACCEPT_PAUSE_S = 0.5
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
DEFAULT_FIRES = 64  # SCHEDULER_MAX_CONCURRENCY's default: the daemon passes its own cap


class HTTPServer:
    """Listens on (host, port) from the constructor on; serves in a thread of its own."""

    def __init__(
        self, host: str, port: int, router: Router, *, workers: int = 4, read_timeout: float = 5.0,
        write_timeout: float = 10.0, max_header_bytes: int = 16384, max_connections: int | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.router = router
        self.max_connections = max_connections or port_connection_cap(open_files_limit(), DEFAULT_FIRES)
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        self.socket = socket.create_server((host, port), family=family, backlog=512)
        self.socket.setblocking(False)
        self.port = self.socket.getsockname()[1]
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http-worker")
        self.budget = ResponseBudget(max_response_bytes)
        self.serving = Serving(router, self.pool, self.budget, read_timeout, write_timeout, max_header_bytes,
                               handlers=asyncio.Semaphore(workers))
        self.connections: set[Connection] = set()
        self.turned_away = Every(logging.WARNING, "HTTP port full: connections turned away")
        self.accept_failed = Every(logging.ERROR, "HTTP port: cannot accept connections")
        self.loop = asyncio.new_event_loop()
        self._accepting = False
        self._stopping = False
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._thread.start()
        self._started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._listen()
        self._started.set()
        try:
            self.loop.run_forever()
        finally:
            self._stopping = True
            self._unlisten()
            self.socket.close()
            for connection in list(self.connections):
                connection.abort()
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.close()

    def shutdown(self) -> None:
        """Stops listening, drops every connection, and waits for the thread (not for handlers
        still running in the pool)."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _listen(self) -> None:
        if not self._accepting and not self._stopping:
            self.loop.add_reader(self.socket.fileno(), self._accept)
            self._accepting = True

    def _unlisten(self) -> None:
        if self._accepting:
            self.loop.remove_reader(self.socket.fileno())
            self._accepting = False

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    continue  # that client gave up (ECONNABORTED, ...): the next one may not have
                self.accept_failed.note(error=str(exc), connections=len(self.connections),
                                        retry_after_s=ACCEPT_PAUSE_S)
                self._unlisten()
                self.loop.call_later(ACCEPT_PAUSE_S, self._listen)
                return
            if len(self.connections) >= self.max_connections:
                self._turn_away(sock)
            else:
                self._adopt(sock)

    def _adopt(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        except OSError:
            pass  # a platform that refuses it keeps its own sizing
        connection = Connection(self.serving, self.connections.discard)
        self.connections.add(connection)

        async def start() -> None:
            try:
                await self.loop.connect_accepted_socket(lambda: connection, sock)
            except OSError:  # the client went away before its transport was made
                self.connections.discard(connection)
                sock.close()

        self.loop.create_task(start())

    def _turn_away(self, sock: socket.socket) -> None:
        """A 503 and close, in a few system calls: no transport, no task, no parser."""
        try:
            sock.setblocking(False)
            # Whatever the client sent already is read off first: closing a socket with
            # unread bytes sends a reset, which could overtake the 503.
            try:
                sock.recv_into(self.serving.read_buffer)
            except BlockingIOError:
                pass
            sock.send(BUSY)
        except OSError:
            pass
        finally:
            sock.close()
        self.turned_away.note(max_connections=self.max_connections)
