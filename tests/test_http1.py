"""The HTTP/1.1 client (scheduler.http.client: Http1Client, target) against real servers on
127.0.0.1 that answer with exact, scripted bytes. Only the module's public face is used.

Each test runs its own event loop with asyncio.run; the server lives in that loop. Waits are
on conditions with deadlines (until(), asyncio.wait_for); the only fixed waits let a short
timeout pass so that what it must or must not do can be checked.
"""

from __future__ import annotations

import asyncio
import time
import base64
import socket
import struct
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from collections.abc import Awaitable, Callable, Sequence

import httptools
import pytest

from scheduler.dispatch import Dispatcher, Fire
from scheduler.model import Claim
from scheduler.http.client.client import ERRORS, ConnectionClosed, Http1Client, target
from tests.test_dispatch import SLOT, make_settings

DEADLINE_S = 5.0  # for any one wait; a test that needs it has failed


# ---------------------------------------------------------------------------
# a scripted server
# ---------------------------------------------------------------------------

HANG = "hang"  # read the request and never answer it


@dataclass
class Close:
    """Write data (maybe nothing), then close the connection: a FIN, or a RST with reset."""

    data: bytes = b""
    reset: bool = False


# An action answers one request: bytes to write (the connection stays open), HANG, Close,
# or an async callable (conn, writer) -> the next action (None: done with this request).
Action = Any


@dataclass
class Conn:
    index: int
    writer: asyncio.StreamWriter
    requests: list[bytes] = field(default_factory=list)  # each: head and body, as received
    eof: bool = False  # the client closed or reset its side
    server_closed: bool = False  # the script closed it
    leftover: bytes = b""  # bytes after the last whole request, when the client closed


class Server:
    """An HTTP/1.x server on 127.0.0.1 that reads whole requests (Content-Length bodies) and
    answers the n-th request, over all connections, with the n-th action; the last repeats."""

    def __init__(self, *script: Action):
        self.script = list(script)
        self.conns: list[Conn] = []
        self.requests: list[bytes] = []
        self.port = 0

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for conn in self.conns:
            conn.writer.transport.abort()
        await self.server.wait_closed()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _next(self) -> Action:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(len(self.conns), writer)
        self.conns.append(conn)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(_content_length(head))
            except asyncio.IncompleteReadError as exc:
                conn.leftover, conn.eof = exc.partial, True
                return
            except ConnectionError:
                conn.eof = True
                return
            conn.requests.append(head + body)
            self.requests.append(head + body)
            action = self._next()
            while callable(action):
                action = await action(conn, writer)
            if action is None or action is HANG:
                continue
            if isinstance(action, Close):
                writer.write(action.data)
                await writer.drain()
                conn.server_closed = True
                if action.reset:
                    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                else:
                    writer.close()
                return
            writer.write(action)
            await writer.drain()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def resp(status: int = 200, headers: Sequence[tuple[str, str]] = (), body: bytes = b"") -> bytes:
    """A whole HTTP/1.1 response with a Content-Length."""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Seen:
    """A request as the server received it."""

    line: str
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def parse(raw: bytes) -> Seen:
    head, _, body = raw.partition(b"\r\n\r\n")
    line, *rest = head.decode("utf-8").split("\r\n")
    headers = []
    for text in rest:
        name, sep, value = text.partition(":")
        assert sep, f"not a header line: {text!r}"
        headers.append((name, value.strip()))
    return Seen(line, headers, body)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(test(), 4 * DEADLINE_S))


