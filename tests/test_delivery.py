"""Delivery guarantees end to end: catch-up, overlap, redelivery, signing, operator commands.

Real daemons, a real redis-server and a real HTTP receiver, as in test_replicas.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from scheduler.schedule import slots as sched
from tests.e2e import assert_exactly_once, env_for, fence, log_events, slot_of, standalone_env, ts
from tests.support import run_cli, wait_until

SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtMTIzNDU2Nzg5MA=="


def slots_for(requests, path):
    return [slot_of(r) for r in requests if r.path == path]


def test_catchup_policies_after_a_full_outage(redis_server, receiver, daemon_factory, tmp_path):
    jobs = {
        "latest": {"SCHEDULE": "every 1s", "URL": "/latest"},
        "all": {"SCHEDULE": "every 1s", "URL": "/all", "CATCHUP": "all"},
        "none": {"SCHEDULE": "every 1s", "URL": "/none", "CATCHUP": "none"},
        "window": {"SCHEDULE": "every 1s", "URL": "/window", "CATCHUP": "all", "CATCHUP_WINDOW": "2s"},
    }
    env = env_for(redis_server, receiver, "catchup", jobs)
    first = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for(lambda rs: len(slots_for(rs, "/latest")) >= 2, timeout=15)
    first.terminate()
    assert first.wait(15) == 0
    (started,) = log_events(first, "became leader")
    before = {path: slots_for(receiver.requests, path) for path in ("/latest", "/all", "/none", "/window")}
    for path, slots in before.items():
        # First start with no state fires nothing from the past.
        assert min(slots) >= int(ts(started)), f"{path} fired a slot before the first start"
    last = max(max(s) for s in before.values())
    # A full outage of at least five slots.
    wait_until(lambda: time.time() >= last + 6, timeout=10)
    receiver.clear()
    second = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for(lambda rs: len(slots_for(rs, "/latest")) >= 3, timeout=15)
    second.terminate()
    assert second.wait(15) == 0
    (became,) = log_events(second, "became leader")
    now = ts(became)
    after = {path: slots_for(receiver.requests, path) for path in before}

    def made_up(path):
        return [s for s in after[path] if s <= now - 1]

    marks = {path: max(slots) for path, slots in before.items()}
    # latest: only the newest missed slot, once.
    assert len([s for s in after["/latest"] if s <= int(now)]) == 1
    assert not made_up("/latest") or made_up("/latest") == [int(now) - 1]
    # all: every missed slot, oldest first, then on schedule with no hole.
    assert after["/all"][: int(now) - marks["/all"] - 1] == list(range(marks["/all"] + 1, int(now)))
    assert_exactly_once(receiver.requests, {"all": sched.parse("every 1s")})
    # none: nothing from the outage.
    assert made_up("/none") == []
    # window 2s: only what is at most 2s old when the leader starts.
    assert made_up("/window") and min(made_up("/window")) >= int(now) - 3
    assert len(made_up("/all")) >= 5


def test_concurrency_modes_with_a_slow_target(redis_server, receiver, daemon_factory, tmp_path):
    calls = Counter()
    lock = threading.Lock()

    def slow(request):
        with lock:
            calls[request.path] += 1
        time.sleep(2.5)
        return 200

    receiver.set_handler(slow)
    jobs = {
        "forbid": {"SCHEDULE": "every 1s", "URL": "/forbid"},
        "allow": {"SCHEDULE": "every 1s", "URL": "/allow", "CONCURRENCY": "allow"},
        "replace": {"SCHEDULE": "every 1s", "URL": "/replace", "CONCURRENCY": "replace"},
    }
    env = env_for(redis_server, receiver, "overlap", jobs)
    daemon = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for(lambda rs: len(slots_for(rs, "/allow")) >= 6, timeout=20)
    daemon.terminate()
    assert daemon.wait(15) == 0
    requests = receiver.requests

    # That forbid never lets two calls overlap, and when each goes out, is pinned on the
    # virtual clock (test_engine_virtual); here, end to end, only that it skips.
    assert len([r for r in requests if r.path == "/forbid"]) >= 2
    skips = [e for e in log_events(daemon, "skipped: previous fire still running") if e["job"] == "forbid"]
    assert len(skips) >= 2

    allow = slots_for(requests, "/allow")
    assert_exactly_once(requests, {"allow": sched.parse("every 1s"), "replace": sched.parse("every 1s")})
    assert len(allow) >= 6  # one per second although each call takes 2.5 s

    cancelled = [e for e in log_events(daemon, "fired") if e["job"] == "replace" and e["outcome"] == "cancelled"]
    assert len(cancelled) >= 3, "replace did not cancel the older calls"


def test_leader_killed_mid_call_is_redelivered_with_the_same_key(redis_server, receiver, daemon_factory, tmp_path):
    effects = Counter()
    seen = set()
    lock = threading.Lock()
    hang_first = threading.Event()

    def dedupe(request):
        key = request.header("idempotency-key")
        with lock:
            duplicate = key in seen
            seen.add(key)
            if not duplicate:
                effects[key] += 1
        if not hang_first.is_set():
            hang_first.set()
            time.sleep(8)  # the leader dies while this call is in flight
        return 200

    receiver.set_handler(dedupe)
    jobs = {"work": {"SCHEDULE": "every 1s", "URL": "/work", "CATCHUP": "all", "CONCURRENCY": "allow"}}
    env = env_for(redis_server, receiver, "redeliver", jobs)
    a = daemon_factory(env, cwd=tmp_path)
    a.wait_for_output("became leader", timeout=10)
    b = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for(lambda rs: len(rs) >= 1, timeout=15)
    hung = receiver.requests[0]
    a.kill()
    again = receiver.wait_for(
        lambda rs: [r for r in rs if r.header("idempotency-key") == hung.header("idempotency-key") and r is not hung],
        timeout=15,
    )
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 2, timeout=10)
    b.terminate()
    assert b.wait(15) == 0

    (redelivered,) = again
    assert hung.header("x-scheduler-attempt") == "1"
    assert redelivered.header("x-scheduler-attempt") == "2"
    assert fence(redelivered) > fence(hung)
    assert redelivered.json()["idempotency_key"] == hung.json()["idempotency_key"]
    assert max(effects.values()) == 1, "the target saw one effect per key"
    assert_exactly_once(receiver.requests, {"work": sched.parse("every 1s")})


@pytest.mark.parametrize("method", ["POST", "PUT", "GET"])
def test_every_request_verifies_with_standardwebhooks(redis_server, receiver, daemon_factory, tmp_path, method):
    jobs = {"signed": {"SCHEDULE": "every 1s", "URL": "/signed", "METHOD": method}}
    env = env_for(redis_server, receiver, f"sign-{method}", jobs, signing_secret=SECRET)
    daemon = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for_count(2, timeout=15)
    daemon.terminate()
    assert daemon.wait(15) == 0
    hook = Webhook(SECRET)
    # A GET has no body, so there is no JSON for verify() to hand back: json_parse=False.
    parse = method != "GET"
    for r in receiver.requests:
        assert r.method == method
        headers = {k: v for k, v in r.headers.items()}
        payload = hook.verify(r.body, headers, json_parse=parse)  # raises on a bad signature or stale timestamp
        if parse:
            assert payload["idempotency_key"] == r.header("webhook-id")
        else:
            assert r.body == b""
        assert r.header("webhook-id") == r.header("idempotency-key").strip('"')
        assert abs(int(r.header("webhook-timestamp")) - r.received_at) < 5, "timestamp not in UTC seconds"
        with pytest.raises(WebhookVerificationError):
            hook.verify(r.body + b" ", headers, json_parse=parse)
        with pytest.raises(WebhookVerificationError):
            hook.verify(r.body, {**headers, "webhook-id": headers["webhook-id"] + "x"}, json_parse=parse)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "b3RoZXItc2VjcmV0LWtleS0xMjM0NTY3ODkw").verify(r.body, headers, json_parse=parse)
    assert SECRET not in daemon.output()


def test_pause_resume_trigger_and_status_end_to_end(redis_server, receiver, daemon_factory, tmp_path):
    release = threading.Event()

    def handler(request):
        if "manual" in (request.header("idempotency-key") or ""):
            release.wait(10)  # keep the manual fire in flight while it is triggered again
        return 200

    receiver.set_handler(handler)
    jobs = {
        "tick": {"SCHEDULE": "every 1s", "URL": "/tick"},
        "report": {"SCHEDULE": "0 3 * * *", "URL": "/report"},
    }
    env = env_for(redis_server, receiver, "control", jobs)
    daemon = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for(lambda rs: len(slots_for(rs, "/tick")) >= 2, timeout=15)

    def cli(*args):
        return run_cli(list(args), env, cwd=tmp_path)

    out = cli("status")
    assert out.returncode == 0, out.stderr
    epoch = redis_server.client().get("{control}:epoch")
    assert "leader" in out.stdout and f"epoch {epoch}" in out.stdout and "tick" in out.stdout and "report" in out.stdout

    # pause: the tick slots are skipped (and counted), nothing reaches the target.
    assert cli("pause", "tick").returncode == 0
    assert "already paused" in cli("pause", "tick").stdout
    wait_until(lambda: len(log_events(daemon, "skipped: job is paused")) >= 2, timeout=10)
    paused_from = min(e["slot"] for e in log_events(daemon, "skipped: job is paused"))
    assert not [r for r in receiver.requests if r.path == "/tick" and r.header("x-scheduler-slot") >= paused_from]
    st = cli("status", "--json")
    assert '"paused": true' in st.stdout

    # resume: fires again from the next slot.
    assert cli("resume", "tick").returncode == 0
    n = len(slots_for(receiver.requests, "/tick"))
    receiver.wait_for(lambda rs: len(slots_for(rs, "/tick")) >= n + 2, timeout=10)

    # trigger twice quickly: one fire; the second joins the first while it is queued or running.
    first, second = cli("trigger", "report"), cli("trigger", "report")
    assert first.returncode == 0 and "queued trigger" in first.stdout
    assert second.returncode == 0 and "not queued again" in second.stdout
    manual = receiver.wait_for(lambda rs: [r for r in rs if r.path == "/report"], timeout=10)
    release.set()
    # The same request id fires at most once, however often it is sent.
    trig_id = cli("trigger", "report", "--id", "deploy-42")
    assert "queued trigger deploy-42" in trig_id.stdout
    receiver.wait_for(lambda rs: any("deploy-42" in (r.header("idempotency-key") or "") for r in rs), timeout=10)
    wait_until(lambda: not [e for e in log_events(daemon, "fired") if e.get("trigger") == "deploy-42"] == [], timeout=10)
    again = cli("trigger", "report", "--id", "deploy-42")
    assert "already taken" in again.stdout
    n = len(receiver.requests)
    receiver.wait_for(lambda rs: len(rs) >= n + 2, timeout=10)  # a couple more ticks
    daemon.terminate()
    assert daemon.wait(15) == 0

    reports = [r for r in receiver.requests if r.path == "/report"]
    keys = Counter(r.header("idempotency-key") for r in reports)
    assert len(keys) == 2 and set(keys.values()) == {1}, keys
    assert manual[0].header("idempotency-key").startswith('"report@manual:')
    assert '"report@manual:deploy-42"' in keys

    bad = cli("trigger", "nope")
    assert bad.returncode == 2 and "no job named 'nope'" in bad.stderr
    status = cli("status", "--json")
    assert status.returncode == 0 and '"last_outcome": "ok"' in status.stdout


def test_control_commands_fail_clearly_when_the_store_is_unreachable(receiver, tmp_path):
    from tests.support import free_port

    env = {
        "SCHEDULER_REDIS_URL": f"redis://:hunter2pass@127.0.0.1:{free_port()}/0",
        "SCHEDULER_JOB_TICK_SCHEDULE": "every 1s",
        "SCHEDULER_JOB_TICK_URL": "/tick",
    }
    for args in (["status"], ["pause", "tick"], ["trigger", "tick"]):
        out = run_cli(args, env, cwd=tmp_path)
        assert out.returncode == 1, out
        assert "cannot reach the state store" in out.stderr
        assert "hunter2pass" not in out.stderr + out.stdout


def test_control_commands_work_in_standalone_mode(receiver, daemon_factory, tmp_path):
    jobs = {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}, "once": {"SCHEDULE": "0 0 1 1 *", "URL": "/once"}}
    env = standalone_env(receiver, tmp_path / "state.db", jobs)
    daemon = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for_count(2, timeout=15)
    assert run_cli(["pause", "tick"], env, cwd=tmp_path).returncode == 0
    wait_until(lambda: log_events(daemon, "skipped: job is paused"), timeout=10)
    assert run_cli(["trigger", "once"], env, cwd=tmp_path).returncode == 0
    receiver.wait_for(lambda rs: any(r.path == "/once" for r in rs), timeout=10)
    status = run_cli(["status"], env, cwd=tmp_path)
    assert status.returncode == 0 and "paused" in status.stdout and "standalone" in status.stdout
    daemon.terminate()
    assert daemon.wait(15) == 0


def test_jitter_delays_the_fire_but_keeps_the_slot(redis_server, receiver, daemon_factory, tmp_path):
    jobs = {"spread": {"SCHEDULE": "every 2s", "URL": "/spread", "JITTER": "900ms"}}
    env = env_for(redis_server, receiver, "jitter", jobs)
    daemon = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for_count(3, timeout=15)
    daemon.terminate()
    assert daemon.wait(15) == 0
    delays = [r.received_at - slot_of(r) for r in receiver.requests]
    assert all(slot_of(r) % 2 == 0 for r in receiver.requests)  # the slot is still the slot
    assert all(-0.05 <= d for d in delays)
    assert max(delays) > 0.01, "no jitter applied"
    # The offset is a function of job and slot, the same on every replica.
    from scheduler.engine.leader import jitter_offset_s

    for r in receiver.requests:
        assert r.received_at - slot_of(r) >= jitter_offset_s("spread", slot_of(r), 0.9) - 0.05
    assert jitter_offset_s("spread", 100, 0.9) == jitter_offset_s("spread", 100, 0.9)
    assert len({jitter_offset_s("spread", s, 0.9) for s in range(0, 200, 2)}) > 10
    assert all(0 <= jitter_offset_s("spread", s, 0.9) <= 0.9 for s in range(0, 200, 2))
