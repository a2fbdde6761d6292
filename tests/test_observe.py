"""Metrics, health endpoints, store warnings and the demo, against real processes."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time

import httpx

from tests.e2e import env_for, standalone_env
from tests.support import Daemon, free_port, wait_until


def scrape(port: int) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value}."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def value(metrics: dict[str, float], name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for key, v in metrics.items():
        if key.split("{")[0] == name and all(f'{k}="{val}"' in key for k, val in labels.items()):
            return v
    raise KeyError(f"{name}{{{want}}} not exported")


def test_every_metric_family_moves_during_a_run(redis_server, receiver, daemon_factory, tmp_path):
    def handler(request):
        if request.path == "/fail":
            return 503
        if request.path == "/slow":
            time.sleep(2.5)
        return 200

    receiver.set_handler(handler)
    port = free_port()
    jobs = {
        "ok": {"SCHEDULE": "every 1s", "URL": "/ok"},
        "fail": {"SCHEDULE": "every 2s", "URL": "/fail", "RETRIES": "1"},
        "slow": {"SCHEDULE": "every 1s", "URL": "/slow"},
    }
    env = env_for(redis_server, receiver, "metrics", jobs, http_port=str(port), http_host="127.0.0.1")
    daemon_factory(env, cwd=tmp_path)
    wait_until(lambda: value(scrape(port), "cron_sidecar_leader") == 1, timeout=15)
    first = scrape(port)
    receiver.wait_for(lambda rs: sum(r.path == "/fail" for r in rs) >= 4, timeout=20)
    wait_until(lambda: value(scrape(port), "cron_sidecar_fires_total", cronjob="fail", outcome="failed") >= 2, timeout=10)
    later = scrape(port)

    def grew(name, **labels):
        before = first.get(next((k for k in first if k.split("{")[0] == name and all(f'{a}="{b}"' in k for a, b in labels.items())), ""), 0.0)
        return value(later, name, **labels) > before

    assert grew("cron_sidecar_fires_total", cronjob="ok", outcome="ok")
    assert grew("cron_sidecar_fires_total", cronjob="fail", outcome="failed")
    assert grew("cron_sidecar_lateness_seconds_count")  # one histogram over all jobs
    assert grew("cron_sidecar_fire_duration_seconds_count")
    assert grew("cron_sidecar_retries_total", cronjob="fail")
    assert grew("cron_sidecar_skips_total", cronjob="slow", reason="overlap")
    assert grew("cron_sidecar_last_success_timestamp_seconds", cronjob="ok")
    assert value(later, "cron_sidecar_consecutive_failures", cronjob="fail") >= 2
    assert value(later, "cron_sidecar_consecutive_failures", cronjob="ok") == 0
    assert value(later, "cron_sidecar_leader") == 1
    assert value(later, "cron_sidecar_epoch") == int(redis_server.client().get("{metrics}:epoch"))
    assert value(later, "cron_sidecar_lease_transitions_total", change="acquired") == 1
    assert "cron_sidecar_inflight" in later
    assert value(later, "cron_sidecar_job_period_seconds", cronjob="fail") == 2
    assert value(later, "cron_sidecar_job_overdue", cronjob="ok") == 0
    # No success in more than two periods (2 s each): overdue.
    wait_until(lambda: value(scrape(port), "cron_sidecar_job_overdue", cronjob="fail") == 1, timeout=10)
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200


def test_healthz_fails_while_the_event_loop_is_blocked(tmp_path):
    from scheduler.config import loader as config
    from scheduler.dispatch import Dispatcher
    from scheduler.engine.leader import Engine
    from scheduler.store.sqlite.store import LocalStore
    from scheduler.observe import Health, Metrics
    from scheduler.observe.routes import serve

    settings = config.load({
        "SCHEDULER_JOB_X_SCHEDULE": "@hourly", "SCHEDULER_JOB_X_URL": "/x",
        "SCHEDULER_STATE_FILE": str(tmp_path / "s.db"),
    })
    health = Health(stale_after_s=0.8)
    port = free_port()
    server = serve("127.0.0.1", port, Metrics(), health)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def main():
        engine = Engine(settings, LocalStore(settings.state_file), Dispatcher(settings), health=health)
        ready.set()
        task = asyncio.create_task(engine.run())
        while not stopping.is_set():
            await asyncio.sleep(0.05)
        engine.stop()
        await task

    stopping = threading.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        ready.wait(5)
        url = f"http://127.0.0.1:{port}/healthz"
        wait_until(lambda: httpx.get(url).status_code == 200, timeout=5)
        blocked = threading.Event()

        def block():
            blocked.set()
            time.sleep(2.5)  # a stuck loop: nothing else on it runs meanwhile

        loop.call_soon_threadsafe(block)
        blocked.wait(5)
        wait_until(lambda: httpx.get(url).status_code == 503, timeout=5, message="/healthz never noticed the stall")
        wait_until(lambda: httpx.get(url).status_code == 200, timeout=10, message="/healthz never recovered")
    finally:
        stopping.set()
        thread.join(10)
        server.shutdown()


def test_readyz_fails_while_redis_is_down_and_recovers(redis_factory, receiver, daemon_factory, tmp_path):
    redis = redis_factory(appendonly=True)
    port = free_port()
    env = env_for(redis, receiver, "ready", {"t": {"SCHEDULE": "every 1s", "URL": "/t"}},
                  http_port=str(port), http_host="127.0.0.1")
    daemon = daemon_factory(env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/readyz"
    wait_until(lambda: httpx.get(url).status_code == 200, timeout=15)
    redis.kill()
    wait_until(lambda: httpx.get(url).status_code == 503, timeout=15, message="/readyz stayed ready without Redis")
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200  # alive, just not ready
    redis.restart()
    wait_until(lambda: httpx.get(url).status_code == 200, timeout=20, message="/readyz did not recover")
    assert daemon.running


def test_warns_when_redis_can_evict_or_forget_state(redis_factory, receiver, daemon_factory, tmp_path):
    risky = redis_factory(extra_args=["--maxmemory-policy", "allkeys-lru"])  # and no persistence
    safe = redis_factory(appendonly=True)
    jobs = {"t": {"SCHEDULE": "every 1s", "URL": "/t"}}
    a = daemon_factory(env_for(risky, receiver, "risky", jobs), cwd=tmp_path)
    b = daemon_factory(env_for(safe, receiver, "safe", jobs), cwd=tmp_path)
    a.wait_for_output("became leader", timeout=15)
    b.wait_for_output("became leader", timeout=15)
    assert re.search(r"maxmemory-policy is allkeys-lru", a.output())
    assert "persistence is off" in a.output()
    assert "maxmemory-policy" not in b.output() and "persistence is off" not in b.output()


def test_demo_shows_verified_fires_and_exits_cleanly_on_sigint(tmp_path):
    demo = Daemon({}, args=("demo",), cwd=tmp_path)
    try:
        demo.wait_for_output(re.compile(r"app received POST /demo/heartbeat .*token=ok  signature=ok"), timeout=20)
        demo.wait_for_output(re.compile(r"app received GET /demo/report .*token=ok  signature=ok"), timeout=20)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(15) == 0
        assert "BAD" not in demo.output()
        assert "released the lease" in demo.output()
    finally:
        demo.close()


def test_status_shows_a_job_overdue_after_two_periods_without_success(receiver, daemon_factory, tmp_path):
    from tests.support import run_cli

    receiver.set_handler(lambda r: 500 if r.path == "/broken" else 200)
    jobs = {"broken": {"SCHEDULE": "every 1s", "URL": "/broken", "RETRIES": "0"}, "fine": {"SCHEDULE": "every 1s", "URL": "/fine"}}
    env = standalone_env(receiver, tmp_path / "state.db", jobs)
    daemon_factory(env, cwd=tmp_path)
    receiver.wait_for(lambda rs: sum(r.path == "/broken" for r in rs) >= 3, timeout=15)

    def states():
        import json

        out = run_cli(["status", "--json"], env, cwd=tmp_path)
        return {j["name"]: j for j in json.loads(out.stdout)["jobs"]}

    wait_until(lambda: states()["broken"]["overdue"], timeout=10)
    jobs = states()
    assert jobs["broken"]["consecutive_failures"] >= 2 and jobs["broken"]["period_s"] == 1
    assert not jobs["fine"]["overdue"]
    text = run_cli(["status"], env, cwd=tmp_path).stdout
    assert re.search(r"broken\s+env\s+active, (overdue|running)", text)  # the API's state, then what is notable


def test_histograms_are_cumulative_with_inclusive_bounds_and_per_job_series_parse_as_prometheus_text():
    from prometheus_client.parser import text_string_to_metric_families

    from scheduler.observe import Metrics

    metrics = Metrics()
    quiet = metrics.job("quiet")  # looked up only: its series are exported at zero
    busy = metrics.job("busy")
    for seconds in (0.001, 0.004, 0.005, 0.2, 100.0):  # 0.001 and 0.005 sit on bounds: le includes them
        busy.lateness.observe(seconds)
    busy.fired("ok")
    busy.fired("ok")
    busy.fired("failed")
    busy.skipped("overlap")
    busy.retries.inc()
    busy.last_success.set(1234.5)
    quiet.failures.set(3)

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
    }

    def get(name, **labels):
        return samples[(name, tuple(sorted(labels.items())))]

    assert get("cron_sidecar_lateness_seconds_bucket", le="0.001") == 1
    assert get("cron_sidecar_lateness_seconds_bucket", le="0.0025") == 1
    assert get("cron_sidecar_lateness_seconds_bucket", le="0.005") == 3
    assert get("cron_sidecar_lateness_seconds_bucket", le="0.25") == 4
    assert get("cron_sidecar_lateness_seconds_bucket", le="60.0") == 4
    assert get("cron_sidecar_lateness_seconds_bucket", le="+Inf") == 5
    assert get("cron_sidecar_lateness_seconds_count") == 5
    assert abs(get("cron_sidecar_lateness_seconds_sum") - 100.21) < 1e-9
    assert get("cron_sidecar_fires_total", cronjob="busy", outcome="ok") == 2
    assert get("cron_sidecar_fires_total", cronjob="busy", outcome="failed") == 1
    assert get("cron_sidecar_skips_total", cronjob="busy", reason="overlap") == 1
    assert get("cron_sidecar_retries_total", cronjob="busy") == 1
    assert get("cron_sidecar_last_success_timestamp_seconds", cronjob="busy") == 1234.5
    assert get("cron_sidecar_consecutive_failures", cronjob="quiet") == 3
    assert get("cron_sidecar_retries_total", cronjob="quiet") == 0
    assert get("cron_sidecar_fire_duration_seconds_bucket", le="+Inf") == 0
    assert ("cron_sidecar_fires_total", (("cronjob", "quiet"), ("outcome", "ok"))) not in samples


def test_a_leadership_start_gives_series_to_the_jobs_whose_state_says_something() -> None:
    from scheduler.observe.metrics import Metrics
    from scheduler.model import JobHealth, State
    from scheduler.engine.record import Recorder

    metrics = Metrics()
    recorder = Recorder(None, metrics, None)  # type: ignore[arg-type]  (loaded() uses neither)
    recorder.loaded(State(health={"ran": JobHealth(1234.5, 0, 1000.0), "failing": JobHealth(None, 2, 1000.0),
                                  "sighted": JobHealth(None, 0, 1000.0)}), {"new"}, 2000.0)
    text = metrics.exposition().decode()
    assert 'cron_sidecar_last_success_timestamp_seconds{cronjob="ran"} 1234.5' in text
    assert 'cron_sidecar_consecutive_failures{cronjob="failing"} 2' in text
    # seen but never fired: no series yet, as under the leader that first saw it
    assert 'cronjob="sighted"' not in text and 'cronjob="new"' not in text
    # the overdue gauge still counts from when each was first seen
    assert recorder.first_seen == {"ran": 1000.0, "failing": 1000.0, "sighted": 1000.0, "new": 2000.0}
    assert recorder.last_success == {"ran": 1234.5}


def test_build_info_names_the_running_version_and_python_with_the_project_prefix() -> None:
    import platform

    from prometheus_client.parser import text_string_to_metric_families

    from scheduler.observe.metrics import Metrics

    families = {f.name: f for f in text_string_to_metric_families(Metrics("9.8.7").exposition().decode())}
    (sample,) = families["cron_sidecar_build_info"].samples
    assert sample.labels == {"version": "9.8.7", "python": platform.python_version()} and sample.value == 1
    assert all(name.startswith("cron_sidecar_") for name in families), sorted(families)