async def until(predicate: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(DEADLINE_S):
            while not predicate():
                await asyncio.sleep(0.001)
    except TimeoutError:
        raise AssertionError(f"timed out waiting until {what}") from None


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes


def client(**options: Any) -> Http1Client:
    return Http1Client(**options)


async def send(c: Http1Client, request: Request, timeout_s: float = DEADLINE_S) -> tuple[int, str | None]:
    """(status, Retry-After) of one request."""
    response = await c.send(request.method, request.url, request.headers, request.content, timeout_s)
    return response.status, response.header("retry-after")


def PortMapClient(ports: dict[int, int]) -> Http1Client:
    """Connects every origin to 127.0.0.1, its port mapped: URLs on the default port or with
    any host name reach the test server, and the request is built from the URL as given."""
    return Http1Client(connect_to=lambda host, port: ("127.0.0.1", ports.get(port, port)))


def get(url: str, headers: dict[str, str] | None = None) -> Request:
    return Request("GET", url, dict(headers or {}), b"")


def idle_conns(c: Http1Client) -> list:
    return [conn for pool in c.idle.values() for conn in pool]


# ---------------------------------------------------------------------------
# the request on the wire
# ---------------------------------------------------------------------------


def test_post_request_bytes_on_the_wire() -> None:
    headers = {
        "User-Agent": "cron-sidecar/test",
        "Idempotency-Key": '"nightly@2026-11-22T03:00:00Z"',
        "Content-Type": "application/json",
        "X-Team": "ops and more",
    }
    body = '{"job":"nightly","note":"caf\u00e9"}'.encode()
    assert len(body) == len(body.decode()) + 1  # a two-byte character: bytes are counted, not characters

    async def go():
        async with Server(resp(200)) as srv:
            c = client()
            try:
                result = await send(c, Request("POST", srv.url("/api/tasks/report?x=1&y=two"), headers, body))
            finally:
                await c.aclose()
            await until(lambda: srv.conns[0].eof, "the server sees the client close")
            return srv.port, srv.requests, srv.conns[0].leftover, result

    port, requests, leftover, result = run(go)
    assert result == (200, None)
    (raw,) = requests
    seen = parse(raw)
    assert seen.line == "POST /api/tasks/report?x=1&y=two HTTP/1.1"
    assert seen.values("Host") == [f"127.0.0.1:{port}"]
    for name, value in headers.items():
        assert seen.values(name) == [value]
    assert seen.values("Content-Length") == [str(len(body))]
    assert seen.values("Transfer-Encoding") == []
    assert sorted(k.lower() for k, _ in seen.headers) == sorted(["host", "content-length", *(k.lower() for k in headers)])
    assert seen.body == body
    assert leftover == b""  # nothing after the body


@pytest.mark.parametrize(
    "method, body, content_length",
    [
        ("POST", b"", ["0"]),
        ("PUT", b"", ["0"]),
        ("PATCH", b"", ["0"]),
        ("GET", b"", []),
        ("DELETE", b"", []),
        ("DELETE", b"gone", ["4"]),
        ("GET", b"x=1", ["3"]),
    ],
)
def test_content_length_by_method_and_body(method: str, body: bytes, content_length: list[str]) -> None:
    async def go():
        async with Server(resp(204)) as srv:
            c = client()
            try:
                first = await send(c, Request(method, srv.url("/t"), {"X-N": "1"}, body))
                # A second request on the same connection parses only if the first ended
                # exactly where the server thought.
                second = await send(c, Request(method, srv.url("/t"), {"X-N": "2"}, body))
            finally:
                await c.aclose()
            await until(lambda: srv.conns[0].eof, "the server sees the client close")
            return srv.conns, first, second

    conns, first, second = run(go)
    assert first == second == (204, None)
    (conn,) = conns
    assert len(conn.requests) == 2
    assert conn.leftover == b""
    for n, raw in enumerate(conn.requests, 1):
        seen = parse(raw)
        assert seen.line == f"{method} /t HTTP/1.1"
        assert seen.values("X-N") == [str(n)]
        assert seen.values("Content-Length") == content_length
        assert seen.values("Transfer-Encoding") == []
        assert seen.body == body


@pytest.mark.parametrize(
    "url, line, host",
    [
        ("http://app.internal/tasks/x?y=1", "GET /tasks/x?y=1 HTTP/1.1", "app.internal"),
        ("http://app.internal:80/tasks/x", "GET /tasks/x HTTP/1.1", "app.internal"),
        ("http://app.internal:8080/tasks/x", "GET /tasks/x HTTP/1.1", "app.internal:8080"),
        ("http://App.Internal", "GET / HTTP/1.1", "app.internal"),
        ("http://app.internal?only=query", "GET /?only=query HTTP/1.1", "app.internal"),
        ("http://app.internal/a b/c?q=a b#frag", "GET /a%20b/c?q=a%20b HTTP/1.1", "app.internal"),
    ],
)
def test_request_line_and_host_header(url: str, line: str, host: str) -> None:
    async def go():
        async with Server(resp(200)) as srv:
            c = PortMapClient({80: srv.port, 8080: srv.port})
            try:
                result = await send(c, get(url))
            finally:
                await c.aclose()
            return srv.requests, result

    requests, result = run(go)
    assert result == (200, None)
    seen = parse(requests[0])
    assert seen.line == line
    assert seen.values("Host") == [host]


def test_userinfo_in_the_url_is_sent_as_basic_auth_not_in_host() -> None:
    async def go():
        async with Server(resp(200)) as srv:
            c = client()
            try:
                await send(c, get(f"http://u:p%40ss@127.0.0.1:{srv.port}/x"))
                # A request's own Authorization header wins: one header, not two.
                await send(c, get(f"http://u:p%40ss@127.0.0.1:{srv.port}/y", {"Authorization": "Bearer tok"}))
            finally:
                await c.aclose()
            return srv.port, srv.requests

    port, requests = run(go)
    first, second = (parse(raw) for raw in requests)
    assert first.line == "GET /x HTTP/1.1"
    assert first.values("Host") == [f"127.0.0.1:{port}"]
    assert first.values("Authorization") == ["Basic " + base64.b64encode(b"u:p@ss").decode()]
    assert second.values("Authorization") == ["Bearer tok"]


# ---------------------------------------------------------------------------
# keep-alive and how a response ends
# ---------------------------------------------------------------------------


def test_sequential_requests_share_one_connection() -> None:
    async def go():
        async with Server(resp(200, body=b"one"), resp(201, body=b"two"), resp(202)) as srv:
            c = client()
            try:
                results = [await send(c, get(srv.url(f"/{n}"))) for n in range(3)]
            finally:
                await c.aclose()
            return srv.conns, results

    conns, results = run(go)
    assert results == [(200, None), (201, None), (202, None)]
    assert len(conns) == 1
    assert [parse(r).line for r in conns[0].requests] == [f"GET /{n} HTTP/1.1" for n in range(3)]


@pytest.mark.parametrize(
    "first_response",
    [resp(200, [("Connection", "close")]), b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"],
    ids=["connection-close", "http-1.0"],
)
def test_a_response_that_ends_keep_alive_is_not_reused(first_response) -> None:
    async def go():
        # The server leaves the connection open: the client must close it itself and open
        # another.
        async with Server(first_response, resp(201)) as srv:
            c = client()
            try:
                first = await send(c, get(srv.url("/a")))
                await until(lambda: srv.conns[0].eof, "the client closes the first connection")
                second = await send(c, get(srv.url("/b")))
            finally:
                await c.aclose()
            return srv.conns, first, second

    conns, first, second = run(go)
    assert (first, second) == ((200, None), (201, None))
    assert len(conns) == 2
    assert [len(conn.requests) for conn in conns] == [1, 1]
    assert conns[0].server_closed is False


@pytest.mark.parametrize(
    "response, status",
    [
        (b"HTTP/1.0 202 Accepted\r\nContent-Type: text/plain\r\n\r\nthe body ends when the connection does", 202),
        (b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 3\r\n\r\n", 503),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nread until close", 200),
    ],
)
def test_body_delimited_by_close(response: bytes, status: int) -> None:
    async def go():
        async with Server(Close(response), resp(204)) as srv:
            c = client()
            try:
                first = await send(c, get(srv.url("/a")))
                leaked = set(c.open)
                second = await send(c, get(srv.url("/b")))
            finally:
                await c.aclose()
            return srv.conns, first, second, leaked

    conns, first, second, leaked = run(go)
    assert first[0] == status
    assert leaked == set()
    assert second == (204, None)
    assert len(conns) == 2


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRetry-After: 9\r\n\r\n"
    b"5\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
)


def test_chunked_body_is_consumed_and_the_connection_reused() -> None:
    async def go():
        async with Server(CHUNKED, resp(201, [("Retry-After", "4")])) as srv:
            c = client()
            try:
                first = await send(c, get(srv.url("/a")))
                second = await send(c, get(srv.url("/b")))
            finally:
                await c.aclose()
            return srv.conns, first, second

    conns, first, second = run(go)
    assert first == (200, "9")
    assert second == (201, "4")
    assert len(conns) == 1 and len(conns[0].requests) == 2


def test_send_returns_only_when_the_chunked_body_has_ended() -> None:
    async def go():
        rest = asyncio.Event()

        async def head_then_rest_when_released(conn: Conn, writer: asyncio.StreamWriter):
            cut = CHUNKED.index(b"7\r\n")
            writer.write(CHUNKED[:cut])
            await writer.drain()
            await rest.wait()
            return CHUNKED[cut:]

        async with Server(head_then_rest_when_released, resp(201)) as srv:
            c = client()
            try:
                sending = asyncio.ensure_future(send(c, get(srv.url("/a"))))
                await until(lambda: len(c.open) == 1 and next(iter(c.open)).head_done, "the client has the head")
                for _ in range(3):
                    await asyncio.sleep(0)  # a send woken at the head would finish in these turns
                early = sending.done()
                rest.set()
                first = await sending
                second = await send(c, get(srv.url("/b")))
            finally:
                await c.aclose()
            return srv.conns, early, first, second

    conns, early, first, second = run(go)
    assert early is False
    assert (first, second) == ((200, "9"), (201, None))
    assert len(conns) == 1


# ---------------------------------------------------------------------------
# interim (1xx) responses
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n" + resp(204),
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nRetry-After: 99\r\n\r\n" + resp(204),
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n" + resp(204),
    ],
    ids=["100", "103-with-headers", "100-then-102"],
)
def test_interim_responses_are_skipped(answer: Action) -> None:
    async def go():
        async with Server(answer, resp(200)) as srv:
            c = client()
            try:
                first = await send(c, Request("POST", srv.url("/a"), {}, b"{}"))
                second = await send(c, get(srv.url("/b")))
            finally:
                await c.aclose()
            return srv.conns, first, second

    conns, first, second = run(go)
    assert first == (204, None)  # an interim response's headers are not the final one's
    assert second == (200, None)
    assert len(conns) == 1


