"""One fire: build the request, send it, retry what is retryable, return an Outcome.

The only module that knows about HTTP requests of a fire; the connections are
scheduler.http.client's. It never touches the store: the engine's registry of fires passes
a callback that records each attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, UTC
from functools import lru_cache
from typing import Any, Protocol
from collections.abc import Awaitable, Callable, Mapping

from standardwebhooks.webhooks import Webhook

from . import __version__
from .config.loader import JobSpec, Settings
from .http.client.answers import EXCERPT_BYTES, error_text, excerpt_of, retry_after_s  # noqa: F401  (EXCERPT_BYTES: public)
from .http.client.client import ERRORS, Http1Client
from .http.client.httpx_client import HttpxClient
from .http.client.url import origin, origin_prefix
from .model import Claim, Outcome, fire_key, format_slot
from .origins import Origins

log = logging.getLogger("scheduler.dispatch")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
USER_AGENT = f"cron-sidecar/{__version__}"
BODY_METHODS = ("POST", "PUT", "PATCH")
_OVERRIDABLE = {"user-agent": "User-Agent", "content-type": "Content-Type"}


@dataclass(frozen=True, slots=True)
class Fire:
    """One claimed fire, from its start to its recorded outcome: the job it calls, the claim
    it came from (its slot, first attempt and trigger id, its name in the store), and the
    leadership (epoch) that claimed it."""

    job: JobSpec
    claim: Claim
    epoch: int
    deadline: float | None = None  # wall-clock seconds; no retry starts at or after it
    retry_until: float | None = None  # wall-clock seconds: RETRY_FOR's end, RETRIES used up or not

    @property
    def key(self) -> str:
        """The idempotency key's inner string: job@slot, or job@manual:<id> for a trigger."""
        return fire_key(self.job.name, self.claim.slot, self.claim.trigger)


class Places(Protocol):
    """SCHEDULER_MAX_CONCURRENCY's places (engine.places.Places): one is held for each HTTP
    call while it is under way, none while a fire waits for its origin or between retries."""

    def take(self, slot: float, /) -> asyncio.Future | None: ...  # None: taken; else wait for it

    async def wait(self, waiter: asyncio.Future, /) -> None: ...

    def give(self) -> None: ...


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes


