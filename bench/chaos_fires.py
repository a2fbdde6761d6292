"""The checks of a chaos run on what the target received, one function per invariant (the
counting rules are in `chaos_report`'s docstring; `chaos_replicas` checks what the replicas
did). Each reads a `Run`, counts into the `Tally` under the fault window its slot falls in,
and returns what broke the invariant."""

from __future__ import annotations

import math
from collections import defaultdict

from bench.chaos_record import Run, Tally
from scheduler.schedule import slots as sched

EARLY_S = 0.05
SKEW_LATE_S = 1.0
CATCHUP_ALL_LIMIT = 100
SENTINEL_ROW = "sentinel-failover"


def _arrivals_of(got: list[dict]) -> list[dict]:
    return [{k: a[k] for k in ("t", "attempt", "epoch", "answer")} for a in got]


# -- what arrived -----------------------------------------------------------------------


def duplicate_first_attempts(run: Run, tally: Tally) -> list[dict]:
    """A key that arrived as attempt 1 more than once: one slot fired twice."""
    found = []
    for key, got in run.by_key.items():
        if len([a for a in got if a["attempt"] == 1]) > 1:
            tally.add(got[0]["slot"], "duplicate_first_attempts")
            found.append({"key": key, "arrivals": _arrivals_of(got)})
    return found


def retries_and_redeliveries(run: Run, tally: Tally) -> None:
    """Counted, not a violation: a higher attempt from the leadership that already sent the
    key is a retry, one from another leadership a redelivery."""
    for got in run.by_key.values():
        seen_epochs: set[int] = set()
        for a in got:
            if a["attempt"] > 1:
                tally.add(got[0]["slot"], "retries" if a["epoch"] in seen_epochs else "redeliveries")
            seen_epochs.add(a["epoch"])


def early_fires(run: Run, tally: Tally) -> list[dict]:
    """Records each key's lateness (first arrival minus slot); a fire more than EARLY_S
    before its slot is a violation."""
    found = []
    for key, got in run.by_key.items():
        slot = got[0]["slot"]
        late = got[0]["t"] - slot
        tally.add(slot, "lateness", late)
        if late < -EARLY_S:
            tally.add(slot, "early_fires")
            found.append({"key": key, "early_s": round(-late, 3), "epoch": got[0]["epoch"]})
    return found


def late_fires_by_skewed_clock(run: Run, tally: Tally) -> list[dict]:
    """A fire more than SKEW_LATE_S late whose slot was due, or which arrived, while a
    replica with a skewed clock held the lease."""
    found = []
    for key, got in run.by_key.items():
        slot = got[0]["slot"]
        late = got[0]["t"] - slot
        if late > SKEW_LATE_S and (k := run.skewed_holder(slot) or run.skewed_holder(got[0]["t"])):
            tally.add(slot, "late_fires_skewed")
            found.append({"key": key, "late_s": round(late, 3), "skewed_replica": k["replica"], "offset_s": k["offset_s"]})
    return found


def stale_fencing_tokens(run: Run) -> dict:
    """Fencing tokens going backwards at the target (what a target that rejects a token
    lower than one it has seen would refuse); Redis losing its state restarts epochs, so
    they count within one Redis state, and `across_state_losses` across them."""
    stale: list[dict] = []
    top, bound, across, top_ever = 0, 0, 0, 0
    for a in run.arrivals:
        while bound < len(run.gen_bounds) and a["t"] >= run.gen_bounds[bound]:
            bound += 1
            top = 0
        if a["epoch"] < top:
            stale.append({k: a[k] for k in ("t", "key", "attempt", "epoch")} | {"highest_seen": top, "window": run.label(a["slot"])})
        top = max(top, a["epoch"])
        across += a["epoch"] < top_ever
        top_ever = max(top_ever, a["epoch"])
    return {"count": len(stale), "examples": stale[:20], "across_state_losses": across}


# -- what was due -----------------------------------------------------------------------


