#!/usr/bin/env python3
"""/metrics at many jobs: bytes, gzip bytes and CPU-s per scrape, before and after; the
lateness of timers on an event loop while scrapes run; and the CPU of one `healthcheck`.

"before" is the exposition this project used to serve: every per-job family, histograms
included, labelled `job`, built as prometheus_client families and encoded by its
generate_latest, served by http.server's ThreadingHTTPServer. "after" is Metrics.exposition()
through scheduler.observe.routes.serve.

    uv run python bench/metrics_scrape.py
    uv run python bench/metrics_scrape.py --jobs 10000 --lateness-seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily  # noqa: E402

from scheduler.observe.job_metrics import Histogram, OverdueCollector  # noqa: E402
from scheduler.observe.metrics import DURATION_BUCKETS, LATENESS_BUCKETS, Metrics  # noqa: E402
from scheduler.observe.health import Health  # noqa: E402
from scheduler.observe.routes import serve  # noqa: E402


def build(n: int) -> tuple[Metrics, list[str]]:
    """n jobs, each fired once (ok), with their period and overdue gauges."""
    metrics = Metrics()
    names = [f"tenant-{i}-digest" for i in range(n)]
    now = time.time()
    for i, name in enumerate(names):
        m = metrics.job(name)
        m.lateness.observe((i % 97) / 10_000)
        m.duration.observe((i % 89) / 100)
        m.fired("ok")
        m.last_success.set(now - i % 600)
    metrics.registry.register(OverdueCollector(lambda: [(name, 60.0, now) for name in names]))
    return metrics, names


class _Before:
    """The earlier per-job layout: every family per job, histograms included, label `job`."""

    def __init__(self, names: list[str]):
        now = time.time()
        self.jobs = []
        for i, name in enumerate(names):
            lateness, duration = Histogram(LATENESS_BUCKETS), Histogram(DURATION_BUCKETS)
            lateness.observe((i % 97) / 10_000)
            duration.observe((i % 89) / 100)
            self.jobs.append((name, lateness, duration, now - i % 600))

    def collect(self):
        fires = CounterMetricFamily("cron_sidecar_fires", "Fires finished, by job and outcome", labels=["job", "outcome"])
        lateness = HistogramMetricFamily("cron_sidecar_lateness_seconds", "Time from a slot to the first attempt", labels=["job"])
        duration = HistogramMetricFamily("cron_sidecar_fire_duration_seconds", "Time a fire took", labels=["job"])
        retries = CounterMetricFamily("cron_sidecar_retries", "Attempts after the first, by job", labels=["job"])
        last_ok = GaugeMetricFamily("cron_sidecar_last_success_timestamp_seconds", "Last successful fire", labels=["job"])
        failures = GaugeMetricFamily("cron_sidecar_consecutive_failures", "Failed fires since the last success", labels=["job"])
        period = GaugeMetricFamily("cron_sidecar_job_period_seconds", "Time between the job's slots", labels=["job"])
        overdue = GaugeMetricFamily("cron_sidecar_job_overdue", "1 when overdue", labels=["job"])
        for name, lat, dur, ok in self.jobs:
            fires.add_metric([name, "ok"], 1)
            lateness.add_metric([name], lat.buckets(), lat.sum)
            duration.add_metric([name], dur.buckets(), dur.sum)
            retries.add_metric([name], 0)
            last_ok.add_metric([name], ok)
            failures.add_metric([name], 0)
            period.add_metric([name], 60.0)
            overdue.add_metric([name], 0)
        yield from (fires, lateness, duration, retries, last_ok, failures, period, overdue)


def cpu(fn, repeat: int) -> tuple[float, object]:
    """Median thread CPU seconds of fn() over `repeat` calls, and its last result."""
    times, out = [], None
    for _ in range(repeat):
        t = time.thread_time()
        out = fn()
        times.append(time.thread_time() - t)
    return statistics.median(times), out


def serve_before(registry: CollectorRegistry) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def lateness_under_scrapes(url: str | None, seconds: float, gzip_: bool, every: float = 0.0) -> dict[str, float]:
    """Timers due every 10 ms on an asyncio loop in this thread, while another thread scrapes
    `url` every `every` seconds (0: back to back; url None: no scrapes): how late each ran, in ms."""
    stop = threading.Event()
    scrapes = [0]

    def scraper() -> None:
        headers = {"Accept-Encoding": "gzip"} if gzip_ else {}
        while not stop.is_set():
            started = time.monotonic()
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as r:
                r.read()
            scrapes[0] += 1
            stop.wait(max(0.0, every - (time.monotonic() - started)))

    async def timers() -> list[float]:
        loop = asyncio.get_running_loop()
        late, due = [], loop.time()
        end = due + seconds
        while due < end:
            due += 0.01
            await asyncio.sleep(max(0.0, due - loop.time()))
            late.append((loop.time() - due) * 1000)
        return late

    thread = threading.Thread(target=scraper, daemon=True) if url else None
    if thread:
        thread.start()
    late = asyncio.run(timers())
    stop.set()
    if thread:
        thread.join(120)
    late.sort()
    return {"p50": late[len(late) // 2], "p99": late[int(len(late) * 0.99)], "max": late[-1], "scrapes": scrapes[0]}


def healthcheck_cpu(port: int, n: int, script: str) -> float:
    """Child CPU seconds of one healthcheck process against an env file of n jobs."""
    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / "jobs.env"
        lines = [f"SCHEDULER_HTTP_PORT={port}", "SCHEDULER_HTTP_HOST=127.0.0.1"]
        for i in range(n):
            lines += [f"SCHEDULER_JOB_T{i}_SCHEDULE=every 1h", f"SCHEDULER_JOB_T{i}_URL=/t/{i}"]
        env_file.write_text("\n".join(lines) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        code = subprocess.run([sys.executable, "-c", script, str(env_file)], cwd=tmp, env=env).returncode
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if code != 0:
            raise SystemExit(f"healthcheck exited {code}")
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


HEALTHCHECK_BEFORE = """
import sys, httpx
from scheduler.config import load
from scheduler.config.env_file import read_environment
s = load(read_environment(sys.argv[1]))
sys.exit(0 if httpx.get(f"http://{s.http_host}:{s.http_port}/healthz", timeout=3).status_code == 200 else 1)
"""
HEALTHCHECK_AFTER = "import sys; from scheduler.cli import main; sys.exit(main(['healthcheck', '--env-file', sys.argv[1]]))"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=10_000, help="jobs, each fired once (default 10000)")
    ap.add_argument("--repeat", type=int, default=5, help="scrapes measured for 'after' (median; default 5)")
    ap.add_argument("--lateness-seconds", type=float, default=5.0, help="seconds of timers per lateness run (default 5)")
    a = ap.parse_args()

    metrics, names = build(a.jobs)
    gc.freeze()  # as the daemon does once it has built its jobs
    before_registry = CollectorRegistry()
    before_registry.register(_Before(names))

    before_cpu, before_body = cpu(lambda: generate_latest(before_registry), 1)
    after_cpu, after_body = cpu(metrics.exposition, a.repeat)
    print(f"{a.jobs} jobs, each fired once; CPU-s is the scraping thread's, median of the runs")
    print(f"{'':8} {'series':>8} {'bytes':>11} {'gzip-1 bytes':>13} {'gzip-6 bytes':>13} {'render CPU-s':>13} {'gzip-1 CPU-s':>13}")
    for label, body, render in (("before", before_body, before_cpu), ("after", after_body, after_cpu)):
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        gz_cpu, gz1 = cpu(lambda: gzip.compress(body, 1), 1 if label == "before" else a.repeat)  # noqa: B023 (called at once)
        gz6 = gzip.compress(body, 6)
        print(f"{label:8} {series:>8} {len(body):>11,} {len(gz1):>13,} {len(gz6):>13,} {render:>13.3f} {gz_cpu:>13.3f}")

    health = Health()
    after_server = serve("127.0.0.1", 0, metrics, health)
    before_server = serve_before(before_registry)
    try:
        # Whole scrape over HTTP, gzip asked: this process's CPU per scrape (client included).
        url = f"http://127.0.0.1:{after_server.port}/metrics"
        req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        t = time.process_time()
        for _ in range(a.repeat):
            with urllib.request.urlopen(req, timeout=60) as r:
                got = r.read()
        per = (time.process_time() - t) / a.repeat
        print(f"\nafter, over HTTP with Accept-Encoding: gzip: {len(got):,} bytes, {per:.3f} CPU-s per scrape (server and client)")

        print(f"\ntimers every 10 ms on an asyncio loop for {a.lateness_seconds:g} s, lateness in ms:")
        print(f"{'':28} {'p50':>7} {'p99':>7} {'max':>7} {'scrapes':>8}")
        before_url = f"http://127.0.0.1:{before_server.server_address[1]}/metrics"
        for label, target, gz, every in (
            ("no scrapes", None, False, 0.0),
            ("before: a scrape every 1 s", before_url, False, 1.0),
            ("after: a scrape every 1 s", url, True, 1.0),
            ("before: back to back", before_url, False, 0.0),
            ("after: back to back", url, True, 0.0),
        ):
            r = lateness_under_scrapes(target, a.lateness_seconds, gz, every)
            print(f"{label:28} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['max']:>7.2f} {r['scrapes']:>8}")

        health.beat()
        print(f"\nhealthcheck, one process, env file of {a.jobs} jobs (CPU-s of the child):")
        print(f"  before (whole configuration, httpx): {healthcheck_cpu(after_server.port, a.jobs, HEALTHCHECK_BEFORE):.3f}")
        print(f"  after  (port and host only):         {healthcheck_cpu(after_server.port, a.jobs, HEALTHCHECK_AFTER):.3f}")
    finally:
        after_server.shutdown()
        before_server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
