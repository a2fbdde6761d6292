"""One fire (scheduler/dispatch.py): the request it builds and the retry policy, against
httpx.MockTransport with an injected clock, sleep and random source."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import datetime, UTC
from email.utils import format_datetime
from importlib.metadata import version
from typing import Any
from collections.abc import Callable

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import scheduler
from scheduler.config import loader as config
from scheduler.dispatch import Dispatcher, Fire
from scheduler.model import Claim, TRIGGER

UTC = UTC
SLOT = int(datetime(2026, 11, 22, 3, 0, 0, tzinfo=UTC).timestamp())
SLOT_TEXT = "2026-11-22T03:00:00Z"
KEY = f"nightly-report@{SLOT_TEXT}"
NOW = float(SLOT + 2)  # the fake clock's start: just after the slot
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
JOB = "SCHEDULER_JOB_NIGHTLY_REPORT_"

RETRYABLE = [408, 425, 429, 500, 502, 503, 504]
FINAL_4XX = [400, 401, 403, 404, 409, 410, 422]
REDIRECTS = [301, 302, 303, 307, 308]


def make_settings(job: dict[str, str] | None = None, **env: str) -> config.Settings:
    values = {
        "SCHEDULER_API_URL": "http://app:8000/api",
        JOB + "SCHEDULE": "0 3 * * *",
        JOB + "URL": "/tasks/report",
        **{JOB + k: v for k, v in (job or {}).items()},
        **env,
    }
    return config.load(values)


class Harness:
    """Fake clock, sleep and target. The script says what each request gets: a status, a
    (status, headers) pair, an exception to raise, or an async callable; the last entry
    repeats."""

    def __init__(self, script: list[Any], *, now: float = NOW, request_cost_s: float = 0.0):
        self.now = now
        self.script = list(script)
        self.request_cost_s = request_cost_s
        self.sleeps: list[float] = []
        self.requests: list[httpx.Request] = []
        self.sent_at: list[float] = []
        self.attempt_callbacks: list[int] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.sent_at.append(self.now)
        self.now += self.request_cost_s
        action = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(action, BaseException):
            raise type(action)(str(action), request=request) if isinstance(action, httpx.RequestError) else action
        if callable(action):
            return await action(request)
        if isinstance(action, tuple):
            status, headers = action
            return httpx.Response(status, headers=headers)
        return httpx.Response(action)

    def header(self, name: str) -> list[str]:
        return [r.headers.get(name) for r in self.requests]


def fire(
    settings: config.Settings,
    harness: Harness,
    *,
    attempt: int = 1,
    deadline: float | None = None,
    epoch: int = 42,
    rand: Callable[[], float] = lambda: 0.5,
):
    async def go():
        d = Dispatcher(
            settings,
            transport=httpx.MockTransport(harness.handler),
            clock=harness.clock,
            sleep=harness.sleep,
            rand=rand,
        )
        try:

            async def on_attempt(n: int) -> None:
                harness.attempt_callbacks.append(n)

            f = Fire(settings.jobs[0], Claim(settings.jobs[0].name, SLOT, attempt=attempt), epoch, deadline)
            return await d.send(f, on_attempt)
        finally:
            await d.aclose()

    return asyncio.run(go())


# ---------------------------------------------------------------------------
# the request
# ---------------------------------------------------------------------------


def test_headers_of_a_post() -> None:
    h = Harness([200])
    outcome = fire(make_settings(SCHEDULER_API_TOKEN="tok-abc"), h)
    assert outcome.status == "ok" and outcome.attempts == 1 and outcome.http_status == 200
    (req,) = h.requests
    assert req.method == "POST"
    assert str(req.url) == "http://app:8000/api/tasks/report"
    assert req.headers["Authorization"] == "Bearer tok-abc"
    assert req.headers["Idempotency-Key"] == f'"{KEY}"'
    assert req.headers["Idempotency-Key"] == '"nightly-report@2026-11-22T03:00:00Z"'
    assert req.headers["X-Scheduler-Job"] == "nightly-report"
    assert req.headers["X-Scheduler-Slot"] == SLOT_TEXT
    assert req.headers["X-Scheduler-Attempt"] == "1"
    assert req.headers["X-Scheduler-Fencing-Token"] == "42"
    assert req.headers["User-Agent"] == f"cron-sidecar/{scheduler.__version__}"
    assert req.headers["User-Agent"] == f"cron-sidecar/{version('cron-sidecar')}"
    assert req.headers["Content-Type"] == "application/json"
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert name not in req.headers  # no signing secret configured


def test_no_authorization_without_a_token() -> None:
    h = Harness([200])
    fire(make_settings(), h)
    assert "Authorization" not in h.requests[0].headers


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_json_envelope_for_body_methods(method: str) -> None:
    h = Harness([200])
    fire(make_settings({"METHOD": method}), h, epoch=7)
    (req,) = h.requests
    assert req.method == method
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.content) == {
        "job": "nightly-report",
        "slot": SLOT_TEXT,
        "attempt": 1,
        "fencing_token": 7,
        "idempotency_key": KEY,
    }


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_no_body_for_other_methods(method: str) -> None:
    h = Harness([200])
    fire(make_settings({"METHOD": method}), h)
    (req,) = h.requests
    assert req.method == method
    assert req.content == b""
    assert "Content-Type" not in req.headers
    assert req.headers["Idempotency-Key"] == f'"{KEY}"'


def test_raw_body_replaces_the_envelope() -> None:
    h = Harness([200])
    fire(make_settings({"BODY": '{"report": "daily", "format": "pdf"}'}), h)
    assert h.requests[0].content == b'{"report": "daily", "format": "pdf"}'

    h = Harness([200])
    fire(make_settings({"BODY": "run it", "METHOD": "PUT"}), h)
    assert h.requests[0].content == b"run it"


def test_extra_headers_are_sent() -> None:
    h = Harness([200])
    fire(make_settings({"HEADERS": '{"X-Team": "ops", "X-Env": "prod"}'}, SCHEDULER_API_TOKEN="t"), h)
    req = h.requests[0]
    assert req.headers["X-Team"] == "ops"
    assert req.headers["X-Env"] == "prod"
    assert req.headers["Authorization"] == "Bearer t"
    assert req.headers["Idempotency-Key"] == f'"{KEY}"'


@pytest.mark.parametrize("name", ["Content-Type", "content-type", "CONTENT-TYPE"])
def test_a_job_content_type_replaces_the_default_whatever_its_case(name: str) -> None:
    h = Harness([200])
    fire(make_settings({"HEADERS": json.dumps({name: "application/vnd.api+json"})}), h)
    assert h.requests[0].headers.get_list("Content-Type") == ["application/vnd.api+json"]


@pytest.mark.parametrize("name", ["User-Agent", "user-agent"])
def test_a_job_header_never_duplicates_a_default_one(name: str) -> None:
    h = Harness([200])
    fire(make_settings({"HEADERS": json.dumps({name: "custom-agent/1"})}), h)
    assert len(h.requests[0].headers.get_list("User-Agent")) == 1


def test_redelivery_keeps_the_key_and_continues_the_attempt_count() -> None:
    h = Harness([503, 200])
    outcome = fire(make_settings(), h, attempt=3)
    assert outcome.status == "ok" and outcome.attempts == 4
    assert h.header("X-Scheduler-Attempt") == ["3", "4"]
    assert h.header("Idempotency-Key") == [f'"{KEY}"'] * 2
    assert [json.loads(r.content)["attempt"] for r in h.requests] == [3, 4]
    assert h.attempt_callbacks == [4]  # the retry only: the claim recorded attempt 3


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_success(status: int) -> None:
    h = Harness([status])
    outcome = fire(make_settings(), h)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("ok", 1, status)
    assert len(h.requests) == 1


# ---------------------------------------------------------------------------
# retries
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", RETRYABLE)
def test_retryable_status_is_retried_with_the_same_key(status: int) -> None:
    h = Harness([status, status, 200])
    outcome = fire(make_settings(), h)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("ok", 3, 200)
    assert h.header("X-Scheduler-Attempt") == ["1", "2", "3"]
    assert h.header("Idempotency-Key") == [f'"{KEY}"'] * 3
    assert h.header("X-Scheduler-Slot") == [SLOT_TEXT] * 3
    assert [json.loads(r.content)["attempt"] for r in h.requests] == [1, 2, 3]
    assert len(h.sleeps) == 2


@pytest.mark.parametrize("status", RETRYABLE)
def test_retries_are_bounded_by_retries(status: int) -> None:
    h = Harness([status])
    outcome = fire(make_settings({"RETRIES": "3"}), h)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 4, status)
    assert h.header("X-Scheduler-Attempt") == ["1", "2", "3", "4"]
    assert len(h.sleeps) == 3


def test_retries_zero_means_one_attempt() -> None:
    h = Harness([503])
    outcome = fire(make_settings({"RETRIES": "0"}), h)
    assert (outcome.status, outcome.attempts) == ("failed", 1)
    assert len(h.requests) == 1 and h.sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_errors_are_retried(error: Exception) -> None:
    h = Harness([error, error, 200])
    outcome = fire(make_settings(), h)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("ok", 3, 200)
    assert h.header("X-Scheduler-Attempt") == ["1", "2", "3"]


def test_transport_errors_exhaust_retries() -> None:
    h = Harness([httpx.ConnectError("connection refused")])
    outcome = fire(make_settings({"RETRIES": "2"}), h)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 3, None)
    assert outcome.error


@pytest.mark.parametrize("status", FINAL_4XX)
def test_other_4xx_is_final(status: int) -> None:
    h = Harness([status, 200])
    outcome = fire(make_settings(), h)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 1, status)
    assert len(h.requests) == 1 and h.sleeps == []


@pytest.mark.parametrize("status", REDIRECTS)
def test_redirects_are_not_followed_nor_retried(status: int) -> None:
    h = Harness([(status, {"Location": "http://elsewhere.example/other"}), 200])
    outcome = fire(make_settings(), h)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 1, status)
    assert [str(r.url) for r in h.requests] == ["http://app:8000/api/tasks/report"]
    assert h.sleeps == []


# ---------------------------------------------------------------------------
# backoff: full jitter, base 1 s doubling, cap 60 s; Retry-After as a minimum
# ---------------------------------------------------------------------------


def test_backoff_upper_bounds_double_and_cap_at_60s() -> None:
    h = Harness([503])
    fire(make_settings({"RETRIES": "9"}), h, rand=lambda: 1.0)
    assert h.sleeps == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_backoff_is_scaled_by_the_random_draw() -> None:
    h = Harness([503])
    fire(make_settings({"RETRIES": "8"}), h, rand=lambda: 0.25)
    assert h.sleeps == [0.25, 0.5, 1, 2, 4, 8, 15, 15]


def test_backoff_can_be_zero() -> None:
    h = Harness([503])
    fire(make_settings({"RETRIES": "3"}), h, rand=lambda: 0.0)
    assert h.sleeps == [0, 0, 0]


def test_backoff_stays_within_full_jitter_bounds() -> None:
    import random

    rng = random.Random(1234)
    h = Harness([500])
    fire(make_settings({"RETRIES": "12"}), h, rand=rng.random)
    assert len(h.sleeps) == 12
    for n, delay in enumerate(h.sleeps):
        assert 0 <= delay <= min(60.0, 2.0**n), (n, delay)
    assert len(set(h.sleeps)) == 12  # jittered, not a fixed ladder


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_a_minimum(status: int) -> None:
    h = Harness([(status, {"Retry-After": "7"}), 200])
    outcome = fire(make_settings(), h, rand=lambda: 0.1)
    assert outcome.status == "ok"
    assert h.sleeps == [7]
    assert h.sent_at == [NOW, NOW + 7]


def test_retry_after_below_the_backoff_does_not_shorten_it() -> None:
    h = Harness([(503, {"Retry-After": "0"}), (503, {"Retry-After": "1"}), 200])
    fire(make_settings(), h, rand=lambda: 1.0)
    assert h.sleeps == [1, 2]


def test_retry_after_http_date() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)
    h = Harness([(503, {"Retry-After": when}), 200])
    outcome = fire(make_settings(), h, rand=lambda: 0.5)
    assert outcome.status == "ok"
    assert h.sleeps == [pytest.approx(30, abs=1)]
    assert h.sent_at[1] >= NOW + 29


def test_retry_after_date_in_the_past_falls_back_to_backoff() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW - 3600, UTC), usegmt=True)
    h = Harness([(503, {"Retry-After": when}), 200])
    fire(make_settings(), h, rand=lambda: 0.5)
    assert h.sleeps == [0.5]


def test_unparseable_retry_after_is_ignored() -> None:
    h = Harness([(503, {"Retry-After": "soon-ish"}), 200])
    outcome = fire(make_settings(), h, rand=lambda: 0.5)
    assert outcome.status == "ok" and h.sleeps == [0.5]


def test_retry_after_on_a_final_status_does_not_retry() -> None:
    h = Harness([(400, {"Retry-After": "1"}), 200])
    outcome = fire(make_settings(), h)
    assert outcome.attempts == 1 and len(h.requests) == 1


# ---------------------------------------------------------------------------
# the deadline (the job's next slot)
# ---------------------------------------------------------------------------


def test_no_retry_starts_at_or_after_the_deadline() -> None:
    deadline = NOW + 2.5
    h = Harness([503], request_cost_s=0.2)
    outcome = fire(make_settings({"RETRIES": "10"}), h, deadline=deadline, rand=lambda: 1.0)
    # attempt 1 at NOW, backoff 1 s -> attempt 2 at NOW+1.2; backoff 2 s would start at NOW+3.4
    assert outcome.status == "failed"
    assert outcome.attempts == 2
    assert h.sent_at == [NOW, pytest.approx(NOW + 1.2)]
    assert all(t < deadline for t in h.sent_at)
    assert h.now < deadline  # it did not sleep past the deadline either


def test_retry_after_past_the_deadline_gives_up_at_once() -> None:
    h = Harness([(503, {"Retry-After": "120"})])
    outcome = fire(make_settings({"RETRIES": "5"}), h, deadline=NOW + 60)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 1, 503)
    assert h.sleeps == []
    assert outcome.error


@pytest.mark.parametrize("seed", range(5))
def test_deadline_holds_with_random_backoff(seed: int) -> None:
    import random

    rng = random.Random(seed)
    deadline = NOW + 20
    h = Harness([502], request_cost_s=0.3)
    fire(make_settings({"RETRIES": "100"}), h, deadline=deadline, rand=rng.random)
    assert len(h.sent_at) >= 2
    assert all(t < deadline for t in h.sent_at)
    assert h.now <= deadline + 0.3  # only the last attempt's own duration may cross it


# ---------------------------------------------------------------------------
# the per-job timeout (real time, kept short)
# ---------------------------------------------------------------------------


async def _hang(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(30)
    return httpx.Response(200)


async def _quick(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(0.01)
    return httpx.Response(200)


def test_per_job_timeout_ends_the_attempt_and_is_retried() -> None:
    h = Harness([_hang, _hang, _quick])
    started = time.monotonic()
    outcome = fire(make_settings({"TIMEOUT": "50ms", "RETRIES": "2"}), h)
    assert time.monotonic() - started < 10  # nowhere near the 30 s the target would take
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("ok", 3, 200)
    assert h.header("X-Scheduler-Attempt") == ["1", "2", "3"]


def test_per_job_timeout_exhausted_is_a_failure() -> None:
    h = Harness([_hang])
    outcome = fire(make_settings({"TIMEOUT": "50ms", "RETRIES": "1"}), h)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 2, None)
    assert "timeout" in (outcome.error or "").lower()


def test_a_request_within_the_timeout_succeeds() -> None:
    h = Harness([_quick])
    outcome = fire(make_settings({"TIMEOUT": "5s"}), h)
    assert outcome.status == "ok"


# ---------------------------------------------------------------------------
# Standard Webhooks signature
# ---------------------------------------------------------------------------


def _signed(job: dict[str, str] | None = None, script: list[Any] | None = None) -> Harness:
    # The verifier checks the timestamp against the real clock, so the fake one starts there.
    h = Harness(script or [200], now=float(int(time.time())))
    fire(make_settings(job, SCHEDULER_SIGNING_SECRET=SECRET), h)
    return h


def test_signed_post_verifies() -> None:
    h = _signed()
    req = h.requests[0]
    assert req.headers["webhook-id"] == KEY
    assert req.headers["webhook-timestamp"] == str(int(h.sent_at[0]))
    payload = Webhook(SECRET).verify(req.content, dict(req.headers))
    assert payload["idempotency_key"] == KEY and payload["attempt"] == 1


def test_signed_get_verifies() -> None:
    h = _signed({"METHOD": "GET"})
    req = h.requests[0]
    assert req.content == b""
    # An empty body is not JSON; the verifier is told not to parse it.
    Webhook(SECRET).verify(req.content, dict(req.headers), json_parse=False)


def test_signed_raw_body_verifies() -> None:
    h = _signed({"BODY": '{"report": "daily"}'})
    req = h.requests[0]
    assert Webhook(SECRET).verify(req.content, dict(req.headers)) == {"report": "daily"}


def test_every_attempt_is_signed_afresh() -> None:
    h = _signed(script=[503, 503, 200])
    assert len(h.requests) == 3
    for req in h.requests:
        payload = Webhook(SECRET).verify(req.content, dict(req.headers))
        assert payload["attempt"] == int(req.headers["X-Scheduler-Attempt"])


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_tampering_is_rejected(method: str) -> None:
    h = _signed({"METHOD": method})
    req = h.requests[0]
    headers = dict(req.headers)
    wh = Webhook(SECRET)

    with pytest.raises(WebhookVerificationError):
        wh.verify(req.content + b" ", headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        wh.verify(b'{"job": "evil"}', headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        wh.verify(req.content, {**headers, "webhook-id": "other@" + SLOT_TEXT}, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        ts = int(headers["webhook-timestamp"]) + 1
        wh.verify(req.content, {**headers, "webhook-timestamp": str(ts)}, json_parse=False)
    other = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(req.content, headers, json_parse=False)


def test_dry_run_sends_nothing() -> None:
    h = Harness([500])
    settings = make_settings()

    async def go():
        d = Dispatcher(settings, transport=httpx.MockTransport(h.handler), clock=h.clock, sleep=h.sleep, dry_run=True)
        try:
            return await d.send(Fire(settings.jobs[0], Claim(settings.jobs[0].name, SLOT), 1))
        finally:
            await d.aclose()

    outcome = asyncio.run(go())
    assert outcome.status == "ok"
    assert h.requests == []


def test_dry_run_log_hides_the_token_and_signature(caplog) -> None:
    h = Harness([200], now=float(int(time.time())))
    settings = make_settings(SCHEDULER_API_TOKEN="tok-dry-5e1a", SCHEDULER_SIGNING_SECRET=SECRET)

    async def go():
        d = Dispatcher(settings, transport=httpx.MockTransport(h.handler), clock=h.clock, sleep=h.sleep, dry_run=True)
        try:
            return await d.send(Fire(settings.jobs[0], Claim(settings.jobs[0].name, SLOT), 1))
        finally:
            await d.aclose()

    with caplog.at_level("INFO", logger="scheduler.dispatch"):
        asyncio.run(go())
    assert caplog.records
    signature = Dispatcher(settings, clock=h.clock).build(Fire(settings.jobs[0], Claim(settings.jobs[0].name, SLOT), 1), 1).headers["webhook-signature"]
    for record in caplog.records:
        dump = repr(record.__dict__)
        assert "tok-dry-5e1a" not in dump
        assert signature.split(",", 1)[1] not in dump


# ---------------------------------------------------------------------------
# manual fires, trace context, and failures inside the scheduler
# ---------------------------------------------------------------------------


def _send(settings: config.Settings, harness: Harness, f: Fire, on_attempt=None, **options: Any):
    async def go():
        d = Dispatcher(settings, transport=httpx.MockTransport(harness.handler), clock=harness.clock,
                       sleep=harness.sleep, rand=lambda: 0.0, **options)
        try:
            return await d.send(f, on_attempt)
        finally:
            await d.aclose()

    return asyncio.run(go())


def test_a_manual_fire_carries_its_request_id() -> None:
    settings = make_settings()
    h = Harness([200])
    _send(settings, h, Fire(settings.jobs[0], Claim(settings.jobs[0].name, SLOT, TRIGGER, trigger="run-now.1"), 3))
    (request,) = h.requests
    assert request.headers["X-Scheduler-Trigger"] == "run-now.1"
    assert request.headers["X-Scheduler-Slot"] == SLOT_TEXT  # the second it was requested
    assert request.headers["Idempotency-Key"] == '"nightly-report@manual:run-now.1"'


def test_a_scheduled_fire_has_no_trigger_header() -> None:
    h = Harness([200])
    fire(make_settings(), h)
    assert "X-Scheduler-Trigger" not in h.requests[0].headers


def test_traceparent_is_off_by_default() -> None:
    h = Harness([200])
    fire(make_settings(), h)
    assert "traceparent" not in h.requests[0].headers


def test_traceparent_shares_one_trace_across_attempts_and_redeliveries() -> None:
    import hashlib
    import re

    settings = make_settings({"RETRIES": "2"}, SCHEDULER_TRACEPARENT="true")
    h = Harness([503, 503, 200])
    fire(settings, h)
    h2 = Harness([200])
    fire(settings, h2, attempt=4, epoch=43)  # a redelivery by a later leader
    values = [r.headers["traceparent"] for r in h.requests + h2.requests]
    trace_id = hashlib.sha256(KEY.encode()).hexdigest()[:32]
    assert all(re.fullmatch(rf"00-{trace_id}-[0-9a-f]{{16}}-01", v) for v in values), values
    assert len({v.split("-")[2] for v in values}) == 4  # a span per attempt


def test_a_job_may_not_set_the_trigger_or_traceparent_headers() -> None:
    for name in ("X-Scheduler-Trigger", "traceparent"):
        with pytest.raises(config.ConfigError, match="the scheduler sets these headers itself"):
            make_settings({"HEADERS": json.dumps({name: "x"})})


def test_an_exception_inside_the_transport_becomes_a_failed_outcome() -> None:
    settings = make_settings({"RETRIES": "3"})
    h = Harness([RuntimeError("boom")])
    outcome = fire(settings, h)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 1, None)
    assert outcome.error == "internal error: RuntimeError: boom"


def test_an_exception_in_the_attempt_callback_becomes_a_failed_outcome() -> None:
    settings = make_settings({"RETRIES": "3"})
    h = Harness([503, 200])

    async def on_attempt(n: int) -> None:
        if n == 2:
            raise KeyError("store went away")

    outcome = _send(settings, h, Fire(settings.jobs[0], Claim(settings.jobs[0].name, SLOT), 1), on_attempt)
    assert (outcome.status, outcome.attempts) == ("failed", 2)
    assert outcome.error == "internal error: KeyError: 'store went away'"


def test_cancellation_still_propagates() -> None:
    settings = make_settings()

    async def hang(request):
        await asyncio.sleep(3600)

    async def go():
        d = Dispatcher(settings, transport=httpx.MockTransport(hang))
        task = asyncio.ensure_future(d.send(Fire(settings.jobs[0], Claim(settings.jobs[0].name, SLOT), 1)))
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        finally:
            await d.aclose()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(go())


def test_an_error_answer_keeps_a_scrubbed_escaped_excerpt() -> None:
    settings = make_settings({"RETRIES": "0"})

    async def answer(request):
        return httpx.Response(500, content=b"db password hunter22 rejected\nretry later")

    h = Harness([answer])
    outcome = _send(settings, h, Fire(settings.jobs[0], Claim(settings.jobs[0].name, SLOT), 1),
                    scrub=lambda text: text.replace("hunter22", "***"))
    assert (outcome.http_status, outcome.error) == (500, "HTTP 500")
    assert outcome.excerpt == "db password *** rejected\\nretry later"
