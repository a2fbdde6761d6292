"""Fault injection against real replicas: one redis-server, N daemons, one recording target.

    uv run python bench/chaos.py --duration 600 --faults all --json bench/results/chaos.json

Everything is a real process or a real socket on 127.0.0.1:

- one `redis-server`, started here on a free port in its own directory (AOF on, or off
  for the fault that loses Redis' state);
- a TCP proxy in front of Redis for each replica (the replica's SCHEDULER_REDIS_URL
  points at it), which passes, holds, drops or delays traffic: a network partition
  without root;
- N replicas of `python -m scheduler run`, each with its own environment and JSON log file;
- a recording HTTP target that can answer 503, hang, or reset the connection for a
  fraction of calls;
- for the faults of `chaos_faults.py`: the real CLI (`trigger`, `status`), libfaketime,
  a `run --dry-run` replica, and a Sentinel cell of its own (`chaos_sentinel.py`).

Faults are injected one after another, each followed by a recovery period; then the
target's record is checked against the schedule (`chaos_report.py`). The proxy and the
target live in `chaos_net.py`. The exit status is
1 when a slot was sent twice as a first attempt, a slot was lost beyond what its CATCHUP
policy allows, or a replica died on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import redis.asyncio as aioredis  # noqa: E402
from redis.asyncio.retry import Retry  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402

from bench import chaos_faults, chaos_record, chaos_report  # noqa: E402
# Proxy and Target are used from here by the tests, too.
from bench.chaos_net import HOST, Proxy, Target  # noqa: E402
from bench.chaos_proc import RedisProcess, Replica, find_libfaketime  # noqa: E402
from harness.procs import kill_all  # noqa: E402
from bench.chaos_sentinel import SentinelCell  # noqa: E402
from scheduler.schedule import slots as sched  # noqa: E402

FAULTS = (
    "kill9", "sigstop", "partition", "latency", "redis-restart-aof", "redis-restart-noaof",
    "rolling", "rolling-slow", "flaky-target", "clock-jump", "hostile-input", "clock-skew", "dry-run", "sentinel-failover",
    "overloaded-target",
)
QUICK_FAULTS = ("kill9", "sigstop", "partition")

# Several schedule forms and both catch-up policies. CATCHUP=all makes "missed beyond
# policy" exact (every slot must arrive); `latest` makes up only the newest missed slot.
# Two jobs keep the default CONCURRENCY=forbid, so a hung call legitimately skips slots
# (the skips are read from the replica logs and counted as allowed).
JOBS: dict[str, dict[str, str]] = {
    "tick": {"SCHEDULE": "every 1s", "CATCHUP": "all", "CONCURRENCY": "allow"},
    "sec": {"SCHEDULE": "* * * * * *", "CATCHUP": "all", "CONCURRENCY": "allow"},
    "two": {"SCHEDULE": "*/2 * * * * *", "CATCHUP": "all"},
    "three": {"SCHEDULE": "every 3s", "CATCHUP": "all", "CONCURRENCY": "allow"},
    "five": {"SCHEDULE": "*/5 * * * * *", "CATCHUP": "all"},
    "newest": {"SCHEDULE": "every 2s", "CATCHUP": "latest", "CONCURRENCY": "allow"},
    # Answered at once, but for 15 s during `rolling-slow`: a fire in flight at each restart.
    "slow": {"SCHEDULE": "*/10 * * * * *", "CATCHUP": "all", "TIMEOUT": "20s", "RETRIES": "0"},
}
JOB_DEFAULTS = {"TIMEOUT": "2s", "RETRIES": "2", "METHOD": "POST"}


@dataclass
class ChaosConfig:
    duration_s: float = 600.0
    replicas: int = 3
    faults: tuple[str, ...] = FAULTS
    seed: int = 1
    fault_interval_s: float = 30.0
    warmup_s: float = 10.0
    cooldown_s: float = 15.0
    lease_ttl_s: float = 3.0
    lease_renew_s: float = 1.0
    shutdown_grace_s: float = 5.0
    clock_jump_s: float = 15.0
    namespace: str = "chaos"
    workdir: Path | None = None  # logs and raw data; a temporary directory when None
    keep_logs: bool = False
    quiet: bool = False


def quick_config(**overrides) -> ChaosConfig:
    """The short run: kill -9, SIGSTOP and a partition in under a minute."""
    cfg = ChaosConfig(duration_s=46.0, faults=QUICK_FAULTS, fault_interval_s=11.0, warmup_s=5.0, cooldown_s=6.0)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


# ---------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------


@dataclass
class FaultRecord:
    name: str
    occurrence: int
    t_inject: float | None = None
    t_heal: float | None = None
    t_done: float | None = None
    target: int | None = None  # replica index
    target_pid: int | None = None
    failover_points: list[float] = field(default_factory=list)  # the moments a leader was lost
    skipped: str | None = None
    notes: dict = field(default_factory=dict)


class Harness:
    def __init__(self, cfg: ChaosConfig, workdir: Path):
        self.cfg = cfg
        self.workdir = workdir
        self.rng = random.Random(cfg.seed)
        self.redis = RedisProcess(workdir)
        self.target = Target(cfg.seed)
        self.proxies: list[Proxy] = []
        self.replicas: list[Replica] = []
        self.faults: list[FaultRecord] = []
        self.noaof: list[dict] = []  # per no-AOF restart: what Redis knew before, and after
        self.unexpected_exits: list[dict] = []
        self.start_marks: dict[str, int] = {}
        self.faketime_lib = find_libfaketime() if "clock-jump" in cfg.faults else None
        self.notes: list[str] = []
        self._direct: aioredis.Redis | None = None
        self._stop_monitor = asyncio.Event()
        self.dry_replica: Replica | None = None  # a `run --dry-run` beside the cluster
        self.dry_runs: list[dict] = []  # each dry run: pid, replica id, from, to
        self.skewed: list[dict] = []  # each replica run with a skewed clock: pid, offset, from, to
        self.lease_log: list[tuple[float, str | None]] = []  # every change of `{ns}:leader`
        self.sentinel: SentinelCell | None = None

    def direct_bytes(self) -> aioredis.Redis:
        """A direct connection that returns bytes (for writing and reading stray records)."""
        return aioredis.Redis(host=HOST, port=self.redis.port, socket_timeout=2.0, socket_connect_timeout=1.0,
                              retry=Retry(NoBackoff(), 0))

    def side_replicas(self) -> list[Replica]:
        """Replicas outside the main cluster: the dry run and the Sentinel cell's."""
        out = [self.dry_replica] if self.dry_replica is not None else []
        return out + (self.sentinel.replicas if self.sentinel is not None else [])

    def say(self, text: str) -> None:
        if not self.cfg.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    # -- setup -----------------------------------------------------------------------

    def replica_env(self, proxy: Proxy) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            "SCHEDULER_REDIS_URL": proxy.url,
            "SCHEDULER_API_URL": self.target.url,
            "SCHEDULER_API_TOKEN": "chaos-token",
            "SCHEDULER_NAMESPACE": self.cfg.namespace,
            "SCHEDULER_LEASE_TTL": f"{int(self.cfg.lease_ttl_s * 1000)}ms",
            "SCHEDULER_LEASE_RENEW": f"{int(self.cfg.lease_renew_s * 1000)}ms",
            "SCHEDULER_SHUTDOWN_GRACE": f"{int(self.cfg.shutdown_grace_s)}s",
            "SCHEDULER_HTTP_PORT": "0",
            "SCHEDULER_LOG_FORMAT": "json",
            "SCHEDULER_LOG_LEVEL": "INFO",
        }
        for name, fields in JOBS.items():
            prefix = f"SCHEDULER_JOB_{name.upper()}_"
            env[prefix + "URL"] = f"/jobs/{name}"
            for key, value in {**JOB_DEFAULTS, **fields}.items():
                env[prefix + key] = value
        return env

    async def setup(self) -> None:
        await self.redis.start(aof=True)
        self._direct = self.redis.client()
        await self.target.start()
        if "clock-jump" in self.cfg.faults and self.faketime_lib is None:
            self.notes.append("clock-jump skipped: libfaketime not found (Debian: apt-get install faketime)")
            self.say(self.notes[-1])
        for i in range(self.cfg.replicas):
            proxy = await Proxy(self.redis.port).start()
            self.proxies.append(proxy)
            lib = self.faketime_lib if i == 0 else None
            self.replicas.append(Replica(i, self.replica_env(proxy), self.workdir, lib))
        if "dry-run" in self.cfg.faults:
            env = {**self.replica_env(self.proxies[0]), "SCHEDULER_REDIS_URL": self.redis.url}
            self.dry_replica = Replica(self.cfg.replicas, env, self.workdir)
        if "sentinel-failover" in self.cfg.faults:
            self.sentinel = SentinelCell(self.workdir, self.replica_env(self.proxies[0]), self.cfg.seed, 100)
            await self.sentinel.start()
        for r in self.replicas:
            r.start()
        leader = await self.leader(timeout_s=30)
        if leader is None:
            raise RuntimeError(f"no leader was elected within 30 s; see the logs in {self.workdir}")
        self.start_marks = await self.read_marks(timeout_s=10)
        self.say(f"{len(self.replicas)} replicas up, leader: replica {leader.index}; redis on port {self.redis.port}")

    async def read_marks(self, timeout_s: float) -> dict[str, int]:
        """The job watermarks as soon as every job has one (a first leader's starting point)."""
        deadline = time.monotonic() + timeout_s
        marks: dict[str, int] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                raw = await self._direct.hgetall("{%s}:slots" % self.cfg.namespace)
                for job, slot in raw.items():
                    marks.setdefault(job, int(slot))
                if set(JOBS) <= set(marks):
                    break
            await asyncio.sleep(0.02)
        return marks

    # -- leadership ------------------------------------------------------------------

    async def leader_now(self) -> Replica | None:
        """The replica named by `{ns}:leader`, read on a direct connection."""
        try:
            holder = await self._direct.get("{%s}:leader" % self.cfg.namespace)
        except Exception:
            return None
        if not holder:
            return None
        pid = int(holder.split(":")[-2])
        return next((r for r in self.replicas if r.pid == pid and r.running), None)

    async def leader(self, timeout_s: float = 15.0) -> Replica | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = await self.leader_now()
            if found is not None and not found.stopped:
                return found
            await asyncio.sleep(0.05)
        return None

    async def watch_lease(self) -> None:
        """Every change of the lease's holder, read every 50 ms on a direct connection."""
        last: object = ()
        while not self._stop_monitor.is_set():
            try:
                holder = await self._direct.get("{%s}:leader" % self.cfg.namespace)
            except Exception:  # Redis down or restarting: no reading, not "no holder"
                holder = last
            if holder != last:
                self.lease_log.append((time.time(), holder))
                last = holder
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_monitor.wait(), 0.05)

    async def monitor(self) -> None:
        """Restart any replica that died without being told to, and note it."""
        while not self._stop_monitor.is_set():
            for r in self.replicas + self.side_replicas():
                if r.proc is not None and not r.expect_down and r.proc.poll() is not None:
                    info = {"t": time.time(), "replica": r.index, "pid": r.pid, "returncode": r.proc.returncode}
                    self.unexpected_exits.append(info)
                    r.mark("unexpected exit", pid=r.pid, returncode=r.proc.returncode)
                    self.say(f"replica {r.index} (pid {r.pid}) exited on its own with {r.proc.returncode}; restarting it")
                    r.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_monitor.wait(), 0.5)

    async def heal_all(self) -> None:
        for proxy in self.proxies:
            proxy.heal()
        self.target.misbehave()
        if self.redis.proc is None or self.redis.proc.poll() is not None:
            await self.redis.start(aof=self.redis.aof)
        for r in self.replicas:
            if r.clock_file is not None and r.clock_file.read_text().strip() != "+0":
                r.set_clock_offset(0)
            r.resume()
            if "FAKETIME" in r.run_env:  # a clock-skew fault cut short
                await r.shut_down(self.cfg.shutdown_grace_s)
                r.mark("clock", offset_s=0)
            if not r.running:
                r.start()
        if self.dry_replica is not None and self.dry_replica.running:
            await self.dry_replica.shut_down(self.cfg.shutdown_grace_s)
            if self.dry_runs and "t_to" not in self.dry_runs[-1]:
                self.dry_runs[-1]["t_to"] = time.time()

    # -- the schedule of faults -------------------------------------------------------

    def plan(self) -> list[str]:
        usable = self.cfg.duration_s - self.cfg.warmup_s - self.cfg.cooldown_s
        count = max(1, int(usable // self.cfg.fault_interval_s))
        out: list[str] = []
        while len(out) < count:  # rounds of every fault, each round in a seeded random order
            round_ = list(self.cfg.faults)
            self.rng.shuffle(round_)
            if out and round_[0] == out[-1] and len(round_) > 1:
                round_.append(round_.pop(0))
            out += round_
        return out[:count]

    async def run_faults(self, t0: float) -> None:
        plan = self.plan()
        self.say(f"fault plan ({len(plan)}): {', '.join(plan)}")
        end_by = t0 + self.cfg.duration_s - self.cfg.cooldown_s
        occurrences: dict[str, int] = {}
        ready_at = t0 + self.cfg.warmup_s
        for k, name in enumerate(plan):
            start = max(t0 + self.cfg.warmup_s + k * self.cfg.fault_interval_s, ready_at)
            if start >= end_by:
                self.notes.append(f"{len(plan) - k} planned fault(s) left out: no time left")
                break
            await asyncio.sleep(max(0.0, start - time.time()))
            rec = FaultRecord(name, occurrences.get(name, 0))
            occurrences[name] = rec.occurrence + 1
            self.faults.append(rec)
            budget = max(self.cfg.fault_interval_s * 2, chaos_faults.BUDGET_S.get(name, 60.0))
            try:
                await asyncio.wait_for(FAULT_ACTIONS[name](self, rec), budget)
            except TimeoutError:
                rec.notes["error"] = f"fault did not finish within {budget:.0f}s; everything healed"
                await self.heal_all()
            rec.t_done = time.time()
            what = f"skipped ({rec.skipped})" if rec.skipped else f"on replica {rec.target}" if rec.target is not None else ""
            brief = {key: v for key, v in rec.notes.items() if len(str(v)) <= 60}
            self.say(f"fault {k + 1}/{len(plan)} {name} {what} done in {rec.t_done - start:.1f}s {brief or ''}".rstrip())
            ready_at = rec.t_done + min(5.0, self.cfg.fault_interval_s / 3)  # some recovery, always

    # -- the whole run -----------------------------------------------------------------

    async def run(self) -> dict:
        t0 = time.time()
        monitor = None
        try:
            await self.setup()
            monitor = asyncio.create_task(self.monitor())
            watcher = asyncio.create_task(self.watch_lease())
            await self.run_faults(t0)
            await self.heal_all()
            await asyncio.sleep(max(self.cfg.cooldown_s, t0 + self.cfg.duration_s - time.time()))
            t_end = int(time.time()) - 1
            await self.wait_delivered(t_end, timeout_s=20)
            self._stop_monitor.set()
            await monitor
            await watcher
            exits = await self.shutdown()
        finally:
            self._stop_monitor.set()
            if monitor is not None and not monitor.done():
                monitor.cancel()
            await self.teardown()
        raw = self.raw(t0, t_end, exits)
        (self.workdir / "raw.json").write_text(json.dumps(raw))
        return chaos_report.analyze(raw)

    async def wait_delivered(self, t_end: int, timeout_s: float) -> None:
        """Until every job's last slot up to t_end has arrived (or the timeout)."""
        last = {}
        for name, fields in JOBS.items():
            spec = sched.parse(fields["SCHEDULE"], "UTC", name)
            slots = sched.slots_between(spec, t_end - 3600, t_end, limit=1)
            if slots:
                last[name] = slots[-1]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen: dict[str, int] = {}
            for a in self.target.arrivals:
                seen[a.job] = max(seen.get(a.job, 0), a.slot)
            if all(seen.get(job, 0) >= slot for job, slot in last.items()):
                return
            await asyncio.sleep(0.2)

    async def shutdown(self) -> list[dict]:
        """SIGTERM every replica, as a deploy would; each should exit 0."""
        everyone = self.replicas + (self.sentinel.replicas if self.sentinel is not None else [])
        for r in everyone:
            r.resume()
            r.terminate()
        exits = []
        for r in everyone:
            rc = await r.wait_exit(self.cfg.shutdown_grace_s + 10)
            if rc is None:
                r.kill()
            exits.append({"replica": r.index, "pid": r.pid, "returncode": rc})
        return exits

    async def teardown(self) -> None:
        for r in self.replicas + self.side_replicas():
            if r.running:
                r.resume()
                r.kill()
        for proxy in self.proxies:
            await proxy.close()
        await self.target.close()
        if self._direct is not None:
            with contextlib.suppress(Exception):
                await self._direct.aclose()
        if self.sentinel is not None:
            await self.sentinel.close()
        self.redis.kill()

    def raw(self, t0: float, t_end: int, exits: list[dict]) -> dict:
        cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.cfg).items()}
        return {
            "config": cfg,
            "jobs": {name: {"schedule": f["SCHEDULE"], "catchup": f.get("CATCHUP", "latest"),
                            "concurrency": f.get("CONCURRENCY", "forbid")} for name, f in JOBS.items()},
            "t_start": t0,
            "t_end": t_end,
            "start_marks": self.start_marks,
            "arrivals": [asdict(a) for a in self.target.arrivals],
            "faults": [asdict(f) for f in self.faults],
            "noaof": self.noaof,
            "events": chaos_record.read_replica_logs(
                [r.log_path for r in self.replicas] + ([self.dry_replica.log_path] if self.dry_replica else [])),
            "lease_log": self.lease_log,
            "skewed": self.skewed,
            "dry_runs": self.dry_runs,
            "sentinel": None if self.sentinel is None else {
                "arrivals": [asdict(a) for a in self.sentinel.target.arrivals],
                "events": chaos_record.read_replica_logs([r.log_path for r in self.sentinel.replicas]),
            },
            "unexpected_exits": self.unexpected_exits,
            "final_exits": exits,
            "notes": self.notes,
            "workdir": str(self.workdir),
        }


