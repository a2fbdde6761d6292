"""One HTTP/1.1 connection of the lean client (client.py): one request at a time, the
response parsed by httptools as it arrives, its head capped, a non-2xx body kept only up to
an excerpt and decoded by its charset."""

from __future__ import annotations

import asyncio
import codecs
import re
from dataclasses import dataclass
from typing import Any

import httptools

from .proxy import ConnectionClosed, HeadersTooLarge, ProtocolError


class BodyTooLarge(ProtocolError):
    """A 2xx body longer than the client's body_bytes."""


class _Abort(Exception):
    """Raised in a parser callback to stop parsing; the reason is already the waiter's."""


ERRORS = (OSError, httptools.HttpParserError, ProtocolError)  # BodyTooLarge is a ProtocolError


@dataclass(frozen=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]  # as received, latin-1 decoded
    excerpt: str | None = None  # the start of a non-2xx body, decoded by its charset
    body: bytes | None = None  # a 2xx body, kept only by a client made with body_bytes > 0

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


_CHARSET = re.compile(r'charset\s*=\s*"?([^";,\s]+)', re.IGNORECASE)


def _decode(data: bytes, content_type: str | None, complete: bool) -> str:
    """Bytes by the Content-Type's charset (utf-8 when absent or unknown); bytes that are not
    valid become U+FFFD. A character cut at the end of an incomplete body is left out."""
    match = _CHARSET.search(content_type or "")
    charset = "utf-8"
    if match:
        try:
            charset = codecs.lookup(match.group(1)).name
        except LookupError:
            pass
    return codecs.getincrementaldecoder(charset)(errors="replace").decode(data, final=complete)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, the response parsed by httptools."""

    def __init__(self, client: Any) -> None:  # an Http1Client: its limits
        self.max_header_bytes, self.max_headers = client.max_header_bytes, client.max_headers
        self.excerpt_bytes = client.excerpt_bytes
        self.body_bytes = client.body_bytes
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False  # the final (non-1xx) response head has been read
        self.head_bytes = 0  # bytes received while a head was incomplete
        self.header_bytes = 0
        self.excerpt: bytearray | None = None  # collected for a non-2xx answer
        self.body: bytearray | None = None  # collected for a 2xx answer when body_bytes > 0
        self.body_complete = False

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.head_done:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # a 101 or CONNECT answer we never asked for
            self._fail(ProtocolError(f"HTTP {self.parser.get_status_code()}: unexpected protocol upgrade"))
            self.close()
            return
        except httptools.HttpParserError as exc:  # also a callback's _Abort, already reported
            self._fail(exc)
            self.close()
            return
        if self.waiter is None or self.waiter.done():
            return
        if not self.head_done and self.head_bytes > self.max_header_bytes:
            # llhttp hands over a header only when it is whole, and httptools keeps the
            # pieces until then: counting raw bytes bounds what one long line can hold.
            self._fail(HeadersTooLarge(f"response head over {self.max_header_bytes} bytes"))
            self.close()
        elif self.excerpt is not None and len(self.excerpt) >= self.excerpt_bytes:
            # The start of an error body is all that is kept: rather than read the rest,
            # end here and close the connection.
            self.waiter.set_result(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            if self.body is not None and self._framed():
                # A kept body cut short: its length was announced and never reached.
                self.waiter.set_exception(exc or ConnectionClosed("connection closed before the end of the body"))
            elif self.head_done:
                # A body that ends when the connection does (no Content-Length).
                self.body_complete = exc is None
                self.waiter.set_result(False)
            else:
                self.waiter.set_exception(exc or ConnectionClosed("connection closed before a response"))

    def _framed(self) -> bool:
        return any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in self.headers)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.header_bytes += len(name) + len(value) + 4
        if len(self.headers) > self.max_headers:
            self._fail(HeadersTooLarge(f"response head with more than {self.max_headers} header fields"))
            raise _Abort
        if self.header_bytes > self.max_header_bytes:
            self._fail(HeadersTooLarge(f"response head over {self.max_header_bytes} bytes"))
            raise _Abort

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.head_done = self.status >= 200  # an interim 1xx response is followed by the real one
        if self.head_done and not 200 <= self.status < 300:
            self.excerpt = bytearray()
        elif self.head_done and self.body_bytes:
            announced = self._content_length()
            if announced is not None and announced > self.body_bytes:
                # Refused before a byte of it is read: the connection is dropped, not drained.
                self._fail(BodyTooLarge(f"response body of {announced} bytes, over {self.body_bytes}"))
                raise _Abort
            self.body = bytearray()

    def _content_length(self) -> int | None:
        for name, value in self.headers:
            if name.lower() == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None  # llhttp has refused it already
        return None

    def on_body(self, body: bytes) -> None:
        if self.body is not None:
            if len(self.body) + len(body) > self.body_bytes:
                # What was read goes at once. No local name holds it either: the traceback
                # of _Abort keeps this frame, and httptools keeps that error, in a cycle
                # with this connection that only a full collection would free (a refused
                # 64 MiB document a retry used to stay in memory, 6 of them in 30 s).
                self.body = None
                self._fail(BodyTooLarge(f"response body over {self.body_bytes} bytes"))
                raise _Abort
            self.body += body
            return
        excerpt = self.excerpt
        if excerpt is not None and len(excerpt) < self.excerpt_bytes:
            excerpt += body[: self.excerpt_bytes - len(excerpt)]

    def on_message_complete(self) -> None:
        if not self.head_done:
            self.headers, self.header_bytes = [], 0
            return
        self.body_complete = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.should_keep_alive())

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def start(self, data: bytes) -> asyncio.Future:
        self._reset()
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None  # started only once connected
        self.transport.write(data)
        return self.waiter

    def response(self) -> Response:
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in self.headers)
        response = Response(self.status, headers)
        if self.excerpt is not None:
            text = _decode(bytes(self.excerpt), response.header("content-type"), self.body_complete)
            response = Response(self.status, headers, text)
        elif self.body is not None:
            response = Response(self.status, headers, body=bytes(self.body))
            self.body = None  # not kept by an idle connection until its next request
        return response

    def time_out(self) -> None:
        self._fail(TimeoutError())
        self.close()

    def close(self) -> None:
        self.closed = True
        # The connection and its parser refer to each other: what it read would otherwise
        # wait for the cyclic collector.
        self.body = self.excerpt = None
        if self.transport is not None:
            self.transport.abort()
