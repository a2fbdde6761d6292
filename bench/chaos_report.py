"""What a chaos run delivered, against what the schedule and each job's CATCHUP allow.

`analyze(raw)` takes what `chaos.py` recorded (every request the target received, the
fault timeline, the replicas' JSON logs) and returns the report, composed of one check
per rule below: `chaos_fires` checks what the target received, `chaos_replicas` what
the replicas did, both on the `Run` that `chaos_record` reads. `format_report` prints
it. Re-analyse a kept run with `uv run python bench/chaos_report.py <workdir>/raw.json
[REPORT.json]`.

Counting rules:

- expected: every slot of every job after the first leader's starting watermark and up
  to the end of the run (CATCHUP=all makes up every slot of an outage, so every one of
  them must arrive);
- delivered: slots whose Idempotency-Key arrived at least once, whatever the answer;
- duplicate first attempts: a key that arrived with `X-Scheduler-Attempt: 1` more than once;
- retries: a higher attempt of a key from the leadership that already sent it;
  redeliveries: a higher attempt from another leadership (a fire left in flight);
- a slot that never arrived is allowed when its replica logs show it was skipped by
  CONCURRENCY=forbid, when a Redis restart without AOF lost the state it was in (between
  the watermark before the restart and the first watermark after it), or when the next
  leader's catch-up made up a newer slot instead (CATCHUP=latest, or beyond the limit of
  100 for CATCHUP=all); anything else is "missed beyond policy";
- failover: from the moment the leader was lost (killed, stopped, cut off, SIGTERMed, or
  Redis killed) to the first request of a leadership that began after it;
- lateness: first arrival of a key minus its slot; an **early fire** arrived more than
  50 ms before its slot (by the target's clock, which is the machine's);
- late fires by a skewed clock: a slot first delivered more than 1 s late (the default
  SCHEDULER_MAX_CLOCK_SKEW) that was due, or arrived, while a replica run with a skewed
  wall clock held the lease (`{ns}:leader`, read every 50 ms);
- replica exits: a replica that exited without being told to (any code), per fault window;
- a skewed replica or a dry run holding the lease, a fire the dry run logged, a control
  command (`status`, `trigger`) that answered neither 0 nor the usage error 2, and a valid
  manual trigger that never arrived are each a violation;
- the Sentinel cell (its own Redis, daemons and target) counts under `sentinel-failover`:
  a slot sent twice as a first attempt, and a slot of its every-second CATCHUP=all job that
  never arrived between its first and last delivered slot;
- manual fires (`job@manual:<id>` keys) are counted apart from the scheduled slots;
- epochs: leaderships begun (`became leader` in the replica logs).
"""

from __future__ import annotations

import bisect
import json
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import chaos_fires, chaos_replicas  # noqa: E402
from bench.chaos_record import Run, Tally, read_replica_logs  # noqa: E402
from harness.stats import percentile  # noqa: E402

FAULT_ORDER = (
    "baseline", "kill9", "sigstop", "partition", "latency", "redis-restart-aof", "redis-restart-noaof",
    "rolling", "rolling-slow", "flaky-target", "clock-jump", "hostile-input", "clock-skew", "dry-run", "sentinel-failover",
    "overloaded-target",
)


# -- analysis ---------------------------------------------------------------------------