def test_interim_response_read_on_its_own_is_not_the_answer() -> None:
    async def go():
        final = asyncio.Event()

        async def continue_then_204_when_released(conn: Conn, writer: asyncio.StreamWriter):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
            await final.wait()
            return resp(204)

        async with Server(continue_then_204_when_released) as srv:
            c = client()
            try:
                sending = asyncio.ensure_future(send(c, Request("POST", srv.url("/a"), {}, b"{}")))
                await until(lambda: len(c.open) == 1 and next(iter(c.open)).status == 100, "the client has read the 100")
                for _ in range(3):
                    await asyncio.sleep(0)  # a send woken by the 100 would finish in these turns
                early = sending.done()
                final.set()
                result = await sending
            finally:
                await c.aclose()
            return early, result

    early, result = run(go)
    assert early is False
    assert result == (204, None)


# ---------------------------------------------------------------------------
# stale kept-alive connections
# ---------------------------------------------------------------------------


def test_idle_connection_closed_by_the_server_is_replaced() -> None:
    async def go():
        idle_done = asyncio.Event()

        async def answer_then_close_when_released(conn: Conn, writer: asyncio.StreamWriter):
            writer.write(resp(200))
            await writer.drain()
            await idle_done.wait()
            return Close()

        async with Server(answer_then_close_when_released, resp(201)) as srv:
            c = client()
            try:
                first = await send(c, get(srv.url("/a")))
                (stale,) = idle_conns(c)
                idle_done.set()
                await until(lambda: srv.conns[0].server_closed, "the server closes the idle connection")
                await until(lambda: stale.closed, "the client notices the close")
                second = await send(c, get(srv.url("/b")))
                still_open = stale in c.open
            finally:
                await c.aclose()
            return srv.conns, first, second, still_open

    conns, first, second, still_open = run(go)
    assert (first, second) == ((200, None), (201, None))
    assert len(conns) == 2
    assert [len(conn.requests) for conn in conns] == [1, 1]
    assert still_open is False


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_a_reused_connection_closed_after_the_request_is_a_failure_not_a_second_send(reset: bool) -> None:
    # The app may have read and acted on the request before the connection went: sending it
    # again under the same attempt number would be a second request for one attempt. The
    # dispatcher retries it as the next attempt instead.
    async def go():
        async with Server(resp(200), Close(reset=reset), resp(201)) as srv:
            c = client()
            try:
                first = await send(c, get(srv.url("/a")))
                with pytest.raises(ERRORS) as caught:
                    await send(c, Request("POST", srv.url("/b"), {"Idempotency-Key": '"k"'}, b'{"n":2}'))
                left_open = set(c.open)
                third = await send(c, get(srv.url("/c")))
            finally:
                await c.aclose()
            return srv.conns, first, caught.value, left_open, third

    conns, first, error, left_open, third = run(go)
    assert first == (200, None) and third == (201, None)
    assert isinstance(error, ConnectionError)
    assert left_open == set()
    assert [len(conn.requests) for conn in conns] == [2, 1]  # /b once, then /c on a new connection


