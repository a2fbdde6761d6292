#!/usr/bin/env python3
"""LocalStore: what a claim batch costs on its worker thread, and how long the event loop
stalls while another process holds the state file's write lock.

A ticker on the loop records its lateness (the loop's stall); meanwhile claims of N jobs
run in a loop, first freely, then while a `sqlite3`-like holder keeps BEGIN IMMEDIATE for
HOLD seconds.

    uv run python bench/local_store.py
    uv run python bench/local_store.py --jobs 1000 --batches 200 --hold 3
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.stats import percentile  # noqa: E402

from scheduler.store.sqlite.store import LocalStore  # noqa: E402
from scheduler.model import Claim  # noqa: E402
from scheduler.store.protocol import StoreUnavailable  # noqa: E402


async def ticker(lags: list[float], stop: asyncio.Event, period_s: float = 0.01) -> None:
    """Appends how late each tick came; a loop blocked to the end shows as one late tick."""
    started = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(period_s)
        now = time.perf_counter()
        lags.append(now - started - period_s)
        started = now


def stop_ticker(stop: asyncio.Event, lags: list[float], since: float) -> None:
    if not lags:  # the ticker never ran: the loop was blocked all along
        lags.append(time.perf_counter() - since)
    stop.set()


async def measure(path: str, jobs: int, batches: int, hold_s: float) -> dict:
    store = LocalStore(path)
    epoch = await store.acquire()
    names = [f"job-{i}" for i in range(jobs)]
    free_lags: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(free_lags, stop))
    since = time.perf_counter()
    batch_s = []
    for slot in range(1, batches + 1):
        started = time.perf_counter()
        await store.claim(epoch, [Claim(n, slot) for n in names])
        batch_s.append(time.perf_counter() - started)
    stop_ticker(stop, free_lags, since)
    await tick

    held_lags: list[float] = []
    stop = asyncio.Event()
    holder_ready, release = threading.Event(), threading.Event()

    def hold() -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        holder_ready.set()
        release.wait(hold_s)
        db.execute("ROLLBACK")
        db.close()

    holder = threading.Thread(target=hold)
    holder.start()
    holder_ready.wait()
    tick = asyncio.create_task(ticker(held_lags, stop))
    since = time.perf_counter()
    outages = 0
    deadline = time.monotonic() + hold_s
    while time.monotonic() < deadline:
        try:
            await store.claim(epoch, [Claim(names[0], batches + 1)])
        except StoreUnavailable:
            outages += 1
    release.set()
    stop_ticker(stop, held_lags, since)
    await tick
    holder.join()
    await store.close()
    return {"batch_s": batch_s, "free_lags": free_lags, "held_lags": held_lags, "outages": outages}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100, help="claims per batch (default 100)")
    ap.add_argument("--batches", type=int, default=100, help="batches (default 100)")
    ap.add_argument("--hold", type=float, default=5.0, help="seconds the write lock is held (default 5)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        r = asyncio.run(measure(str(Path(d) / "state.db"), a.jobs, a.batches, a.hold))
    ms = lambda v: "-" if v is None else f"{v * 1000:.1f} ms"  # noqa: E731
    # Two decimals for the batch: a batch of one claim takes about a tenth of a millisecond.
    fine = lambda v: "-" if v is None else f"{v * 1000:.2f} ms"  # noqa: E731
    print(f"claim batch of {a.jobs}: p50 {fine(percentile(r['batch_s'], 50))}, p99 {fine(percentile(r['batch_s'], 99))}")
    print(f"loop lag while claiming: p99 {ms(percentile(r['free_lags'], 99))}, max {ms(max(r['free_lags'], default=None))}")
    print(f"write lock held {a.hold:.0f} s: loop lag p99 {ms(percentile(r['held_lags'], 99))}, "
          f"max {ms(max(r['held_lags'], default=None))}; claims failed as StoreUnavailable: {r['outages']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
