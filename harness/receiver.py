"""A real HTTP/1.1 receiver that records every request and answers as a test tells it
(the benchmarks' cheaper recorders are `harness.fast_receiver`)."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.procs import Closing
from harness.wait import wait_until



@dataclass
class Request:
    method: str
    path: str  # includes the query string
    headers: dict[str, str]  # lower-cased names; repeated headers joined by ", "
    body: bytes
    received_at: float = field(default_factory=time.time)  # time.time()

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


Response = tuple[int, Mapping[str, str], Any]
HandlerFn = Callable[[Request], "int | tuple"]


def _default_handler(request: Request) -> Response:
    return 200, {"Content-Type": "application/json"}, b"{}"


def _normalize_response(result: Any) -> tuple[int, dict[str, str], bytes]:
    headers: dict[str, str] = {}
    body: Any = b""
    if isinstance(result, int):
        status = result
    elif isinstance(result, tuple) and len(result) == 3:
        status, headers, body = result
    elif isinstance(result, tuple) and len(result) == 2:
        status, body = result
    else:
        raise TypeError(f"handler must return int or (status, headers, body), got {result!r}")
    headers = dict(headers or {})
    if body is None:
        body = b""
    elif isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, (bytes, bytearray)):
        body = json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    return int(status), headers, bytes(body)


def _read_chunked(rfile: Any) -> bytes:
    out = bytearray()
    while True:
        line = rfile.readline(65537)
        if not line:
            raise ConnectionError("EOF in chunked body")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(out)
        out += rfile.read(size)
        rfile.readline()


class _ReceiverHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog of 5 drops SYNs when a burst of fires opens
    # connections at once; the client then waits a full second to retransmit.
    request_queue_size = 1024
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return  # client went away (or the receiver is closing)
        super().handle_error(request, client_address)


class _ReceiverHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TestReceiver/1.0"
    server: _ReceiverHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        self.server.receiver._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.receiver._connection_closed(self.connection)

    def _handle(self) -> None:
        received_at = time.time()
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = _read_chunked(self.rfile)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                self.close_connection = True
                return
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = Request(self.command, self.path, headers, body, received_at)
        receiver = self.server.receiver
        receiver._record(request)

        try:
            status, resp_headers, resp_body = _normalize_response(receiver._handler(request))
        except Exception:  # noqa: BLE001
            tb = traceback.format_exc()
            receiver.errors.append(tb)
            status, resp_headers, resp_body = 500, {"Content-Type": "text/plain"}, tb.encode()

        self.send_response(status)
        no_body = status < 200 or status in (204, 304)
        lower = {k.lower() for k in resp_headers}
        for k, v in resp_headers.items():
            self.send_header(k, str(v))
        if not no_body and "content-length" not in lower:
            self.send_header("Content-Length", str(len(resp_body)))
        self.end_headers()
        if not no_body and self.command != "HEAD":
            self.wfile.write(resp_body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class Receiver(Closing):
    """A real HTTP/1.1 server (keep-alive, threaded) recording every request.

    Requests are recorded as soon as their body has been read, *before* the
    handler runs, so a slow handler's request is visible while it sleeps.
    """

    host = "127.0.0.1"

    def __init__(self, handler: HandlerFn | None = None) -> None:
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._handler: HandlerFn = handler or _default_handler
        self._conns: set[socket.socket] = set()
        self._connections_total = 0
        self.errors: list[str] = []  # tracebacks of handler exceptions (answered with 500)
        self._server = _ReceiverHTTPServer((self.host, 0), _ReceiverHandler)
        self._server.receiver = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"receiver-{self.port}",
            daemon=True,
        )
        self._closed = False
        self._thread.start()

    # -- recording ----------------------------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _connection_opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)
            self._connections_total += 1

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """Number of TCP connections accepted so far (keep-alive reuse shows as fewer)."""
        with self._lock:
            return self._connections_total

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self.errors.clear()

    def by_header(self, name: str) -> dict[str, list[Request]]:
        """Group recorded requests by the value of a header (missing: left out)."""
        grouped: dict[str, list[Request]] = {}
        key = name.lower()
        for r in self.requests:
            if key in r.headers:
                grouped.setdefault(r.headers[key], []).append(r)
        return grouped

    def wait_for(
        self,
        predicate: Callable[[list[Request]], Any],
        timeout: float = 10.0,
        message: str = "",
    ) -> Any:
        """Poll ``predicate(self.requests)`` until truthy; return its value."""
        return wait_until(
            lambda: predicate(self.requests),
            timeout=timeout,
            message=message or "receiver condition",
        )

    def wait_for_count(self, n: int, timeout: float = 10.0) -> list[Request]:
        """Wait until at least ``n`` requests were recorded; return them all."""
        self.wait_for(lambda rs: len(rs) >= n, timeout, f"at least {n} request(s) at {self.url}")
        return self.requests

    # -- responding ---------------------------------------------------------

    def set_handler(self, fn: HandlerFn | None) -> None:
        """``fn(request) -> int | (status, headers, body)``; ``None`` restores
        the default (200, ``{}`` as JSON).  ``body`` may be bytes, str, or a
        JSON-serialisable object.  ``fn`` runs in the connection's thread and
        may sleep without blocking other requests."""
        self._handler = fn or _default_handler

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # unblock threads parked on idle keep-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def __repr__(self) -> str:
        return f"<Receiver {self.url} requests={len(self._requests)}>"