# ---------------------------------------------------------------------------------------
# the faults: each injects, holds, heals; the recovery period follows
# ---------------------------------------------------------------------------------------


async def _on_leader(h: Harness, rec: FaultRecord) -> Replica | None:
    leader = await h.leader(timeout_s=15)
    if leader is None:
        rec.skipped = "no leader to hit"
        return None
    rec.target, rec.target_pid = leader.index, leader.pid
    return leader


async def fault_kill9(h: Harness, rec: FaultRecord) -> None:
    """SIGKILL the leader; start it again once a standby has had time to take over."""
    leader = await _on_leader(h, rec)
    if leader is None:
        return
    rec.t_inject = time.time()
    rec.failover_points.append(rec.t_inject)
    before = max((a.epoch for a in h.target.arrivals), default=0)
    leader.kill()
    # Detection time: from the kill to the first call of the next leader (a newer epoch).
    deadline = rec.t_inject + h.cfg.lease_ttl_s + 2
    while time.time() < deadline and "detect_s" not in rec.notes:
        first = next((a for a in h.target.arrivals if a.epoch > before and a.t >= rec.t_inject), None)
        if first is not None:
            rec.notes["detect_s"] = round(first.t - rec.t_inject, 3)
        await asyncio.sleep(0.02)
    await asyncio.sleep(max(0.0, deadline - time.time()))
    leader.start()
    rec.t_heal = time.time()