def test_idle_connection_past_idle_s_is_closed_not_reused() -> None:
    async def go():
        async with Server(resp(200)) as srv:
            c = client(idle_s=0.0)  # every idle connection counts as too old
            try:
                await send(c, get(srv.url("/a")))
                (old,) = idle_conns(c)
                await send(c, get(srv.url("/b")))
                await until(lambda: srv.conns[0].eof, "the server sees the old connection closed")
                old_open = old in c.open
            finally:
                await c.aclose()
            return srv.conns, old_open

    conns, old_open = run(go)
    assert len(conns) == 2
    assert [len(conn.requests) for conn in conns] == [1, 1]
    assert old_open is False


# ---------------------------------------------------------------------------
# failures
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "close",
    [
        Close(),
        Close(reset=True),
        Close(b"HTTP/1.1 200 OK\r\nContent-Len"),
        Close(b"HTTP/1.1 100 Continue\r\n\r\n"),
    ],
    ids=["fin", "rst", "partial-head", "interim-only"],
)
def test_fresh_connection_closed_without_a_response_fails_without_retry(close: Close) -> None:
    async def go():
        async with Server(close) as srv:
            c = client()
            try:
                with pytest.raises(ERRORS) as caught:
                    await send(c, Request("POST", srv.url("/a"), {}, b"{}"))
                left_open = set(c.open)
            finally:
                await c.aclose()
            return srv.conns, srv.requests, caught.value, left_open

    conns, requests, error, left_open = run(go)
    assert isinstance(error, ConnectionError)
    assert len(conns) == 1
    assert len(requests) == 1  # sent once, not again
    assert left_open == set()


