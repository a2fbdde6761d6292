#!/usr/bin/env python3
"""Failover: kill -9 the leader, and stop it gracefully (SIGTERM), again and again, with a
job due every second; measure at the receiver what the application sees.

Per event: the gap from the signal to the first request sent by the new leader (a higher
X-Scheduler-Fencing-Token), the added delay beyond the normal 1 s cadence (largest gap
between consecutive slots' arrivals around the event, minus 1 s), slots never delivered,
and slots delivered twice. A short lease is used (TTL 3 s, renew 1 s by default), so a
crash is detected in seconds; the bound for a crash is TTL + one renew period.

    uv run python bench/failover.py
    uv run python bench/failover.py --reps 3 --ttl 6s --renew 2s --json out.json

`--kinds steady` signals nothing: for `--steady` seconds it counts the leader's spurious
step-downs (a `stepped down` or `lease no longer ours` line, a lease acquisition), best
measured under load: `--jobs 1000 --hog 2` adds 1,000 fires/s and a busy loop per core.
`--sweep` measures several TTL/renew pairs, each as a crash run and a loaded steady run
(each in a process of its own), and prints one table of both.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import (  # noqa: E402
    daemon_logs, daemons, lifecycle, measured_code, output, private_redis, receivers, timing,
)
from harness.fast_receiver import Arrival  # noqa: E402
from harness.stats import percentile  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=10, help="repetitions of each kind of event (default 10)")
    ap.add_argument("--kinds", default="crash,graceful", help="which events, in order: crash, graceful, steady (default crash,graceful)")
    ap.add_argument("--steady", type=float, default=120.0, help="seconds of one steady event (default 120)")
    ap.add_argument("--hog", type=int, default=0, help="CPU hogs (busy-loop processes) running throughout (default 0)")
    ap.add_argument("--max-concurrency", type=int, help="SCHEDULER_MAX_CONCURRENCY (default: jobs rounded up to a power of two, at least 64)")
    ap.add_argument("--sweep", metavar="TTL/RENEW,...", help="measure each pair (e.g. 15s/5s,6s/2s,4s/1s): a crash run of --reps "
                    "and a steady run of --steady s with --sweep-jobs jobs and --sweep-hog hogs")
    ap.add_argument("--sweep-jobs", type=int, default=1000, help="jobs of the sweep's steady runs (default 1000)")
    ap.add_argument("--sweep-hog", type=int, default=2, help="CPU hogs of the sweep's steady runs (default 2)")
    ap.add_argument("--jobs", type=int, default=1, help="jobs due every second (default 1)")
    ap.add_argument("--schedule", default="* * * * * *", help="their schedule (default '* * * * * *')")
    ap.add_argument("--replicas", type=int, default=2, help="replicas (default 2)")
    ap.add_argument("--ttl", default="3s", help="SCHEDULER_LEASE_TTL (default 3s)")
    ap.add_argument("--renew", default="1s", help="SCHEDULER_LEASE_RENEW (default 1s)")
    ap.add_argument("--settle", type=float, default=2.0, help="steady seconds between events (default 2)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the random phase of each signal within its second")
    ap.add_argument("--log-level", default="INFO", help="SCHEDULER_LOG_LEVEL (default INFO; the leadership lines are used)")
    ap.add_argument("--json", metavar="PATH", help="write results here (default bench/results/failover-<time>.json)")
    receivers.add_receiver_arg(ap)
    measured_code.add_src_arg(ap)
    a = ap.parse_args()
    measured_code.set_src(a.src)
    if a.sweep:
        try:
            pairs = [tuple(p.split("/")) for p in a.sweep.split(",")]
            for ttl_text, renew_text in pairs:
                timing.duration_s(ttl_text), timing.duration_s(renew_text)
        except ValueError:
            ap.error("--sweep: comma-separated TTL/RENEW pairs such as 15s/5s,4s/1s (1500ms, not 1.5s)")
        return sweep(a, pairs)
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    if not kinds or any(k not in ("crash", "graceful", "steady") for k in kinds):
        ap.error("--kinds: crash, graceful and/or steady")
    ttl, renew = timing.duration_s(a.ttl), timing.duration_s(a.renew)
    budget = 90 + a.reps * len(kinds) * (ttl + renew + a.settle + 15) + a.steady * kinds.count("steady")
    return lifecycle.run_bounded(lambda: run(a, kinds, ttl, renew), budget)


def run(a: argparse.Namespace, kinds: list[str], ttl: float, renew: float) -> int:
    rng = random.Random(a.seed)
    workdir = lifecycle.make_workdir("bench-failover-")
    logs = output.log_dir("failover")
    redis = private_redis.RedisServer()
    receiver = receivers.make_receiver(a.receiver)
    env_file = daemons.write_env_file(workdir / "jobs.env", {n: a.schedule for n in daemons.job_names(a.jobs, "TICK")})
    settings = {
        "SCHEDULER_REDIS_URL": redis.url, "SCHEDULER_API_URL": receiver.url,
        "SCHEDULER_LOG_LEVEL": a.log_level, "SCHEDULER_LOG_FORMAT": "json", "SCHEDULER_HTTP_PORT": "0",
        "SCHEDULER_LEASE_TTL": a.ttl, "SCHEDULER_LEASE_RENEW": a.renew,
        "SCHEDULER_MAX_CONCURRENCY": str(a.max_concurrency or max(64, 1 << (a.jobs - 1).bit_length())),
    }
    hogs = start_hogs(a.hog)
    print(f"{a.jobs} job(s) '{a.schedule}', {a.replicas} replicas, TTL {a.ttl}, renew {a.renew}, "
          f"{a.hog} CPU hog(s), redis :{redis.port}, logs {logs}", flush=True)
    serial = 0

    def start_replica() -> daemons.Daemon:
        nonlocal serial
        serial += 1
        return daemons.Daemon(env_file, settings, logs / f"replica-{serial}.log")

    replicas = [start_replica()]
    timing.wait_for(lambda: private_redis.leader_of(redis.conn)[1] == replicas[0].pid, 60, what="the first replica to lead")
    replicas += [start_replica() for _ in range(a.replicas - 1)]
    timing.wait_for(lambda: private_redis.subscribers(redis.conn) >= a.replicas, 60, what="every replica to subscribe")
    timing.wait_for(lambda: receiver.count() >= 3 * a.jobs, 30, what="steady fires")
    time.sleep(a.settle)

    events = []
    plan = [k for k in kinds for _ in range(1 if k == "steady" else a.reps)]
    for n, kind in enumerate(plan, 1):
        if kind == "steady":
            events.append(steady_event(a, n, redis, replicas, receiver))
            continue
        _, pid = private_redis.leader_of(redis.conn)
        old = next((r for r in replicas if r.pid == pid), None)
        if old is None:
            raise RuntimeError(f"the lease holder (pid {pid}) is none of the replicas started")
        old_epoch = int(redis.conn.get("{scheduler}:epoch") or 0)
        phase = rng.uniform(0.02, 0.98)
        timing.sleep_until(int(time.time()) + 1 + phase)
        start = receiver.count()
        exited: list[float] = []
        watcher = threading.Thread(target=lambda p=old.proc: (p.wait(), exited.append(time.time())), daemon=True)  # noqa: B023 (run in this pass)
        t_ev = time.time()
        if kind == "crash":
            old.proc.send_signal(signal.SIGKILL)
        else:
            old.proc.send_signal(signal.SIGTERM)
        watcher.start()

        def new_leader_fire():
            return next((x for x in receiver.since(start) if x.fencing.isdigit() and int(x.fencing) > old_epoch), None)  # noqa: B023

        first_new = timing.wait_for(new_leader_fire, ttl + renew + 15, 0.005, f"a fire by a new leader after {kind} #{n}")
        watcher.join(40)
        rc = old.proc.poll()
        t_exit = exited[0] if exited else None
        lifecycle.stop_process(old.proc)  # unregisters it (SIGKILL after 10 s if a graceful stop hangs)
        replicas.remove(old)
        new_pid = private_redis.leader_of(redis.conn)[1]
        new = next((r for r in replicas if r.pid == new_pid), None)
        took = None
        if new is not None:
            for ev in daemon_logs.log_events(new.log_path):
                if ev.get("event") == "became leader" and int(ev.get("epoch") or 0) > old_epoch:
                    took = daemon_logs.log_time(ev)
        ev = {
            "n": n, "kind": kind, "t": round(t_ev, 3), "phase_in_second": round(phase, 3),
            "old_pid": old.pid, "old_epoch": old_epoch, "new_pid": new_pid, "new_epoch": int(first_new.fencing),
            "gap_s": round(first_new.t - t_ev, 3),
            "first_new_fire_slot": first_new.slot, "first_new_fire_attempt": first_new.attempt,
            "became_leader_after_s": None if took is None else round(took - t_ev, 3),
            "old_exit_code": rc if kind == "graceful" else -9,
            "old_exit_after_s": round(t_exit - t_ev, 3) if kind == "graceful" and t_exit else None,
        }
        events.append(ev)
        print(f"  {n:2d} {kind:8s} phase {phase:.2f}: new leader's first fire after {ev['gap_s']:.3f} s "
              f"(slot {first_new.slot[11:19]}, attempt {first_new.attempt}), became leader after "
              f"{output.fmt(ev['became_leader_after_s'], ' s', 3)}", flush=True)
        replicas.append(start_replica())
        timing.wait_for(lambda: private_redis.subscribers(redis.conn) >= a.replicas, 60, what="the restarted replica to subscribe")
        time.sleep(a.settle)

    time.sleep(1.5)
    for hog in hogs:
        lifecycle.stop_process(hog, signal.SIGKILL, 5)
    alive = [r.running for r in replicas]
    final_exits = [r.stop() for r in replicas]
    arrivals = list(receiver.arrivals)
    receiver.stop()
    problems = daemon_logs.log_problems(sorted(logs.glob("replica-*.log")))
    analyse(a, events, arrivals, ttl, renew)

    rows = []
    for kind in kinds:
        evs = [e for e in events if e["kind"] == kind]
        if not evs:
            continue
        if kind == "steady":
            for e in evs:
                rows += [
                    (f"steady {e['seconds']:.0f} s: spurious step-downs", e["step_downs"], f"0: {output.verdict(e['step_downs'] == 0)}"),
                    ("steady: lease acquisitions (epoch growth)", e["epoch_growth"], "0: one leader throughout"),
                    ("steady: lease renewal failures logged", e["renew_failures"], ""),
                    ("steady: first-arrival lateness p50 / p99 / max", f"{output.fmt(e['lateness_p50_s'], ' s', 3)} / "
                     f"{output.fmt(e['lateness_p99_s'], ' s', 3)} / {output.fmt(e['lateness_max_s'], ' s', 3)}", ""),
                    ("steady: slots lost", e["slots_lost"], ""),
                ]
            continue
        gaps = [e["gap_s"] for e in evs]
        added = [e["added_delay_s"] for e in evs]
        lost = sum(e["slots_lost"] for e in evs)
        made_up = sum(e["slots_made_up"] for e in evs)
        dup = sum(e["duplicates"] for e in evs)
        if kind == "crash":
            bound = ttl + renew
            rows += [
                ("crash: kill -9 -> first fire by the new leader", f"median {percentile(gaps, 50):.3f} s, max {max(gaps):.3f} s",
                 f"<= TTL + renew = {bound:g} s: {output.verdict(max(gaps) <= bound)}"),
                ("crash: kill -9 -> 'became leader' logged", _spread([e["became_leader_after_s"] for e in evs]), ""),
                ("crash: added delay beyond 1 s cadence", f"median {percentile(added, 50):.3f} s, max {max(added):.3f} s", ""),
                ("crash: slots lost (total over reps)", f"{lost} (in {sum(1 for e in evs if e['slots_lost'])} of {len(evs)} reps)",
                 "CATCHUP=latest makes up only the newest missed slot"),
                ("crash: slots made up by the new leader", made_up, "slots already due when it took over"),
                ("crash: duplicates (same key twice)", dup, "a fire in flight at the kill is redelivered"),
            ]
        else:
            exits = sorted({e["old_exit_code"] for e in evs}, key=str)
            rows += [
                ("graceful: SIGTERM -> first fire by the new leader", f"median {percentile(gaps, 50):.3f} s, max {max(gaps):.3f} s", ""),
                ("graceful: SIGTERM -> 'became leader' logged", _spread([e["became_leader_after_s"] for e in evs]), ""),
                ("graceful: added delay beyond 1 s cadence", f"median {percentile(added, 50):.3f} s, max {max(added):.3f} s",
                 f"<= 0.5 s: {output.verdict(max(added) <= 0.5)}"),
                ("graceful: slots lost (total over reps)", lost, f"0: {output.verdict(lost == 0)}"),
                ("graceful: duplicates", dup, ""),
                ("graceful: old leader exit code / exit after", f"{exits} / {_spread([e['old_exit_after_s'] for e in evs])}", ""),
            ]
    baseline_lost = events[0]["baseline_lost"] if events else 0
    rows += [
        ("slots lost outside any event", baseline_lost, ""),
        ("replicas alive at end; exit codes", f"{alive}; {final_exits}", ""),
        ("daemon warnings/errors logged", daemon_logs.summarize_problems(problems), ""),
    ]
    what = ", ".join(f"{a.steady:.0f} s steady" if k == "steady" else f"{a.reps} x {k}" for k in kinds)
    output.print_table(f"failover: {what}, {a.jobs} job(s) '{a.schedule}', {a.replicas} replicas, "
                  f"TTL {a.ttl}, renew {a.renew}, {a.hog} CPU hog(s)", rows, ("figure", "value", "target / note"))
    output.print_table("per event", [
        (e["n"], e["kind"], f"{e['phase_in_second']:.2f}", f"{e['gap_s']:.3f}", output.fmt(e["became_leader_after_s"], "", 3),
         f"{e['added_delay_s']:.3f}", e["slots_lost"], e["slots_made_up"], e["duplicates"])
        for e in events
    ], ("#", "kind", "phase", "gap s", "leader after s", "added s", "lost", "made up", "dupes"))
    res = {
        "benchmark": "failover", "environment": measured_code.environment_info(),
        "config": {"receiver": a.receiver, "reps": a.reps, "kinds": kinds, "jobs": a.jobs, "schedule": a.schedule, "replicas": a.replicas,
                   "hog": a.hog, "steady_s": a.steady, "max_concurrency": settings["SCHEDULER_MAX_CONCURRENCY"],
                   "lease_ttl": a.ttl, "lease_renew": a.renew, "settle_s": a.settle, "seed": a.seed, "log_level": a.log_level},
        "events": events, "alive_at_end": alive, "exit_codes": final_exits,
        "log_problems": problems, "logs": str(logs),
    }
    path = output.write_json(a.json or output.default_json_path("failover"), res)
    print(f"\nresults: {path}")
    return 0


STEP_DOWN_EVENTS = ("stepped down", "lease no longer ours")


def steady_event(a, n: int, redis: private_redis.RedisServer, replicas: list[daemons.Daemon], receiver) -> dict:
    """No signal: for a.steady seconds, what the leader does on its own under the load."""
    epoch0 = int(redis.conn.get("{scheduler}:epoch") or 0)
    start, t0 = receiver.count(), time.time()
    print(f"  {n:2d} steady   {a.steady:.0f} s ...", flush=True)
    time.sleep(a.steady)
    t1 = time.time()
    epoch1 = int(redis.conn.get("{scheduler}:epoch") or 0)
    step_downs = renew_failures = 0
    for r in replicas:
        for ev in daemon_logs.log_events(r.log_path):
            t = daemon_logs.log_time(ev)
            if t is None or not t0 <= t <= t1:
                continue
            name = ev.get("event", "")
            step_downs += name.startswith(STEP_DOWN_EVENTS)
            renew_failures += name.startswith("lease renewal failed")
    firsts: dict[str, float] = {}
    for x in receiver.since(start):
        late = x.t - timing.parse_slot(x.slot)
        firsts[x.key] = min(firsts.get(x.key, late), late)
    late = list(firsts.values())
    ev = {
        "n": n, "kind": "steady", "t": round(t0, 3), "seconds": round(t1 - t0, 1), "phase_in_second": 0.0,
        "gap_s": round(t1 - t0, 3), "became_leader_after_s": None, "new_epoch": epoch1,
        "step_downs": step_downs, "epoch_growth": epoch1 - epoch0, "renew_failures": renew_failures,
        "lateness_p50_s": percentile(late, 50), "lateness_p99_s": percentile(late, 99),
        "lateness_max_s": max(late) if late else None,
    }
    print(f"     step-downs {step_downs}, lease acquisitions {ev['epoch_growth']}, renewal failures {renew_failures}, "
          f"lateness p99 {output.fmt(ev['lateness_p99_s'], ' s', 3)}", flush=True)
    return ev


HOG = "import os\nos.nice(0)\nwhile True: pass\n"


def start_hogs(n: int) -> list[subprocess.Popen]:
    """n busy loops at the daemons' priority: a core each, for as long as the run lasts."""
    return [lifecycle.spawn([sys.executable, "-c", HOG], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]


def sweep(a: argparse.Namespace, pairs: list[tuple[str, str]]) -> int:
    """Each TTL/renew pair: a crash run (no load) and a steady run under load, each in a
    process of its own; one table of both."""
    out_dir = lifecycle.make_workdir("bench-failover-sweep-")
    here = Path(__file__).resolve()
    rows, results = [], []
    for ttl_text, renew_text in pairs:
        common = [sys.executable, str(here), "--ttl", ttl_text, "--renew", renew_text, "--receiver", a.receiver,
                  "--seed", str(a.seed)] + (["--src", a.src] if a.src else [])
        crash_json, steady_json = out_dir / f"crash-{ttl_text}-{renew_text}.json", out_dir / f"steady-{ttl_text}-{renew_text}.json"
        print(f"== TTL {ttl_text} / renew {renew_text}: {a.reps} crashes", flush=True)
        subprocess.run(common + ["--kinds", "crash", "--reps", str(a.reps), "--json", str(crash_json)], check=False)
        print(f"== TTL {ttl_text} / renew {renew_text}: steady {a.steady:.0f} s, {a.sweep_jobs} jobs, {a.sweep_hog} hog(s)", flush=True)
        subprocess.run(common + ["--kinds", "steady", "--steady", str(a.steady), "--jobs", str(a.sweep_jobs),
                                 "--hog", str(a.sweep_hog), "--log-level", "WARNING", "--json", str(steady_json)], check=False)
        crash = json.loads(crash_json.read_text()) if crash_json.exists() else {"events": []}
        steady = json.loads(steady_json.read_text()) if steady_json.exists() else {"events": []}
        gaps = [e["gap_s"] for e in crash["events"] if e["kind"] == "crash"]
        st = next((e for e in steady["events"] if e["kind"] == "steady"), None)
        ttl, renew = timing.duration_s(ttl_text), timing.duration_s(renew_text)
        ok = bool(gaps) and max(gaps) <= 5.0 and st is not None and st["step_downs"] == 0 and st["epoch_growth"] == 0
        results.append({"ttl": ttl_text, "renew": renew_text, "crash_gaps_s": gaps, "steady": st, "meets_target": ok})
        rows.append((
            f"{ttl_text} / {renew_text}", f"{ttl + renew:g}",
            f"{output.fmt(percentile(gaps, 50), '', 2)} / {output.fmt(max(gaps) if gaps else None, '', 2)}" if gaps else "n/a",
            "n/a" if st is None else f"{st['step_downs']} / {st['epoch_growth']} / {st['renew_failures']}",
            "n/a" if st is None else f"{output.fmt(st['lateness_p99_s'], '', 3)}",
            output.verdict(ok),
        ))
    output.print_table(f"lease settings: crash recovery ({a.reps} x kill -9, 1 job) and {a.steady:.0f} s steady with "
                  f"{a.sweep_jobs} fires/s and {a.sweep_hog} CPU hog(s)", rows,
                  ("TTL / renew", "bound s", "crash gap p50 / max s", "step-downs / acquisitions / renew fails",
                   "steady p99 late s", "max gap <= 5 s, 0 step-downs"))
    path = output.write_json(a.json or output.default_json_path("failover-sweep"), {"benchmark": "failover-sweep",
                        "environment": measured_code.environment_info(), "results": results})
    print(f"\nresults: {path}")
    return 0


def _spread(values) -> str:
    vs = [v for v in values if v is not None]
    if not vs:
        return "n/a"
    return f"median {percentile(vs, 50):.3f} s, max {max(vs):.3f} s"


def analyse(a, events: list[dict], arrivals: list[Arrival], ttl: float, renew: float) -> None:
    """Attribute every slot to the event before it; count per event the slots never
    delivered, made up by the new leader (already due when it took over), delivered twice,
    and the largest gap between consecutive slots' first arrivals, minus the 1 s cadence."""
    per_job: dict[str, dict[int, list[Arrival]]] = {}
    for x in arrivals:
        per_job.setdefault(x.job, {}).setdefault(timing.parse_slot(x.slot), []).append(x)
    starts = [int(e["t"]) - 1 for e in events]  # a slot due in the second before the signal counts too
    for e in events:
        e.update(slots_lost=0, slots_made_up=0, duplicates=0, added_delay_s=0.0, max_lateness_s=0.0)
    baseline_lost = 0

    def owner(slot: int) -> dict | None:
        idx = None
        for i, s in enumerate(starts):
            if slot >= s:
                idx = i
        return None if idx is None else events[idx]

    for _job, slots in per_job.items():
        lo, hi = min(slots), max(slots)
        firsts: list[tuple[int, float]] = []
        for s in range(lo, hi + 1):
            e = owner(s)
            got = slots.get(s)
            if not got:
                if e is None:
                    baseline_lost += 1
                else:
                    e["slots_lost"] += 1
                continue
            first = min(x.t for x in got)
            firsts.append((s, first))
            if e is not None:
                e["duplicates"] += len(got) - len({x.key for x in got})
                took = e["t"] + (e["became_leader_after_s"] if e["became_leader_after_s"] is not None else e["gap_s"])
                fencing = min((x for x in got), key=lambda x: x.t).fencing
                if e["kind"] != "steady" and fencing == str(e["new_epoch"]) and s < took:
                    e["slots_made_up"] += 1
                e["max_lateness_s"] = round(max(e["max_lateness_s"], first - s), 3)
        # Largest arrival gap between consecutive delivered slots, within each event's span
        # (from the signal to the first fire of its new leader, plus 2 s).
        for e in events:
            t_end = e["t"] + e["gap_s"] + 2.0
            gaps = [t2 - t1 for (_, t1), (_, t2) in zip(firsts, firsts[1:]) if t2 >= e["t"] - 1.0 and t1 <= t_end]
            if gaps:
                e["added_delay_s"] = round(max(e["added_delay_s"], max(gaps) - 1.0), 3)
    for e in events:
        e["baseline_lost"] = baseline_lost


if __name__ == "__main__":
    sys.exit(main())
