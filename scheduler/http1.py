"""A lean HTTP/1.1 client with keep-alive connections kept per origin.

Written here rather than taken from aiohttp or httpx because it is the leader's hot path:
with a thousand fires due at one instant, aiohttp spent about 130 us of the loop's time per
request and httpx's pool far more (bench/http_client.py has the figures). It writes one
pre-formatted buffer and lets httptools (llhttp, the parser of Node.js and uvicorn) read the
response. It does what a fire needs and no more: one request per connection at a time,
no redirects, no cookies, no compression; TLS with an optional client certificate, happy
eyeballs (RFC 8305), and an explicit HTTP proxy (forwarding for http://, CONNECT for
https://) that hosts on a no-proxy list bypass.

The public face: `Http1Client`, its `send` and `aclose`, `Response`, `ERRORS` (what a failed
attempt raises besides TimeoutError) and `check_url` (what config uses to refuse a URL this
client cannot send). It imports nothing from the rest of the package.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import ssl
import time
import urllib.request
from dataclasses import dataclass
from collections.abc import Callable, Mapping

import httptools

from .http1_proxy import HAPPY_EYEBALLS_DELAY_S, ConnectionClosed, HeadersTooLarge, ProtocolError, connect_tunnel
from .http1_url import Target, check_url, proxy_target, target

__all__ = ["ERRORS", "BodyTooLarge", "ConnectionClosed", "HeadersTooLarge", "Http1Client", "ProtocolError", "Response",
           "Target", "check_url", "target", "tls_context"]

BODY_METHODS = ("POST", "PUT", "PATCH")
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
EXCERPT_BYTES = 1024  # of a non-2xx body; the caller shows less, see dispatch



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


def tls_context(verify: bool | str = True, client_cert: str | None = None, client_key: str | None = None,
                key_password: str | None = None) -> ssl.SSLContext:
    """The client's TLS context: verify is True, False or a CA bundle path; the client
    certificate and key are paths to PEM files (the key may sit in the certificate's file)."""
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        context.load_cert_chain(client_cert, client_key or None, key_password or None)
    return context


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

    def __init__(self, client: Http1Client) -> None:
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
            self.body = bytearray()

    def on_body(self, body: bytes) -> None:
        kept = self.body
        if kept is not None:
            if len(kept) + len(body) > self.body_bytes:
                self._fail(BodyTooLarge(f"response body over {self.body_bytes} bytes"))
                raise _Abort
            kept += body
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
        return response

    def time_out(self) -> None:
        self._fail(TimeoutError())
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


Address = Callable[[str, int], tuple[str, int]]


class Http1Client:
    """HTTP/1.1 with keep-alive connections kept per origin (see the module's docstring).

    `proxy` is an http:// URL (user:password@ in it becomes Proxy-Authorization); hosts that
    `no_proxy` names (the comma list of curl's NO_PROXY) are reached directly. `connect_to`
    maps the (host, port) a connection goes to, leaving the request as the URL says.
    `open` and `idle` hold the connections, for inspection.
    """

    def __init__(self, *, verify: bool | str = True, client_cert: str | None = None,
                 client_key: str | None = None, key_password: str | None = None,
                 proxy: str | None = None, no_proxy: str = "",
                 max_header_bytes: int = MAX_HEADER_BYTES, max_headers: int = MAX_HEADERS,
                 excerpt_bytes: int = EXCERPT_BYTES, body_bytes: int = 0, idle_s: float = 4.0,
                 connect_to: Address | None = None):
        self._tls_args = (verify, client_cert, client_key, key_password)
        self._ssl: ssl.SSLContext | None = None
        self.proxy = proxy_target(proxy) if proxy else None
        self.no_proxy = no_proxy
        self.max_header_bytes, self.max_headers, self.excerpt_bytes = max_header_bytes, max_headers, excerpt_bytes
        # 0: a 2xx body is read and dropped (a fire needs only its status); above 0, it is
        # kept up to this many bytes and a longer one fails the request with BodyTooLarge.
        self.body_bytes = body_bytes
        # An idle connection is reused for this long at most: less than the shortest
        # keep-alive timeout common among servers (5 s: uvicorn, Node.js), so the app
        # rarely closes one just as a request goes out on it. A request is never sent twice
        # by this client: a connection closed before an answer is a failed attempt.
        self.idle_s = idle_s
        self.connect_to = connect_to
        self.idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self.open: set[_Connection] = set()
        self._direct: dict[str, bool] = {}

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = tls_context(*self._tls_args)
        return self._ssl

    def _proxied(self, host: str) -> bool:
        if self.proxy is None:
            return False
        direct = self._direct.get(host)
        if direct is None:
            bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # not in typeshed
            direct = bool(self.no_proxy) and bool(bypass(host, {"no": self.no_proxy}))
            self._direct[host] = direct
        return not direct

    @property
    def _via(self) -> Target:
        """The proxy, asked for only on the way to a proxied origin."""
        assert self.proxy is not None
        return self.proxy

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes, timeout_s: float) -> Response:
        """One request and its response; raises TimeoutError after timeout_s, or one of ERRORS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        t = target(url)
        scheme, host, port = t.origin
        proxied = self._proxied(host)
        forward = proxied and scheme == "http"  # http:// goes to the proxy in absolute form
        path = f"http://{t.host_header}{t.path}" if forward else t.path
        lines = [f"{method} {path} HTTP/1.1\r\nHost: {t.host_header}\r\n"]
        if t.basic_auth is not None and "Authorization" not in headers:
            lines.append(f"Authorization: {t.basic_auth}\r\n")
        if forward and self._via.basic_auth is not None:
            lines.append(f"Proxy-Authorization: {self._via.basic_auth}\r\n")
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        if body or method in BODY_METHODS:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode() + body
        pool_key = self._via.origin if forward else t.origin
        conn = self._idle_connection(pool_key)
        if conn is None:
            async with asyncio.timeout_at(deadline):
                conn = await self._connect(t.origin, proxied)
        # One timer per attempt, cheaper than a timeout context on the hot path.
        timer = loop.call_at(deadline, conn.time_out)
        try:
            keep_alive = await conn.start(data)
        except BaseException:  # failed, timed out or cancelled: the connection's state is unknown
            self._drop(conn)
            raise
        finally:
            timer.cancel()
        response = conn.response()
        if keep_alive and not conn.closed:
            conn.idle_since = time.monotonic()
            self.idle.setdefault(pool_key, []).append(conn)
        else:
            self._drop(conn)
        return response

    def _idle_connection(self, key: tuple[str, str, int]) -> _Connection | None:
        pool = self.idle.get(key)
        now = time.monotonic()
        while pool:
            conn = pool.pop()  # the most recently used: the likeliest to be still open
            if not conn.closed and now - conn.idle_since < self.idle_s:
                return conn
            self._drop(conn)
        return None

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self.open.discard(conn)

    async def _connect(self, origin: tuple[str, str, int], proxied: bool) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = self.ssl_context() if scheme == "https" else None
        if proxied:
            _, proxy_host, proxy_port = self._via.origin
            address = self._address(proxy_host, proxy_port)
            if tls is not None:
                conn = await self._tunnel(address, host, port, tls)
                self.open.add(conn)
                return conn
            tls = None
        else:
            address = self._address(host, port)
        _, conn = await loop.create_connection(
            lambda: _Connection(self), *address, ssl=tls, server_hostname=host if tls else None,
            happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY_S, interleave=1,
        )
        self.open.add(conn)
        return conn

    async def _tunnel(self, address: tuple[str, int], host: str, port: int, tls: ssl.SSLContext) -> _Connection:
        conn = _Connection(self)
        await connect_tunnel(address, host, port, self._via.basic_auth, tls, conn, self.max_header_bytes)
        return conn

    def _address(self, host: str, port: int) -> tuple[str, int]:
        return self.connect_to(host, port) if self.connect_to is not None else (host, port)

    async def aclose(self) -> None:
        for conn in list(self.open):
            conn.close()
        self.open.clear()
        self.idle.clear()