def test_connection_refused_is_one_of_the_errors() -> None:
    async def go():
        async with Server(resp(200)) as srv:
            url = srv.url("/a")
        c = client()
        try:
            with pytest.raises(ERRORS) as caught:
                await send(c, get(url))
        finally:
            await c.aclose()
        return caught.value

    assert isinstance(run(go), ConnectionRefusedError)


@pytest.mark.parametrize(
    "malformed",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["garbage", "bad-status", "bad-length", "bad-chunk"],
)
def test_malformed_response_is_an_error_and_the_connection_dropped(malformed: bytes) -> None:
    async def go():
        async with Server(malformed, resp(200)) as srv:
            c = client()
            try:
                with pytest.raises(ERRORS) as caught:
                    await send(c, get(srv.url("/a")))
                await until(lambda: srv.conns[0].eof, "the client closes the connection")
                after = await send(c, get(srv.url("/b")))
            finally:
                await c.aclose()
            return srv.conns, caught.value, after

    conns, error, after = run(go)
    assert isinstance(error, httptools.HttpParserError)
    assert after == (200, None)
    assert len(conns) == 2
    assert [len(conn.requests) for conn in conns] == [1, 1]


# ---------------------------------------------------------------------------
# Retry-After
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, expected",
    [
        (b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\nContent-Length: 0\r\n\r\n", (503, "7")),
        (b"HTTP/1.1 503 Service Unavailable\r\nRETRY-AFTER:120\r\nContent-Length: 0\r\n\r\n", (503, "120")),
        (resp(429, [("Retry-After", "Wed, 21 Oct 2026 07:28:00 GMT")]), (429, "Wed, 21 Oct 2026 07:28:00 GMT")),
        (resp(503), (503, None)),
        (resp(200), (200, None)),
    ],
    ids=["lower", "upper-no-space", "http-date", "503-none", "200-none"],
)
def test_retry_after_header(answer: bytes, expected: tuple[int, str | None]) -> None:
    async def go():
        async with Server(answer) as srv:
            c = client()
            try:
                return await send(c, get(srv.url("/a")))
            finally:
                await c.aclose()

    assert run(go) == expected


