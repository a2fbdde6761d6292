"""What a chaos run delivered, against what the schedule and each job's CATCHUP allow.

`analyze(raw)` takes what `chaos.py` recorded (every request the target received, the
fault timeline, the replicas' JSON logs) and returns the report; `format_report` prints
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
import math
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.stats import percentile  # noqa: E402
from scheduler.schedule import slots as sched  # noqa: E402

FAULT_ORDER = (
    "baseline", "kill9", "sigstop", "partition", "latency", "redis-restart-aof", "redis-restart-noaof",
    "rolling", "flaky-target", "clock-jump", "hostile-input", "clock-skew", "dry-run", "sentinel-failover",
)
EARLY_S = 0.05
SKEW_LATE_S = 1.0
SKIP_EVENT = "skipped: previous fire still running"
# A leader whose loop fell behind (a stall, a wall clock stepped forward) finds several slots
# of a job due at once; CATCHUP=latest or none fires only the newest and logs the rest so.
MISSED_EVENT = "skipped: missed while the loop was behind"
LIMIT_EVENT = "more missed slots than the catch-up limit"
CATCHUP_ALL_LIMIT = 100
LEADERSHIP_ENDS = {"stepped down", "released the lease", "#chaos kill9", "#chaos start", "#chaos unexpected exit"}


# -- replica logs -----------------------------------------------------------------------


def read_replica_logs(paths: list[Path]) -> list[dict]:
    """Every JSON event of every replica log, plus the harness's `#chaos` lines, in file
    order. `t` is real time: a replica run under libfaketime logs its faked wall clock,
    and the harness's clock lines say by how much it was off from that line on."""
    out: list[dict] = []
    for path in paths:
        index = int(Path(path).stem.rsplit("-", 1)[1])
        offset = 0.0
        pid = None
        try:
            lines = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            continue
        for seq, line in enumerate(lines):
            if line.startswith("#chaos "):
                rec = json.loads(line[len("#chaos "):])
                if rec["what"] == "clock":
                    offset = float(rec["offset_s"])
                if rec["what"] == "start":
                    pid = rec["pid"]
                out.append({"node": index, "seq": seq, "pid": rec.get("pid", pid), "t": rec["t"],
                            "event": f"#chaos {rec['what']}", **{k: v for k, v in rec.items() if k not in ("t", "what", "pid")}})
                continue
            if not line.startswith("{"):
                if line.strip():  # a traceback or anything else not in the log format
                    out.append({"node": index, "seq": seq, "pid": pid, "t": None, "event": "#raw", "text": line[:500]})
                continue
            try:
                rec = json.loads(line)
                t = datetime.fromisoformat(rec.pop("ts")).timestamp() - offset
            except (ValueError, KeyError):
                continue
            out.append({**rec, "node": index, "seq": seq, "pid": pid, "t": t})
    return out


# -- analysis ---------------------------------------------------------------------------