async def fault_sigstop(h: Harness, rec: FaultRecord) -> None:
    """SIGSTOP the leader past its lease, then SIGCONT: it must notice it is no longer leader."""
    leader = await _on_leader(h, rec)
    if leader is None:
        return
    rec.t_inject = time.time()
    rec.failover_points.append(rec.t_inject)
    leader.pause()
    try:
        await asyncio.sleep(h.cfg.lease_ttl_s + 2)
    finally:
        leader.resume()
    rec.t_heal = time.time()


async def fault_partition(h: Harness, rec: FaultRecord) -> None:
    """Cut the leader off from Redis for longer than the TTL, then heal. Alternates
    between holding the bytes (delivered late on heal) and dropping them."""
    leader = await _on_leader(h, rec)
    if leader is None:
        return
    proxy = h.proxies[leader.index]
    drop = rec.occurrence % 2 == 1
    rec.notes["mode"] = "drop" if drop else "hold"
    rec.t_inject = time.time()
    rec.failover_points.append(rec.t_inject)
    leader.mark("partition", mode=rec.notes["mode"])
    proxy.blackhole(drop=drop)
    try:
        await asyncio.sleep(h.cfg.lease_ttl_s + 3)
    finally:
        proxy.heal()
        leader.mark("partition healed")
    rec.t_heal = time.time()


