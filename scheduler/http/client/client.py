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
import ssl
import time
import urllib.request
from collections.abc import Callable, Mapping

from .connection import ERRORS, BodyTooLarge, Response, _Connection
from .proxy import ConnectionClosed, HeadersTooLarge, ProtocolError, connect_tunnel, happy_eyeballs
from .url import Target, check_url, proxy_target, target

__all__ = ["ERRORS", "BodyTooLarge", "ConnectionClosed", "HeadersTooLarge", "Http1Client", "ProtocolError", "Response",
           "Target", "check_url", "target", "tls_context"]

Address = Callable[[str, int], tuple[str, int]]  # (host, port) -> where to connect instead
BODY_METHODS = ("POST", "PUT", "PATCH")
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
EXCERPT_BYTES = 1024  # of a non-2xx body; the caller shows less, see dispatch



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
            **happy_eyeballs(loop),
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
