"""What the audit log costs each store: the time of one append (what every audited POST and
steering command adds), the time of a page read, and the store's bytes per entry once the
log is full (AUDIT_KEEP entries, the oldest dropped from then on).

Appends typical entries (a pause by a named token with a 40-character reason) through a real
RedisStore against its own redis-server and a real LocalStore on a SQLite file in a
temporary directory. Short: `uv run python bench/audit_cost.py`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.output import default_json_path, print_table, write_json  # noqa: E402
from harness.redis_server import RedisServer  # noqa: E402
from harness.stats import stats_ms  # noqa: E402
from scheduler.control.audit import entry  # noqa: E402
from scheduler.store.audit_records import AUDIT_KEEP  # noqa: E402
from scheduler.store.redis.store import RedisStore  # noqa: E402
from scheduler.store.sqlite.store import LocalStore  # noqa: E402


def sample(n: int) -> dict:
    return entry("deploy-bot", "POST", f"/api/v1/jobs/nightly-sync-{n % 100}/pause", f"nightly-sync-{n % 100}", 200,
                 "deploy 4.2: hold the sync during migration")


async def measure(store, entries: int, size_of) -> dict:
    appends, reads = [], []
    for n in range(entries):
        t0 = time.perf_counter()
        await store.audit_append(sample(n))
        appends.append(time.perf_counter() - t0)
    for _ in range(200):
        t0 = time.perf_counter()
        page = await store.audit(50)
        await store.audit(50, before=page[-1]["id"])
        reads.append((time.perf_counter() - t0) / 2)
    kept = len(await store.audit(AUDIT_KEEP + 10))
    await store.close()  # SQLite: the last connection's close folds the WAL into the file
    size = size_of()
    return {"appends": entries, "kept": kept, "append_ms": stats_ms(appends), "page_read_ms": stats_ms(reads),
            "bytes": size, "bytes_per_entry": size / kept if kept else None}


async def run(entries: int) -> dict:
    server = RedisServer()
    try:
        client = server.client()
        redis = RedisStore(server.url, "benchaudit", 15.0)
        out = {"redis": await measure(redis, entries, lambda: client.memory_usage("{benchaudit}:audit", samples=0) or 0)}
    finally:
        server.close()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.db")
        local = LocalStore(path)
        await local.open()
        empty = os.path.getsize(path)
        out["sqlite"] = await measure(local, entries, lambda: os.path.getsize(path) - empty)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--entries", type=int, default=AUDIT_KEEP + 2000,
                   help=f"entries to append (default {AUDIT_KEEP + 2000}: the log fills and drops its oldest)")
    p.add_argument("--json", default=str(default_json_path("audit_cost")), help="where to write the figures")
    args = p.parse_args()
    found = asyncio.run(run(args.entries))
    rows = []
    for store, f in found.items():
        rows += [
            (f"{store}: append p50 / p99", f"{f['append_ms']['p50']:.3f} / {f['append_ms']['p99']:.3f} ms"),
            (f"{store}: page of 50 p50 / p99", f"{f['page_read_ms']['p50']:.3f} / {f['page_read_ms']['p99']:.3f} ms"),
            (f"{store}: entries kept of {f['appends']}", f["kept"]),
            (f"{store}: bytes at the cap, per entry", f"{f['bytes']} ({f['bytes_per_entry']:.0f})"),
        ]
    print_table("audit log cost", rows)
    print(f"figures written to {write_json(args.json, found)}")


if __name__ == "__main__":
    main()
