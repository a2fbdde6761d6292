#!/usr/bin/env python3
"""Steady-state latency: N jobs all due every second, a leader and standbys on a real Redis.

Measured at the receiver: delivered %, duplicates (by Idempotency-Key), lateness (arrival
at the receiver - X-Scheduler-Slot); at the leader: CPU % of one core and RSS from /proc;
at Redis: commands per fire (see `--help` of --monitor-s for the method). The jobs are in
the env file (--jobs-from env) or, with --jobs-from url, in a document {"jobs": [...]} served
by a local HTTP server (bench/doc_server.py; ETag, 304s) at every replica's SCHEDULER_JOBS_URL.

    uv run python bench/latency.py                       # both presets: 20 jobs/30 s, 1000 jobs/60 s
    uv run python bench/latency.py --preset large --profile /tmp/leader.collapsed
    uv run python bench/latency.py --jobs 200 --duration 20 --replicas 3 --json out.json
    uv run python bench/latency.py --jobs 1000 --duration 30 --jobs-from url
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import (  # noqa: E402
    daemon_logs, daemons, lifecycle, measured_code, monitor, output, private_redis, procstat,
    profiling, receivers, timing,
)
from bench import doc_server  # noqa: E402
from bench.latency_report import report  # noqa: E402
from harness.fast_receiver import first_arrivals  # noqa: E402
from harness.stats import stats_ms  # noqa: E402

PRESETS = {
    "small": {"jobs": 20, "duration": 30, "targets": {"p99_ms": 15}},
    "large": {
        "jobs": 1000, "duration": 60,
        "targets": {"delivered_pct": 100.0, "duplicates": 0, "p99_ms": 150, "leader_cpu_pct": 25, "cmds_per_fire": 2},
    },
}

METHOD = (
    "Redis commands per fire: INFO commandstats and total_commands_processed also count the "
    "calls a Lua script makes, and Redis 7.0 has no per-client counter, so client commands are "
    "counted from a MONITOR sample (redis-cli monitor, taken right after the measured window so it "
    "cannot slow it down): a line '[db ip:port]' is a command a client sent, '[db lua]' a call inside "
    "a script; the leader's connections are found from /proc/<pid>/fd and /proc/net/tcp. Divided by "
    "the fires that arrived at the receiver during the sample. EVALSHA/EVAL calls per fire over the "
    "whole window come from INFO commandstats (exact: a script cannot call EVAL)."
)


def expected_slots(schedule: str, w0: int, w1: int, workdir: Path) -> list[int]:
    """Slots of one job with this schedule in [w0, w1), from the daemon's own `check`."""
    env_file = daemons.write_env_file(workdir / "one.env", {"PROBE": schedule})
    from_ = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(w0 - 1))
    out = subprocess.run(
        [sys.executable, "-m", "scheduler", "check", "--env-file", str(env_file), "--json", "--from", from_,
         "--count", str(w1 - w0 + 2)],
        cwd=measured_code.SRC, env=daemons.daemon_env({}), capture_output=True, text=True, timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"scheduler check failed: {out.stderr.strip()}")
    slots = [timing.parse_slot(s) for s in json.loads(out.stdout)["jobs"][0]["next"]]
    return [s for s in slots if w0 <= s < w1]


def replica_config(a: argparse.Namespace, workdir: Path, redis_url: str, receiver_url: str, names: list[str],
                   max_conc: int) -> tuple[Path, dict[str, str]]:
    """Every replica's env file and settings; with --jobs-from url, the document server too."""
    jobs_of = {n: a.schedule for n in names}
    env_file = daemons.write_env_file(workdir / "jobs.env", jobs_of if a.jobs_from == "env" else {})
    settings = {
        "SCHEDULER_REDIS_URL": redis_url, "SCHEDULER_API_URL": receiver_url,
        "SCHEDULER_MAX_CONCURRENCY": str(max_conc), "SCHEDULER_LOG_LEVEL": a.log_level,
        "SCHEDULER_LOG_FORMAT": "json", "SCHEDULER_HTTP_PORT": "0",
        "SCHEDULER_LEASE_TTL": a.ttl, "SCHEDULER_LEASE_RENEW": a.renew,
    }
    if a.jobs_from == "url":
        port = doc_server.serve(doc_server.write_jobs(workdir / "jobs.json", jobs_of))
        settings |= {"SCHEDULER_JOBS_URL": f"http://127.0.0.1:{port}/jobs", "SCHEDULER_JOBS_REFRESH": a.jobs_refresh}
    if a.history is not None and not a.src:  # an older copy (--src) may not know the setting
        settings["SCHEDULER_HISTORY"] = str(a.history)
    return env_file, settings


