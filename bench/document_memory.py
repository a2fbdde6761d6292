#!/usr/bin/env python3
"""Memory of the daemon reading its jobs from the app's URL: while it refuses documents over
the 64 MiB limit, and while it holds tens of thousands of valid jobs.

A local HTTP server on 127.0.0.1 (in this process, harness/document_server.py) serves the
document at SCHEDULER_JOBS_URL; one standalone daemon (SQLite state, no Redis) per case reads
it. For an oversized document the daemon runs --seconds (30 s: the report that started this
saw about 1 GB within that) while the server counts the requests and the bytes it managed to
send; for valid jobs it runs until it has logged them read, then --settle seconds; the largest
set then meets the first oversized size, chunked, three times (SIGHUP forces each read). Printed
per case: the daemon's peak RSS (VmHWM from /proc/PID/status) and RSS at the end; for jobs,
memory per job above the empty document's RSS.

    uv run python bench/document_memory.py                       # 72 and 100 MiB, 50,000 and 100,000 jobs
    uv run python bench/document_memory.py --mib 72 --jobs 50000 --framing chunked
    uv run python bench/document_memory.py --src /tmp/base       # another copy of the package
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import daemon_logs, lifecycle, measured_code, output, procstat, daemons as replicas, timing  # noqa: E402
from harness.document_server import DocumentServer, jobs_document, oversized_document  # noqa: E402

MIB = 1 << 20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=float, nargs="*", default=[72, 100],
                    help="sizes of oversized documents in MiB (default 72 100); none: skip")
    ap.add_argument("--jobs", type=int, nargs="*", default=[50_000, 100_000],
                    help="valid job counts (default 50000 100000); none: skip")
    ap.add_argument("--framing", choices=("length", "chunked", "both"), default="both",
                    help="how an oversized document is sent: with a Content-Length, chunked, or each (default)")
    ap.add_argument("--seconds", type=float, default=30.0, help="time the daemon faces an oversized document (default 30)")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after the jobs are read before measuring (default 3)")
    ap.add_argument("--refresh", default="30s", help="SCHEDULER_JOBS_REFRESH (default 30s, the daemon's default)")
    ap.add_argument("--json", metavar="PATH", help="write results here (default bench/results/document_memory-<time>.json)")
    measured_code.add_src_arg(ap)
    a = ap.parse_args()
    measured_code.set_src(a.src)
    framings = ("length", "chunked") if a.framing == "both" else (a.framing,)
    budget = 60 + len(a.mib) * len(framings) * (a.seconds + 20) + len(a.jobs) * 120 + 60
    return lifecycle.run_bounded(lambda: run(a, framings), budget)


def start_daemon(server: DocumentServer, workdir: Path, logs: Path, name: str, refresh: str) -> replicas.Daemon:
    env_file = workdir / f"{name}.env"
    env_file.write_text("")
    settings = {
        "SCHEDULER_API_URL": server.url, "SCHEDULER_JOBS_URL": server.path, "SCHEDULER_JOBS_REFRESH": refresh,
        "SCHEDULER_STATE_FILE": str(workdir / f"{name}.db"), "SCHEDULER_HTTP_PORT": "0",
        "SCHEDULER_LOG_FORMAT": "json", "PYTHONPATH": str(measured_code.SRC),
    }
    return replicas.Daemon(env_file, settings, logs / f"{name}.log")


def jobs_read(daemon: replicas.Daemon) -> int | None:
    for ev in daemon_logs.log_events(daemon.log_path):
        if ev.get("event") == "jobs source read":
            return int(ev.get("jobs", 0))
    return None


def case_valid(server: DocumentServer, n: int, a, workdir: Path, logs: Path, then_refuse: bytes | None = None) -> dict:
    body = jobs_document(n)
    server.serve(body)
    daemon = start_daemon(server, workdir, logs, f"jobs-{n}", a.refresh)
    t0 = time.monotonic()
    got = timing.wait_for(lambda: jobs_read(daemon) is not None or not daemon.running, 120, what=f"{n} jobs read")
    read_s = time.monotonic() - t0
    time.sleep(a.settle)
    status = procstat.proc_status(daemon.pid)
    result = {"case": f"{n} jobs", "jobs": n, "document_bytes": len(body), "jobs_read": jobs_read(daemon),
              "read_s": round(read_s, 2), "rss_kb": status.get("VmRSS"), "peak_rss_kb": status.get("VmHWM")}
    if then_refuse is not None:
        result["then_refused"] = refuse_while_holding(server, daemon, then_refuse)
    result["alive"] = daemon.running and bool(got)
    daemon.stop()
    return result


def refuse_while_holding(server: DocumentServer, daemon: replicas.Daemon, body: bytes, times: int = 3) -> dict:
    """The app goes wrong while the daemon holds its jobs: an oversized chunked document
    (the costlier framing: read up to the limit), read at once through SIGHUP, `times` times."""
    server.serve(body, chunked=True)
    first = server.gets()
    peak = 0
    for i in range(times):
        os.kill(daemon.pid, signal.SIGHUP)
        timing.wait_for(lambda n=first + i: server.gets() > n and (server.answers[-1].complete or server.answers[-1].closed_early),
                   60, what="a refusal")
        peak = max(peak, procstat.proc_status(daemon.pid).get("VmHWM", 0))
    status = procstat.proc_status(daemon.pid)
    return {"document_bytes": len(body), "refusals": times, "peak_rss_kb": max(peak, status.get("VmHWM", 0)),
            "rss_kb": status.get("VmRSS")}


def case_oversized(server: DocumentServer, mib: float, chunked: bool, a, workdir: Path, logs: Path) -> dict:
    body = oversized_document(int(mib * MIB))
    server.answers.clear()
    server.serve(body, chunked=chunked)
    framing = "chunked" if chunked else "length"
    daemon = start_daemon(server, workdir, logs, f"over-{mib:g}-{framing}", a.refresh)
    peak = 0
    end = time.monotonic() + a.seconds
    while time.monotonic() < end and daemon.running:
        peak = max(peak, procstat.proc_status(daemon.pid).get("VmHWM", 0))
        time.sleep(0.1)
    status = procstat.proc_status(daemon.pid)
    alive = daemon.running
    daemon.stop()
    problems = sorted({str(ev.get("problem")) for ev in daemon_logs.log_events(daemon.log_path) if ev.get("problem")})
    return {"case": f"{mib:g} MiB refused ({framing})", "document_bytes": len(body), "framing": framing,
            "seconds": a.seconds, "peak_rss_kb": max(peak, status.get("VmHWM", 0)), "rss_kb": status.get("VmRSS"),
            "requests": len(server.answers), "bytes_sent_per_request": [x.sent for x in server.answers],
            "complete_answers": sum(x.complete for x in server.answers), "problems": problems, "alive": alive}


def run(a, framings: tuple[str, ...]) -> int:
    workdir = lifecycle.make_workdir("bench-docmem-")
    logs = output.log_dir("document_memory")
    server = DocumentServer()
    lifecycle.on_cleanup(server.close)
    results = []
    empty = case_valid(server, 0, a, workdir, logs)
    results.append(empty)
    for mib in a.mib:
        for framing in framings:
            results.append(case_oversized(server, mib, framing == "chunked", a, workdir, logs))
    for n in a.jobs:
        # The largest set also meets an oversized document: the peak the memory limit needs.
        refuse = oversized_document(int(a.mib[0] * MIB)) if a.mib and n == max(a.jobs) else None
        r = case_valid(server, n, a, workdir, logs, refuse)
        if empty.get("rss_kb") and r.get("rss_kb") and n:
            r["bytes_per_job"] = round((r["rss_kb"] - empty["rss_kb"]) * 1024 / n)
        results.append(r)
    rows = []
    for r in results:
        if "framing" in r:
            sent = r["bytes_sent_per_request"]
            detail = (f"{r['requests']} request(s) in {r['seconds']:g} s, {r['complete_answers']} sent whole; "
                      f"sent {', '.join(f'{s / MIB:.1f}' for s in sent[:6])}{' ...' if len(sent) > 6 else ''} MiB of "
                      f"{r['document_bytes'] / MIB:.1f}; {'; '.join(r['problems'])[:90]}")
        else:
            per = f", {r['bytes_per_job'] / 1024:.2f} kB a job above the empty document" if r.get("bytes_per_job") else ""
            detail = f"{r['jobs_read']} read in {r['read_s']} s ({r['document_bytes'] / MIB:.1f} MiB document){per}"
        rows.append((r["case"], f"{output.mb(r['peak_rss_kb'])} / {output.mb(r['rss_kb'])}", "yes" if r["alive"] else "NO", detail))
        if "then_refused" in r:
            t = r["then_refused"]
            rows.append((f"  then {t['document_bytes'] / MIB:.0f} MiB refused (chunked)", f"{output.mb(t['peak_rss_kb'])} / {output.mb(t['rss_kb'])}",
                         "yes" if r["alive"] else "NO", f"{t['refusals']} refusals (SIGHUP) while holding {r['jobs']} jobs"))
    output.print_table("daemon memory reading SCHEDULER_JOBS_URL", rows, ("case", "peak RSS / RSS", "alive", "detail"))
    path = output.write_json(a.json or output.default_json_path("document_memory"), {
        "benchmark": "document_memory", "environment": measured_code.environment_info(),
        "config": {"mib": a.mib, "jobs": a.jobs, "framings": framings, "seconds": a.seconds, "refresh": a.refresh},
        "results": results})
    print(f"\nJSON: {path}")
    print(json.dumps([{k: r[k] for k in ("case", "peak_rss_kb", "rss_kb")} for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
