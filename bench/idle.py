#!/usr/bin/env python3
"""Idle cost: 100 hourly jobs, 2 replicas, nothing (or almost nothing) due.

CPU % of one core and RSS of each replica over D seconds, how often each one wakes up
(voluntary context switches per second), and the Redis commands the pair sends per second.

    uv run python bench/idle.py
    uv run python bench/idle.py --jobs 1000 --duration 120 --replicas 3 --json out.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import (  # noqa: E402
    daemon_logs, daemons, lifecycle, measured_code, output, private_redis, procstat, receivers,
    timing,
)
from harness.ports import LOOPBACK, free_port  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100, help="number of jobs (default 100)")
    ap.add_argument("--schedule", default="auto", help="every job's schedule (default 'auto': hourly at the "
                    "minute half an hour from now, 'M * * * *', so nothing fires during the run; 'H * * * *' "
                    "spreads them over the hour, so a few fire)")
    ap.add_argument("--duration", type=int, default=60, help="measured seconds (default 60)")
    ap.add_argument("--replicas", type=int, default=2, help="replicas (default 2)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after start-up before measuring (default 5)")
    ap.add_argument("--log-level", default="INFO", help="SCHEDULER_LOG_LEVEL (default INFO, the daemon's default)")
    ap.add_argument("--ttl", default="15s", help="SCHEDULER_LEASE_TTL (default 15s, the daemon's default)")
    ap.add_argument("--renew", default="5s", help="SCHEDULER_LEASE_RENEW (default 5s, the daemon's default)")
    ap.add_argument("--http-port", action="store_true", help="also serve /metrics (SCHEDULER_HTTP_PORT on a free port); off by default")
    ap.add_argument("--json", metavar="PATH", help="write results here (default bench/results/idle-<time>.json)")
    receivers.add_receiver_arg(ap)
    measured_code.add_src_arg(ap)
    a = ap.parse_args()
    measured_code.set_src(a.src)
    if a.schedule == "auto":
        a.schedule = f"{(time.gmtime().tm_min + 30) % 60} * * * *"
    return lifecycle.run_bounded(lambda: run(a), 120 + a.settle + a.duration + 10 * a.replicas)


def run(a: argparse.Namespace) -> int:
    workdir = lifecycle.make_workdir("bench-idle-")
    logs = output.log_dir("idle")
    redis = private_redis.RedisServer()
    receiver = receivers.make_receiver(a.receiver)
    env_file = daemons.write_env_file(workdir / "jobs.env", {n: a.schedule for n in daemons.job_names(a.jobs)})
    base = {
        "SCHEDULER_REDIS_URL": redis.url, "SCHEDULER_API_URL": receiver.url,
        "SCHEDULER_LOG_LEVEL": a.log_level, "SCHEDULER_LOG_FORMAT": "json",
        "SCHEDULER_LEASE_TTL": a.ttl, "SCHEDULER_LEASE_RENEW": a.renew,
        "SCHEDULER_HTTP_HOST": LOOPBACK,
    }
    print(f"{a.jobs} jobs '{a.schedule}', {a.replicas} replicas, LOG_LEVEL={a.log_level}, TTL {a.ttl}/renew {a.renew}, "
          f"redis :{redis.port}, logs {logs}", flush=True)
    replicas = []
    for i in range(1, a.replicas + 1):
        port = str(free_port()) if a.http_port else "0"
        replicas.append(daemons.Daemon(env_file, {**base, "SCHEDULER_HTTP_PORT": port}, logs / f"replica-{i}.log"))
        if i == 1:
            timing.wait_for(lambda: private_redis.leader_of(redis.conn)[1] == replicas[0].pid, 60, what="the first replica to lead")
    timing.wait_for(lambda: private_redis.subscribers(redis.conn) >= a.replicas, 60, what="every replica to subscribe")
    time.sleep(a.settle)

    windows = [procstat.CpuWindow(r.pid) for r in replicas]
    stats0 = redis.commandstats()
    total0 = redis.conn.info("stats")["total_commands_processed"]
    fires0 = receiver.count()
    for w in windows:
        w.start()
    time.sleep(a.duration)
    for w in windows:
        w.stop()
    stats1 = redis.commandstats()
    total1 = redis.conn.info("stats")["total_commands_processed"]
    fires = receiver.count() - fires0
    _, leader_pid = private_redis.leader_of(redis.conn)
    alive = [r.running for r in replicas]
    exits = [r.stop() for r in reversed(replicas)][::-1]
    receiver.stop()

    # Our own INFO calls show as `info` (and are excluded); scripts' inner calls are included
    # in these counts, so the per-command table tells what ran, not what the clients sent.
    delta = {k: stats1.get(k, 0) - stats0.get(k, 0) for k in stats1}
    delta = {k: v for k, v in delta.items() if v and k not in ("info",)}
    scripts = sum(v for k, v in delta.items() if k in ("evalsha", "eval"))
    problems = daemon_logs.log_problems([r.log_path for r in replicas])
    res = {
        "benchmark": "idle",
        "environment": measured_code.environment_info(),
        "config": {"receiver": a.receiver, "jobs": a.jobs, "schedule": a.schedule, "duration_s": a.duration, "replicas": a.replicas,
                   "log_level": a.log_level, "lease_ttl": a.ttl, "lease_renew": a.renew, "http_port": a.http_port},
        "replicas": [{**w.as_dict(), "role": "leader" if w.pid == leader_pid else "standby"} for w in windows],
        "fires_during_window": fires,
        "redis": {
            "script_calls_per_s": round(scripts / a.duration, 3),
            "commands_per_s_incl_script_inner": round((total1 - total0 - 1) / a.duration, 3),
            "commandstats_delta": delta,
        },
        "alive_at_end": alive, "exit_codes": exits, "log_problems": problems, "logs": str(logs),
    }
    rows = []
    for i, r in enumerate(res["replicas"], 1):
        rows.append((f"replica {i} ({r['role']}) CPU % of a core", output.fmt(r["cpu_percent_of_core"], " %", 2),
                     f"{r['cpu_s']} s CPU in {r['seconds']:.0f} s"))
        rows.append((f"replica {i} RSS / peak", f"{output.mb(r['rss_kb'])} / {output.mb(r['peak_rss_kb'])}", f"{r['threads']} threads"))
        rows.append((f"replica {i} wake-ups/s (voluntary switches)", output.fmt(r["voluntary_switches_per_s"], "", 1), ""))
    rows += [
        ("fires during the window", fires, ""),
        ("Redis EVALSHA/EVAL per s (all replicas)", res["redis"]["script_calls_per_s"], ""),
        ("Redis commands per s incl. scripts' inner calls", res["redis"]["commands_per_s_incl_script_inner"],
         ", ".join(f"{k} {v}" for k, v in sorted(delta.items(), key=lambda kv: -kv[1])[:6])),
        ("replicas alive at end; exit codes", f"{alive}; {exits}", ""),
        ("daemon warnings/errors logged", daemon_logs.summarize_problems(problems), ""),
    ]
    output.print_table(f"idle: {a.jobs} jobs '{a.schedule}', {a.replicas} replicas, {a.duration} s, LOG_LEVEL={a.log_level}, "
                  f"TTL {a.ttl}/renew {a.renew}", rows, ("figure", "value", "detail"))
    path = output.write_json(a.json or output.default_json_path("idle"), res)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
