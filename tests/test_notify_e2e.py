"""Failures told at once (SPEC section 8), against real processes: a standalone daemon, an app
and a notify receiver on 127.0.0.1.

- every event verifies with `standardwebhooks`, has its own webhook-id, and a slow receiver
  (seconds per answer) delays no fire of an every-second job;
- a notification the receiver refuses (500) is sent again under the same webhook-id;
- a daily-like job (an `at` job, RETRY_FOR set) whose app is down for ~6 s after its slot is
  delivered once the app is back, under the same Idempotency-Key, the attempt count going on.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from datetime import datetime, UTC

import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e import slot_of, standalone_env
from tests.support import Daemon, Receiver, wait_until

SECRET = "whsec_" + base64.b64encode(b"notify-e2e-secret-32-bytes-long!").decode()
TOKEN = "tok-notify-e2e"


def events(receiver: Receiver) -> list[dict]:
    """Every notification received, verified (Webhook.verify raises on a bad signature)."""
    hook = Webhook(SECRET)
    out = []
    for r in receiver.requests:
        data = hook.verify(r.body, {k: v for k, v in r.headers.items() if k.startswith("webhook-")})
        assert data == json.loads(r.body)
        assert r.header("authorization") is None  # another origin than SCHEDULER_API_URL's: no token
        out.append({**data, "id": r.header("webhook-id")})
    return out


def of_type(evs: list[dict], kind: str) -> list[dict]:
    return [e for e in evs if e["type"] == kind]


@pytest.fixture
def daemon_with(tmp_path):
    started: list = []

    def start(app: Receiver, notify: Receiver, jobs: dict, **settings) -> Daemon:
        env = standalone_env(app, tmp_path / "state.db", jobs, notify_url=notify.url + "/hooks/cron",
                             signing_secret=SECRET, api_token=TOKEN, **settings)
        d = Daemon(env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


def test_events_are_signed_each_under_its_own_id_and_a_slow_receiver_delays_no_fire(daemon_with, tmp_path):
    flaky = Counter()
    lock = threading.Lock()

    def app(request):
        if request.path == "/flaky":
            with lock:
                flaky["n"] += 1
                n = flaky["n"]
            return (400, {}, b"no such tenant") if n <= 4 else 200  # 400: not retried
        return 200

    def slow(request):
        time.sleep(1.5)  # a slow receiver: seconds per answer
        return 200

    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text("{not json")
    with Receiver(app) as target, Receiver(slow) as notify:
        d = daemon_with(target, notify, {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"},
                                         "flaky": {"SCHEDULE": "every 1s", "URL": "/flaky", "RETRIES": "0"}},
                        jobs_file=str(jobs_file))
        wait_until(lambda: of_type(events(notify), "job.recovered"), 40, message="job.recovered")
        ticks = [r for r in target.requests if r.path == "/tick"]
        evs = events(notify)
        d.stop()
    failed = of_type(evs, "job.failed")
    assert [e["data"]["job"] for e in failed] == ["flaky"] * 4
    assert all(e["data"]["http_status"] == 400 and e["data"]["attempts"] == 1 and e["data"]["slot"] for e in failed)
    assert failed[0]["data"]["excerpt"] == "no such tenant" and failed[0]["data"]["error"] == "HTTP 400"
    (failing,) = of_type(evs, "job.failing")  # once per streak, at the third
    assert failing["data"]["job"] == "flaky" and failing["data"]["failures"] == 3
    (recovered,) = of_type(evs, "job.recovered")
    assert recovered["data"]["failures"] == 4
    (unreadable,) = of_type(evs, "source.unreadable")  # once per episode, not per read
    assert unreadable["data"]["source"] == "file"
    assert len({e["id"] for e in evs}) == len(evs)  # its own webhook-id per event
    # The receiver took 1.5 s an answer for ~10 s; the every-second job went out on time all along.
    assert len(ticks) >= 8
    late = [r.received_at - slot_of(r) for r in ticks]
    assert max(late) < 1.0, late


def test_a_refused_notification_is_sent_again_under_the_same_webhook_id(daemon_with):
    seen: set[str] = set()

    def refuse_first(request):
        first = request.header("webhook-id") not in seen
        seen.add(request.header("webhook-id") or "")
        return 500 if first else 200

    with Receiver(lambda r: (400, {}, b"bad")) as target, Receiver(refuse_first) as notify:
        d = daemon_with(target, notify, {"bad": {"SCHEDULE": "every 1s", "URL": "/bad", "RETRIES": "0"}})
        wait_until(lambda: len({r.header("webhook-id") for r in notify.requests}) < len(notify.requests), 15,
                   message="a notification sent again")
        d.stop()
        requests = notify.requests
    by_id: dict[str, list] = {}
    for r in requests:
        by_id.setdefault(r.header("webhook-id"), []).append(r)
    first, again = next(rs for rs in by_id.values() if len(rs) > 1)[:2]
    assert first.header("webhook-id") == again.header("webhook-id") and first.body == again.body
    assert first.json()["type"] == "job.failed" and first.json()["data"]["job"] == "bad"
    assert first.header("webhook-signature") and again.header("webhook-signature")  # each attempt signed anew
    events(notify)  # and every one verifies


def test_a_daily_like_job_survives_an_app_outage_at_its_slot_under_retry_for(daemon_with):
    slot = int(time.time()) + 3
    back_at = slot + 6  # the app restarts at the slot and answers 503 for ~6 s: longer than RETRIES=1 retries

    def app(request):
        return 503 if time.time() < back_at else 200

    at = datetime.fromtimestamp(slot, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with Receiver(app) as target, Receiver() as notify:
        d = daemon_with(target, notify, {"nightly": {"SCHEDULE": f"at {at}", "URL": "/nightly",
                                                     "RETRIES": "1", "RETRY_FOR": "15s"}})
        ok = wait_until(lambda: [r for r in target.requests if r.received_at >= back_at], 40,
                        message="the slot delivered after the outage")
        d.stop()
        calls = target.requests
    assert ok
    assert {r.header("idempotency-key") for r in calls} == {f'"nightly@{at}"'}
    assert [int(r.header("x-scheduler-attempt")) for r in calls] == list(range(1, len(calls) + 1))
    assert len(calls) > 2  # more than RETRIES + 1: RETRY_FOR kept it going
    assert calls[-1].received_at <= slot + 15 + 1
    assert not of_type(events(notify), "job.failed")
