"""The checks of a chaos run on what the replicas did, one function per invariant (the
counting rules are in `chaos_report`'s docstring; `chaos_fires` checks what the target
received): how fast a new leader took over, the leaderships begun, replicas that exited,
a skewed or dry-run replica that led, control commands that failed."""

from __future__ import annotations

from bench.chaos_record import Run, Tally


def failovers(run: Run, tally: Tally) -> list[dict]:
    """From each moment a fault lost the leader to the first request of a leadership begun
    after it (None: no such request)."""
    out = []
    for f in run.faults:
        row = tally.rows[f["name"]]
        for point in f["failover_points"]:
            took = [a["t"] for a in run.arrivals if a["t"] >= point and (lead := run.leadership_of(a)) is not None and lead["t"] >= point]
            value = min(took) - point if took else None
            out.append({"fault": f["name"], "at": point, "failover_s": value})
            if value is not None:
                row["failover"].append(value)
                tally.overall["failover"].append(value)
            else:
                row.setdefault("failover_unmeasured", 0)
                row["failover_unmeasured"] += 1
    return out


def epochs(run: Run, tally: Tally) -> None:
    """Counted, not a violation: the leaderships begun in each window."""
    for lead in run.leads:
        tally.add(lead["t"], "epochs")


def unexpected_exits(run: Run, tally: Tally) -> list[dict]:
    """A replica that exited without being told to (any code)."""
    for e in run.raw["unexpected_exits"]:
        tally.add(e["t"], "replica_exits")
    return list(run.raw["unexpected_exits"])


def unclean_exits(run: Run) -> list[dict]:
    """A replica that did not exit 0 on the SIGTERM at the end of the run."""
    return [e for e in run.raw.get("final_exits", []) if e["returncode"] != 0]


def skewed_leaders(run: Run) -> list[dict]:
    """A replica run with a skewed wall clock that held the lease."""
    return [{**k, "held_s": held} for k in run.skewed if (held := run.held_s(k["pid"])) is not None]


def dry_run_leases(run: Run) -> list[dict]:
    """A `run --dry-run` replica that held the lease."""
    return [{**d, "held_s": held} for d in run.raw.get("dry_runs", []) if (held := run.held_s(d["pid"])) is not None]


def dry_run_fires(run: Run) -> list[dict]:
    """A `run --dry-run` replica that became leader (logging the calls it would make is its
    purpose; leading is what it must never do)."""
    out = []
    for d in run.raw.get("dry_runs", []):
        fires = [e for e in run.events if e.get("pid") == d["pid"] and e["event"].startswith("became leader")]
        if fires:
            out.append({**d, "events": len(fires), "first": fires[0]["event"]})
    return out


def control_failures(run: Run) -> list:
    """A control command (`status`, `trigger`) that answered neither 0 nor the usage error 2,
    as the faults noted them."""
    out: list = []
    for f in run.faults:
        out += f["notes"].get("control_failures", [])
    return out


def manual_triggers_lost(run: Run) -> list[dict]:
    """A valid manual trigger whose fire never arrived."""
    out = []
    for f in run.faults:
        key = f["notes"].get("manual_key")
        if key and not any(k.endswith(key) or k == key or key in k for k in run.manual_keys):
            out.append({"fault": f["name"], "key": key})
    return out