def allowed_gap(run: Run, job: str, s: int) -> str | None:
    """Why slot `s` of `job` may be missing (the row it counts in), or None: it is lost."""
    if (job, s) in run.forbid_skips:
        return "skipped_forbid"
    if (job, s) in run.catchup_skips:
        return "beyond_catchup"  # the leader itself kept only what CATCHUP allows
    for n in run.raw["noaof"]:
        lo = n["marks_before"].get(job, n["t_kill"] - 10)
        hi = n["marks_after"].get(job)
        if hi is None:
            after = [a["slot"] for a in run.arrivals if a["job"] == job and a["t"] > n["t_up"]]
            hi = min(after) - 1 if after else n["t_up"] + 60
        if lo < s <= hi:
            return "lost_no_aof"
    nxt = run.next_delivered(job, s)
    if nxt is None:
        return None
    after = run.first[(job, nxt)]
    lead = run.leadership_of(after)
    # Was the slot after the hole made up by the next leader's catch-up (a first
    # attempt of a slot not after the moment it took over)?
    if lead is None or job not in lead["catchup"] or after["attempt"] != 1 or nxt > lead["t"] + 1.0:
        return None
    policy = run.raw["jobs"][job]["catchup"]
    if policy == "latest":
        return "beyond_catchup"  # it chose the newest missed slot over this one
    if policy == "all" and job in lead["over_limit"]:
        if len(sched.slots_between(run.specs[job], s - 1, math.floor(lead["t"]))) > CATCHUP_ALL_LIMIT:
            return "beyond_catchup"
    # CATCHUP=all makes up every slot after the watermark, so this one was at or under
    # it: an earlier leader claimed it. Claimed to fire, it would have been sent or
    # left in flight and redelivered; so it was claimed as a CONCURRENCY=forbid skip
    # whose reply never reached the leader (nothing logged it).
    if run.raw["jobs"][job]["concurrency"] == "forbid":
        return "skipped_forbid_unlogged"
    return None


def missed_beyond_policy(run: Run, tally: Tally) -> tuple[list[dict], list[dict]]:
    """Every due slot counts as expected, and as delivered if its key arrived; one that did
    not arrive and that no policy (`allowed_gap`) excuses is a violation. Returns the
    violations and the forbid skips claimed in Redis that no replica logged."""
    found: list[dict] = []
    unlogged: list[dict] = []
    have = {job: set(slots) for job, slots in run.delivered.items()}
    for job, s in run.due():
        tally.add(s, "expected")
        if s in have.get(job, ()):
            tally.add(s, "delivered")
            continue
        reason = allowed_gap(run, job, s)
        if reason == "skipped_forbid_unlogged":
            unlogged.append({"job": job, "slot": sched.format_slot(s), "window": run.label(s)})
            tally.add(s, "skipped_forbid")
        if reason:
            tally.add(s, reason)
            continue
        tally.add(s, "missed_beyond_policy")
        before = [x for x in run.delivered.get(job, []) if x < s]
        prev = run.first[(job, before[-1])] if before else None
        nxt = run.next_delivered(job, s)
        found.append({
            "job": job, "slot": sched.format_slot(s), "slot_unix": s, "window": run.label(s),
            "previous_delivered": prev and {"slot": sched.format_slot(prev["slot"]), "epoch": prev["epoch"], "t": prev["t"]},
            "next_delivered": nxt and {"slot": sched.format_slot(nxt), "epoch": run.first[(job, nxt)]["epoch"],
                                       "t": run.first[(job, nxt)]["t"]},
        })
    return found, unlogged


# -- the Sentinel cell: its own Redis, daemons and target; one every-second CATCHUP=all job --


def _cell_keys(cell: dict) -> dict[str, list[dict]]:
    by_key: dict[str, list[dict]] = defaultdict(list)
    for a in sorted(cell["arrivals"], key=lambda a: a["t"]):
        if not a.get("manual"):
            by_key[a["key"]].append(a)
    return by_key


def sentinel_duplicate_first_attempts(cell: dict, tally: Tally) -> list[dict]:
    found = []
    for key, got in _cell_keys(cell).items():
        if len([a for a in got if a["attempt"] == 1]) > 1:
            for r in (tally.rows[SENTINEL_ROW], tally.overall):
                r["duplicate_first_attempts"] += 1
            found.append({"key": f"sentinel cell: {key}", "arrivals": _arrivals_of(got)})
    return found


def sentinel_early_fires(cell: dict, tally: Tally) -> list[dict]:
    """Records the cell's lateness in its own row (not overall); early is a violation."""
    row = tally.rows[SENTINEL_ROW]
    found = []
    for key, got in _cell_keys(cell).items():
        late = got[0]["t"] - got[0]["slot"]
        row["lateness"].append(late)
        if late < -EARLY_S:
            row["early_fires"] += 1
            found.append({"key": f"sentinel cell: {key}", "early_s": round(-late, 3)})
    return found


def sentinel_gaps(cell: dict, tally: Tally) -> list[dict]:
    """Every second between the cell's first and last delivered slot must have arrived."""
    row = tally.rows[SENTINEL_ROW]
    slots = sorted(got[0]["slot"] for got in _cell_keys(cell).values())
    if not slots:
        return []
    found = []
    have = set(slots)
    expected = range(slots[0], slots[-1] + 1)
    row["expected"] += len(expected)
    row["delivered"] += len(have)
    for s in expected:
        if s not in have:
            for r in (row, tally.overall):
                r["missed_beyond_policy"] += 1
            found.append({"job": "sentinel cell: stick", "slot": sched.format_slot(s), "slot_unix": s,
                          "window": SENTINEL_ROW, "previous_delivered": None, "next_delivered": None})
    return found