def _slot(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _new_row() -> dict:
    return {
        "injected": 0, "expected": 0, "delivered": 0, "duplicate_first_attempts": 0, "retries": 0,
        "redeliveries": 0, "missed_beyond_policy": 0, "lost_no_aof": 0, "skipped_forbid": 0, "skipped_forbid_unlogged": 0,
        "beyond_catchup": 0, "failover": [], "lateness": [], "early_fires": 0, "late_fires_skewed": 0,
        "replica_exits": 0, "epochs": 0,
    }


def _leaderships(events: list[dict], gen_bounds: list[float]) -> list[dict]:
    """Each `became leader`, with the catch-up its replica logged before anything else."""
    out: list[dict] = []
    current: dict[int, dict] = {}
    for e in sorted(events, key=lambda e: (e["node"], e["seq"])):
        r, name = e["node"], e["event"]
        if name == "became leader":
            lead = {"node": r, "pid": e.get("pid"), "epoch": int(e["epoch"]), "t": e["t"],
                    "gen": bisect.bisect_right(gen_bounds, e["t"]), "catchup": {}, "over_limit": []}
            out.append(lead)
            current[r] = lead
        elif name in LEADERSHIP_ENDS:
            current.pop(r, None)
        elif name == "catching up" and r in current:
            current[r]["catchup"][e["job"]] = e.get("slots")
        elif name.startswith(LIMIT_EVENT) and r in current:
            current[r]["over_limit"].append(e["job"])
    out.sort(key=lambda lead: lead["t"])
    return out


def _tenures(lease_log: list, t_end: float) -> list[tuple[float, float, int | None]]:
    """(from, to, holder pid) for every stretch of `{ns}:leader` readings."""
    out = []
    for (t0, holder), nxt in zip(lease_log, [*lease_log[1:], (t_end + 60, None)]):
        pid = None
        if holder:
            try:
                pid = int(str(holder).split(":")[-2])
            except (ValueError, IndexError):
                pid = None
        if pid is not None:
            out.append((t0, nxt[0], pid))
    return out


def _holder_at(tenures: list, t: float) -> int | None:
    return next((pid for t0, t1, pid in tenures if t0 <= t < t1), None)


def _sentinel(cell: dict, row: dict, overall: dict, violations: dict) -> None:
    """The Sentinel cell's own record: one every-second job, CATCHUP=all."""
    by_key: dict[str, list[dict]] = defaultdict(list)
    for a in sorted(cell["arrivals"], key=lambda a: a["t"]):
        if not a.get("manual"):
            by_key[a["key"]].append(a)
    slots = sorted(got[0]["slot"] for got in by_key.values())
    for key, got in by_key.items():
        firsts = [a for a in got if a["attempt"] == 1]
        if len(firsts) > 1:
            for r in (row, overall):
                r["duplicate_first_attempts"] += 1
            violations["duplicate_first_attempts"].append({"key": f"sentinel cell: {key}", "arrivals": [
                {k: a[k] for k in ("t", "attempt", "epoch", "answer")} for a in got]})
        late = got[0]["t"] - got[0]["slot"]
        row["lateness"].append(late)
        if late < -EARLY_S:
            row["early_fires"] += 1
            violations["early_fires"].append({"key": f"sentinel cell: {key}", "early_s": round(-late, 3)})
    if slots:
        have = set(slots)
        expected = range(slots[0], slots[-1] + 1)
        row["expected"] += len(expected)
        row["delivered"] += len(have)
        for s in expected:
            if s not in have:
                for r in (row, overall):
                    r["missed_beyond_policy"] += 1
                violations["missed_beyond_policy"].append({"job": "sentinel cell: stick", "slot": sched.format_slot(s),
                                                           "slot_unix": s, "window": "sentinel-failover",
                                                           "previous_delivered": None, "next_delivered": None})


def analyze(raw: dict) -> dict:
    jobs = raw["jobs"]
    specs = {name: sched.parse(j["schedule"], "UTC", name) for name, j in jobs.items()}
    everything = sorted(raw["arrivals"], key=lambda a: a["t"])
    arrivals = [a for a in everything if not a.get("manual")]
    manual_keys = {a["key"] for a in everything if a.get("manual")}
    events = raw["events"]
    t_end = raw["t_end"]
    noaof = raw["noaof"]
    faults = [f for f in raw["faults"] if not f["skipped"] and f["t_inject"] is not None]
    gen_bounds = sorted(n["t_kill"] for n in noaof)

    leads = _leaderships(events, gen_bounds)
    by_epoch: dict[int, list[dict]] = defaultdict(list)
    for lead in leads:
        by_epoch[lead["epoch"]].append(lead)

    def leadership_of(a: dict) -> dict | None:
        # Epochs may repeat after Redis lost its state: the latest leadership with this
        # epoch begun before the request is the one that sent it.
        found = [lead for lead in by_epoch.get(a["epoch"], ()) if lead["t"] <= a["t"] + 0.25]
        return found[-1] if found else None

    by_key: dict[str, list[dict]] = defaultdict(list)
    for a in arrivals:
        by_key[a["key"]].append(a)
    first: dict[tuple[str, int], dict] = {}
    delivered: dict[str, list[int]] = defaultdict(list)
    for _key, got in by_key.items():
        a = got[0]
        first[(a["job"], a["slot"])] = a
        delivered[a["job"]].append(a["slot"])
    for slots in delivered.values():
        slots.sort()

    skips = {(e["job"], _slot(e["slot"])) for e in events if e["event"] == SKIP_EVENT}
    policy_skips = {(e["job"], _slot(e["slot"])) for e in events if e["event"] == MISSED_EVENT}

    starts = [f["t_inject"] for f in faults]
    labels = ["baseline"] + [f["name"] for f in faults]

    def label(t: float) -> str:
        return labels[bisect.bisect_right(starts, t)]

    rows: dict[str, dict] = defaultdict(_new_row)
    overall = _new_row()
    for f in faults:
        rows[f["name"]]["injected"] += 1
        overall["injected"] += 1

    def add(t: float, field: str, value=1) -> None:
        for row in (rows[label(t)], overall):
            if isinstance(row[field], list):
                row[field].append(value)
            else:
                row[field] += value

    violations: dict[str, list] = {
        "duplicate_first_attempts": [], "missed_beyond_policy": [], "unexpected_exits": [], "unclean_exits": [],
        "early_fires": [], "late_fires_skewed": [], "skewed_leader": [], "dry_run_lease": [], "dry_run_fires": [],
        "control_failures": [], "manual_trigger_lost": [],
    }
    tenures = _tenures(raw.get("lease_log", []), t_end)
    skewed = raw.get("skewed", [])

    def skewed_holder(t: float) -> dict | None:
        pid = _holder_at(tenures, t)
        return next((k for k in skewed if k["pid"] == pid and k["t_from"] <= t <= k.get("t_to", t_end + 1)), None)

    # What arrived.
    retried_or_redelivered = []
    for key, got in by_key.items():
        slot = got[0]["slot"]
        firsts = [a for a in got if a["attempt"] == 1]
        if len(firsts) > 1:
            add(slot, "duplicate_first_attempts")
            violations["duplicate_first_attempts"].append({
                "key": key, "arrivals": [{k: a[k] for k in ("t", "attempt", "epoch", "answer")} for a in got],
            })
        seen_epochs: set[int] = set()
        for a in got:
            if a["attempt"] > 1:
                kind = "retries" if a["epoch"] in seen_epochs else "redeliveries"
                add(slot, kind)
                if kind == "redeliveries":
                    retried_or_redelivered.append(key)
            seen_epochs.add(a["epoch"])
        late = got[0]["t"] - slot
        add(slot, "lateness", late)
        if late < -EARLY_S:
            add(slot, "early_fires")
            violations["early_fires"].append({"key": key, "early_s": round(-late, 3), "epoch": got[0]["epoch"]})
        if late > SKEW_LATE_S and (k := skewed_holder(slot) or skewed_holder(got[0]["t"])):
            add(slot, "late_fires_skewed")
            violations["late_fires_skewed"].append({"key": key, "late_s": round(late, 3), "skewed_replica": k["replica"],
                                                    "offset_s": k["offset_s"]})

    # What was due.
    def next_delivered(job: str, s: int) -> int | None:
        slots = delivered.get(job, [])
        i = bisect.bisect_right(slots, s)
        return slots[i] if i < len(slots) else None

    def allowed(job: str, s: int) -> str | None:
        if (job, s) in skips:
            return "skipped_forbid"
        if (job, s) in policy_skips:
            return "beyond_catchup"  # the leader itself kept only what CATCHUP allows
        for n in noaof:
            lo = n["marks_before"].get(job, n["t_kill"] - 10)
            hi = n["marks_after"].get(job)
            if hi is None:
                after = [a["slot"] for a in arrivals if a["job"] == job and a["t"] > n["t_up"]]
                hi = min(after) - 1 if after else n["t_up"] + 60
            if lo < s <= hi:
                return "lost_no_aof"
        nxt = next_delivered(job, s)
        if nxt is None:
            return None
        after = first[(job, nxt)]
        lead = leadership_of(after)
        # Was the slot after the hole made up by the next leader's catch-up (a first
        # attempt of a slot not after the moment it took over)?
        if lead is None or job not in lead["catchup"] or after["attempt"] != 1 or nxt > lead["t"] + 1.0:
            return None
        policy = jobs[job]["catchup"]
        if policy == "latest":
            return "beyond_catchup"  # it chose the newest missed slot over this one
        if policy == "all" and job in lead["over_limit"]:
            if len(sched.slots_between(specs[job], s - 1, math.floor(lead["t"]))) > CATCHUP_ALL_LIMIT:
                return "beyond_catchup"
        # CATCHUP=all makes up every slot after the watermark, so this one was at or under
        # it: an earlier leader claimed it. Claimed to fire, it would have been sent or
        # left in flight and redelivered; so it was claimed as a CONCURRENCY=forbid skip
        # whose reply never reached the leader (nothing logged it).
        if jobs[job]["concurrency"] == "forbid":
            return "skipped_forbid_unlogged"
        return None

    expected_total = 0
    unlogged_skips: list[dict] = []
    for job, spec in specs.items():
        start = raw["start_marks"].get(job)
        if start is None:
            continue
        have = set(delivered.get(job, ()))
        for s in sched.slots_between(spec, start, t_end):
            expected_total += 1
            add(s, "expected")
            if s in have:
                add(s, "delivered")
                continue
            reason = allowed(job, s)
            if reason == "skipped_forbid_unlogged":
                unlogged_skips.append({"job": job, "slot": sched.format_slot(s), "window": label(s)})
                add(s, "skipped_forbid")
            if reason:
                add(s, reason)
                continue
            add(s, "missed_beyond_policy")
            before = [x for x in delivered.get(job, []) if x < s]
            prev = first[(job, before[-1])] if before else None
            nxt = next_delivered(job, s)
            violations["missed_beyond_policy"].append({
                "job": job, "slot": sched.format_slot(s), "slot_unix": s, "window": label(s),
                "previous_delivered": prev and {"slot": sched.format_slot(prev["slot"]), "epoch": prev["epoch"], "t": prev["t"]},
                "next_delivered": nxt and {"slot": sched.format_slot(nxt), "epoch": first[(job, nxt)]["epoch"], "t": first[(job, nxt)]["t"]},
            })

    # Failover and leaderships.
    failovers = []
    for f in faults:
        for point in f["failover_points"]:
            took = [a["t"] for a in arrivals if a["t"] >= point and (lead := leadership_of(a)) is not None and lead["t"] >= point]
            value = min(took) - point if took else None
            failovers.append({"fault": f["name"], "at": point, "failover_s": value})
            if value is not None:
                rows[f["name"]]["failover"].append(value)
                overall["failover"].append(value)
            else:
                rows[f["name"]].setdefault("failover_unmeasured", 0)
                rows[f["name"]]["failover_unmeasured"] += 1
    for lead in leads:
        add(lead["t"], "epochs")

    # Fencing tokens going backwards at the target (what a target that rejects a token
    # lower than one it has seen would refuse); Redis losing its state restarts epochs.
    stale, top, bound = [], 0, 0
    across, top_ever = 0, 0
    for a in arrivals:
        while bound < len(gen_bounds) and a["t"] >= gen_bounds[bound]:
            bound += 1
            top = 0
        if a["epoch"] < top:
            stale.append({k: a[k] for k in ("t", "key", "attempt", "epoch")} | {"highest_seen": top, "window": label(a["slot"])})
        top = max(top, a["epoch"])
        across += a["epoch"] < top_ever
        top_ever = max(top_ever, a["epoch"])

    for e in raw["unexpected_exits"]:
        violations["unexpected_exits"].append(e)
        add(e["t"], "replica_exits")
    for k in skewed:
        held = [(t0, t1) for t0, t1, pid in tenures if pid == k["pid"]]
        if held:
            violations["skewed_leader"].append({**k, "held_s": round(sum(t1 - t0 for t0, t1 in held), 2)})
    for d in raw.get("dry_runs", []):
        held = [(t0, t1) for t0, t1, pid in tenures if pid == d["pid"]]
        if held:
            violations["dry_run_lease"].append({**d, "held_s": round(sum(t1 - t0 for t0, t1 in held), 2)})
        fires = [e for e in events if e.get("pid") == d["pid"] and e["event"].startswith("became leader")]
        if fires:
            violations["dry_run_fires"].append({**d, "events": len(fires), "first": fires[0]["event"]})
    for f in faults:
        violations["control_failures"] += f["notes"].get("control_failures", [])
        key = f["notes"].get("manual_key")
        if key and not any(k.endswith(key) or k == key or key in k for k in manual_keys):
            violations["manual_trigger_lost"].append({"fault": f["name"], "key": key})
    if raw.get("sentinel"):
        _sentinel(raw["sentinel"], rows["sentinel-failover"], overall, violations)
    for e in raw.get("final_exits", []):
        if e["returncode"] != 0:
            violations["unclean_exits"].append(e)

    def finish(row: dict) -> dict:
        out = dict(row)
        fo, late = row["failover"], row["lateness"]
        out["failover"] = {"n": len(fo), "p50_s": percentile(fo, 50), "max_s": max(fo) if fo else None}
        out["lateness"] = {"n": len(late), "p50_s": percentile(late, 50), "p99_s": percentile(late, 99),
                           "max_s": max(late) if late else None, "min_s": min(late) if late else None}
        return out

    table = {name: finish(rows[name]) for name in FAULT_ORDER if name in rows}
    table["overall"] = finish(overall)
    table["overall"]["unique_keys"] = len(by_key)
    table["overall"]["requests"] = len(arrivals)
    table["overall"]["manual_fires"] = len(manual_keys)
    table["overall"]["epochs_in_requests"] = len({(bisect.bisect_right(gen_bounds, a["t"]), a["epoch"]) for a in arrivals})
    ok = not any(violations[k] for k in violations)
    return {
        "ok": ok,
        "config": raw["config"],
        "rows": table,
        "violations": violations,
        "failovers": failovers,
        "stale_fencing_tokens": {"count": len(stale), "examples": stale[:20], "across_state_losses": across},
        "unlogged_forbid_skips": unlogged_skips,
        "redis_state_losses": noaof,
        "faults": raw["faults"],
        "leaderships": [{k: lead[k] for k in ("node", "pid", "epoch", "t", "gen", "catchup")} for lead in leads],
        "notes": raw["notes"],
        "run": {"t_start": raw["t_start"], "t_end": t_end, "seconds": round(t_end - raw["t_start"], 1),
                "expected_slots": expected_total, "workdir": raw.get("workdir")},
    }


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