async def fault_latency(h: Harness, rec: FaultRecord) -> None:
    """Slow the leader's link to Redis: first below the ~2 s Redis call timeout, then above
    it (every call still runs in Redis, but its reply comes too late)."""
    leader = await _on_leader(h, rec)
    if leader is None:
        return
    proxy = h.proxies[leader.index]
    rec.t_inject = time.time()
    rec.notes["delay_each_way_s"] = [0.6, 1.3]
    try:
        leader.mark("latency", delay_each_way_s=0.6)
        proxy.delay_s = 0.6
        await asyncio.sleep(8)
        leader.mark("latency", delay_each_way_s=1.3)
        proxy.delay_s = 1.3
        await asyncio.sleep(8)
    finally:
        proxy.heal()
        leader.mark("latency healed")
    rec.t_heal = time.time()


async def _redis_restart(h: Harness, rec: FaultRecord, aof: bool) -> None:
    if aof and not h.redis.aof:
        if not await h.redis.enable_aof():
            rec.skipped = "AOF could not be turned on"
            return
    ns = h.cfg.namespace
    before = {}
    with contextlib.suppress(Exception):
        before = {job: int(slot) for job, slot in (await h._direct.hgetall("{%s}:slots" % ns)).items()}
    rec.t_inject = time.time()
    rec.failover_points.append(rec.t_inject)
    h.redis.kill()
    if not aof:
        h.redis.wipe()
    await asyncio.sleep(3)
    await h.redis.start(aof=aof)
    rec.t_heal = time.time()
    if aof:
        return
    # State is gone: the next leader starts each job afresh at its own "now". Those first
    # watermarks bound what this restart was allowed to lose.
    after = await h.read_marks(timeout_s=h.cfg.lease_ttl_s * 3 + 10)
    h.noaof.append({"t_kill": rec.t_inject, "t_up": rec.t_heal, "marks_before": before, "marks_after": after})
    rec.notes["aof_back_on"] = await h.redis.enable_aof()


