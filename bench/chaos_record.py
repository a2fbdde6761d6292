"""What a chaos run recorded, read back: the replicas' logs; `Run`, the facts of one run
that every check (`chaos_fires`, `chaos_replicas`) reads: leaderships, lease tenures, what
arrived per key, which fault window a moment falls in; and `Tally`, the report's rows the
checks count into."""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from scheduler.schedule import slots as sched

SKIP_EVENT = "skipped: previous fire still running"
# A leader whose loop fell behind (a stall, a wall clock stepped forward) finds several slots
# of a job due at once; CATCHUP=latest or none fires only the newest and logs the rest so.
MISSED_EVENT = "skipped: missed while the loop was behind"
LIMIT_EVENT = "more missed slots than the catch-up limit"
LEADERSHIP_ENDS = {"stepped down", "released the lease", "#chaos kill9", "#chaos start", "#chaos unexpected exit"}


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


def slot_of(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def leaderships(events: list[dict], gen_bounds: list[float]) -> list[dict]:
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


def tenures(lease_log: list, t_end: float) -> list[tuple[float, float, int | None]]:
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


@dataclass
class Run:
    """One recorded run (`raw`, as chaos.py writes it) and what follows from it."""

    raw: dict
    specs: dict = field(init=False)
    arrivals: list[dict] = field(init=False)  # scheduled fires (not manual ones), by arrival time
    manual_keys: set[str] = field(init=False)
    faults: list[dict] = field(init=False)  # the injected ones, in order
    gen_bounds: list[float] = field(init=False)  # when Redis lost its state (no-AOF kills)
    leads: list[dict] = field(init=False)
    tenures: list[tuple[float, float, int | None]] = field(init=False)
    by_key: dict[str, list[dict]] = field(init=False)  # arrivals per Idempotency-Key
    first: dict[tuple[str, int], dict] = field(init=False)  # first arrival per (job, slot)
    delivered: dict[str, list[int]] = field(init=False)  # slots that arrived, per job, sorted
    forbid_skips: set[tuple[str, int]] = field(init=False)  # (job, slot) the replicas logged skipping
    catchup_skips: set[tuple[str, int]] = field(init=False)  # (job, slot) a leader logged leaving behind

    def __post_init__(self) -> None:
        raw = self.raw
        self.specs = {name: sched.parse(j["schedule"], "UTC", name) for name, j in raw["jobs"].items()}
        everything = sorted(raw["arrivals"], key=lambda a: a["t"])
        self.arrivals = [a for a in everything if not a.get("manual")]
        self.manual_keys = {a["key"] for a in everything if a.get("manual")}
        self.faults = [f for f in raw["faults"] if not f["skipped"] and f["t_inject"] is not None]
        self.gen_bounds = sorted(n["t_kill"] for n in raw["noaof"])
        self.leads = leaderships(raw["events"], self.gen_bounds)
        self._by_epoch: dict[int, list[dict]] = defaultdict(list)
        for lead in self.leads:
            self._by_epoch[lead["epoch"]].append(lead)
        self.tenures = tenures(raw.get("lease_log", []), raw["t_end"])
        self.by_key = defaultdict(list)
        for a in self.arrivals:
            self.by_key[a["key"]].append(a)
        self.first = {}
        self.delivered = defaultdict(list)
        for got in self.by_key.values():
            a = got[0]
            self.first[(a["job"], a["slot"])] = a
            self.delivered[a["job"]].append(a["slot"])
        for slots in self.delivered.values():
            slots.sort()
        self.forbid_skips = {(e["job"], slot_of(e["slot"])) for e in raw["events"] if e["event"] == SKIP_EVENT}
        self.catchup_skips = {(e["job"], slot_of(e["slot"])) for e in raw["events"] if e["event"] == MISSED_EVENT}
        self._starts = [f["t_inject"] for f in self.faults]
        self._labels = ["baseline"] + [f["name"] for f in self.faults]

    @property
    def events(self) -> list[dict]:
        return self.raw["events"]

    @property
    def t_end(self) -> float:
        return self.raw["t_end"]

    @property
    def skewed(self) -> list[dict]:
        return self.raw.get("skewed", [])

    def label(self, t: float) -> str:
        """The fault window `t` falls in: the last fault injected at or before it."""
        return self._labels[bisect.bisect_right(self._starts, t)]

    def leadership_of(self, a: dict) -> dict | None:
        # Epochs may repeat after Redis lost its state: the latest leadership with this
        # epoch begun before the request is the one that sent it.
        found = [lead for lead in self._by_epoch.get(a["epoch"], ()) if lead["t"] <= a["t"] + 0.25]
        return found[-1] if found else None

    def holder_at(self, t: float) -> int | None:
        return next((pid for t0, t1, pid in self.tenures if t0 <= t < t1), None)

    def skewed_holder(self, t: float) -> dict | None:
        """The skewed replica that held the lease at `t`, if one did."""
        pid = self.holder_at(t)
        return next((k for k in self.skewed if k["pid"] == pid and k["t_from"] <= t <= k.get("t_to", self.t_end + 1)), None)

    def held_s(self, pid: int) -> float | None:
        """How long `pid` held the lease, or None if it never did."""
        held = [(t0, t1) for t0, t1, p in self.tenures if p == pid]
        return round(sum(t1 - t0 for t0, t1 in held), 2) if held else None

    def next_delivered(self, job: str, s: int) -> int | None:
        slots = self.delivered.get(job, [])
        i = bisect.bisect_right(slots, s)
        return slots[i] if i < len(slots) else None

    def due(self) -> Iterator[tuple[str, int]]:
        """Every slot expected: each job's after the first leader's starting watermark, up to
        the end of the run."""
        for job, spec in self.specs.items():
            start = self.raw["start_marks"].get(job)
            if start is None:
                continue
            for s in sched.slots_between(spec, start, self.t_end):
                yield job, s


def new_row() -> dict:
    return {
        "injected": 0, "expected": 0, "delivered": 0, "duplicate_first_attempts": 0, "retries": 0,
        "redeliveries": 0, "missed_beyond_policy": 0, "lost_no_aof": 0, "skipped_forbid": 0, "skipped_forbid_unlogged": 0,
        "beyond_catchup": 0, "failover": [], "lateness": [], "early_fires": 0, "late_fires_skewed": 0,
        "replica_exits": 0, "epochs": 0,
    }


class Tally:
    """The report's rows: one per fault window (`label` of a moment), and the overall row."""

    def __init__(self, label: Callable[[float], str]) -> None:
        self.label = label
        self.rows: dict[str, dict] = defaultdict(new_row)
        self.overall = new_row()

    def add(self, t: float, field: str, value: Any = 1) -> None:
        for row in (self.rows[self.label(t)], self.overall):
            if isinstance(row[field], list):
                row[field].append(value)
            else:
                row[field] += value
