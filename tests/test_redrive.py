"""Redrive, backfill and CONCURRENCY=queue (SPEC section 8) against real daemons, a real
redis-server or SQLite file, and a real app on 127.0.0.1: a finished slot sent again under
its original Idempotency-Key with the attempt count going on, a backfill that sends each
missing slot once and nothing the second time, and a queue job whose calls never overlap."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from datetime import datetime

import httpx
import pytest

from scheduler.schedule import slots as sched
from tests.e2e import env_for, log_events, slot_of, standalone_env
from tests.support import Daemon, Receiver, RedisServer, free_port, run_cli, wait_until

CONTROL = "ctl-redrive-7c2e"
QUEUE_SLACK_S = 0.3
NS = "redrive"
JSON = {"Content-Type": "application/json", "Authorization": f"Bearer {CONTROL}"}


class Deployment:
    """One daemon with the control API, on Redis or on a SQLite file."""

    def __init__(self, kind: str, tmp_path, receiver: Receiver, jobs: dict[str, dict[str, str]]):
        self.kind, self.port = kind, free_port()
        self.redis = RedisServer() if kind == "redis" else None
        self.state = tmp_path / "state.db"
        settings = {"http_port": str(self.port), "http_host": "127.0.0.1", "control_token": CONTROL, "history": "100"}
        if self.redis is not None:
            self.env = env_for(self.redis, receiver, NS, jobs, **settings)
        else:
            self.env = standalone_env(receiver, self.state, jobs, **settings)
        self.daemon = Daemon(self.env)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: httpx.get(self.base + "/healthz").status_code == 200, 15, message="the HTTP port")

    def close(self) -> None:
        self.daemon.close()
        if self.redis is not None:
            self.redis.close()

    def watermark(self, job: str) -> int | None:
        if self.redis is not None:
            found = self.redis.client().hget(f"{{{NS}}}:slots", job)
            return int(found) if found else None
        with sqlite3.connect(self.state) as db:
            row = db.execute("SELECT slot FROM slots WHERE job = ?", (job,)).fetchone()
        return row[0] if row else None

    def queued(self) -> int:
        """Slot requests still waiting in the store."""
        if self.redis is not None:
            return self.redis.client().hlen(f"{{{NS}}}:redrive")
        with sqlite3.connect(self.state) as db:
            exists = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'redrive'").fetchone()
            return db.execute("SELECT COUNT(*) FROM redrive").fetchone()[0] if exists else 0

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return httpx.post(self.base + path, headers=JSON, content=json.dumps(body or {}), timeout=30)

    def history(self, job: str) -> list[dict]:
        r = httpx.get(f"{self.base}/api/v1/jobs/{job}", headers=JSON)
        assert r.status_code == 200, r.text
        return r.json()["history"]


def _slot(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


@pytest.fixture(params=["redis", "sqlite"])
def kind(request) -> str:
    return request.param


def test_a_redrive_sends_the_original_key_with_the_attempt_count_going_on(kind, tmp_path) -> None:
    hold = threading.Event()
    redriven_call: dict[str, str] = {}  # the slot and attempt of the redriven call, once asked for

    def app(request):
        if redriven_call and (slot_of(request), request.header("x-scheduler-attempt")) == (
                redriven_call["slot"], redriven_call["attempt"]):
            hold.wait(20)  # the redriven call, held so that a second redrive finds it in flight
            return 200, {}, b"{}"
        return 500, {}, b"not yet"

    with Receiver(app) as receiver:
        deployment = Deployment(kind, tmp_path, receiver, {"sync": {"SCHEDULE": "every 2s", "URL": "/sync", "RETRIES": "1"}})
        try:
            # A finished slot: the job's first, failed after its attempts (RETRIES, then RETRY_FOR's last one).
            entry = wait_until(lambda: deployment.history("sync")[-1:], 15, message="the first slot's failed run")[0]
            shown = entry["slot"]
            slot = _slot(shown)
            n = entry["attempts"]
            assert entry["outcome"] == "failed" and n >= 2
            first = [q for q in receiver.requests if slot_of(q) == slot]
            assert [q.header("x-scheduler-attempt") for q in first] == [str(i) for i in range(1, n + 1)]

            redriven_call.update(slot=slot, attempt=str(n + 1))
            r = deployment.post(f"/api/v1/jobs/sync/runs/{shown}/retry", {"reason": "the app was restarting"})
            assert r.status_code == 202, r.text
            assert r.json() == {"job": "sync", "slot": shown, "key": f"sync@{shown}", "attempt": n + 1, "result": "queued"}
            redriven = wait_until(lambda: [q for q in receiver.requests if slot_of(q) == slot
                                           and q.header("x-scheduler-attempt") == str(n + 1)], 15,
                                  message="the redriven call")[0]
            assert redriven.header("idempotency-key") == first[0].header("idempotency-key") == f'"sync@{shown}"'

            # In flight: refused, and sent no second time.
            again = deployment.post(f"/api/v1/jobs/sync/runs/{shown}/retry")
            assert again.status_code == 409 and "in flight or already queued" in again.json()["error"]
            cli = run_cli(["retry", "sync", shown], deployment.env)
            assert cli.returncode == 1 and "in flight or already queued" in cli.stderr
            hold.set()
            entry = wait_until(lambda: [e for e in deployment.history("sync") if e["outcome"] == "ok"], 15,
                               message="the redriven run's outcome")[0]
            assert (entry["slot"], entry["attempts"]) == (shown, n + 1)
            assert [q.header("x-scheduler-attempt") for q in receiver.requests if slot_of(q) == slot] == [
                str(i) for i in range(1, n + 2)]

            assert deployment.post("/api/v1/jobs/nope/runs/2026-01-01T00:00:00Z/retry").status_code == 404
            bad = deployment.post("/api/v1/jobs/sync/runs/yesterday/retry")
            assert bad.status_code == 400 and "RFC 3339" in bad.json()["error"]
            assert run_cli(["retry", "sync", "yesterday"], deployment.env).returncode == 2
            # The CLI's redrive goes on counting from the run just recorded.
            cli = run_cli(["retry", "sync", shown, "--json"], deployment.env)
            assert cli.returncode == 0, cli.stderr
            assert json.loads(cli.stdout)["attempt"] == n + 2
            wait_until(lambda: [q for q in receiver.requests if slot_of(q) == slot
                                and q.header("x-scheduler-attempt") == str(n + 2)], 15,
                       message="the CLI's redrive")
            # The reason goes to the audit log, with the route and the slot.
            audit = httpx.get(f"{deployment.base}/api/v1/audit", headers=JSON, params={"limit": 50}).json()["entries"]
            redrives = [a for a in audit if a.get("reason") == "the app was restarting"]
            assert redrives and redrives[0]["what"].endswith(f"/runs/{shown}/retry") and redrives[0]["status"] == 202
        finally:
            hold.set()
            deployment.close()


def test_a_redrive_cut_short_by_a_crash_is_redelivered_under_the_same_key(kind, tmp_path) -> None:
    hold = threading.Event()

    def app(request):
        if request.header("x-scheduler-attempt") == "2":
            hold.wait(20)  # the redriven call: the daemon is killed while it waits for the answer
        return 500 if request.header("x-scheduler-attempt") == "1" else 200, {}, b"{}"

    with Receiver(app) as receiver:
        deployment = Deployment(kind, tmp_path, receiver, {"sync": {"SCHEDULE": "every 2s", "URL": "/sync", "RETRIES": "0"}})
        try:
            entry = wait_until(lambda: deployment.history("sync")[-1:], 15, message="the first slot's failed run")[0]
            shown, slot = entry["slot"], _slot(entry["slot"])
            assert deployment.post(f"/api/v1/jobs/sync/runs/{shown}/retry").status_code == 202
            wait_until(lambda: [q for q in receiver.requests if slot_of(q) == slot and q.header("x-scheduler-attempt") == "2"],
                       15, message="the redriven call")
            deployment.daemon.proc.kill()
            deployment.daemon.wait()
            hold.set()
            deployment.daemon.start()
            sent = wait_until(lambda: [q for q in receiver.requests if slot_of(q) == slot and q.header("x-scheduler-attempt") == "3"],
                              20, message="the redelivery of the redriven slot")
            assert [q.header("idempotency-key") for q in sent] == [f'"sync@{shown}"']
            assert int(sent[0].header("x-scheduler-fencing-token")) > entry["fencing_token"]
        finally:
            hold.set()
            deployment.close()


def test_a_backfill_sends_each_missing_slot_once_and_a_second_one_nothing(kind, tmp_path) -> None:
    with Receiver() as receiver:
        deployment = Deployment(kind, tmp_path, receiver, {"tick": {"SCHEDULE": "every 1s", "URL": "/tick",
                                                                    "CATCHUP": "none"}})
        try:
            start = wait_until(lambda: deployment.watermark("tick"), 15, message="the job's first sighting")
            assert deployment.post("/api/v1/jobs/tick/pause").status_code == 200
            paused_at = deployment.watermark("tick")
            # Slots passed while paused: the watermark moves on, nothing is sent.
            wait_until(lambda: deployment.watermark("tick") >= paused_at + 4, 15, message="slots passed while paused")
            assert deployment.post("/api/v1/jobs/tick/resume").status_code == 200
            end = deployment.watermark("tick")
            wait_until(lambda: any(slot_of(q) > end for q in receiver.requests), 15, message="fires after resuming")
            sent_before = Counter(slot_of(q) for q in receiver.requests)
            missing = [s for s in range(start + 1, end + 1) if s not in sent_before]
            assert len(missing) >= 3

            span = {"from": sched.format_slot(start + 1), "to": sched.format_slot(end)}
            r = deployment.post("/api/v1/jobs/tick/backfill", span)
            assert r.status_code == 202, r.text
            assert r.json()["queued"] == [sched.format_slot(s) for s in missing]
            shown = {sched.format_slot(s) for s in missing}
            wait_until(lambda: {e["slot"] for e in deployment.history("tick") if e["outcome"] == "ok"} >= shown, 15,
                       message="every backfilled slot recorded ok")
            backfilled = [q for q in receiver.requests if slot_of(q) in missing]
            # Each once, oldest first, under its own slot's key, as a first attempt.
            assert [slot_of(q) for q in backfilled] == missing
            assert all(q.header("idempotency-key") == f'"tick@{sched.format_slot(slot_of(q))}"' for q in backfilled)
            assert all(q.header("x-scheduler-attempt") == "1" for q in backfilled)

            r = deployment.post("/api/v1/jobs/tick/backfill", span)
            assert r.status_code == 202 and r.json()["queued"] == [], r.text
            assert deployment.queued() == 0  # nothing waits to be sent
            cli = run_cli(["backfill", "tick", span["from"], span["to"]], deployment.env)
            assert cli.returncode == 0 and "nothing queued" in cli.stdout, cli.stderr

            too_many = deployment.post("/api/v1/jobs/tick/backfill", {"from": "2026-01-01T00:00:00Z", "to": span["to"]})
            assert too_many.status_code == 400 and "more than 1000 slots" in too_many.json()["error"]
            backwards = deployment.post("/api/v1/jobs/tick/backfill", {"from": span["to"], "to": span["from"]})
            assert backwards.status_code == 400
            assert Counter(slot_of(q) for q in receiver.requests if slot_of(q) <= end) == Counter(
                {**{s: 1 for s in missing}, **{s: n for s, n in sent_before.items() if s <= end}})
        finally:
            deployment.close()


def test_a_queue_job_never_overlaps_and_its_waiting_slot_fires_when_the_call_ends(tmp_path) -> None:
    calls: list[tuple[int, float, float]] = []  # (slot, start, end) as the app saw them

    def slow_app(request):
        began = time.time()
        time.sleep(2.5)  # the app is slow: slots come due while it works
        calls.append((slot_of(request), began, time.time()))
        return 200, {}, b"{}"

    with Receiver(slow_app) as receiver:
        deployment = Deployment("sqlite", tmp_path, receiver, {
            "slow": {"SCHEDULE": "every 1s", "URL": "/slow", "CONCURRENCY": "queue", "RETRIES": "0"}})
        try:
            wait_until(lambda: len(calls) >= 4, 30, message="four calls of the slow job")
            done = sorted(calls[:4], key=lambda c: c[1])
            for (slot, _began, ended), (next_slot, next_began, _) in zip(done, done[1:]):
                assert next_began >= ended, "two calls of a queue job at once"
                # The slot sent next is the newest that came due while the previous call ran:
                # it waited and went when the call ended, rather than the first slot after.
                # (A slot due a moment after the end would fire at once too; QUEUE_SLACK_S is
                # the time between the app's answer and the daemon reading it.)
                assert next_slot - 1 < ended <= next_slot + 1, (slot, next_slot, ended)
                assert next_slot <= ended + QUEUE_SLACK_S, (next_slot, ended)
            skipped = log_events(deployment.daemon, "skipped: a newer slot took its place in the queue")
            assert skipped, "no slot was replaced in the queue"
            sent = [slot_of(q) for q in receiver.requests]
            assert not set(sent) & {_slot(e["slot"]) for e in skipped}, "a replaced slot was sent"
            assert len(sent) == len(set(sent))
            assert not log_events(deployment.daemon, "skipped: previous fire still running")
        finally:
            deployment.close()