async def fault_redis_restart_aof(h: Harness, rec: FaultRecord) -> None:
    """SIGKILL redis-server and start it again from its AOF (appendfsync always): no state lost."""
    await _redis_restart(h, rec, aof=True)


async def fault_redis_restart_noaof(h: Harness, rec: FaultRecord) -> None:
    """SIGKILL a redis-server without persistence and start it empty: all state lost."""
    await _redis_restart(h, rec, aof=False)


async def fault_rolling_slow(h: Harness, rec: FaultRecord) -> None:
    """A deploy while the `slow` job's calls take 15 s: each leader stopped hands the lease
    over at once and keeps its slow call, which no one sends again before it ends (or its
    SHUTDOWN_GRACE runs out: then the next leader redelivers it as the next attempt)."""
    h.target.slow["slow"] = 15.0
    try:
        start = time.time()
        while time.time() < start + 12 and not any(a.job == "slow" and a.t >= start for a in h.target.arrivals):
            await asyncio.sleep(0.05)
        await fault_rolling(h, rec)
    finally:
        h.target.slow.pop("slow", None)


async def fault_rolling(h: Harness, rec: FaultRecord) -> None:
    """A deploy: SIGTERM each replica in turn, wait for it to exit, start it again."""
    order = list(h.replicas)
    h.rng.shuffle(order)
    rec.t_inject = time.time()
    codes = []
    for r in order:
        was_leader = (await h.leader_now()) is r
        t = time.time()
        r.terminate()
        if was_leader:
            rec.failover_points.append(t)
            rec.target, rec.target_pid = r.index, r.pid
        rc = await r.wait_exit(h.cfg.shutdown_grace_s + 10)
        if rc is None:
            r.kill()
        codes.append(rc)
        r.start()
        await r.wait_started()
        await asyncio.sleep(1.5)
    rec.notes["exit_codes"] = codes
    rec.t_heal = time.time()


