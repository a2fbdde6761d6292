#!/usr/bin/env python3
"""Redis Cluster failover: a leader and a standby on a real cluster (three masters with a
replica each), pointed at a node that does not hold the namespace's hash slot, with jobs
due every second; `kill -9` of the slot's master mid-run; what the receiver saw.

Prints the slots fired, the slots delivered twice as attempt 1 (must be 0), slots never
delivered, the time from the kill to the replica's promotion and to the first fire after
it, and the longest gap between fires around the failover (a job due every second shows
gaps of about 1 s otherwise).

    uv run python bench/cluster_failover.py
    uv run python bench/cluster_failover.py --duration 60 --jobs 100 --kill-at 20
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import daemon_logs, daemons as replicas, lifecycle, measured_code, output, receivers, timing  # noqa: E402
from harness.redis_cluster import RedisCluster  # noqa: E402

NAMESPACE = "scheduler"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of fires in all (default 30)")
    ap.add_argument("--jobs", type=int, default=10, help="jobs due every second (default 10)")
    ap.add_argument("--kill-at", type=float, help="seconds into the run to kill the slot's master (default: a third in)")
    ap.add_argument("--ttl", default="3s", help="SCHEDULER_LEASE_TTL (default 3s)")
    ap.add_argument("--renew", default="1s", help="SCHEDULER_LEASE_RENEW (default 1s)")
    ap.add_argument("--json", metavar="PATH", help="write results here (default bench/results/cluster-failover-<time>.json)")
    receivers.add_receiver_arg(ap)
    measured_code.add_src_arg(ap)
    a = ap.parse_args()
    if a.duration < 10 or a.jobs < 1:
        ap.error("--duration: at least 10 s; --jobs: at least 1")
    measured_code.set_src(a.src)
    return lifecycle.run_bounded(lambda: run(a), 120 + a.duration * 2)


def run(a: argparse.Namespace) -> int:
    kill_at = a.kill_at if a.kill_at is not None else a.duration / 3
    t0 = time.monotonic()
    cluster = RedisCluster()
    lifecycle.on_cleanup(cluster.close)
    started_s = time.monotonic() - t0
    key = "{%s}:leader" % NAMESPACE
    owner, entry = cluster.owner(key), cluster.not_owner(key)
    replica = cluster.replica_of(owner)
    workdir, logs = lifecycle.make_workdir("bench-cluster-failover-"), output.log_dir("cluster-failover")
    receiver = receivers.make_receiver(a.receiver)
    names = replicas.job_names(a.jobs, "TICK")
    env_file = replicas.write_env_file(workdir / "jobs.env", {n: "* * * * * *" for n in names})
    with open(env_file, "a") as f:  # the slots of the gap are made up, so none is lost to it
        f.writelines(f'SCHEDULER_JOB_{n}_CATCHUP="all"\n' for n in names)
    settings = {
        "SCHEDULER_REDIS_URL": entry.url, "SCHEDULER_API_URL": receiver.url, "SCHEDULER_NAMESPACE": NAMESPACE,
        "SCHEDULER_LOG_FORMAT": "json", "SCHEDULER_HTTP_PORT": "0", "SCHEDULER_LEASE_TTL": a.ttl,
        "SCHEDULER_LEASE_RENEW": a.renew, "SCHEDULER_SHUTDOWN_GRACE": "5s",
        "SCHEDULER_MAX_CONCURRENCY": str(max(64, a.jobs * 4)),
    }
    print(f"cluster of 6 nodes started in {started_s:.1f} s; slot master :{owner.port}, its replica :{replica.port}, "
          f"daemons pointed at :{entry.port}; {a.jobs} job(s) every second, TTL {a.ttl}, renew {a.renew}; "
          f"logs {logs}", flush=True)
    daemons = [replicas.Daemon(env_file, settings, logs / f"replica-{i}.log") for i in (1, 2)]
    timing.wait_for(lambda: receiver.count() >= a.jobs, 60, what="the first fires")
    run_start = time.time()
    timing.sleep_until(run_start + kill_at)
    owner.kill()
    killed = time.time()
    cluster.wait_promoted(replica)
    promoted = time.time()
    timing.sleep_until(run_start + a.duration)
    for d in daemons:
        d.stop()
    arrivals = list(receiver.arrivals)
    receiver.stop()

    firsts = Counter(x.key for x in arrivals if x.attempt == "1")
    twice = sum(1 for n in firsts.values() if n > 1)
    slots: dict[str, set[int]] = defaultdict(set)
    for x in arrivals:
        slots[x.job].add(timing.parse_slot(x.slot))
    lost = sum(max(s) - min(s) + 1 - len(s) for s in slots.values())
    # Per job, gaps between the arrivals of its consecutive slots; the longest over all jobs.
    firsts_at: dict[str, dict[int, float]] = defaultdict(dict)
    for x in arrivals:
        firsts_at[x.job].setdefault(timing.parse_slot(x.slot), x.t)
    gaps = []
    for by_slot in firsts_at.values():
        times = sorted(by_slot.values())
        gaps += [(b - a_, a_) for a_, b in zip(times, times[1:])]
    longest, at = max(gaps) if gaps else (0.0, killed)
    after_kill = min((x.t for x in arrivals if x.t > promoted), default=None)
    problems = daemon_logs.log_problems(sorted(logs.glob("replica-*.log")))
    figures = {
        "slots_fired": len(firsts), "requests": len(arrivals), "first_attempts_twice": twice, "slots_lost": lost,
        "promoted_after_s": round(promoted - killed, 3),
        "first_fire_after_promotion_s": None if after_kill is None else round(after_kill - killed, 3),
        "longest_gap_s": round(longest, 3), "longest_gap_began_after_kill_s": round(at - killed, 3),
    }
    output.print_table(f"Redis Cluster failover: kill -9 of the slot's master, {a.jobs} job(s) every second, "
                  f"{a.duration:.0f} s, leader + standby", [
                      ("slots fired (distinct job+slot)", len(firsts), ""),
                      ("requests received", len(arrivals), "redeliveries included"),
                      ("slots delivered twice as attempt 1", twice, f"0: {output.verdict(twice == 0)}"),
                      ("slots never delivered", lost, f"0 with CATCHUP=all: {output.verdict(lost == 0)}"),
                      ("kill -> replica promoted (cluster_state ok)", f"{promoted - killed:.2f} s", "node timeout 1 s + election"),
                      ("kill -> first fire after the promotion", output.fmt(None if after_kill is None else after_kill - killed, " s", 2), ""),
                      ("longest gap between a job's fires", f"{longest:.2f} s",
                       f"began {at - killed:+.2f} s from the kill" if gaps else ""),
                      ("daemon warnings / errors logged", _levels(problems), "retries while the master is down; the JSON lists them"),
                  ], ("figure", "value", "target / note"))
    res = {"benchmark": "cluster_failover", "environment": measured_code.environment_info(),
           "config": {"duration_s": a.duration, "jobs": a.jobs, "kill_at_s": kill_at, "lease_ttl": a.ttl,
                      "lease_renew": a.renew, "receiver": a.receiver},
           "figures": figures, "log_problems": problems, "logs": str(logs)}
    print(f"\nresults: {output.write_json(a.json or output.default_json_path('cluster-failover'), res)}")
    return 0 if twice == 0 else 1


def _levels(problems: dict) -> str:
    by_level: Counter[str] = Counter()
    for what, n in problems["counts"].items():
        by_level[what.split(":", 1)[0]] += n
    return f"{by_level['warning']} / {by_level['error'] + by_level['critical'] + by_level['raw']}"


if __name__ == "__main__":
    sys.exit(main())
