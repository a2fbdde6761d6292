#!/usr/bin/env python3
"""Jobs from the app's URL on a whole cluster: a leader and a standby (`python -m scheduler
run`), a real redis-server, a local HTTP server serving the document of jobs (ETag, 304),
and a recording receiver for the fires.

Most of the document's jobs are daily at spread times (none due at the current hour), 10 %
of them `H H * * *`; 100 env jobs fire every second. Prints:
(a) start -> source jobs in force, per replica: the engine's "job set changed" line and the
    `cron_sidecar_jobs_source_jobs{source="url"}` metric; peak RSS; memory per job (against a
    daemon without the source);
(b) a change of 1,000 jobs: document switched -> the engine's "job set changed" line, and
    the lateness of the every-second fires (arrival - X-Scheduler-Slot) around it;
(c) CPU per unchanged (304) refresh: the CPU of the standby over a window of several
    refreshes less that of a second standby over the same window (same env file and
    environment, but a refresh period of an hour: the same lease waits and idle work, no
    refresh), divided by the refreshes the document server counted from the first one; and,
    apart, the old upper bound (the standby's whole CPU / refreshes);
(d) commands and round trips of the state load at leadership start, for 1,000 to 100,000 jobs;
(e) failover: the leader stopped, the standby leads with all the jobs: how soon it fires, and
    the lateness of its first seconds' every-second fires (its start plans 100,000 jobs);
(f) /metrics of that leader, with every job's series: size, time per scrape, and the
    every-second fires' lateness meanwhile.

    uv run python bench/sources_cluster.py
    uv run python bench/sources_cluster.py --jobs 20000 --window 8
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import (  # noqa: E402
    daemon_logs, daemons, lifecycle, output, private_redis, procstat, profiling, receivers, timing,
)
from bench import doc_server  # noqa: E402
from bench.state_load import state_load  # noqa: E402
from harness.ports import free_port  # noqa: E402
from harness.stats import stats_ms  # noqa: E402

_SOURCE_JOBS = re.compile(r'^cron_sidecar_jobs_source_jobs\{source="url"\} ([0-9.e+]+)$', re.M)


def document(n: int, h_share: float, changed: int = 0) -> dict:
    """n jobs, daily at times spread over the hours other than the current one and the next."""
    busy = {time.gmtime().tm_hour, (time.gmtime().tm_hour + 1) % 24}
    hours = [h for h in range(24) if h not in busy]
    jobs = []
    for i in range(n):
        schedule = "H H * * *" if i < n * h_share else f"{i % 60} {hours[(i // 60) % len(hours)]} * * *"
        job = {"name": f"tenant-{i}-digest", "schedule": schedule, "url": f"/digest/{i}"}
        if i % 10 == 0:
            job |= {"timezone": "UTC", "retries": 1, "timeout": "2m"}
        if n - changed <= i:
            job["url"] += "?v=2"
        jobs.append(job)
    return {"jobs": jobs}


def scrape(port: int) -> float | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    m = _SOURCE_JOBS.search(text)
    return float(m.group(1)) if m else None


def job_set_changes(d: daemons.Daemon) -> list[dict]:
    return [ev for ev in daemon_logs.log_events(d.log_path) if ev.get("event") == "job set changed"]


def in_force(d: daemons.Daemon, port: int, n: int, timeout: float, log: bool = True) -> dict:
    """Seconds from the process's start to the metric saying n, and to the engine's log
    line (a standby's engine applies the set only when it leads: `log=False`)."""
    metric_at = log_at = None
    deadline = time.time() + timeout
    while time.time() < deadline and (metric_at is None or (log and log_at is None)):
        if metric_at is None and (scrape(port) or 0) >= n:
            metric_at = time.time()
        if log_at is None:
            for ev in job_set_changes(d):
                if ev.get("jobs", 0) >= n:
                    log_at = daemon_logs.log_time(ev)
                    break
        if not d.running:
            raise RuntimeError(f"the daemon exited; see {d.log_path}")
        time.sleep(0.02)
    return {"metric_s": None if metric_at is None else metric_at - d.started,
            "log_s": None if log_at is None else log_at - d.started}


def run(a) -> list[tuple]:
    work = lifecycle.make_workdir("bench-sources-cluster-")
    logs = output.log_dir("sources-cluster")
    redis = private_redis.RedisServer()
    receiver = receivers.make_receiver("raw")
    first, second = work / "a.json", work / "b.json"
    first.write_text(json.dumps(document(a.jobs, a.h_share)))
    second.write_text(json.dumps(document(a.jobs, a.h_share, a.changed)))
    doc_port = doc_server.serve(first, second)
    env_file = daemons.write_env_file(work / "jobs.env", {f"TICK{i:03d}": "every 1s" for i in range(a.every_second)})
    base = {"SCHEDULER_REDIS_URL": redis.url, "SCHEDULER_API_URL": receiver.url, "SCHEDULER_LOG_FORMAT": "json",
            "SCHEDULER_LOG_LEVEL": "INFO", "SCHEDULER_MAX_CONCURRENCY": "256"}
    with_source = base | {"SCHEDULER_JOBS_URL": f"http://127.0.0.1:{doc_port}/jobs", "SCHEDULER_JOBS_REFRESH": a.refresh}

    # A daemon without the source, for the memory per job.
    port0 = free_port()
    bare = daemons.Daemon(env_file, base | {"SCHEDULER_NAMESPACE": "bare", "SCHEDULER_HTTP_PORT": str(port0)}, logs / "bare.log")
    timing.wait_for(lambda: _up(f"http://127.0.0.1:{port0}/metrics"), 30, what="the bare daemon's /metrics")
    time.sleep(1.0)
    bare_rss = procstat.proc_status(bare.pid).get("VmRSS", 0)
    bare.stop()

    n_all = a.jobs + a.every_second
    ports = [free_port(), free_port()]
    leader = daemons.Daemon(env_file, with_source | {"SCHEDULER_HTTP_PORT": str(ports[0])}, logs / "leader.log")
    spies = [profiling.start_py_spy(leader.pid, 6, Path(a.profile) / "start.raw")] if a.profile else []
    lead = in_force(leader, ports[0], a.jobs, 60)
    timing.wait_for(lambda: private_redis.leader_of(redis.conn)[1] == leader.pid, 30, what="the first replica to lead")
    standby = daemons.Daemon(env_file, with_source | {"SCHEDULER_HTTP_PORT": str(ports[1]),
                                                "SCHEDULER_JOBS_URL": f"http://127.0.0.1:{doc_port}/standby"}, logs / "standby.log")
    stand = in_force(standby, ports[1], a.jobs, 60, log=False)
    timing.wait_for(lambda: any(ev.get("jobs", 0) >= n_all for ev in job_set_changes(leader)), 30, what="the leader's jobs")
    time.sleep(2.0)  # both settled: every-second fires only
    rss = {name: procstat.proc_status(d.pid).get("VmRSS", 0) for name, d in (("leader", leader), ("standby", standby))}

    # (c) unchanged refreshes: the standby's CPU over several of them, less a reference's
    refresh_s = timing.duration_s(a.refresh)
    reference = daemons.Daemon(env_file, with_source | {"SCHEDULER_HTTP_PORT": str(port_ref := free_port()),
                                                  "SCHEDULER_JOBS_REFRESH": a.reference_refresh,
                                                  "SCHEDULER_JOBS_URL": f"http://127.0.0.1:{doc_port}/reference"},
                         logs / "reference.log")
    timing.wait_for(lambda: (scrape(port_ref) or 0) >= a.jobs, 60, what="the reference's source jobs")
    cpu_rows = refresh_cpu(standby, reference, doc_port, refresh_s * a.refreshes)

    # (b) a change of 1,000 jobs while 100 jobs fire every second
    i0 = receiver.count()
    w0 = time.time()
    if a.profile:
        spies.append(profiling.start_py_spy(leader.pid, a.window, Path(a.profile) / "window.raw"))
    time.sleep(a.window / 2)
    seen = {d.pid: len(job_set_changes(d)) for d in (leader, standby)}
    t_change = time.time()
    doc_server.switch(doc_port)

    def applied(d: daemons.Daemon):
        for ev in job_set_changes(d)[seen[d.pid]:]:
            if ev.get("changed") == a.changed:
                return daemon_logs.log_time(ev)
        return None

    lead_at = timing.wait_for(lambda: applied(leader), refresh_s + 10, what="the leader to apply the change")
    timing.sleep_until(max(w0 + a.window, time.time()))
    stand_at = applied(standby)  # a standby's engine may apply it only when it leads
    arrivals = receiver.since(i0)
    late = tick_lateness(arrivals)
    lat = stats_ms(late)
    quiet = stats_ms(tick_lateness(arrivals, lambda slot: slot < t_change))
    after = stats_ms(tick_lateness(arrivals, lambda slot: slot >= t_change))
    peak = {name: procstat.proc_status(d.pid).get("VmHWM", 0) for name, d in (("leader", leader), ("standby", standby))}
    for spy in spies:
        if spy is not None:
            spy.wait(30)
    for name in ("start", "window") if a.profile else ():
        top = profiling.summarize_collapsed(Path(a.profile) / f"{name}.raw", top=12)
        print(f"py-spy, leader, {name}:", json.dumps(top, indent=1)[:3000])
    problems = daemon_logs.summarize_problems(daemon_logs.log_problems([leader.log_path, standby.log_path, reference.log_path]))
    failover_rows = failover(leader, standby, receiver, Path(a.profile) / "failover.raw" if a.profile else None)
    failover_rows += scrapes(standby, ports[1], receiver, a.scrapes)
    standby.stop()

    def t(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f} s  {output.verdict(v <= 2.0)}"

    rows = [
        ("jobs in the document (H share); every-second env jobs", f"{a.jobs} ({a.h_share:.0%}); {a.every_second}"),
        ("document size", output.fmt(first.stat().st_size / 1e6, " MB")),
        ("(a) leader: start -> source jobs metric", t(lead["metric_s"]) + " (target <= 2 s)"),
        ("(a) leader: start -> engine 'job set changed'", t(lead["log_s"])),
        ("(a) standby: start -> source jobs metric", t(stand["metric_s"])),
        ("(a) standby: start -> engine 'job set changed'", "n/a (a standby's engine applies the set when it leads)"),
        ("(a) peak RSS leader / standby", f"{output.mb(peak['leader'])} / {output.mb(peak['standby'])}  "
         f"{output.verdict(max(peak.values()) <= 300 * 1024)} (target <= 300 MB)"),
        ("(a) RSS without the source / leader / standby", f"{output.mb(bare_rss)} / {output.mb(rss['leader'])} / {output.mb(rss['standby'])}"),
        ("(a) memory per job (leader RSS - bare RSS) / jobs", f"{(rss['leader'] - bare_rss) / a.jobs:.2f} kB"),
        (f"(b) change of {a.changed}: switch -> leader 'job set changed'",
         f"{lead_at - t_change:.2f} s  {output.verdict(lead_at - t_change <= refresh_s + 0.5)} (target <= {refresh_s + 0.5:g} s)"),
        (f"(b) change of {a.changed}: switch -> standby 'job set changed'", "n/a (not applied while standing by)" if stand_at is None else f"{stand_at - t_change:.2f} s"),
        (f"(b) every-second fires in the {a.window:g} s around it", str(len(late))),
        ("(b) lateness p50 / p99 / max", f"{lat['p50']} / {lat['p99']} / {lat['max']} ms  "
         f"{output.verdict(lat['p99'] is not None and lat['p99'] <= 50)} (target p99 <= 50 ms)"),
        ("(b) lateness p99 before the switch / after it", f"{quiet['p99']} / {after['p99']} ms"),
        *cpu_rows,
        *failover_rows,
        ("warnings and errors logged", problems),
    ]
    rows += state_load(redis.url, a.load_sizes)
    return rows


def tick_lateness(arrivals, keep: Callable[[int], bool] = lambda slot: True) -> list[float]:
    """Arrival minus slot, in seconds, of the every-second env jobs' fires whose slot `keep`s."""
    return [x.t - slot for x in arrivals if x.job.startswith("tick") and x.slot and keep(slot := timing.parse_slot(x.slot))]


def failover(leader: daemons.Daemon, standby: daemons.Daemon, receiver, profile: Path | None) -> list[tuple]:
    """(e): the leader stopped (SIGTERM: it releases the lease); the standby leads with every
    job in its plan at once. Its leadership start plans them on its loop: the every-second
    fires of its first seconds show how long that held the loop."""
    i0 = receiver.count()
    spy = profiling.start_py_spy(standby.pid, 5, profile) if profile else None
    t_stop = time.time()
    leader.stop()

    def became() -> float | None:
        return next((daemon_logs.log_time(ev) for ev in daemon_logs.log_events(standby.log_path) if ev.get("event") == "became leader"), None)

    at = timing.wait_for(became, 30, what="the standby to lead")
    timing.sleep_until(at + 6.0)
    arrivals = receiver.since(i0)
    first = min((x.t for x in arrivals if x.job.startswith("tick") and x.slot and x.t >= at), default=None)
    late = stats_ms(tick_lateness(arrivals, lambda slot: at + 1 <= slot <= at + 5))
    if spy is not None and profile is not None:
        spy.wait(30)
        print("py-spy, standby, failover:", json.dumps(profiling.summarize_collapsed(profile, top=12), indent=1)[:3000])
    return [
        ("(e) failover, leader stopped: -> standby 'became leader' / its first fire",
         f"{at - t_stop:.2f} s / {'n/a' if first is None else f'{first - t_stop:.2f} s'}"),
        ("(e) lateness of its every-second fires, slots 1-5 s into its leadership: p99 / max",
         f"{late['p99']} / {late['max']} ms"),
    ]


def scrapes(d: daemons.Daemon, port: int, receiver, n: int) -> list[tuple]:
    """(f): /metrics of a leader with every job, scraped `n` times 2 s apart: its size, how
    long each took, and the lateness of the every-second fires meanwhile (the exposition
    runs in the HTTP server's thread, in slices between which the loop takes the GIL)."""
    if n <= 0:
        return []
    i0 = receiver.count()
    t0 = time.time()
    took, size = [], 0
    for _ in range(n):
        began = time.perf_counter()
        size = len(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read())
        took.append(time.perf_counter() - began)
        timing.sleep_until(t0 + 2.0 * len(took))
    t1 = time.time()
    late = stats_ms(tick_lateness(receiver.since(i0), lambda slot: t0 <= slot <= t1))
    return [
        (f"(f) /metrics of the leader, {n} scrapes 2 s apart: size; seconds each (max)",
         f"{size / 1e6:.1f} MB; {statistics.median(took):.2f} s ({max(took):.2f} s)"),
        ("(f) lateness of the every-second fires meanwhile: p99 / max", f"{late['p99']} / {late['max']} ms"),
    ]


def thread_cpu_ns(pid: int) -> tuple[int, frozenset[int]]:
    """On-CPU time of the process's live threads in ns (/proc/<pid>/task/*/schedstat, not
    counted in clock ticks as /proc/<pid>/stat is), and their ids."""
    total, tids = 0, set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
            tids.add(int(task.name))
        except (OSError, ValueError, IndexError):
            pass
    return total, frozenset(tids)


def refresh_cpu(standby: daemons.Daemon, reference: daemons.Daemon, doc_port: int, seconds: float) -> list[tuple]:
    """(c): the CPU of the refreshing standby and of the reference over the same window, once
    both have settled; the reference is stopped after it."""
    time.sleep(5.0)
    pair = (standby, reference)
    reads0 = doc_server.counts(doc_port)
    wins = [procstat.CpuWindow(d.pid) for d in pair]
    ns0 = [thread_cpu_ns(d.pid) for d in pair]
    for w in wins:
        w.start()
    time.sleep(seconds)
    for w in wins:
        w.stop()
    ns1 = [thread_cpu_ns(d.pid) for d in pair]
    reads1 = doc_server.counts(doc_port)
    reference.stop()
    made, ref_made = (reads1.get(p, 0) - reads0.get(p, 0) for p in ("/standby", "/reference"))
    ticks_ms = [(w.cpu_s or 0.0) * 1000 for w in wins]
    # A thread that ended in the window takes its time out of the schedstat sums: then ticks.
    exact = all(a[1] == b[1] for a, b in zip(ns0, ns1))
    cpu_ms = [(b[0] - a[0]) / 1e6 for a, b in zip(ns0, ns1)] if exact else ticks_ms
    how = "schedstat, ns" if exact else f"a thread ended: clock ticks of {1000 / procstat.CLK_TCK:g} ms"
    n = max(made, 1)
    diff_ms, upper_ms = (cpu_ms[0] - cpu_ms[1]) / n, cpu_ms[0] / n
    return [
        (f"(c) refreshes in the {seconds:g} s window, counted at the server: standby / reference", f"{made} / {ref_made}"),
        ("(c) CPU in the window, standby / reference", f"{cpu_ms[0]:.1f} / {cpu_ms[1]:.1f} ms ({how}); "
         f"clock ticks: {ticks_ms[0]:.0f} / {ticks_ms[1]:.0f} ms"),
        ("(c) CPU per 304 refresh: (standby - reference) / refreshes",
         f"{diff_ms:.3f} ms  {output.verdict(made > 0 and ref_made == 0 and diff_ms <= 1.0)} (target <= 1 ms)"),
        ("(c) CPU per 304 refresh, upper bound: standby / refreshes", f"{upper_ms:.2f} ms (lease waits and idle work in it)"),
    ]


def _up(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).read()
        return True
    except OSError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--changed", type=int, default=1_000)
    ap.add_argument("--h-share", type=float, default=0.1)
    ap.add_argument("--every-second", type=int, default=100)
    ap.add_argument("--refresh", default="2s", help="SCHEDULER_JOBS_REFRESH")
    ap.add_argument("--refreshes", type=int, default=10, help="unchanged refreshes to measure the CPU of")
    ap.add_argument("--reference-refresh", default="1h", help="SCHEDULER_JOBS_REFRESH of the reference standby in (c)")
    ap.add_argument("--window", type=float, default=10.0, help="seconds of every-second fires around the change")
    ap.add_argument("--load-sizes", type=lambda s: [int(x) for x in s.split(",") if x], default=[1000, 10_000, 100_000])
    ap.add_argument("--scrapes", type=int, default=5, help="scrapes of the leader's /metrics in (f) (0: none)")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the leader at start and around the change, and the standby at failover, into DIR")
    a = ap.parse_args()
    if a.profile:
        Path(a.profile).mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        rows = run(a)
    finally:
        lifecycle.cleanup()
    output.print_table("jobs from the app's URL: leader + standby + redis-server", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