async def fault_flaky_target(h: Harness, rec: FaultRecord) -> None:
    """The application answers 503 to 10% of calls, hangs on 5% (past the job timeout)
    and resets the connection on 5%, for 20 s."""
    rec.t_inject = time.time()
    h.target.misbehave(fail=0.10, hang=0.05, reset=0.05, hang_s=5.0)
    try:
        await asyncio.sleep(20)
    finally:
        h.target.misbehave()
    rec.t_heal = time.time()


async def fault_clock_jump(h: Harness, rec: FaultRecord) -> None:
    """Make the libfaketime replica the leader, then step its wall clock (forward on even
    occurrences, back on odd ones) by clock_jump_s, and back again 8 s later."""
    r0 = next((r for r in h.replicas if r.clock_file is not None), None)
    if r0 is None:
        rec.skipped = "libfaketime not found (Debian: apt-get install faketime)"
        return
    leader = await h.leader(timeout_s=15)
    if leader is None:
        rec.skipped = "no leader"
        return
    if leader is not r0:
        # Hand the lease to r0: freeze the other standbys, stop the leader gracefully.
        others = [r for r in h.replicas if r not in (r0, leader) and r.running]
        for r in others:
            r.pause()
        try:
            leader.terminate()
            await leader.wait_exit(h.cfg.shutdown_grace_s + 10)
            if leader.running:
                leader.kill()
            if await h.leader(timeout_s=h.cfg.lease_ttl_s + 5) is not r0:
                rec.skipped = "could not make the clock-jumped replica the leader"
        finally:
            for r in others:
                r.resume()
            leader.start()
        if rec.skipped:
            return
    rec.target, rec.target_pid = r0.index, r0.pid
    jump = int(h.cfg.clock_jump_s) * (1 if rec.occurrence % 2 == 0 else -1)
    rec.notes["jump_s"] = jump
    rec.t_inject = time.time()
    r0.set_clock_offset(jump)
    try:
        await asyncio.sleep(8)
    finally:
        r0.set_clock_offset(0)
    rec.t_heal = time.time()


