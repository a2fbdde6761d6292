"""Reading requests for the daemon's HTTP server: httptools' callbacks collect whole requests
off the bytes of a connection, and refuse one whose head passes `max_header_bytes` (431),
whose body passes its route's `max_body` (413), or that does not parse (400).

Bytes are parsed only as far as the next whole request: a client that pipelines thousands
of small requests in one packet has at most the requests of one SLICE parsed and waiting,
not thousands."""

from __future__ import annotations

from collections import deque
from urllib.parse import parse_qs

import httptools

from .routes import Request, Response, Route, Router, no_route

SLICE = 512

Parsed = tuple[Request, Route | None, list[str], bool]  # request, its route, methods allowed, keep-alive


class Refused(Exception):
    """A request answered without reading the rest of it; the connection then closes."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.response = Response(status, f"{message}\n".encode(), headers=headers or [])


class Messages:
    """httptools callbacks: collects whole requests (several when a client pipelines)."""

    def __init__(self, router: Router, max_header_bytes: int):
        self.router, self.max_header_bytes = router, max_header_bytes
        self.parser = httptools.HttpRequestParser(self)
        self.done: deque[Parsed | Refused] = deque()
        self.continue_: bool = False  # the client waits for "100 Continue" before its body
        self._unparsed = b""
        self._offset = 0
        self._refused = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.head_bytes = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.route: Route | None = None
        self.request: Request | None = None
        self.allowed: list[str] = []

    def feed(self, data: bytes) -> None:
        """Keeps `data` to be parsed by `next`."""
        self._unparsed = self._unparsed[self._offset:] + data
        self._offset = 0

    def next(self) -> Parsed | Refused | None:
        """The next whole request, or the refusal that ends the connection, parsing as much of
        what was fed as that takes; None when what was fed holds no more."""
        while not self.done and self._offset < len(self._unparsed) and not self._refused:
            piece = self._unparsed[self._offset:self._offset + SLICE]
            self._offset += len(piece)
            try:
                self._parse(piece)
            except Refused as exc:
                self._refused = True
                self.done.append(exc)
        if self._offset >= len(self._unparsed):
            self._unparsed, self._offset = b"", 0
        return self.done.popleft() if self.done else None

    def _parse(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, Refused):
                raise exc.__context__ from None
            raise
        except httptools.HttpParserUpgrade:
            raise Refused(400, "upgrade is not supported") from None
        except httptools.HttpParserError:
            raise Refused(400, "malformed request") from None
        if self.request is None and self.head_bytes > self.max_header_bytes:
            raise Refused(431, "request head too large")

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.head_bytes > self.max_header_bytes:
            raise Refused(431, "request head too large")
        method = self.parser.get_method().decode("ascii", "replace")
        try:
            parsed = httptools.parse_url(self.url)
        except httptools.HttpParserInvalidURLError:
            raise Refused(400, "malformed request target") from None
        headers: dict[str, str] = {}
        for name, value in self.raw_headers:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        path = (parsed.path or b"/").decode("latin-1")
        query = parse_qs(parsed.query.decode("latin-1")) if parsed.query else {}
        self.route, params, self.allowed = self.router.find(method, path)
        self.request = Request(method, path, query, headers, params=params)
        length = headers.get("content-length")
        announced = "transfer-encoding" in headers or (length is not None and length != "0")
        if self.route is None and announced:  # answer now; its body is never read
            found = no_route(self.allowed)
            raise Refused(found.status, found.body.decode().strip(), found.headers)
        limit = self.route.max_body if self.route else 0
        if length is not None and length.isdigit() and int(length) > limit:
            raise Refused(413, "request body too large")
        self.continue_ = headers.get("expect", "").lower() == "100-continue"

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > (self.route.max_body if self.route else 0):
            raise Refused(413, "request body too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        request = self.request
        assert request is not None
        request.body = b"".join(self.body)
        self.done.append((request, self.route, self.allowed, self.parser.should_keep_alive()))
        self._reset()
