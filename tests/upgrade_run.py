"""A mixed-version deploy, run for real: releases built from git history and the current code,
one after another on one state store, with a job due every second and a slow fire in flight
at each handover.

With Redis, each step is a rolling deploy: the next version's replicas start beside the
running ones, then the running leader gets SIGTERM (while its slow fire is in flight), then the
rest. With SQLite, each step stops the running replica (while its slow fire is in flight) and
starts the next version on the same file. `run()` returns what the receiver saw, per handover.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence

from tests.releases import Release
from tests.support import Daemon, Receiver, RedisServer, wait_until

TICK_S = 1  # the every-second job
SLOW_EVERY_S = 4
SLOW_FIRE_S = 3.0
CURRENT = "current"  # a version name: this checkout's code with this checkout's venv


@dataclass
class Handover:
    from_version: str
    to_version: str
    stopped_at: float
    slow_key: str  # the Idempotency-Key of the slow fire in flight when the leader got SIGTERM
    slow_finished: bool = False
    slow_redelivered: bool = False
    gap_s: float = 0.0  # longest time between two tick slots' first arrivals around it


@dataclass
class Report:
    store: str
    versions: list[str]
    handovers: list[Handover] = field(default_factory=list)
    tick_slots: list[int] = field(default_factory=list)
    missing_slots: list[int] = field(default_factory=list)
    doubled_first_attempts: dict[str, int] = field(default_factory=dict)
    exits: dict[str, int | None] = field(default_factory=dict)  # replica -> exit code
    tails: dict[str, str] = field(default_factory=dict)  # replica -> its last output, when it did not exit 0
    tracebacks: dict[str, str] = field(default_factory=dict)  # replica -> first lines of one
    max_gap_s: float = 0.0

    def lines(self) -> list[str]:
        out = [f"{self.store}: {' -> '.join(self.versions)}",
               f"  tick slots fired: {len(self.tick_slots)}, missing: {len(self.missing_slots)}, "
               f"fired twice as attempt 1: {len(self.doubled_first_attempts)}",
               f"  longest wait between tick slots: {self.max_gap_s:.2f}s",
               f"  replica exits: {sorted(set(self.exits.values()), key=str)}, tracebacks: {len(self.tracebacks)}"]
        for h in self.handovers:
            fate = " and ".join(["answered"] * h.slow_finished + ["redelivered"] * h.slow_redelivered) or "LOST"
            out.append(f"  handover {h.from_version} -> {h.to_version}: slow fire {h.slow_key} {fate}, "
                       f"tick gap {h.gap_s:.2f}s")
        return out


class _Target:
    """The application: /tick answers at once, /slow takes SLOW_FIRE_S."""

    def __init__(self) -> None:
        self.finished: list[str] = []  # idempotency keys of slow fires answered
        self._lock = threading.Lock()
        self.receiver = Receiver(self._handle)

    def _handle(self, request):
        if request.path.startswith("/slow"):
            time.sleep(SLOW_FIRE_S)
            with self._lock:
                self.finished.append(request.header("idempotency-key"))
        return 200

    def slow_requests(self, since: float) -> list:
        return [r for r in self.receiver.requests if r.path.startswith("/slow") and r.received_at >= since]


def _env(target: _Target, store_env: dict[str, str], grace: str) -> dict[str, str]:
    return {
        **store_env,
        "SCHEDULER_API_URL": target.receiver.url,
        "SCHEDULER_HTTP_PORT": "0",
        "SCHEDULER_LOG_FORMAT": "json",
        "SCHEDULER_SHUTDOWN_GRACE": grace,
        "SCHEDULER_JOB_TICK_SCHEDULE": f"every {TICK_S}s",
        "SCHEDULER_JOB_TICK_URL": "/tick",
        "SCHEDULER_JOB_TICK_CATCHUP": "all",
        "SCHEDULER_JOB_SLOW_SCHEDULE": f"every {SLOW_EVERY_S}s",
        "SCHEDULER_JOB_SLOW_URL": "/slow",
        "SCHEDULER_JOB_SLOW_TIMEOUT": "10s",
        "SCHEDULER_JOB_SLOW_RETRIES": "0",
        "SCHEDULER_JOB_SLOW_CATCHUP": "none",
    }


class _Replicas:
    def __init__(self, releases: dict[str, Release], env: dict[str, str]) -> None:
        self.releases = releases
        self.env = env
        self.cwd = Path(tempfile.mkdtemp(prefix="upgrade-cwd-"))  # no `scheduler/` beside it
        self.all: list[tuple[str, Daemon]] = []

    def start(self, version: str) -> Daemon:
        daemon = Daemon(self.env, cwd=self.cwd, start=False)
        if version != CURRENT:
            daemon.argv = self.releases[version].argv("run")
            daemon.env.pop("PYTHONPATH", None)
        daemon.start()
        self.all.append((f"{version}#{len(self.all) + 1}", daemon))
        return daemon

    def close(self) -> None:
        for _, d in self.all:
            d.close()


def _wait_in_flight(target: _Target, since: float) -> str:
    """Wait until a slow fire arrived after `since` and has not been answered; its key."""
    def open_one():
        for r in target.slow_requests(since):
            key = r.header("idempotency-key")
            if key not in target.finished and time.time() - r.received_at < SLOW_FIRE_S - 1.0:
                return key
        return None
    return wait_until(open_one, timeout=SLOW_EVERY_S * 3, message="a slow fire in flight")


def _stop(daemon: Daemon, timeout: float = 20) -> int:
    daemon.terminate()
    return daemon.wait(timeout)


def run(store: str, versions: Sequence[str], releases: dict[str, Release], *, redis: RedisServer | None = None,
        state_file: Path | None = None, replicas: int = 2, settle_s: float = 2.0, grace: str = "5s") -> Report:
    """Deploy each of `versions` in turn (store: "redis" or "sqlite"); see the module's text."""
    target = _Target()
    if store == "redis":
        store_env = {"SCHEDULER_REDIS_URL": redis.url, "SCHEDULER_NAMESPACE": "upgrade",
                     "SCHEDULER_LEASE_TTL": "3s", "SCHEDULER_LEASE_RENEW": "1s"}
    else:
        store_env = {"SCHEDULER_STATE_FILE": str(state_file)}
        replicas = 1
    group = _Replicas(releases, _env(target, store_env, grace))
    report = Report(store, list(versions))
    try:
        running = [group.start(versions[0]) for _ in range(replicas)]
        _wait_ticks(target, 3)
        for previous, version in zip(versions, versions[1:]):
            if store == "redis":
                fresh = [group.start(version) for _ in range(replicas)]
                for d in fresh:
                    d.wait_for_output("\"starting\"", timeout=30)
            for old in running:
                is_leader = store == "sqlite" or _holds_lease(redis, old)
                if is_leader:
                    key = _wait_in_flight(target, time.time() - SLOW_FIRE_S)
                    report.handovers.append(Handover(previous, version, time.time(), key))
                _stop(old)
            if store == "sqlite":
                fresh = [group.start(version)]
            running = fresh
            _wait_ticks(target, 3, since=time.time())
            time.sleep(settle_s)
        for d in running:
            _stop(d)
        time.sleep(0.2)
        _measure(report, target, group)
    finally:
        group.close()
        target.receiver.close()
    return report


