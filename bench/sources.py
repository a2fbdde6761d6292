#!/usr/bin/env python3
"""Jobs from the app's URL at scale: 100,000 jobs served by a local HTTP server (another
process, with an ETag and 304s), read by JobSources as the daemon reads them.

Prints: time from start until the 100,000 jobs are in force (fetch + parse + validate),
peak RSS and memory per job, the CPU of a 304 refresh, the time to apply a change of 1,000
jobs (refetch, revalidate what changed, diff), and the CPU of one stat of the jobs file.

    uv run python bench/sources.py
    uv run python bench/sources.py --jobs 20000 --h-share 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import lifecycle, output, timing  # noqa: E402
from bench.doc_server import SERVER  # noqa: E402
from harness.ports import free_port  # noqa: E402

from scheduler.config import loader as config  # noqa: E402
from scheduler.sources.changes import diff  # noqa: E402
from scheduler.sources.watch import JobSources  # noqa: E402

CRONS = [f"{m} {h} * * *" for m in (0, 15, 30, 45) for h in range(0, 24, 2)] + ["*/5 * * * *", "0 7 * * 1-5"]


def jobs_doc(n: int, h_share: float, changed: int = 0) -> dict:
    jobs = []
    for i in range(n):
        if i < n * h_share:
            schedule = "H H * * *"  # spread by name: each one parsed on its own
        elif i % 3 == 0:
            schedule = f"every {(i % 60) + 1}m"
        else:
            schedule = CRONS[i % len(CRONS)]
        job = {"name": f"tenant-{i}-digest", "schedule": schedule, "url": f"/api/digest/{i}"}
        if i % 10 == 0:
            job |= {"timezone": "Europe/Berlin", "retries": 1, "timeout": "2m", "headers": {"X-Tenant": str(i)}}
        if i < changed:
            job["url"] += "?v=2"
        jobs.append(job)
    return {"jobs": jobs}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def run(args) -> list[tuple]:
    work = Path(tempfile.mkdtemp(prefix="bench-sources-"))
    first, second = work / "a.json", work / "b.json"
    first.write_text(json.dumps(jobs_doc(args.jobs, args.h_share)))
    second.write_text(json.dumps(jobs_doc(args.jobs, args.h_share, changed=args.changed)))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(first), str(second)])
    lifecycle.on_cleanup(lambda: lifecycle.stop_process(server))
    settings = config.load({"SCHEDULER_API_URL": f"http://127.0.0.1:{port}", "SCHEDULER_JOBS_URL": "/jobs",
                            "SCHEDULER_API_TOKEN": "bench"})
    import socket

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False

    timing.wait_for(listening, 10, what="the server")
    gc.collect()
    base_rss = rss_mb()
    changes: list[tuple[float, dict]] = []
    got = asyncio.Event()

    def on_change(jobs, source_of, names):
        changes.append((time.perf_counter(), jobs))
        got.set()

    sources = JobSources(settings, on_change=on_change)
    t0 = time.perf_counter()
    await sources.start(sighup=False)
    await asyncio.wait_for(got.wait(), 60)
    load_s = changes[-1][0] - t0
    assert len(changes[-1][1]) == args.jobs, sources.states()
    gc.collect()
    loaded_rss = rss_mb()
    (src,) = sources._sources  # noqa: SLF001 - the bench drives the reader directly

    # A refresh answered 304: the CPU of the request and of deciding nothing changed.
    cpu0 = time.process_time()
    for _ in range(args.refreshes):
        if await sources._read(src):  # noqa: SLF001 - as JobSources does: a merge only after a change
            sources._merge()  # noqa: SLF001
    refresh_cpu_ms = (time.process_time() - cpu0) / args.refreshes * 1000

    # A change of N jobs: fetch, parse, revalidate only what changed, merge, diff.
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/switch", method="POST"), timeout=5).read()
    old = sources.current()
    got.clear()
    t1 = time.perf_counter()
    await sources._read(src)  # noqa: SLF001
    sources._merge()  # noqa: SLF001
    change_s = time.perf_counter() - t1
    new = sources.current()
    t2 = time.perf_counter()
    added, changed, removed = diff(old, new)
    diff_ms = (time.perf_counter() - t2) * 1000
    assert len(changed) == args.changed and not added and not removed, (len(added), len(changed), len(removed))
    await sources.aclose()

    st = first
    t3 = time.process_time()
    for _ in range(10_000):
        os.stat(st)
    stat_us = (time.process_time() - t3) / 10_000 * 1e6
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mb = first.stat().st_size / 1e6
    per_job = (loaded_rss - base_rss) * 1024 * 1024 / args.jobs
    return [
        ("jobs served (H share)", f"{args.jobs} ({args.h_share:.0%})"),
        ("document size", output.fmt(size_mb, " MB")),
        ("start -> jobs in force", output.fmt(load_s, " s", 2) + f"  {output.verdict(load_s <= 2.0)} (target <= 2 s)"),
        ("peak RSS", output.fmt(peak_mb, " MB") + f"  {output.verdict(peak_mb <= 300)} (target <= 300 MB)"),
        ("memory per job (RSS after load - before)", output.fmt(per_job / 1024, " kB", 2)),
        ("CPU of a 304 refresh", output.fmt(refresh_cpu_ms, " ms", 3) + f"  {output.verdict(refresh_cpu_ms <= 1.0)} (target <= 1 ms)"),
        (f"change of {args.changed} jobs: refetch+validate+merge", output.fmt(change_s, " s", 2)),
        (f"change of {args.changed} jobs: diff", output.fmt(diff_ms, " ms", 1)),
        ("CPU of one stat of the jobs file (polled every 1 s)", output.fmt(stat_us, " us", 1)),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--changed", type=int, default=1_000)
    ap.add_argument("--h-share", type=float, default=0.1, help="share of jobs with an H schedule (parsed one by one)")
    ap.add_argument("--refreshes", type=int, default=200)
    args = ap.parse_args()
    try:
        rows = asyncio.run(run(args))
    finally:
        lifecycle.cleanup()
    output.print_table("jobs from the app's URL", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