@dataclass(frozen=True)
class _Attempt:
    status: int | None = None  # None: no answer
    error: str | None = None
    retry_after_s: float | None = None
    excerpt: str | None = None


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: Any = None,  # an httpx.AsyncBaseTransport, such as httpx.MockTransport
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        dry_run: bool = False,
        scrub: Callable[[str], str] = lambda text: text,
    ):
        self.token = settings.api_token
        # The bearer token goes to the app's origin only (a job elsewhere is signed but never
        # gets it); a URL that starts with api_home is on it without being parsed, per fire.
        self.api_origin = origin(settings.api_url) if settings.api_url else None
        self.api_home = origin_prefix(settings.api_url)
        self.webhook = Webhook(settings.signing_secret) if settings.signing_secret else None
        self.traceparent = settings.traceparent
        self.clock, self.sleep, self.rand = clock, sleep, rand
        self.dry_run = dry_run
        self.scrub = scrub  # applied to every excerpt of the app's answer
        # The lean HTTP/1.1 client carries the load; an httpx transport passed in is used as
        # given (tests), with httpx imported only then.
        self.http: Http1Client | HttpxClient = HttpxClient(settings.tls_verify, transport) if transport is not None else Http1Client(
            verify=settings.tls_verify, client_cert=settings.tls_client_cert,
            client_key=settings.tls_client_key, key_password=settings.tls_client_key_password,
            proxy=settings.http_proxy, no_proxy=settings.no_proxy,
        )
        self.errors = self.http.errors if isinstance(self.http, HttpxClient) else ERRORS
        self.origins = Origins(settings.target_max_in_flight or settings.max_concurrency, settings.target_rate, clock, sleep)

    def build(self, fire: Fire, attempt: int) -> Request:
        job = fire.job
        slot = format_slot(fire.claim.slot)
        key = fire.key
        headers = {
            "User-Agent": USER_AGENT,
            "Idempotency-Key": f'"{key}"',
            "X-Scheduler-Job": job.name,
            "X-Scheduler-Slot": slot,
            "X-Scheduler-Attempt": str(attempt),
            "X-Scheduler-Fencing-Token": str(fire.epoch),
        }
        if fire.claim.trigger:
            headers["X-Scheduler-Trigger"] = fire.claim.trigger
        if self.traceparent:
            headers["traceparent"] = traceparent(key)
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
        if self.token and (job.url.startswith(self.api_home) or origin(job.url) == self.api_origin):
            headers["Authorization"] = f"Bearer {self.token}"
        if self.webhook is not None:
            # Standard Webhooks signs "id.timestamp.body"; the library takes a UTC datetime.
            now = datetime.fromtimestamp(self.clock(), UTC)
            headers["webhook-id"] = key
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            headers["webhook-signature"] = self.webhook.sign(key, now, body)
        return Request(job.method, job.url, headers, body.encode())

    async def send(self, fire: Fire, on_retry: Callable[[int], Awaitable[None]] | None = None,
                   places: Places | None = None) -> Outcome:
        """The fire's outcome; whatever goes wrong inside becomes a failed outcome with its
        error text (only cancellation leaves as an exception). `on_retry(attempt)` is awaited
        before each attempt after the first (the claim itself recorded the first). Each
        attempt takes a place among its origin's calls, then one of `places` (the global cap,
        if given) for the HTTP call alone: waiting for a throttled origin holds none of them.
        One coroutine, not a wrapper around a loop: every await of a fire resumes each frame
        of its chain, a thousand times a second."""
        started = self.clock()
        attempt = fire.claim.attempt
        last_attempt = fire.claim.attempt + fire.job.retries
        try:
            while True:
                # Each attempt (not the sleeps between) takes a place among its origin's calls.
                lane = self.origins.lane(fire.job.url)
                if not lane.take():
                    await lane.wait(fire.claim.slot)
                if places is not None:
                    # Then a place among all calls in flight, taken only once the origin has
                    # let the call go: an origin's queue never holds the others' places.
                    waiter = places.take(fire.claim.slot)
                    if waiter is not None:
                        try:
                            await places.wait(waiter)
                        except BaseException:
                            lane.give()
                            raise
                began = self.clock()
                try:
                    result = await self._attempt(fire, attempt)
                except BaseException:
                    lane.give()
                    raise
                finally:
                    if places is not None:
                        places.give()
                lane.done(began, fire.job.name, result.status, result.retry_after_s)
                status, error = result.status, result.error
                if status is not None and 200 <= status < 300:
                    return self._outcome("ok", fire, attempt, started, status, None)
                retryable = status is None or status in RETRYABLE_STATUS
                now, until = self.clock(), fire.retry_until
                on_time = attempt >= last_attempt  # RETRIES used up: RETRY_FOR alone goes on
                if not retryable or (on_time and (until is None or now >= until)):
                    return self._outcome("failed", fire, attempt, started, status, error, result.excerpt)
                delay = self._backoff_s(attempt - fire.claim.attempt + 1, result.retry_after_s)
                if on_time and until is not None and now + delay > until:
                    delay = until - now  # one last attempt at the deadline
                if fire.deadline is not None and now + delay >= fire.deadline:
                    return self._outcome("failed", fire, attempt, started, status,
                                         f"{error}; no retry: it would pass the next slot", result.excerpt)
                log.info("retrying", extra={**self._log_fields(fire), "attempt": attempt, "http_status": status,
                                            "error": error, "delay_s": round(delay, 3)})
                await self.sleep(delay)
                attempt += 1
                if on_retry is not None:
                    await on_retry(attempt)
        except Exception as exc:  # noqa: BLE001 - a fire must end with an outcome
            log.exception("fire failed inside the scheduler", extra=self._log_fields(fire))
            return self._outcome("failed", fire, attempt, started, None, f"internal error: {error_text(exc)}")

    def _backoff_s(self, n: int, retry_after_s: float | None) -> float:
        """The wait before retry `n` of a fire: full jitter over 1, 2, 4... s capped at a
        minute, and never less than the app's Retry-After."""
        delay = self.rand() * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (min(n, 16) - 1))
        return delay if retry_after_s is None else max(delay, retry_after_s)

    async def _attempt(self, fire: Fire, attempt: int) -> _Attempt:
        request = self.build(fire, attempt)
        if self.dry_run:
            log.info("dry run: would send", extra={**self._log_fields(fire), "attempt": attempt, "method": request.method,
                     "url": request.url, "headers": _loggable(request.headers), "body": request.content.decode(errors="replace")})
            return _Attempt(200)
        try:
            response = await self.http.send(request.method, request.url, request.headers, request.content,
                                            fire.job.timeout_s)
        except TimeoutError:
            return _Attempt(None, f"timeout after {fire.job.timeout_s:g}s")
        except self.errors as exc:
            return _Attempt(None, error_text(exc))
        status = response.status
        if 200 <= status < 300:
            return _Attempt(status)
        excerpt = excerpt_of(response.excerpt, self.scrub)
        if 300 <= status < 400:
            return _Attempt(status, f"HTTP {status}: redirect not followed", None, excerpt)
        return _Attempt(status, f"HTTP {status}", retry_after_s(response.header("retry-after"), self.clock()), excerpt)

    def _outcome(self, status: str, fire: Fire, attempt: int, started: float, http_status, error,
                 excerpt: str | None = None) -> Outcome:
        now = self.clock()
        return Outcome(status, attempt, max(0.0, now - started), now, http_status, error, excerpt)

    def _log_fields(self, fire: Fire) -> dict[str, str]:
        """A fire's names in its log lines; with traceparent on, the trace its calls carry."""
        fields = {"job": fire.job.name, "slot": format_slot(fire.claim.slot)}
        return {**fields, "trace_id": trace_id(fire.key)} if self.traceparent else fields

    async def aclose(self) -> None:
        await self.http.aclose()


def trace_id(key: str) -> str:
    """A fire's W3C trace id, from its idempotency key: every attempt and redelivery shares it."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def traceparent(key: str) -> str:
    """A W3C traceparent: the fire's trace id, a fresh span id per attempt, sampled."""
    return f"00-{trace_id(key)}-{secrets.token_hex(8)}-01"


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
