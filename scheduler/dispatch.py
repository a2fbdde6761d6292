"""One fire: build the request, send it, retry what is retryable, return an Outcome.

The only module that knows about HTTP. It never touches the store: the engine passes a
callback that records each attempt.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Awaitable, Callable, Mapping
from urllib.parse import quote, unquote, urlsplit

import httptools
import httpx
from standardwebhooks.webhooks import Webhook

from . import __version__
from .config import JobSpec, Settings
from .model import FireId, Outcome, format_slot

log = logging.getLogger("scheduler.dispatch")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
USER_AGENT = f"cron-sidecar/{__version__}"
BODY_METHODS = ("POST", "PUT", "PATCH")
_OVERRIDABLE = {"user-agent": "User-Agent", "content-type": "Content-Type"}


@dataclass(frozen=True)
class Fire:
    job: JobSpec
    slot: int
    epoch: int
    attempt: int = 1  # the first attempt number this fire sends (above 1 for a redelivery)
    deadline: float | None = None  # wall-clock seconds; no retry starts at or after it
    trigger: str | None = None  # a manual fire's request id

    @property
    def key(self) -> str:
        """The idempotency key's inner string: job@slot, or job@manual:<id> for a trigger."""
        return FireId(self.job.name, self.slot, self.trigger).key


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        dry_run: bool = False,
    ):
        self.token = settings.api_token
        self.webhook = Webhook(settings.signing_secret) if settings.signing_secret else None
        self.clock = clock
        self.sleep = sleep
        self.rand = rand
        self.dry_run = dry_run
        # A lean HTTP/1.1 client carries the load (see _Http1Client); an httpx transport
        # passed in, such as httpx.MockTransport, is used as given.
        self.http = _HttpxClient(settings, transport) if transport is not None else _Http1Client(settings)

    def build(self, fire: Fire, attempt: int) -> Request:
        job = fire.job
        slot = format_slot(fire.slot)
        key = fire.key
        headers = {
            "User-Agent": USER_AGENT,
            "Idempotency-Key": f'"{key}"',
            "X-Scheduler-Job": job.name,
            "X-Scheduler-Slot": slot,
            "X-Scheduler-Attempt": str(attempt),
            "X-Scheduler-Fencing-Token": str(fire.epoch),
        }
        if job.body is not None:
            body = job.body
            headers["Content-Type"] = "application/json" if _is_json(body) else "text/plain; charset=utf-8"
        elif job.method in BODY_METHODS:
            # What json.dumps(..., separators=(",", ":")) gives, without its cost per fire.
            body = (f'{{"job":{_json_string(job.name)},"slot":"{slot}","attempt":{attempt},'
                    f'"fencing_token":{fire.epoch},"idempotency_key":{_json_string(key)}}}')
            headers["Content-Type"] = "application/json"
        else:
            body = ""
        for name, value in job.headers:
            ours = _OVERRIDABLE.get(name.lower())  # a job's User-Agent or Content-Type replaces ours
            if ours is not None:
                headers.pop(ours, None)
            headers[name] = value
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.webhook is not None:
            # Standard Webhooks signs "id.timestamp.body"; the library takes a UTC datetime.
            now = datetime.fromtimestamp(self.clock(), timezone.utc)
            headers["webhook-id"] = key
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            headers["webhook-signature"] = self.webhook.sign(key, now, body)
        return Request(job.method, job.url, headers, body.encode())

    async def send(self, fire: Fire, on_attempt: Callable[[int], Awaitable[None]] | None = None) -> Outcome:
        started = self.clock()
        attempt = fire.attempt
        last_attempt = fire.attempt + fire.job.retries
        while True:
            if on_attempt is not None:
                await on_attempt(attempt)
            status, error, retry_after = await self._attempt(fire, attempt)
            if status is not None and 200 <= status < 300:
                return self._outcome("ok", fire, attempt, started, status, None)
            retryable = status is None or status in RETRYABLE_STATUS
            if not retryable or attempt >= last_attempt:
                return self._outcome("failed", fire, attempt, started, status, error)
            n = attempt - fire.attempt + 1
            delay = self.rand() * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (n - 1))
            if retry_after is not None:
                delay = max(delay, retry_after)
            if fire.deadline is not None and self.clock() + delay >= fire.deadline:
                return self._outcome("failed", fire, attempt, started, status, f"{error}; no retry: it would pass the next slot")
            log.info(
                "retrying",
                extra={"job": fire.job.name, "slot": format_slot(fire.slot), "attempt": attempt,
                       "http_status": status, "error": error, "delay_s": round(delay, 3)},
            )
            await self.sleep(delay)
            attempt += 1

    async def _attempt(self, fire: Fire, attempt: int) -> tuple[int | None, str | None, float | None]:
        """(HTTP status or None, error text or None, Retry-After seconds or None)."""
        request = self.build(fire, attempt)
        if self.dry_run:
            log.info(
                "dry run: would send",
                extra={"job": fire.job.name, "slot": format_slot(fire.slot), "attempt": attempt,
                       "method": request.method, "url": request.url,
                       "headers": _loggable(request.headers), "body": request.content.decode(errors="replace")},
            )
            return 200, None, None
        try:
            status, retry_after = await self.http.send(request, fire.job.timeout_s)
        except TimeoutError:
            return None, f"timeout after {fire.job.timeout_s:g}s", None
        except self.http.errors as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, None
        if 200 <= status < 300:
            return status, None, None
        if 300 <= status < 400:
            return status, f"HTTP {status}: redirect not followed", None
        return status, f"HTTP {status}", _retry_after_s(retry_after, self.clock())

    def _outcome(self, status: str, fire: Fire, attempt: int, started: float, http_status, error) -> Outcome:
        now = self.clock()
        return Outcome(status, attempt, max(0.0, now - started), now, http_status, error)

    async def aclose(self) -> None:
        await self.http.aclose()