# ---------------------------------------------------------------------------
# cancellation
# ---------------------------------------------------------------------------


def test_cancelled_send_closes_its_connection() -> None:
    async def go():
        async with Server(HANG, resp(201)) as srv:
            c = client()
            try:
                sending = asyncio.ensure_future(send(c, get(srv.url("/a"))))
                await until(lambda: len(srv.requests) == 1, "the server has the request")
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(sending, 0.05)
                await until(lambda: srv.conns[0].eof, "the server sees the cancelled connection close")
                after_cancel = (set(c.open), idle_conns(c))
                after = await asyncio.wait_for(send(c, get(srv.url("/b"))), DEADLINE_S)
            finally:
                await c.aclose()
            return srv.conns, sending.cancelled(), after_cancel, after

    conns, cancelled, (open_, idle), after = run(go)
    assert cancelled
    assert open_ == set() and idle == []
    assert after == (201, None)
    assert len(conns) == 2
    assert [len(conn.requests) for conn in conns] == [1, 1]


def test_cancelled_mid_body_the_connection_is_not_reused() -> None:
    async def head_and_part_of_the_body(conn: Conn, writer: asyncio.StreamWriter):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        return HANG

    async def go():
        async with Server(head_and_part_of_the_body, resp(201)) as srv:
            c = client()
            try:
                sending = asyncio.ensure_future(send(c, get(srv.url("/a"))))
                await until(lambda: len(c.open) == 1 and next(iter(c.open)).head_done, "the client has the head")
                sending.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await sending
                await until(lambda: srv.conns[0].eof, "the server sees the cancelled connection close")
                # Were the connection reused, this answer would be read as the rest of the body.
                after = await asyncio.wait_for(send(c, get(srv.url("/b"))), DEADLINE_S)
            finally:
                await c.aclose()
            return srv.conns, after

    conns, after = run(go)
    assert after == (201, None)
    assert len(conns) == 2


def test_timeout_waiting_for_the_response_closes_the_connection() -> None:
    async def go():
        async with Server(resp(200), HANG, resp(201)) as srv:
            c = client()
            try:
                await send(c, get(srv.url("/a")))  # the next request goes on this kept-alive connection
                with pytest.raises(TimeoutError) as caught:
                    await send(c, get(srv.url("/b")), timeout_s=0.05)
                await until(lambda: srv.conns[0].eof, "the server sees the timed-out connection close")
                conns_after_timeout = len(srv.conns)
                after_timeout = (set(c.open), idle_conns(c))
                after = await send(c, get(srv.url("/c")))
            finally:
                await c.aclose()
            return srv.conns, caught.value, conns_after_timeout, after_timeout, after

    conns, error, conns_after_timeout, (open_, idle), after = run(go)
    assert isinstance(error, ERRORS)
    assert conns_after_timeout == 1  # a timeout is not retried on another connection
    assert open_ == set() and idle == []
    assert after == (201, None)
    assert [len(conn.requests) for conn in conns] == [2, 1]


