#!/usr/bin/env python3
"""/metrics readers that never read: the daemon's RSS before, while and after N connections
each pipeline K `GET /metrics` requests and never read an answer.

One standalone daemon (SQLite state) with J env jobs that do not fire during the run (hourly,
at the minute half an hour from now), its HTTP port on a free loopback port, no control token.
The clients are plain sockets of this process. RSS is `VmRSS` of the daemon: before the
connections open, the highest seen while they are open (sampled every 0.1 s), and after
they close; peak is its `VmHWM` at the end.

    uv run python bench/slow_readers.py
    uv run python bench/slow_readers.py --jobs 2000 --connections 1000 --pipeline 4 --hold 8
    uv run python bench/slow_readers.py --rcvbuf 4096 --pipeline 8   # the kernel buffers little
"""

from __future__ import annotations

import argparse
import resource
import socket
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import daemon_logs, lifecycle, measured_code, output, procstat, daemons as replicas, timing  # noqa: E402
from harness.ports import LOOPBACK, free_port  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2000, help="env jobs (default 2000)")
    ap.add_argument("--connections", type=int, default=1000, help="slow-reader connections (default 1000)")
    ap.add_argument("--pipeline", type=int, default=4, help="GET /metrics requests sent on each connection (default 4)")
    ap.add_argument("--hold", type=float, default=8.0, help="seconds the connections stay open (default 8; the "
                    "daemon's write timeout is 10 s)")
    ap.add_argument("--rcvbuf", type=int, default=0, help="the clients' SO_RCVBUF in bytes, so the kernel takes "
                    "less of each answer off the daemon (default 0: the system's)")
    ap.add_argument("--gzip", action="store_true", help="ask for gzip (Accept-Encoding: gzip), as Prometheus does")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after start-up before measuring (default 3)")
    ap.add_argument("--json", metavar="PATH", help="write results here (default bench/results/slow_readers-<time>.json)")
    measured_code.add_src_arg(ap)
    a = ap.parse_args()
    measured_code.set_src(a.src)
    return lifecycle.run_bounded(lambda: run(a), 120 + a.settle + a.hold)


def _rss(pid: int) -> int | None:
    return procstat.proc_status(pid).get("VmRSS")


def run(a: argparse.Namespace) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.connections + 64 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    workdir = lifecycle.make_workdir("bench-slow-readers-")
    logs = output.log_dir("slow_readers")
    minute = (time.gmtime().tm_min + 30) % 60
    env_file = replicas.write_env_file(workdir / "jobs.env", {n: f"{minute} * * * *" for n in replicas.job_names(a.jobs)})
    port = free_port()
    daemon = replicas.Daemon(env_file, {
        "SCHEDULER_API_URL": "http://127.0.0.1:9", "SCHEDULER_STATE_FILE": str(workdir / "state.db"),
        "SCHEDULER_LOG_LEVEL": "WARNING", "SCHEDULER_LOG_FORMAT": "json",
        "SCHEDULER_HTTP_HOST": LOOPBACK, "SCHEDULER_HTTP_PORT": str(port),
    }, logs / "daemon.log")
    url = f"http://{LOOPBACK}:{port}/metrics"

    def scrape() -> bytes | None:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.read()
        except OSError:
            return None

    body = timing.wait_for(scrape, 60, 0.2, what="/metrics to answer")
    time.sleep(a.settle)
    scrape()
    before = _rss(daemon.pid)
    print(f"{a.jobs} jobs, /metrics {len(body):,} bytes; {a.connections} connections x {a.pipeline} pipelined "
          f"GET /metrics{' (gzip)' if a.gzip else ''}, held {a.hold:g} s; logs {logs}", flush=True)

    head = f"GET /metrics HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
    if a.gzip:
        head += "Accept-Encoding: gzip\r\n"
    requests = (head + "\r\n").encode() * a.pipeline
    clients: list[socket.socket] = []
    refused = 0
    highest = before or 0
    t0 = time.monotonic()
    for _ in range(a.connections):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if a.rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
            s.settimeout(5)
            s.connect((LOOPBACK, port))
            s.sendall(requests)
            clients.append(s)
        except OSError:
            refused += 1
        highest = max(highest, _rss(daemon.pid) or 0) if len(clients) % 50 == 0 else highest
    while time.monotonic() - t0 < a.hold:
        highest = max(highest, _rss(daemon.pid) or 0)
        time.sleep(0.1)
    during = _rss(daemon.pid)
    healthz_ok = _healthz(port)
    for s in clients:
        s.close()
    time.sleep(2.0)
    after = _rss(daemon.pid)
    peak = procstat.proc_status(daemon.pid).get("VmHWM")
    alive = daemon.running
    code = daemon.stop()
    problems = daemon_logs.log_problems([daemon.log_path])
    res = {
        "benchmark": "slow_readers", "environment": measured_code.environment_info(),
        "config": {"jobs": a.jobs, "connections": a.connections, "pipeline": a.pipeline, "hold_s": a.hold, "gzip": a.gzip,
                   "rcvbuf": a.rcvbuf},
        "metrics_bytes": len(body), "connections_refused": refused,
        "rss_kb": {"before": before, "highest_while_open": highest, "at_end_of_hold": during, "after_close": after,
                   "peak": peak},
        "healthz_while_open": healthz_ok, "alive_at_end": alive, "exit_code": code, "log_problems": problems,
    }
    output.print_table(f"slow readers: {a.jobs} jobs, {a.connections} x {a.pipeline} GET /metrics never read", [
        ("/metrics body", f"{len(body):,} bytes", "uncompressed" + ("; the clients asked for gzip" if a.gzip else "")),
        ("daemon RSS before", output.mb(before), ""),
        ("daemon RSS, highest while open", output.mb(highest), f"{a.hold:g} s, sampled every 0.1 s"),
        ("daemon RSS at the end of the hold", output.mb(during), ""),
        ("daemon RSS after the connections closed", output.mb(after), "2 s later"),
        ("daemon peak RSS (VmHWM)", output.mb(peak), ""),
        ("connections refused or failed", refused, ""),
        ("/healthz while they were open", "200" if healthz_ok else "failed", ""),
        ("alive at end; exit code", f"{alive}; {code}", ""),
        ("daemon warnings/errors logged", daemon_logs.summarize_problems(problems), ""),
    ], ("figure", "value", "detail"))
    path = output.write_json(a.json or output.default_json_path("slow_readers"), res)
    print(f"\nresults: {path}")
    return 0


def _healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/healthz", timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
