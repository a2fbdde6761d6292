"""Refresh now: from `POST /api/v1/sources/refresh` answered by a standby to the new job in
force on the leader, with a document of many jobs (SPEC section 8, "Refresh now").

A leader and a standby on one redis-server read SCHEDULER_JOBS_URL from a local app whose
document holds --jobs jobs (their own refresh period is an hour). Each round adds one job to
the document, asks the standby to refresh, and times (a) the standby's answer and (b) the
leader's "jobs source read" log line that applied the change (its own timestamp): in force
on the leader, since the engine takes a change as that line is written.

    uv run python bench/refresh.py                  # 10,000 jobs, 100 rounds
    uv run python bench/refresh.py --jobs 1000 --rounds 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.daemon import Daemon  # noqa: E402
from harness.ports import free_port  # noqa: E402
from harness.receiver import Receiver  # noqa: E402
from harness.redis_server import RedisServer  # noqa: E402

TOKEN = "bench-refresh"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


class App:
    def __init__(self, jobs: int) -> None:
        self.rows = [{"name": f"tenant-{i}", "schedule": "H H * * *", "url": f"/t/{i}"} for i in range(jobs)]
        self.lock = threading.Lock()
        self.body = b""
        self._render()

    def _render(self) -> None:
        self.body = json.dumps({"jobs": self.rows}).encode()

    def add(self, name: str) -> None:
        with self.lock:
            self.rows.append({"name": name, "schedule": "every 1h", "url": f"/{name}"})
            self._render()

    def handle(self, request):
        if request.path == "/jobs":
            with self.lock:
                return 200, {"Content-Type": "application/json"}, self.body
        return 200, {"Content-Type": "application/json"}, b"{}"


def applied_at(daemon: Daemon, after: float) -> float | None:
    """The time of the leader's first `jobs source read` line that changed a job, after `after`."""
    for line in daemon.output().splitlines():
        if '"jobs source read"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        at = datetime.fromisoformat(event["ts"]).timestamp()
        if at >= after and event.get("changed", 0) >= 1:
            return at
    return None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000, help="jobs in the app's document (default 10,000)")
    ap.add_argument("--rounds", type=int, default=100, help="refresh calls to time (default 100)")
    args = ap.parse_args()
    app = App(args.jobs)
    redis = RedisServer()
    receiver = Receiver(app.handle)
    ports = [free_port(), free_port()]
    daemons: list[Daemon] = []
    try:
        for port in ports:
            env = {"SCHEDULER_REDIS_URL": redis.url, "SCHEDULER_NAMESPACE": "bench-refresh",
                   "SCHEDULER_API_URL": receiver.url, "SCHEDULER_JOBS_URL": "/jobs", "SCHEDULER_JOBS_REFRESH": "1h",
                   "SCHEDULER_HTTP_PORT": str(port), "SCHEDULER_HTTP_HOST": "127.0.0.1",
                   "SCHEDULER_CONTROL_TOKEN": TOKEN, "SCHEDULER_LOG_FORMAT": "json"}
            daemons.append(Daemon(env))
            if len(daemons) == 1:
                daemons[0].wait_for_output('"became leader"', timeout=60)
        leader, standby = daemons
        for d in daemons:
            d.wait_for_output('"jobs source read"', timeout=120)
        url = f"http://127.0.0.1:{ports[1]}"
        answer_s, in_force_s = [], []
        for i in range(args.rounds):
            app.add(f"probe-{i}")
            t0 = time.time()
            r = httpx.post(url + "/api/v1/sources/refresh", headers=AUTH, content=b"{}", timeout=60)
            t1 = time.time()
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + 30
            while (at := applied_at(leader, t0)) is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"round {i}: the leader never applied the change")
                time.sleep(0.005)
            answer_s.append(t1 - t0)
            in_force_s.append(at - t0)
            time.sleep(0.05)  # the next change comes after this one's line
        print(f"refresh now, {args.jobs:,} jobs in the document, {args.rounds} rounds (seconds from the request):")
        for label, values in (("standby answered", answer_s), ("in force on the leader", in_force_s),
                              ("in force after the answer", [b - a for a, b in zip(answer_s, in_force_s)])):
            print(f"  {label:<26} p50 {statistics.median(values):.3f}  p99 {pct(values, 0.99):.3f}  max {max(values):.3f}")
        return 0
    finally:
        for d in daemons:
            d.close()
        receiver.close()
        redis.close()


if __name__ == "__main__":
    raise SystemExit(main())
