"""Sending the events: a bounded queue, one background task, retries with backoff.

A fire's path only calls `put` (a heap push, no await); the task sends one event at a time,
signed like the fires (Standard Webhooks over SCHEDULER_SIGNING_SECRET) under the event's own
`webhook-id`, the same on every retry of it so a receiver recognises the retry. A failed send
is retried with backoff until the event is MAX_AGE_S old; a full queue drops the new event.
The API's bearer token goes along only when the URL is on SCHEDULER_API_URL's origin."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, UTC
from typing import TYPE_CHECKING, Any

from standardwebhooks.webhooks import Webhook

from .. import __version__
from ..config.loader import Settings
from ..http.client.client import ERRORS, Http1Client
from ..http.client.url import origin, origin_prefix

from .events import FireNotices

if TYPE_CHECKING:
    from ..observe import Metrics

log = logging.getLogger("scheduler.notify")

QUEUE_MAX = 1000  # events waiting or being retried; a new one beyond is dropped
MAX_AGE_S = 600.0  # an event not delivered 10 minutes after it happened is given up
SEND_TIMEOUT_S = 10.0
FLUSH_S = 2.0  # at shutdown, the longest wait for the events due to leave
BACKOFF_BASE_S, BACKOFF_CAP_S = 1.0, 60.0


@dataclass(order=True)
class _Event:
    due: float
    seq: int
    id: str = field(compare=False)
    kind: str = field(compare=False)
    body: bytes = field(compare=False)
    at: float = field(compare=False)  # when it happened
    tries: int = field(default=0, compare=False)


class Notifier:
    """The Outbox of events.py for SCHEDULER_NOTIFY_URL. `start()` in the running loop,
    `aclose()` at the end; `put()` from anywhere on the loop's thread."""

    def __init__(self, settings: Settings, metrics: Metrics, *, clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random, queue_max: int = QUEUE_MAX, max_age_s: float = MAX_AGE_S):
        assert settings.notify_url is not None
        self.url = str(settings.notify_url)
        self.metrics = metrics
        self.clock, self.rand = clock, rand
        self.queue_max, self.max_age_s = queue_max, max_age_s
        self.webhook = Webhook(settings.signing_secret) if settings.signing_secret else None
        on_api = settings.api_url is not None and (
            self.url.startswith(origin_prefix(settings.api_url)) or origin(self.url) == origin(settings.api_url))
        self.token = settings.api_token if on_api else None
        self.http = Http1Client(
            verify=settings.tls_verify, client_cert=settings.tls_client_cert, client_key=settings.tls_client_key,
            key_password=settings.tls_client_key_password, proxy=settings.http_proxy, no_proxy=settings.no_proxy)
        self._heap: list[_Event] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._sending = False

    def put(self, kind: str, data: dict[str, Any]) -> None:
        """Queue one event; never waits. A full queue drops it, with a log line and a metric."""
        now = self.clock()
        if len(self._heap) >= self.queue_max:
            self.metrics.notifications.labels("dropped").inc()
            log.warning("notification dropped: the queue is full", extra={"event": kind, "queued": len(self._heap),
                                                                          "job": data.get("job")})
            return
        at = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
        body = json.dumps({"type": kind, "timestamp": at, "data": data}, separators=(",", ":")).encode()
        heapq.heappush(self._heap, _Event(now, next(self._seq), f"msg_{secrets.token_hex(12)}", kind, body, now))
        self.metrics.notifications_queued.set(len(self._heap))
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notify")

    async def aclose(self, flush_s: float = FLUSH_S) -> None:
        """Stop, after up to `flush_s` for the events due now (a failure told just before
        SIGTERM); events waiting for a retry are given up."""
        end = time.monotonic() + flush_s
        while self._task is not None and not self._task.done() and time.monotonic() < end and (
                self._sending or (self._heap and self._heap[0].due <= self.clock())):
            await asyncio.sleep(0.05)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.http.aclose()

    async def _run(self) -> None:
        while True:
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._heap[0].due - self.clock()
            if wait > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass
                continue
            event = heapq.heappop(self._heap)
            self._sending = True
            try:
                error = await self._send(event)
            except Exception as exc:  # noqa: BLE001 - the sender must outlive any one event
                error = f"{type(exc).__name__}: {exc}"
            finally:
                self._sending = False
            self._done(event, error)
            self.metrics.notifications_queued.set(len(self._heap))

    def _done(self, event: _Event, error: str | None) -> None:
        if error is None:
            self.metrics.notifications.labels("sent").inc()
            log.info("notification sent", extra={"event": event.kind, "webhook_id": event.id, "attempt": event.tries})
            return
        now = self.clock()
        delay = (0.5 + self.rand() / 2) * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(event.tries - 1, 16))
        if now + delay - event.at > self.max_age_s:
            self.metrics.notifications.labels("failed").inc()
            log.warning("notification given up", extra={"event": event.kind, "webhook_id": event.id,
                                                        "attempts": event.tries, "error": error})
            return
        log.info("notification failed; retrying", extra={"event": event.kind, "webhook_id": event.id,
                                                         "attempt": event.tries, "error": error, "delay_s": round(delay, 3)})
        event.due = now + delay
        heapq.heappush(self._heap, event)

    async def _send(self, event: _Event) -> str | None:
        """One attempt: None when the receiver took it (2xx), else what went wrong."""
        event.tries += 1
        headers = {"User-Agent": f"cron-sidecar/{__version__}", "Content-Type": "application/json",
                   "webhook-id": event.id}
        if self.webhook is not None:
            now = datetime.fromtimestamp(self.clock(), UTC)
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            headers["webhook-signature"] = self.webhook.sign(event.id, now, event.body.decode())
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = await self.http.send("POST", self.url, headers, event.body, SEND_TIMEOUT_S)
        except TimeoutError:
            return f"timeout after {SEND_TIMEOUT_S:g}s"
        except ERRORS as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None if 200 <= response.status < 300 else f"HTTP {response.status}"


def start_notifier(settings: Settings, metrics: Metrics) -> tuple[Notifier, FireNotices]:
    """The sender for SCHEDULER_NOTIFY_URL, started in the running loop, and the engine's
    notices of outcomes that feed it."""
    notifier = Notifier(settings, metrics)
    notifier.start()
    return notifier, FireNotices(notifier, settings.notify_after)