FAULT_ACTIONS: dict[str, Callable[[Harness, FaultRecord], Awaitable[None]]] = {
    "kill9": fault_kill9,
    "sigstop": fault_sigstop,
    "partition": fault_partition,
    "latency": fault_latency,
    "redis-restart-aof": fault_redis_restart_aof,
    "redis-restart-noaof": fault_redis_restart_noaof,
    "rolling": fault_rolling,
    "rolling-slow": fault_rolling_slow,
    "flaky-target": fault_flaky_target,
    "clock-jump": fault_clock_jump,
    **chaos_faults.ACTIONS,
}


# ---------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------


def run(cfg: ChaosConfig) -> dict:
    """Run the harness and return the report (see chaos_report.analyze)."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not on PATH")
    keep = cfg.keep_logs or cfg.workdir is not None
    workdir = Path(cfg.workdir) if cfg.workdir else Path(tempfile.mkdtemp(prefix="chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict | None = None
    try:
        report = asyncio.run(Harness(cfg, workdir).run())
        return report
    finally:
        kill_all()
        if not keep and report is not None and report.get("ok"):
            shutil.rmtree(workdir, ignore_errors=True)
        elif not cfg.quiet:
            print(f"logs and raw data kept in {workdir}", flush=True)


def parse_args(argv: list[str] | None = None) -> tuple[ChaosConfig, str | None]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, help="seconds the whole run lasts, warm-up and cool-down included "
                   "(default 600; --quick: 46); 30 minutes of every fault: --duration 1800 --faults all")
    p.add_argument("--replicas", type=int, default=3, help="replicas of the daemon (default 3)")
    p.add_argument("--faults", help=f"comma list of {', '.join(FAULTS)}, or all (default all; --quick: {','.join(QUICK_FAULTS)})")
    p.add_argument("--seed", type=int, default=1, help="seed of the fault order and of the target's misbehaviour")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    p.add_argument("--fault-interval", type=float, help="seconds from one fault to the next (default 30; --quick: 11)")
    p.add_argument("--quick", action="store_true", help="a short run: kill9, sigstop and partition in under a minute")
    p.add_argument("--workdir", type=Path, help="keep logs and raw data here (default: a temporary directory, removed after a clean run)")
    p.add_argument("--keep-logs", action="store_true", help="keep the temporary directory even after a clean run")
    args = p.parse_args(argv)
    cfg = quick_config() if args.quick else ChaosConfig()
    if args.duration is not None:
        cfg.duration_s = args.duration
    if args.fault_interval is not None:
        cfg.fault_interval_s = args.fault_interval
    if args.faults and args.faults != "all":
        names = tuple(n.strip() for n in args.faults.split(",") if n.strip())
        unknown = [n for n in names if n not in FAULTS]
        if unknown:
            p.error(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)} or all")
        cfg.faults = names
    elif args.faults == "all":
        cfg.faults = FAULTS
    if args.replicas < 1:
        p.error("--replicas must be at least 1")
    minimum = cfg.warmup_s + cfg.cooldown_s + cfg.fault_interval_s
    if cfg.duration_s < minimum:
        p.error(f"--duration must be at least {minimum:g}s (warm-up, one fault interval, cool-down)")
    cfg.replicas, cfg.seed, cfg.workdir, cfg.keep_logs = args.replicas, args.seed, args.workdir, args.keep_logs
    return cfg, args.json


def main(argv: list[str] | None = None) -> int:
    cfg, json_path = parse_args(argv)
    report = run(cfg)
    print(chaos_report.format_report(report), flush=True)
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {path}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