class ConnectionClosed(ConnectionError):
    """The connection ended before a whole response head arrived."""


@dataclass(frozen=True)
class _Target:
    origin: tuple[str, str, int]  # scheme, host, port: connections are kept per origin
    host_header: str
    path: str  # request target: path and query
    basic_auth: str | None  # from user:password@ in the URL


@lru_cache(maxsize=4096)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if not host.isascii():
        host = host.encode("idna").decode("ascii")  # a Host header and SNI take the A-label form
    port = parts.port or (443 if scheme == "https" else 80)
    netloc_host = f"[{host}]" if ":" in host else host
    default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    path = quote(_lone_percent(parts.path or "/"), safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(_lone_percent(parts.query), safe="/?%:@!$&'()*+,;=-._~")
    basic = None
    if parts.username is not None:
        user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        basic = "Basic " + base64.b64encode(user_pass.encode()).decode()
    return _Target((scheme, host, port), netloc_host if default_port else f"{netloc_host}:{port}", path, basic)


def _lone_percent(text: str) -> str:
    """A % that does not start an escape is itself escaped; %XX stays as written."""
    return re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", text)


class ProtocolError(Exception):
    """The target answered with something that is not a usable HTTP/1.1 response."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, the response parsed by httptools."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()
        except httptools.HttpParserUpgrade:  # a 101 or CONNECT answer we never asked for
            self._fail(ProtocolError(f"HTTP {self.parser.get_status_code()}: unexpected protocol upgrade"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            if self.head_done:
                # A body that ends when the connection does (no Content-Length): the status
                # and headers are all we need.
                self.waiter.set_result(False)
            else:
                self.waiter.set_exception(exc or ConnectionClosed("connection closed before a response"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.head_done = self.status >= 200  # an interim 1xx response is followed by the real one

    def on_message_complete(self) -> None:
        if not self.head_done:
            self.headers = []
            return
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.should_keep_alive())

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def start(self, data: bytes) -> asyncio.Future:
        self.status, self.headers, self.head_done = 0, [], False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def time_out(self) -> None:
        self._fail(TimeoutError())
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _Http1Client:
    """HTTP/1.1 with keep-alive connections kept per origin.

    Written here rather than taken from aiohttp or httpx because it is the leader's hot
    path: with a thousand fires due at one instant, aiohttp spent about 130 us of the loop's
    time per request (half the leader's CPU at 1,000 fires a second) and httpx's pool more;
    this client writes one pre-formatted buffer and lets httptools (llhttp, the parser of
    Node.js and uvicorn) read the response. It does only what a fire needs: one request per
    connection at a time, no redirects, no cookies, no proxies, no compression.
    """

    errors = (OSError, httptools.HttpParserError, ProtocolError)
    # An idle connection is reused for this long at most: less than the shortest keep-alive
    # timeout common among servers (5 s: uvicorn, Node.js), so the app rarely closes one
    # just as a request goes out on it. A request is never sent twice by this client: a
    # connection closed before an answer is a failed attempt, retried under RETRIES with
    # the next attempt number.
    IDLE_S = 4.0

    def __init__(self, settings: Settings):
        self.verify = settings.tls_verify
        self._ssl: ssl.SSLContext | None = None
        self.idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self.open: set[_Connection] = set()

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            verify = self.verify
            context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
            if verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl = context
        return self._ssl

    async def send(self, request: Request, timeout_s: float) -> tuple[int, str | None]:
        """(HTTP status, the Retry-After header or None); TimeoutError after timeout_s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        target = _target(request.url)
        lines = [f"{request.method} {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n"]
        headers = request.headers
        if target.basic_auth is not None and "Authorization" not in headers:
            lines.append(f"Authorization: {target.basic_auth}\r\n")
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        body = request.content
        if body or request.method in BODY_METHODS:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode() + body
        conn = self._idle_connection(target.origin)
        if conn is None:
            async with asyncio.timeout_at(deadline):
                conn = await self._connect(target.origin)
        # One timer per attempt, cheaper than a timeout context on the hot path.
        timer = loop.call_at(deadline, conn.time_out)
        try:
            keep_alive = await conn.start(data)
        except BaseException:  # failed, timed out or cancelled: the connection's state is unknown
            self._drop(conn)
            raise
        finally:
            timer.cancel()
        status, retry_after = conn.status, conn.header(b"retry-after")
        if keep_alive and not conn.closed:
            conn.idle_since = time.monotonic()
            self.idle.setdefault(target.origin, []).append(conn)
        else:
            self._drop(conn)
        return status, retry_after

    def _idle_connection(self, origin: tuple[str, str, int]) -> _Connection | None:
        pool = self.idle.get(origin)
        now = time.monotonic()
        while pool:
            conn = pool.pop()  # the most recently used: the likeliest to be still open
            if not conn.closed and now - conn.idle_since < self.IDLE_S:
                return conn
            self._drop(conn)
        return None

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self.open.discard(conn)

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        if scheme == "https":
            _, conn = await loop.create_connection(_Connection, host, port, ssl=self.ssl_context(), server_hostname=host)
        else:
            _, conn = await loop.create_connection(_Connection, host, port)
        self.open.add(conn)
        return conn

    async def aclose(self) -> None:
        for conn in list(self.open):
            conn.close()
        self.open.clear()
        self.idle.clear()


class _HttpxClient:
    errors = (httpx.HTTPError,)

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport):
        self.client = httpx.AsyncClient(transport=transport, follow_redirects=False, verify=settings.tls_verify, timeout=None)

    async def send(self, request: Request, timeout_s: float) -> tuple[int, str | None]:
        async with asyncio.timeout(timeout_s):
            response = await self.client.request(request.method, request.url, headers=list(request.headers.items()), content=request.content)
            await response.aread()
        return response.status_code, response.headers.get("Retry-After")

    async def aclose(self) -> None:
        await self.client.aclose()


def _retry_after_s(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


_json_string = json.encoder.encode_basestring_ascii  # what json.dumps does to a str


@lru_cache(maxsize=1024)
def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _loggable(headers: Mapping[str, str]) -> dict[str, str]:
    hidden = {"authorization", "webhook-signature"}
    return {k: ("***" if k.lower() in hidden else v) for k, v in headers.items()}