def test_timeout_mid_body_closes_the_connection() -> None:
    async def head_and_part_of_the_body(conn: Conn, writer: asyncio.StreamWriter):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        return HANG

    async def go():
        async with Server(resp(200), head_and_part_of_the_body, resp(201)) as srv:
            c = client()
            try:
                await send(c, get(srv.url("/a")))  # the next request goes on this kept-alive connection
                with pytest.raises(TimeoutError):
                    await send(c, get(srv.url("/b")), timeout_s=0.05)
                await until(lambda: srv.conns[0].eof, "the server sees the timed-out connection close")
                # Were the connection reused, this answer would be read as the rest of the body.
                after = await send(c, get(srv.url("/c")))
            finally:
                await c.aclose()
            return srv.conns, after

    conns, after = run(go)
    assert after == (201, None)
    assert [len(conn.requests) for conn in conns] == [2, 1]


def test_a_finished_requests_timer_does_not_close_its_kept_alive_connection() -> None:
    async def go():
        async with Server(resp(200), resp(201)) as srv:
            c = client()
            try:
                loop = asyncio.get_running_loop()
                timeout_s = 0.2
                started = loop.time()
                await send(c, get(srv.url("/a")), timeout_s=timeout_s)
                (kept,) = idle_conns(c)
                # Past the first request's deadline: a timer left running would have fired
                # by now (loop timers run in order of their due time).
                await asyncio.sleep(started + timeout_s + 0.05 - loop.time())
                kept_closed, server_saw_eof = kept.closed, srv.conns[0].eof
                second = await send(c, get(srv.url("/b")))
            finally:
                await c.aclose()
            return srv.conns, kept_closed, server_saw_eof, second

    conns, kept_closed, server_saw_eof, second = run(go)
    assert (kept_closed, server_saw_eof) == (False, False)
    assert second == (201, None)
    assert len(conns) == 1


# ---------------------------------------------------------------------------
# aclose
# ---------------------------------------------------------------------------


def test_aclose_closes_idle_connections() -> None:
    async def go():
        async with Server(resp(200)) as srv, Server(resp(202)) as other:
            c = client()
            # Two at once to one origin: two connections, both idle afterwards.
            both = await asyncio.gather(send(c, get(srv.url("/a"))), send(c, get(srv.url("/b"))))
            third = await send(c, get(other.url("/c")))
            idle_before = len(idle_conns(c))
            await c.aclose()
            conns = srv.conns + other.conns
            await until(lambda: all(conn.eof for conn in conns), "every connection is closed")
            return conns, both, third, idle_before, set(c.open), idle_conns(c)

    conns, both, third, idle_before, open_, idle = run(go)
    assert both == [(200, None), (200, None)]
    assert third == (202, None)
    assert len(conns) == 3 and idle_before == 3
    assert all(conn.server_closed is False for conn in conns)
    assert open_ == set() and idle == []


# ---------------------------------------------------------------------------
# target
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, origin, host_header, path",
    [
        ("http://[::1]:8080/x", ("http", "::1", 8080), "[::1]:8080", "/x"),
        ("http://[::1]/x", ("http", "::1", 80), "[::1]", "/x"),
        ("https://h/", ("https", "h", 443), "h", "/"),
        ("https://h:443/", ("https", "h", 443), "h", "/"),
        ("https://h:80/", ("https", "h", 80), "h:80", "/"),
        ("http://h:443/", ("http", "h", 443), "h:443", "/"),
        ("http://h", ("http", "h", 80), "h", "/"),
        ("HTTP://H.Example:81/P", ("http", "h.example", 81), "h.example:81", "/P"),
        ("http://h/a b/c", ("http", "h", 80), "h", "/a%20b/c"),
        ("http://h/x?a=1&b=two words&c=%2F", ("http", "h", 80), "h", "/x?a=1&b=two%20words&c=%2F"),
        ("http://h/caf\u00e9", ("http", "h", 80), "h", "/caf%C3%A9"),
        ("http://h/already%20encoded", ("http", "h", 80), "h", "/already%20encoded"),
        ("http://h/100%?q=%zz", ("http", "h", 80), "h", "/100%25?q=%25zz"),
        ("http://h/x#fragment", ("http", "h", 80), "h", "/x"),
    ],
)
def test_target(url: str, origin: tuple[str, str, int], host_header: str, path: str) -> None:
    t = target(url)
    assert t.origin == origin
    assert t.host_header == host_header
    assert t.path == path
    assert t.basic_auth is None


