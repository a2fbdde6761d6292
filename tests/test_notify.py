"""The notification sender and its rules, against a real receiver on 127.0.0.1: the bearer
token only on the API's origin, a full queue dropping (counted), an event given up after its
retries (counted) under one webhook-id, and which fire outcomes become which events. The
daemon end to end: tests/test_notify_e2e.py."""

from __future__ import annotations

import asyncio
import base64

from standardwebhooks.webhooks import Webhook

from scheduler.config import loader as config
from scheduler.dispatch import Fire
from scheduler.model import Claim, Outcome
from scheduler.notify.events import FireNotices, source_notices
from scheduler.notify.sender import Notifier
from scheduler.observe import Metrics
from tests.support import Receiver, wait_until

SECRET = "whsec_" + base64.b64encode(b"notify-unit-secret-32-bytes-long").decode()


def settings(api_url: str, notify_url: str) -> config.Settings:
    return config.load({"SCHEDULER_API_URL": api_url, "SCHEDULER_NOTIFY_URL": notify_url, "SCHEDULER_API_TOKEN": "tok-n",
                        "SCHEDULER_SIGNING_SECRET": SECRET, "SCHEDULER_JOB_A_SCHEDULE": "@daily", "SCHEDULER_JOB_A_URL": "/a"})


def count(metrics: Metrics, outcome: str) -> float:
    return metrics.registry.get_sample_value("cron_sidecar_notifications_total", {"outcome": outcome}) or 0.0


async def deliver(s: config.Settings, metrics: Metrics, n: int = 1, **kw) -> Notifier:
    notifier = Notifier(s, metrics, **kw)
    notifier.start()
    for i in range(n):
        notifier.put("job.failed", {"job": "a", "i": i})
    return notifier


def test_the_token_goes_only_to_the_apis_origin_and_every_event_verifies() -> None:
    with Receiver() as r:
        async def go():
            m = Metrics()
            for sent, api in enumerate((r.url, "http://app.invalid:8000"), 1):
                n = await deliver(settings(api, r.url + "/hooks"), m)
                await asyncio.to_thread(wait_until, lambda: count(m, "sent") >= sent, 10)  # noqa: B023 - awaited here
                await n.aclose()

        asyncio.run(go())
        on_api, elsewhere = r.requests
    assert on_api.header("authorization") == "Bearer tok-n" and elsewhere.header("authorization") is None
    for req in (on_api, elsewhere):
        body = Webhook(SECRET).verify(req.body, {k: v for k, v in req.headers.items() if k.startswith("webhook-")})
        assert body["type"] == "job.failed" and body["data"]["job"] == "a" and body["timestamp"].endswith("Z")


def test_a_full_queue_drops_the_new_event_and_counts_it() -> None:
    with Receiver() as r:
        async def go():
            m = Metrics()
            n = Notifier(settings(r.url, r.url), m, queue_max=3)  # not started: nothing leaves
            for i in range(5):
                n.put("job.failed", {"i": i})
            assert count(m, "dropped") == 2
            n.start()
            await asyncio.to_thread(wait_until, lambda: count(m, "sent") == 3, 10)
            await n.aclose()

        asyncio.run(go())
        assert [req.json()["data"]["i"] for req in r.requests] == [0, 1, 2]


def test_an_event_refused_is_retried_under_its_webhook_id_then_given_up_and_counted() -> None:
    with Receiver(lambda req: 503) as r:
        async def go():
            m = Metrics()
            n = await deliver(settings(r.url, r.url), m, max_age_s=2.0)
            await asyncio.to_thread(wait_until, lambda: count(m, "failed") == 1, 10)
            await n.aclose()

        asyncio.run(go())
        ids = {req.header("webhook-id") for req in r.requests}
    assert len(r.requests) >= 2 and len(ids) == 1


class Box:
    def __init__(self) -> None:
        self.got: list[tuple[str, dict]] = []

    def put(self, kind: str, data: dict) -> None:
        self.got.append((kind, data))


def test_failing_is_told_once_per_streak_and_recovered_after_it() -> None:
    box = Box()
    notices = FireNotices(box, after=3)
    job = settings("http://app:8000", "http://hooks:9000").jobs[0]
    fire = Fire(job, Claim(job.name, 1_800_000_000), 1)
    failed = Outcome("failed", 1, 0.1, 0.0, 503, "HTTP 503", "down")
    ok = Outcome("ok", 2, 0.1, 0.0, 200, None, None)
    streak = 0
    for outcome in (failed, failed, failed, failed, ok, failed, ok):
        after = 0 if outcome is ok else streak + 1
        notices.finished(fire, outcome, streak, after)
        streak = after
    kinds = [k for k, _ in box.got]
    assert kinds == ["job.failed"] * 3 + ["job.failing", "job.failed", "job.recovered", "job.failed"]
    assert box.got[0][1] == {"job": "a", "slot": "2027-01-15T08:00:00Z", "attempts": 1, "http_status": 503,
                             "error": "HTTP 503", "excerpt": "down", "failures": 1}
    assert box.got[5][1]["failures"] == 4


def test_a_source_event_waits_for_the_lead() -> None:
    box, leading = Box(), [False]

    async def go():
        told = source_notices(box, lambda: leading[0])
        told("source.held", {"source": "url"})
        assert box.got == []
        leading[0] = True
        await asyncio.to_thread(wait_until, lambda: box.got, 5)

    asyncio.run(go())
    assert box.got == [("source.held", {"source": "url"})]


def test_an_event_due_at_shutdown_still_leaves() -> None:
    with Receiver() as r:
        async def go():
            m = Metrics()
            n = await deliver(settings(r.url, r.url), m)
            await n.aclose()  # at once: the failure told just before SIGTERM is not lost
            return count(m, "sent")

        assert asyncio.run(go()) == 1
        assert len(r.requests) == 1


def test_the_watcher_tells_a_hold_and_an_unreadable_source_once_per_episode(tmp_path):
    import json
    import os

    from scheduler.sources.watch import JobSources
    from tests.test_sources import settings as source_settings

    path = tmp_path / "jobs.json"

    def write(text: str) -> None:  # a new inode each time: every call is a read that fails or holds anew
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    told: list[tuple[str, dict]] = []
    jobs = [{"name": f"j{i}", "schedule": "every 1m", "url": f"/j{i}"} for i in range(12)]
    sources = JobSources(source_settings(SCHEDULER_JOBS_FILE=str(path)), on_event=lambda k, d: told.append((k, d)))

    def read(text: str) -> list[str]:
        write(text)
        asyncio.run(sources.read_once())
        return [k for k, _ in told]

    assert read(json.dumps({"jobs": jobs})) == []
    assert read('{"jobs": []}') == ["source.held"]
    assert read('{"jobs": []}') == ["source.held"]  # the same hold: not told again
    assert told[0][1] == {"source": "file", "location": str(path), "jobs": 0, "removed": 12, "in_force": 12,
                          "max_drop": "50%"}
    assert read(json.dumps({"jobs": jobs})) == ["source.held"]  # the app put them back: the hold ends
    assert read('{"jobs": [') == ["source.held", "source.unreadable"]
    assert read('{"jobs": [') == ["source.held", "source.unreadable"]
    assert told[1][1]["jobs_kept"] == 12 and "not valid JSON" in told[1][1]["problem"]
    read(json.dumps({"jobs": jobs}))
    assert read("{") == ["source.held", "source.unreadable", "source.unreadable"]  # a new episode