def analyze(raw: dict) -> dict:
    run = Run(raw)
    tally = Tally(run.label)
    for f in run.faults:
        tally.rows[f["name"]]["injected"] += 1
        tally.overall["injected"] += 1

    chaos_fires.retries_and_redeliveries(run, tally)
    chaos_replicas.epochs(run, tally)
    missed, unlogged_skips = chaos_fires.missed_beyond_policy(run, tally)
    violations: dict[str, list] = {
        "duplicate_first_attempts": chaos_fires.duplicate_first_attempts(run, tally),
        "missed_beyond_policy": missed,
        "unexpected_exits": chaos_replicas.unexpected_exits(run, tally),
        "unclean_exits": chaos_replicas.unclean_exits(run),
        "early_fires": chaos_fires.early_fires(run, tally),
        "late_fires_skewed": chaos_fires.late_fires_by_skewed_clock(run, tally),
        "skewed_leader": chaos_replicas.skewed_leaders(run),
        "dry_run_lease": chaos_replicas.dry_run_leases(run),
        "dry_run_fires": chaos_replicas.dry_run_fires(run),
        "control_failures": chaos_replicas.control_failures(run),
        "manual_trigger_lost": chaos_replicas.manual_triggers_lost(run),
    }
    failovers = chaos_replicas.failovers(run, tally)
    if raw.get("sentinel"):
        cell = raw["sentinel"]
        violations["duplicate_first_attempts"] += chaos_fires.sentinel_duplicate_first_attempts(cell, tally)
        violations["early_fires"] += chaos_fires.sentinel_early_fires(cell, tally)
        violations["missed_beyond_policy"] += chaos_fires.sentinel_gaps(cell, tally)

    t_end = raw["t_end"]
    return {
        "ok": not any(violations[k] for k in violations),
        "config": raw["config"],
        "rows": _table(run, tally),
        "violations": violations,
        "failovers": failovers,
        "stale_fencing_tokens": chaos_fires.stale_fencing_tokens(run),
        "unlogged_forbid_skips": unlogged_skips,
        "redis_state_losses": raw["noaof"],
        "faults": raw["faults"],
        "leaderships": [{k: lead[k] for k in ("node", "pid", "epoch", "t", "gen", "catchup")} for lead in run.leads],
        "notes": raw["notes"],
        "run": {"t_start": raw["t_start"], "t_end": t_end, "seconds": round(t_end - raw["t_start"], 1),
                "expected_slots": sum(1 for _ in run.due()), "workdir": raw.get("workdir")},
    }


def _table(run: Run, tally: Tally) -> dict[str, dict]:
    """The rows in fault order, then overall with the run's request counts."""
    table = {name: _finish(tally.rows[name]) for name in FAULT_ORDER if name in tally.rows}
    overall = table["overall"] = _finish(tally.overall)
    overall["unique_keys"] = len(run.by_key)
    overall["requests"] = len(run.arrivals)
    overall["manual_fires"] = len(run.manual_keys)
    overall["epochs_in_requests"] = len({(bisect.bisect_right(run.gen_bounds, a["t"]), a["epoch"]) for a in run.arrivals})
    return table


def _finish(row: dict) -> dict:
    """A row as reported: failover and lateness lists as their summaries."""
    out = dict(row)
    fo, late = row["failover"], row["lateness"]
    out["failover"] = {"n": len(fo), "p50_s": percentile(fo, 50), "max_s": max(fo) if fo else None}
    out["lateness"] = {"n": len(late), "p50_s": percentile(late, 50), "p99_s": percentile(late, 99),
                       "max_s": max(late) if late else None, "min_s": min(late) if late else None}
    return out


