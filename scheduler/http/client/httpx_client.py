"""The same face as the HTTP/1.1 client over an httpx transport: what a test passes to the
dispatcher (httpx.MockTransport). httpx is imported only when one is made."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from .client import Response


class HttpxClient:
    """The same face as Http1Client over an httpx transport (tests pass httpx.MockTransport)."""

    def __init__(self, verify: Any, transport: Any):
        import httpx

        self.errors = (httpx.HTTPError,)
        self.client = httpx.AsyncClient(transport=transport, follow_redirects=False, verify=verify, timeout=None)

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes, timeout_s: float) -> Response:
        async with asyncio.timeout(timeout_s):
            response = await self.client.request(method, url, headers=list(headers.items()), content=body)
            content = await response.aread()
        excerpt = None
        if not 200 <= response.status_code < 300:
            excerpt = content[:1024].decode(response.charset_encoding or "utf-8", errors="replace")
        return Response(response.status_code, tuple(response.headers.items()), excerpt)

    async def aclose(self) -> None:
        await self.client.aclose()
