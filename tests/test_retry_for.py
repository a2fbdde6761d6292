"""RETRY_FOR (SPEC section 8): a failed slot is retried until that long after its slot, with
RETRIES used up or not; the backoff is capped at a minute, Retry-After is honoured within it,
one last attempt goes at the deadline, and the next slot still ends every retry. The
configuration: a positive duration, from env and documents, its default from the period,
a warning when it is longer than the period. (The end-to-end outage: tests/test_notify_e2e.py.)"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from scheduler.config import loader as config
from scheduler.dispatch import BACKOFF_CAP_S, Dispatcher, Fire
from scheduler.model import Claim
from scheduler.sources.document import validate
from tests.test_dispatch import JOB, NOW, SLOT, Harness, make_settings


def send(settings: config.Settings, h: Harness, *, until: float | None, deadline: float | None = None,
         rand=lambda: 1.0):
    async def go():
        d = Dispatcher(settings, transport=httpx.MockTransport(h.handler), clock=h.clock, sleep=h.sleep, rand=rand)
        try:
            job = settings.jobs[0]
            return await d.send(Fire(job, Claim(job.name, SLOT), 7, deadline, until))
        finally:
            await d.aclose()

    return asyncio.run(go())


def test_retries_go_on_past_retries_until_retry_for_and_one_last_attempt_lands_at_the_deadline() -> None:
    until = SLOT + 100
    h = Harness([503], request_cost_s=0.5)
    outcome = send(make_settings({"RETRIES": "0"}), h, until=until)
    assert outcome.status == "failed" and outcome.attempts == len(h.sent_at) > 5
    # backoff 1, 2, 4, 8, 16, 32, then capped at a minute: never more
    gaps = [b - a - 0.5 for a, b in zip(h.sent_at, h.sent_at[1:])]
    assert max(gaps) <= BACKOFF_CAP_S
    assert h.sent_at[-1] == pytest.approx(until)  # the last one at the deadline, not skipped
    assert all(t <= until for t in h.sent_at)


def test_the_app_back_within_retry_for_gets_the_slot() -> None:
    h = Harness([httpx.ConnectError("refused")] * 6 + [200])
    outcome = send(make_settings({"RETRIES": "1"}), h, until=SLOT + 3600)
    assert (outcome.status, outcome.attempts) == ("ok", 7)
    assert len(set(h.header("Idempotency-Key"))) == 1


def test_retry_after_is_honoured_within_retry_for() -> None:
    h = Harness([(503, {"Retry-After": "30"}), 200])
    outcome = send(make_settings({"RETRIES": "0"}), h, until=SLOT + 600)
    assert outcome.status == "ok" and h.sleeps == [30.0]


def test_retries_used_up_and_retry_for_passed_stops() -> None:
    h = Harness([503])
    outcome = send(make_settings({"RETRIES": "2"}), h, until=NOW - 1)
    assert outcome.attempts == 3  # RETRIES still counts when RETRY_FOR is over


def test_the_next_slot_still_ends_the_retries() -> None:
    h = Harness([503], request_cost_s=0.1)
    outcome = send(make_settings({"RETRIES": "0"}), h, until=SLOT + 3600, deadline=NOW + 20)
    assert outcome.status == "failed" and all(t < NOW + 20 for t in h.sent_at)
    assert "next slot" in (outcome.error or "")


def test_retry_for_from_env_and_its_default() -> None:
    settings = make_settings({"RETRY_FOR": "20m"})
    assert settings.jobs[0].retry_for_s == 1200.0
    job = make_settings().jobs[0]
    assert job.retry_for_s is None
    assert config.retry_for_s(job, 86400.0) == 3600.0  # daily: 1 hour
    assert config.retry_for_s(job, 60.0) == 30.0  # every minute: half of it
    assert config.retry_for_s(job, None) == 3600.0  # an `at` job
    # RETRIES=0 alone still means no retry at all; with a RETRY_FOR, retries go on time alone
    assert config.retry_for_s(make_settings({"RETRIES": "0"}).jobs[0], 86400.0) == 0.0
    assert config.retry_for_s(make_settings({"RETRIES": "0", "RETRY_FOR": "5m"}).jobs[0], 86400.0) == 300.0


@pytest.mark.parametrize("value", ["0", "-5s", "soon"])
def test_retry_for_must_be_a_positive_duration(value: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        make_settings({"RETRY_FOR": value})
    assert f"{JOB}RETRY_FOR: expected a duration" in str(err.value)


def test_retry_for_longer_than_the_period_is_warned() -> None:
    settings = make_settings({"SCHEDULE": "*/5 * * * *", "RETRY_FOR": "10m"})
    assert any(w.startswith(f"{JOB}RETRY_FOR") and "period" in w for w in settings.warnings)
    assert not any("RETRY_FOR" in w for w in make_settings({"RETRY_FOR": "10m"}).warnings)


def test_retry_for_in_a_document() -> None:
    settings = make_settings()
    doc = {"jobs": [{"name": "a", "schedule": "@daily", "url": "/a", "retry_for": "2h"},
                    {"name": "b", "schedule": "@daily", "url": "/b", "retry_for": 90},
                    {"name": "c", "schedule": "@daily", "url": "/c", "retry_for": "0s"}]}
    parsed = validate(doc, "url", settings)
    assert parsed.jobs["a"].retry_for_s == 7200.0 and parsed.jobs["b"].retry_for_s == 90.0
    (rejected,) = parsed.rejected
    assert rejected.name == "c" and "retry_for" in rejected.problem