# -- output -----------------------------------------------------------------------------


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_report(report: dict) -> str:
    head = ["fault", "n", "expected", "delivered", "dup-1st", "retries", "redeliv", "MISSED",
            "lost-noAOF", "skip-forbid", "catchup-drop", "failover p50/max s", "lateness p50/p99/max s", "early",
            "late-skew", "exits", "epochs"]
    lines = []
    body = []
    for name, row in report["rows"].items():
        fo, late = row["failover"], row["lateness"]
        failover = "-" if not fo["n"] else f"{_s(fo['p50_s'])}/{_s(fo['max_s'])}"
        if row.get("failover_unmeasured"):
            failover += f" (+{row['failover_unmeasured']} none)"
        body.append([
            name, str(row["injected"]) if name != "baseline" else "-", str(row["expected"]), str(row["delivered"]),
            str(row["duplicate_first_attempts"]), str(row["retries"]), str(row["redeliveries"]),
            str(row["missed_beyond_policy"]), str(row["lost_no_aof"]), str(row["skipped_forbid"]),
            str(row["beyond_catchup"]), failover,
            f"{_s(late['p50_s'], 3)}/{_s(late['p99_s'], 3)}/{_s(late['max_s'], 2)}", str(row["early_fires"]),
            str(row["late_fires_skewed"]), str(row["replica_exits"]), str(row["epochs"]),
        ])
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    run = report["run"]
    overall = report["rows"]["overall"]
    lines.append(f"chaos run: {run['seconds']:.0f} s, {report['config']['replicas']} replicas, "
                 f"{overall['injected']} faults, {overall['requests']} requests, {overall['unique_keys']} unique keys")
    lines.append(fmt(head))
    lines.append("  ".join("-" * w for w in widths))
    for row in body:
        if row[0] == "overall":
            lines.append("  ".join("-" * w for w in widths))
        lines.append(fmt(row))
    stale = report["stale_fencing_tokens"]["count"]
    lines.append("")
    lines.append(f"requests with a fencing token lower than one already seen (within one Redis state): {stale}")
    unlogged = report["unlogged_forbid_skips"]
    if unlogged:
        lines.append(f"forbid skips claimed in Redis but never logged (the claim's reply was lost): {len(unlogged)}: "
                     + ", ".join(f"{u['job']}@{u['slot']} ({u['window']})" for u in unlogged[:10]))
    if report["redis_state_losses"]:
        lines.append(f"Redis state lost (no-AOF restarts): {len(report['redis_state_losses'])}; counting across them, "
                     f"a target that remembers the highest token would refuse "
                     f"{report['stale_fencing_tokens']['across_state_losses']} of {overall['requests']} requests")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    v = report["violations"]
    for item in v["duplicate_first_attempts"][:10]:
        lines.append(f"DUPLICATE FIRST ATTEMPT: {item['key']}: {item['arrivals']}")
    for item in v["missed_beyond_policy"][:20]:
        lines.append(f"MISSED: {item['job']} {item['slot']} (during {item['window']}); "
                     f"before: {item['previous_delivered']}, after: {item['next_delivered']}")
    for item in v["unexpected_exits"]:
        lines.append(f"REPLICA DIED: {item}")
    for item in v["unclean_exits"]:
        lines.append(f"UNCLEAN EXIT ON SIGTERM: {item}")
    for name, what in (("early_fires", "EARLY FIRE"), ("late_fires_skewed", "LATE FIRE BY A SKEWED CLOCK"),
                       ("skewed_leader", "SKEWED REPLICA LED"), ("dry_run_lease", "DRY RUN HELD THE LEASE"),
                       ("dry_run_fires", "DRY RUN FIRED"), ("control_failures", "CONTROL COMMAND FAILED"),
                       ("manual_trigger_lost", "MANUAL TRIGGER NEVER ARRIVED")):
        items = v.get(name, [])
        for item in items[:5]:
            lines.append(f"{what}: {item}")
        if len(items) > 5:
            lines.append(f"{what}: ... {len(items) - 5} more")
    for f in report["faults"]:
        n = f["notes"]
        if f["name"] == "hostile-input" and not f["skipped"]:
            lines.append(f"hostile-input #{f['occurrence']}: odd trigger ids refused {n.get('odd_ids_refused')}, queued "
                         f"{n.get('odd_ids_queued')}; stray records left in place at the end {n.get('records_left_in_place')}")
        if f["name"] == "sentinel-failover" and not f["skipped"]:
            lines.append(f"sentinel-failover #{f['occurrence']}: promoted after {n.get('promoted_s')} s, old master "
                         f"following after {n.get('demoted_s')} s {n.get('error', '')}".rstrip())
        if f["name"] == "clock-skew" and not f["skipped"]:
            led = ", ".join(f"{k['offset_s']:+d} s: {'led' if k['led'] else 'did not lead'}" for k in n.get("skewed", []))
            lines.append(f"clock-skew #{f['occurrence']}: {led}")
    lines.append("result: " + ("OK (no duplicate first attempt, nothing missed beyond policy)" if report["ok"] else "FAILED"))
    return "\n".join(lines)


if __name__ == "__main__":
    raw_path = Path(sys.argv[1])
    raw_data = json.loads(raw_path.read_text())
    logs = sorted(raw_path.parent.glob("replica-*.log"))
    if logs:  # read the logs again: the reading may have changed since the run
        raw_data["events"] = read_replica_logs(logs)
    result = analyze(raw_data)
    print(format_report(result))
    if len(sys.argv) > 2:
        Path(sys.argv[2]).write_text(json.dumps(result, indent=2) + "\n")