@pytest.mark.parametrize(
    "url, user_pass",
    [
        ("http://u:p%40ss@h/x", b"u:p@ss"),
        ("http://u@h/x", b"u:"),
        ("http://us%3Aer:pa:ss@h:8080/x", b"us:er:pa:ss"),
    ],
)
def test_target_userinfo(url: str, user_pass: bytes) -> None:
    t = target(url)
    assert t.basic_auth == "Basic " + base64.b64encode(user_pass).decode()
    assert "@" not in t.host_header and t.path == "/x"


def test_international_host_name_is_sent_in_ascii() -> None:
    # A Host header is ASCII: an internationalised name goes as its IDNA (punycode) form.
    async def go():
        async with Server(resp(200)) as srv:
            c = PortMapClient({80: srv.port})
            try:
                await send(c, get("http://b\u00fccher.example/x"))
            finally:
                await c.aclose()
            return srv.requests

    (raw,) = run(go)
    assert parse(raw).values("Host") == ["xn--bcher-kva.example"]


# ---------------------------------------------------------------------------
# through Dispatcher.send
# ---------------------------------------------------------------------------


def _dispatch(srv: Server, job: dict[str, str], sleeps: list[float]) -> Awaitable:
    settings = make_settings(job, SCHEDULER_API_URL=srv.url("/api"))

    now = [time.time()]  # a clock that the fake sleep moves: the origin's Retry-After hold ends with it

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    d = Dispatcher(settings, sleep=sleep, rand=lambda: 0.0, clock=lambda: now[0])
    assert isinstance(d.http, Http1Client)  # no transport given: this client, not httpx

    async def go():
        try:
            return await d.send(Fire(settings.jobs[0], Claim(settings.jobs[0].name, SLOT), 42))
        finally:
            await d.aclose()

    return go()


def test_dispatcher_uses_this_client_and_honours_retry_after() -> None:
    sleeps: list[float] = []

    async def go():
        async with Server(resp(503, [("retry-after", "7")]), resp(200)) as srv:
            outcome = await _dispatch(srv, {"RETRIES": "2"}, sleeps)
            return srv.conns, outcome

    conns, outcome = run(go)
    assert (outcome.status, outcome.attempts, outcome.http_status, outcome.error) == ("ok", 2, 200, None)
    assert sleeps == [7.0]  # the random backoff is 0 here: the wait is Retry-After's
    (conn,) = conns  # the 503 left the connection open for the retry
    first, second = (parse(raw) for raw in conn.requests)
    assert first.line == second.line == "POST /api/tasks/report HTTP/1.1"
    assert (first.values("X-Scheduler-Attempt"), second.values("X-Scheduler-Attempt")) == (["1"], ["2"])
    assert first.values("Content-Length") == [str(len(first.body))]


def test_dispatcher_reports_a_connection_closed_without_a_response() -> None:
    sleeps: list[float] = []

    async def go():
        async with Server(Close()) as srv:
            outcome = await _dispatch(srv, {"RETRIES": "1"}, sleeps)
            return srv.requests, outcome

    requests, outcome = run(go)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 2, None)
    assert outcome.error == f"{ConnectionClosed.__name__}: connection closed before a response"
    assert len(requests) == 2 and sleeps == [0.0]


def test_dispatcher_reports_a_timeout() -> None:
    sleeps: list[float] = []

    async def go():
        async with Server(HANG) as srv:
            return await _dispatch(srv, {"RETRIES": "0", "TIMEOUT": "50ms"}, sleeps)

    outcome = run(go)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 1, None)
    assert outcome.error == "timeout after 0.05s"


def test_dispatcher_unsolicited_upgrade_response_is_a_failed_attempt() -> None:
    # The scheduler never asks to switch protocols; a 101 with Upgrade is a broken answer and
    # must end as a failed attempt, not as an exception out of Dispatcher.send.
    sleeps: list[float] = []

    async def go():
        async with Server(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n") as srv:
            return await _dispatch(srv, {"RETRIES": "0"}, sleeps)

    outcome = run(go)
    assert outcome.status == "failed"
    assert outcome.attempts == 1