def _holds_lease(redis: RedisServer, daemon: Daemon) -> bool:
    holder = redis.client().get("{upgrade}:leader")
    return bool(holder) and holder.split(":")[-2] == str(daemon.pid)


def _wait_ticks(target: _Target, n: int, since: float = 0.0) -> None:
    def enough():
        return len([r for r in target.receiver.requests if r.path == "/tick" and r.received_at >= since]) >= n
    wait_until(enough, timeout=30, message=f"{n} tick fires")


def _measure(report: Report, target: _Target, group: _Replicas) -> None:
    requests = target.receiver.requests
    firsts = Counter(r.header("idempotency-key") for r in requests if r.header("x-scheduler-attempt") == "1")
    report.doubled_first_attempts = {k: n for k, n in firsts.items() if n > 1}
    first_seen: dict[int, float] = {}
    for r in requests:
        if r.path == "/tick":
            first_seen.setdefault(_slot(r), r.received_at)
    slots = sorted(first_seen)
    report.tick_slots = slots
    report.missing_slots = sorted(set(range(slots[0], slots[-1] + 1, TICK_S)) - set(slots)) if slots else []
    arrivals = sorted(first_seen.values())
    gaps = list(zip(arrivals, arrivals[1:]))
    report.max_gap_s = max((b - a for a, b in gaps), default=0.0)
    for h in report.handovers:
        near = [b - a for a, b in gaps if h.stopped_at - 2 <= b and a <= h.stopped_at + 15]
        h.gap_s = max(near, default=0.0)
        h.slow_finished = h.slow_key in target.finished
        h.slow_redelivered = any(r.header("idempotency-key") == h.slow_key and r.header("x-scheduler-attempt") != "1"
                                 for r in requests)
    for name, d in group.all:
        report.exits[name] = d.returncode
        text = d.output()
        if d.returncode not in (0, None):
            report.tails[name] = text[-2000:]  # what a replica that did not exit 0 said last
        if "Traceback" in text:
            at = text.index("Traceback")
            report.tracebacks[name] = text[at:at + 600]


def _slot(request) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(request.header("x-scheduler-slot").replace("Z", "+00:00")).timestamp())