def run_one(name: str, a: argparse.Namespace, jobs: int, duration: int, targets: dict) -> dict:
    max_conc = a.max_concurrency or max(64, 1 << (jobs - 1).bit_length())
    workdir = lifecycle.make_workdir("bench-latency-")
    logs = output.log_dir(f"latency-{name}")
    redis = private_redis.RedisServer()
    receiver = receivers.make_receiver(a.receiver, a.hold_ms)
    names = daemons.job_names(jobs)
    env_file, settings = replica_config(a, workdir, redis.url, receiver.url, names, max_conc)
    print(f"[{name}] {jobs} jobs '{a.schedule}' from {a.jobs_from}, {a.replicas} replicas, MAX_CONCURRENCY={max_conc}, "
          f"LOG_LEVEL={a.log_level}, redis :{redis.port}, {a.receiver} receiver :{receiver.port}, logs {logs}", flush=True)

    leader = daemons.Daemon(env_file, settings, logs / "replica-1.log")
    _, pid = timing.wait_for(lambda: private_redis.leader_of(redis.conn)[1] and private_redis.leader_of(redis.conn), 60,
                        what="the first replica to take the lease")
    if pid != leader.pid:
        raise RuntimeError(f"lease holder pid {pid} is not the first replica {leader.pid}")
    standbys = [daemons.Daemon(env_file, settings, logs / f"replica-{i}.log") for i in range(2, a.replicas + 1)]
    timing.wait_for(lambda: private_redis.subscribers(redis.conn) >= a.replicas, 60, what="every replica to subscribe")
    # Every job has fired (from the env file or the leader's first read of the document).
    want = {n.lower().replace("_", "-") for n in names}
    timing.wait_for(lambda: want <= {x.job for x in list(receiver.arrivals)}, 60, 0.2, what="a fire of every job")
    time.sleep(a.warmup)

    w0 = int(time.time()) + 3  # leaves time for `check` below
    w1 = w0 + duration
    slots = expected_slots(a.schedule, w0, w1, workdir)
    timing.sleep_until(w0 - 0.1)
    cpu = procstat.CpuWindow(leader.pid)
    sb_cpu = [procstat.CpuWindow(s.pid) for s in standbys]
    stats0 = redis.commandstats()
    epoch0 = int(redis.conn.get("{scheduler}:epoch") or 0)
    cpu.start()
    for w in sb_cpu:
        w.start()
    spy = profiling.start_py_spy(leader.pid, duration, Path(a.profile)) if a.profile else None
    timing.sleep_until(w1 - 0.1)
    cpu.stop()
    for w in sb_cpu:
        w.stop()
    stats1 = redis.commandstats()
    epoch1 = int(redis.conn.get("{scheduler}:epoch") or 0)
    time.sleep(a.grace)

    # MONITOR sample after the window, so its cost does not touch the figures above. The
    # lease holder's connections are the ones counted; if the lease changed hands during
    # the sample, there is no per-leader figure.
    holder0 = private_redis.leader_of(redis.conn)[1]
    peers0 = monitor.tcp_peers_of(holder0, redis.port) if holder0 else set()
    t0, t1, mon_path = monitor.monitor_sample(redis.port, a.monitor_s, workdir / "monitor.txt")
    holder1 = private_redis.leader_of(redis.conn)[1]
    stable = holder0 is not None and holder0 == holder1
    leader_peers = (peers0 | monitor.tcp_peers_of(holder1, redis.port)) if stable else set()
    sample_arrivals = [x for x in receiver.arrivals if t0 <= x.t <= t1]
    names_by_sha = monitor.script_names()
    mon_leader = monitor.parse_monitor(mon_path, t0, t1, leader_peers, names_by_sha)
    mon_all = monitor.parse_monitor(mon_path, t0, t1, None, names_by_sha)

    if spy is not None:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            pass
    alive = {"leader": leader.running, "standbys": [s.running for s in standbys]}
    t_stop = time.monotonic()
    exits = {"standbys": [s.stop() for s in standbys], "leader": leader.stop()}  # -9: not gone 40 s after SIGTERM
    stop_s = time.monotonic() - t_stop
    arrivals = list(receiver.arrivals)
    receiver.stop()
    redis.stop()

    # -- analysis ------------------------------------------------------------------------
    in_window = [x for x in arrivals if w0 <= timing.parse_slot(x.slot) < w1]
    first, dupes = first_arrivals(in_window)
    expected = len(slots) * jobs
    late = [x.t - timing.parse_slot(x.slot) for x in first.values()]
    by_slot: dict[str, list[float]] = {}
    for x in first.values():
        by_slot.setdefault(x.slot, []).append(x.t)
    first_of_slot = [min(ts) - timing.parse_slot(s) for s, ts in by_slot.items()]
    spread = [max(ts) - min(ts) for ts in by_slot.values()]
    retried = sum(1 for x in in_window if x.attempt not in ("", "1"))
    scripts = sum(stats1.get(k, 0) - stats0.get(k, 0) for k in ("evalsha", "eval", "evalsha_ro", "eval_ro"))
    fires_sample = len(sample_arrivals)
    problems = daemon_logs.log_problems([leader.log_path, *(s.log_path for s in standbys)])
    delivered_pct = 100.0 * len(first) / expected if expected else None
    lat = stats_ms(late)
    res = {
        "name": name,
        "config": {
            "receiver": a.receiver, "jobs": jobs, "jobs_from": a.jobs_from, "schedule": a.schedule, "duration_s": duration, "replicas": a.replicas,
            "max_concurrency": max_conc, "log_level": a.log_level, "lease_ttl": a.ttl, "lease_renew": a.renew,
            "receiver_hold_ms": a.hold_ms, "window": [w0, w1], "warmup_s": a.warmup, "grace_s": a.grace,
        },
        "expected_fires": expected,
        "delivered": len(first),
        "delivered_pct": None if delivered_pct is None else round(delivered_pct, 3),
        "duplicates": dupes,
        "attempts_above_1": retried,
        "lateness_ms": lat,
        "first_of_slot_lateness_ms": stats_ms(first_of_slot),
        "slot_spread_ms": stats_ms(spread),
        "lease_acquisitions_in_window": epoch1 - epoch0,
        "leader": cpu.as_dict(),
        "standbys": [w.as_dict() for w in sb_cpu],
        "redis": {
            "method": METHOD,
            "script_calls_in_window": scripts,
            "script_calls_per_fire": round(scripts / len(first), 3) if first else None,
            "monitor_sample_s": round(t1 - t0, 2),
            "fires_in_sample": fires_sample,
            "sample_lease_holder_pid": holder0 if stable else None,
            "sample_lease_holder_is_first_replica": stable and holder0 == leader.pid,
            "leader_client_commands": mon_leader.client_commands if stable else None,
            "leader_commands_per_fire": round(mon_leader.client_commands / fires_sample, 3) if fires_sample and stable else None,
            "all_client_commands": mon_all.client_commands,
            "all_commands_per_fire": round(mon_all.client_commands / fires_sample, 3) if fires_sample else None,
            "script_inner_calls_per_fire": round(mon_all.script_inner_calls / fires_sample, 2) if fires_sample else None,
            "leader_commands_by_name": mon_leader.by_command,
            "leader_connections": sorted(leader_peers),
        },
        "receiver": {"max_open_requests": receiver.max_open, "connections": len(receiver.connections)},
        "alive_at_end": alive,
        "exit_codes": exits, "shutdown_s": round(stop_s, 2),
        "log_problems": problems,
        "logs": str(logs),
    }
    if a.profile:
        res["profile"] = {"raw": a.profile, **profiling.summarize_collapsed(Path(a.profile))}
    checks = {
        "delivered_pct": (delivered_pct, lambda v, t: v is not None and v >= t),
        "duplicates": (dupes, lambda v, t: v <= t),
        "p99_ms": (lat["p99"], lambda v, t: v is not None and v <= t),
        "leader_cpu_pct": (cpu.percent, lambda v, t: v is not None and v <= t),
        "cmds_per_fire": (res["redis"]["leader_commands_per_fire"], lambda v, t: v is not None and v <= t),
    }
    res["targets"] = {k: {"target": t, "value": checks[k][0],
                          "pass": None if checks[k][0] is None else checks[k][1](checks[k][0], t)}
                      for k, t in targets.items()}
    report(res)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=("small", "large", "all"), help="small: 20 jobs/30 s; large: 1000 jobs/60 s; "
                    "all (the default without --jobs): both")
    ap.add_argument("--jobs", type=int, help="number of jobs (a custom run)")
    ap.add_argument("--duration", type=int, help="measured window, seconds (default 30 for a custom run)")
    ap.add_argument("--schedule", default="* * * * * *", help="every job's schedule (default '* * * * * *')")
    ap.add_argument("--jobs-from", choices=("env", "url"), default="env",
                    help="env: the jobs in the env file (default); url: in a document served at SCHEDULER_JOBS_URL")
    ap.add_argument("--jobs-refresh", default="30s", help="SCHEDULER_JOBS_REFRESH with --jobs-from url (default 30s)")
    ap.add_argument("--replicas", type=int, default=2, help="replicas: 1 leader + standbys (default 2)")
    ap.add_argument("--max-concurrency", type=int, help="SCHEDULER_MAX_CONCURRENCY (default: max(64, jobs rounded up to a power of 2))")
    ap.add_argument("--log-level", default="WARNING", help="SCHEDULER_LOG_LEVEL (default WARNING)")
    ap.add_argument("--history", type=int, default=None,
                    help="SCHEDULER_HISTORY for the replicas (default: the daemon's own, 20); 0 turns history off")
    ap.add_argument("--ttl", default="15s", help="SCHEDULER_LEASE_TTL (default 15s)")
    ap.add_argument("--renew", default="5s", help="SCHEDULER_LEASE_RENEW (default 5s)")
    ap.add_argument("--hold-ms", type=float, default=0.0, help="receiver waits this long before answering (default 0)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of fires before the window (default 3)")
    ap.add_argument("--grace", type=float, default=3.0, help="seconds after the window for late arrivals (default 3)")
    ap.add_argument("--monitor-s", type=float, default=5.0, help="MONITOR sample after the window, seconds (default 5)")
    ap.add_argument("--profile", metavar="PATH", help="record the leader with py-spy during the window (collapsed stacks)")
    ap.add_argument("--json", metavar="PATH", help="write results here (default bench/results/latency-<time>.json)")
    receivers.add_receiver_arg(ap)
    measured_code.add_src_arg(ap)
    a = ap.parse_args()
    measured_code.set_src(a.src)
    if a.jobs is None and a.duration is None:
        runs = [(p, PRESETS[p]["jobs"], PRESETS[p]["duration"], PRESETS[p]["targets"])
                for p in (("small", "large") if a.preset in (None, "all") else (a.preset,))]
    else:
        jobs = a.jobs or 20
        runs = [("custom", jobs, a.duration or 30, PRESETS["large" if jobs > 100 else "small"]["targets"])]
    if a.profile and len(runs) > 1:
        ap.error("--profile needs a single run: add --preset small|large or --jobs")
    budget = sum(120 + d + a.warmup + a.grace + a.monitor_s + j / 20 for _, j, d, _ in runs)
    out: dict = {"benchmark": "latency", "environment": measured_code.environment_info(), "runs": []}

    def go() -> int:
        for name, jobs, duration, targets in runs:
            out["runs"].append(run_one(name, a, jobs, duration, targets))
            lifecycle.cleanup()
        path = output.write_json(a.json or output.default_json_path("latency"), out)
        print(f"\nmethod: {METHOD}\n\nresults: {path}")
        return 0

    return lifecycle.run_bounded(go, budget)


if __name__ == "__main__":
    sys.exit(main())
