"""One fire: build the request, send it, retry what is retryable, return an Outcome.

The only module that knows about HTTP. It never touches the store: the engine passes a
callback that records each attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Awaitable, Callable, Mapping

import aiohttp
import httpx
from multidict import CIMultiDict
from standardwebhooks.webhooks import Webhook

from . import __version__
from .config import JobSpec, Settings
from .schedule import format_slot
from .store import Outcome

log = logging.getLogger("scheduler.dispatch")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
USER_AGENT = f"cron-sidecar/{__version__}"
BODY_METHODS = ("POST", "PUT", "PATCH")


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
        if self.trigger:
            return f"{self.job.name}@manual:{self.trigger}"
        return f"{self.job.name}@{format_slot(self.slot)}"


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: CIMultiDict  # case-insensitive: a job's Content-Type replaces ours
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
        # aiohttp carries the load (measured: several times less CPU per request than
        # httpx's pool with hundreds of calls in flight); an httpx transport passed in,
        # such as httpx.MockTransport, is used as given.
        self.http = _HttpxClient(settings, transport) if transport is not None else _AiohttpClient(settings)

    def build(self, fire: Fire, attempt: int) -> Request:
        job = fire.job
        slot = format_slot(fire.slot)
        key = fire.key
        headers = CIMultiDict({
            "User-Agent": USER_AGENT,
            "Idempotency-Key": f'"{key}"',
            "X-Scheduler-Job": job.name,
            "X-Scheduler-Slot": slot,
            "X-Scheduler-Attempt": str(attempt),
            "X-Scheduler-Fencing-Token": str(fire.epoch),
        })
        if job.body is not None:
            body = job.body
            headers["Content-Type"] = "application/json" if _is_json(body) else "text/plain; charset=utf-8"
        elif job.method in BODY_METHODS:
            body = json.dumps(
                {"job": job.name, "slot": slot, "attempt": attempt, "fencing_token": fire.epoch, "idempotency_key": key},
                separators=(",", ":"),
            )
            headers["Content-Type"] = "application/json"
        else:
            body = ""
        for name, value in job.headers:
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
            async with asyncio.timeout(fire.job.timeout_s):
                status, headers = await self.http.send(request)
        except TimeoutError:
            return None, f"timeout after {fire.job.timeout_s:g}s", None
        except self.http.errors as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, None
        if 200 <= status < 300:
            return status, None, None
        if 300 <= status < 400:
            return status, f"HTTP {status}: redirect not followed", None
        return status, f"HTTP {status}", _retry_after_s(headers.get("Retry-After"), self.clock())

    def _outcome(self, status: str, fire: Fire, attempt: int, started: float, http_status, error) -> Outcome:
        now = self.clock()
        return Outcome(status, attempt, max(0.0, now - started), now, http_status, error)

    async def aclose(self) -> None:
        await self.http.aclose()


class _AiohttpClient:
    """One shared session, opened in the running loop on first use."""

    errors = (aiohttp.ClientError, OSError)

    def __init__(self, settings: Settings):
        self.limit = settings.max_concurrency
        verify = settings.tls_verify
        self.ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self.session: aiohttp.ClientSession | None = None

    async def send(self, request: Request) -> tuple[int, Mapping[str, str]]:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self.limit, limit_per_host=0, ssl=self.ssl, ttl_dns_cache=60)
            # No Accept-Encoding/Accept we did not ask for, and no cookie jar: every call
            # stands alone.
            self.session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                skip_auto_headers=("Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=None),  # the caller times each attempt
            )
        async with self.session.request(
            request.method, request.url, headers=request.headers, data=request.content or None, allow_redirects=False
        ) as response:
            await response.read()
            return response.status, response.headers

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()


class _HttpxClient:
    errors = (httpx.HTTPError,)

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport):
        self.client = httpx.AsyncClient(transport=transport, follow_redirects=False, verify=settings.tls_verify, timeout=None)

    async def send(self, request: Request) -> tuple[int, Mapping[str, str]]:
        response = await self.client.request(request.method, request.url, headers=list(request.headers.items()), content=request.content)
        await response.aread()
        return response.status_code, response.headers

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


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _loggable(headers: Mapping[str, str]) -> dict[str, str]:
    hidden = {"authorization", "webhook-signature"}
    return {k: ("***" if k.lower() in hidden else v) for k, v in headers.items()}
