#!/usr/bin/env python3
"""Burst: many jobs due on the same minute boundary.

10,000 jobs `* * * * *` (default), SCHEDULER_MAX_CONCURRENCY 64 (default): are they all
delivered within 3 s of the boundary, is the concurrency limit kept (requests open at once
at the receiver), how long does loading 10,000 jobs from an env file take, and how much
memory does the leader use.

    uv run python bench/burst.py
    uv run python bench/burst.py --jobs 2000 --max-concurrency 256 --hold-ms 20 --json out.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import (  # noqa: E402
    daemon_logs, daemons, lifecycle, measured_code, output, private_redis, procstat, profiling,
    receivers, timing,
)
from harness.fast_receiver import first_arrivals  # noqa: E402
from harness.stats import stats_ms  # noqa: E402


def timed(argv: list[str], timeout: float) -> tuple[float, int]:
    t = time.monotonic()
    p = subprocess.run(argv, cwd=measured_code.SRC, env=daemons.daemon_env({}), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        print(p.stderr.decode(errors="replace")[-2000:], file=sys.stderr)
    return time.monotonic() - t, p.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=10_000, help="number of jobs (default 10000)")
    ap.add_argument("--schedule", default="* * * * *", help="every job's schedule (default '* * * * *')")
    ap.add_argument("--max-concurrency", type=int, default=64, help="SCHEDULER_MAX_CONCURRENCY (default 64)")
    ap.add_argument("--replicas", type=int, default=1, help="replicas (default 1: the leader alone)")
    ap.add_argument("--hold-ms", type=float, default=5.0,
                    help="receiver waits this long before answering, so requests overlap and the "
                         "concurrency limit is observable (default 5)")
    ap.add_argument("--deadline", type=float, default=3.0, help="seconds after the boundary (default 3)")
    ap.add_argument("--min-lead", type=float, default=5.0, help="the boundary is at least this far after the leader is ready (default 5)")
    ap.add_argument("--max-wait", type=float, default=60.0, help="give up on missing fires this long after the boundary (default 60)")
    ap.add_argument("--log-level", default="WARNING", help="SCHEDULER_LOG_LEVEL (default WARNING)")
    ap.add_argument("--ttl", default="15s", help="SCHEDULER_LEASE_TTL (default 15s)")
    ap.add_argument("--renew", default="5s", help="SCHEDULER_LEASE_RENEW (default 5s)")
    ap.add_argument("--profile", metavar="PATH", help="record the leader with py-spy around the boundary (collapsed stacks)")
    ap.add_argument("--json", metavar="PATH", help="write results here (default bench/results/burst-<time>.json)")
    receivers.add_receiver_arg(ap)
    measured_code.add_src_arg(ap)
    a = ap.parse_args()
    measured_code.set_src(a.src)
    budget = 300 + 2 * a.max_wait + a.jobs / 50
    return lifecycle.run_bounded(lambda: run(a), budget)


def run(a: argparse.Namespace) -> int:
    workdir = lifecycle.make_workdir("bench-burst-")
    logs = output.log_dir("burst")
    names = daemons.job_names(a.jobs)
    t = time.monotonic()
    env_file = daemons.write_env_file(workdir / "jobs.env", {n: a.schedule for n in names})
    write_s = time.monotonic() - t
    env_bytes = env_file.stat().st_size

    print(f"{a.jobs} jobs '{a.schedule}', env file {env_bytes / 1e6:.1f} MB; timing `check` ...", flush=True)
    py = sys.executable
    version_s, _ = timed([py, "-m", "scheduler", "--version"], 60)
    check_s, check_rc = timed([py, "-m", "scheduler", "check", "--env-file", str(env_file), "--count", "1"], 300)

    redis = private_redis.RedisServer()
    receiver = receivers.make_receiver(a.receiver, a.hold_ms)
    settings = {
        "SCHEDULER_REDIS_URL": redis.url, "SCHEDULER_API_URL": receiver.url,
        "SCHEDULER_MAX_CONCURRENCY": str(a.max_concurrency), "SCHEDULER_LOG_LEVEL": a.log_level,
        "SCHEDULER_LOG_FORMAT": "json", "SCHEDULER_HTTP_PORT": "0",
        "SCHEDULER_LEASE_TTL": a.ttl, "SCHEDULER_LEASE_RENEW": a.renew,
    }
    print(f"redis :{redis.port}, {a.receiver} receiver :{receiver.port} (hold {a.hold_ms:g} ms), "
          f"MAX_CONCURRENCY={a.max_concurrency}, LOG_LEVEL={a.log_level}, logs {logs}", flush=True)
    k_slots = "{scheduler}:slots"
    leader = daemons.Daemon(env_file, settings, logs / "replica-1.log")
    t_spawn = time.monotonic()
    timing.wait_for(lambda: private_redis.leader_of(redis.conn)[1] == leader.pid or not leader.running, 180, 0.01,
               "the replica to take the lease")
    if not leader.running:
        raise RuntimeError(f"the daemon exited with {leader.proc.returncode}; see {leader.log_path}")
    t_leader = time.monotonic()
    timing.wait_for(lambda: redis.conn.hlen(k_slots) >= a.jobs or not leader.running, 180, 0.01,
               "a watermark for every job")
    if not leader.running:
        raise RuntimeError(f"the daemon exited with {leader.proc.returncode}; see {leader.log_path}")
    t_ready = time.monotonic()
    standbys = [daemons.Daemon(env_file, settings, logs / f"replica-{i}.log") for i in range(2, a.replicas + 1)]
    timing.wait_for(lambda: private_redis.subscribers(redis.conn) >= a.replicas, 120, what="every replica to subscribe")

    boundary = (int(time.time() + a.min_lead) // 60 + 1) * 60
    slot_text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(boundary))
    print(f"leader ready after {t_ready - t_spawn:.2f} s; boundary {slot_text} in {boundary - time.time():.1f} s", flush=True)
    timing.sleep_until(boundary - 1.0)
    cpu = procstat.CpuWindow(leader.pid)
    cpu.start()
    rss_before = procstat.proc_status(leader.pid)
    spy = profiling.start_py_spy(leader.pid, min(a.max_wait, 30) + 1, Path(a.profile)) if a.profile else None
    start_index = receiver.count()

    def all_in() -> bool:
        return sum(1 for x in receiver.since(start_index) if x.slot == slot_text) >= a.jobs

    timing.sleep_until(boundary)
    try:
        timing.wait_for(lambda: all_in() or time.time() > boundary + a.max_wait or not leader.running, a.max_wait + 5, 0.05)
    finally:
        cpu.stop()
    time.sleep(1.0)  # stragglers and duplicates
    alive = leader.running
    if spy is not None:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            pass
    t = time.monotonic()
    exits = {"standbys": [s.stop() for s in standbys], "leader": leader.stop(60)}
    stop_s = time.monotonic() - t
    arrivals = [x for x in receiver.since(start_index) if x.slot == slot_text]
    others = [x for x in receiver.since(start_index) if x.slot != slot_text]
    receiver.stop()

    cutoff = boundary + a.max_wait  # what arrives later came while the daemon shut down
    first_all, _ = first_arrivals(arrivals)
    first, dupes = first_arrivals([x for x in arrivals if x.t <= cutoff])
    after_cutoff = len(first_all) - len(first)
    late = [x.t - boundary for x in first.values()]
    within = sum(1 for v in late if v <= a.deadline)
    last = max(late) if late else None
    first_t = min(late) if late else None
    open_max = max((x.inflight for x in arrivals), default=0)  # the whole run, shutdown included
    problems = daemon_logs.log_problems([leader.log_path, *(s.log_path for s in standbys)])
    lat = stats_ms(late)
    res = {
        "benchmark": "burst",
        "environment": measured_code.environment_info(),
        "config": {"receiver": a.receiver, "jobs": a.jobs, "schedule": a.schedule, "max_concurrency": a.max_concurrency, "replicas": a.replicas,
                   "receiver_hold_ms": a.hold_ms, "deadline_s": a.deadline, "log_level": a.log_level,
                   "lease_ttl": a.ttl, "lease_renew": a.renew, "boundary": slot_text},
        "load": {
            "env_file_bytes": env_bytes, "env_file_write_s": round(write_s, 3),
            "python_version_cmd_s": round(version_s, 3),
            "check_wall_s": round(check_s, 3), "check_exit": check_rc,
            "spawn_to_lease_s": round(t_leader - t_spawn, 3),
            "spawn_to_all_watermarks_s": round(t_ready - t_spawn, 3),
        },
        "delivered": len(first), "delivered_pct": round(100 * len(first) / a.jobs, 3),
        "delivered_after_max_wait": after_cutoff,
        "within_deadline": within, "within_deadline_pct": round(100 * within / a.jobs, 3),
        "duplicates": dupes, "other_slots_fired": len(others),
        "lateness_ms": lat,
        "first_arrival_s": None if first_t is None else round(first_t, 3),
        "last_arrival_s": None if last is None else round(last, 3),
        "throughput_per_s": round(len(first) / (last - first_t), 1) if late and last > first_t else None,
        "max_open_requests": open_max, "receiver_connections": len(receiver.connections),
        "limit_kept": open_max <= a.max_concurrency,
        "leader": {**cpu.as_dict(), "rss_before_kb": rss_before.get("VmRSS")},
        "alive_after_burst": alive, "exit_codes": exits, "shutdown_s": round(stop_s, 2),
        "log_problems": problems, "logs": str(logs),
    }
    if a.profile:
        res["profile"] = {"raw": a.profile, **profiling.summarize_collapsed(Path(a.profile))}
    ld, lead = res["load"], res["leader"]
    all_in_time = res["within_deadline"] == a.jobs
    rows = [
        ("env file", f"{a.jobs} jobs, {env_bytes / 1e6:.2f} MB", ""),
        ("`check --env-file` wall time", f"{ld['check_wall_s']:.2f} s (exit {check_rc}); `--version` alone {ld['python_version_cmd_s']:.2f} s", ""),
        ("daemon start -> lease taken", f"{ld['spawn_to_lease_s']:.2f} s", ""),
        ("daemon start -> every job's watermark set", f"{ld['spawn_to_all_watermarks_s']:.2f} s", ""),
        (f"delivered within {a.max_wait:g} s (--max-wait)", f"{len(first)} / {a.jobs} ({res['delivered_pct']:.2f}%)", ""),
        ("delivered later, while shutting down", after_cutoff, ""),
        (f"delivered within {a.deadline:g} s of the boundary", f"{within} ({res['within_deadline_pct']:.2f}%)",
         f"all: {output.verdict(all_in_time)}"),
        ("duplicates", dupes, ""),
        ("lateness p50 / p99 / max", f"{output.fmt(lat['p50'], ' ms')} / {output.fmt(lat['p99'], ' ms')} / {output.fmt(lat['max'], ' ms')}", ""),
        ("first / last arrival after the boundary", f"{output.fmt(res['first_arrival_s'], ' s', 3)} / {output.fmt(res['last_arrival_s'], ' s', 3)}", ""),
        ("throughput first->last arrival", output.fmt(res["throughput_per_s"], " fires/s"), ""),
        ("max requests open at the receiver", f"{open_max} (limit {a.max_concurrency}; {len(receiver.connections)} connections)",
         f"<= limit: {output.verdict(res['limit_kept'])}"),
        ("leader CPU over the burst (% of a core)", f"{output.fmt(lead['cpu_percent_of_core'], ' %')} over {lead['seconds']:.1f} s", ""),
        ("leader RSS before / after / peak", f"{output.mb(lead['rss_before_kb'])} / {output.mb(lead['rss_kb'])} / {output.mb(lead['peak_rss_kb'])}", ""),
        ("leader alive after burst; exit codes", f"{alive}; {exits} (stop took {stop_s:.1f} s)", ""),
        ("daemon warnings/errors logged", daemon_logs.summarize_problems(problems), ""),
    ]
    output.print_table(f"burst: {a.jobs} jobs '{a.schedule}' due at {slot_text}, MAX_CONCURRENCY={a.max_concurrency}, "
                  f"{a.receiver} receiver holding {a.hold_ms:g} ms, LOG_LEVEL={a.log_level}, {a.replicas} replica(s)",
                  rows, ("figure", "value", "target"))
    if "profile" in res:
        p = res["profile"]
        output.print_table(f"leader profile (py-spy, {p['total_samples']} non-idle samples): self time",
                      [(x["function"], f"{x['percent']} %") for x in p["self"][:12]], ("function", "% samples"))
        output.print_table("leader profile: inclusive",
                      [(x["function"], f"{x['percent']} %") for x in p["inclusive"][:20]], ("function", "% samples"))
    path = output.write_json(a.json or output.default_json_path("burst"), res)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
