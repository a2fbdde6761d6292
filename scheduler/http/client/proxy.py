"""A CONNECT tunnel through an HTTP proxy, and the errors the HTTP/1.1 client raises."""

from __future__ import annotations

import asyncio
import ssl

HAPPY_EYEBALLS_DELAY_S = 0.25  # RFC 8305's recommended connection attempt delay


def happy_eyeballs(loop: asyncio.AbstractEventLoop) -> dict:
    """The create_connection arguments for RFC 8305 on this loop: asyncio's own loop takes
    them; uvloop's does not (it raises TypeError on the keyword), so there it is left out."""
    if isinstance(loop, asyncio.BaseEventLoop):
        return {"happy_eyeballs_delay": HAPPY_EYEBALLS_DELAY_S, "interleave": 1}
    return {}


class ConnectionClosed(ConnectionError):
    """The connection ended before a whole response head arrived."""


class ProtocolError(Exception):
    """The target answered with something that is not a usable HTTP/1.1 response."""


class HeadersTooLarge(ProtocolError):
    """The response head is over the client's cap on header bytes or header count."""


async def connect_tunnel(address: tuple[str, int], host: str, port: int, basic_auth: str | None,
                         tls: ssl.SSLContext, protocol: asyncio.Protocol, limit: int) -> asyncio.Transport:
    """Connect to the proxy at `address`, ask it for a tunnel to host:port, then speak TLS
    to the host inside it; `protocol` gets the TLS transport (connection_made is called)."""
    loop = asyncio.get_running_loop()
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    auth = f"Proxy-Authorization: {basic_auth}\r\n" if basic_auth else ""
    transport, handshake = await loop.create_connection(
        lambda: _ConnectHandshake(limit), *address, **happy_eyeballs(loop))
    try:
        transport.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n".encode())
        status_line = await handshake.answer
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].startswith("2"):
            raise ProtocolError(f"proxy refused CONNECT {authority}: {status_line[:100]}")
        tls_transport = await loop.start_tls(transport, protocol, tls, server_hostname=host)
    except BaseException:
        transport.abort()
        raise
    if tls_transport is None:  # start_tls gives None only for a transport that closed meanwhile
        raise ConnectionError("the proxy tunnel closed during the TLS handshake")
    protocol.connection_made(tls_transport)
    return tls_transport


class _ConnectHandshake(asyncio.Protocol):
    """Reads a proxy's answer to CONNECT: its status line, once the head has ended."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = b""
        self.answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            # A proxy speaks only after the tunnel's client does (TLS), so nothing follows.
            self.answer.set_result(self.buffer.split(b"\r\n", 1)[0].decode("latin-1"))
        elif len(self.buffer) > self.limit:
            self.answer.set_exception(HeadersTooLarge(f"proxy's CONNECT answer over {self.limit} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc or ConnectionClosed("the proxy closed the connection before answering CONNECT"))
