"""What keeping the ledger costs each store: commands, CPU and memory per fire and per entry.

Claims and finishes fires through a real RedisStore against its own redis-server, and a real
LocalStore on a SQLite file, in batches as the leader sends them, once with
SCHEDULER_HISTORY=0 and once with 20 (and a tenth of the batches' slots skipped, which the
claim writes too). Prints per fire: round trips (EVALSHA calls: one CLAIM and one FINISH per
batch whatever the ledger), Redis commands processed (the ledger's run inside the scripts),
the scripts' server time, redis-server CPU, the client's wall time; and per ledger entry the
memory it holds (Redis MEMORY USAGE of the `runs:`/`runs_at:` keys; SQLite, the bytes of the
`runs` table and its index by dbstat, or the file's growth) and, for comparison, the 0.2.x
history list's. Then the bound at 100,000 jobs: jobs x SCHEDULER_HISTORY x bytes per entry.
Short: `uv run python bench/history_cost.py` (a few seconds)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scheduler.model import SKIP, Claim, Finished, Outcome  # noqa: E402
from scheduler.store.redis.store import RedisStore  # noqa: E402
from scheduler.store.sqlite.store import LocalStore  # noqa: E402
from harness.redis_server import RedisServer  # noqa: E402

EXCERPT = "upstream said: relation does not exist " * 3


def cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batches(fires: int, batch: int, jobs: int, base: int):
    """Claims of each batch: every tenth slot skipped for overlap, the others fired."""
    for start in range(0, fires, batch):
        claims = []
        for i in range(start, min(fires, start + batch)):
            job, slot = f"job{i % jobs}", base + i // jobs
            claims.append(Claim(job, slot, SKIP, reason="overlap", policy="forbid") if i % 10 == 9 else Claim(job, slot))
        yield claims


async def drive(store, fires: int, batch: int, jobs: int) -> int:
    epoch = await store.acquire()
    base = int(time.time()) - fires // jobs - 10
    for claims in batches(fires, batch, jobs, base):
        await store.claim(epoch, claims)
        out = Outcome("failed", 1, 0.05, time.time(), 500, "HTTP 500", EXCERPT)
        await store.finish([Finished(c, epoch, out, 0.01) for c in claims if c.kind != SKIP])
    return epoch


async def redis_one(server: RedisServer, keep: int, fires: int, batch: int, jobs: int) -> dict:
    ns = f"bench{keep}"
    store = RedisStore(server.url, ns, 15.0, history=keep, history_age_s=7 * 86400)
    client = server.client()
    client.config_resetstat()
    cpu0, t0 = cpu_s(server.pid), time.perf_counter()
    await drive(store, fires, batch, jobs)
    wall = time.perf_counter() - t0
    cpu = cpu_s(server.pid) - cpu0
    stats = client.info("commandstats")
    info = client.info("stats")
    await store.close()
    evalsha = stats.get("cmdstat_evalsha", {})
    keys = list(client.scan_iter(f"{{{ns}}}:runs:*")) + list(client.scan_iter(f"{{{ns}}}:runs_at:*"))
    memory = sum(int(client.memory_usage(k, samples=0) or 0) for k in keys)
    entries = sum(client.hlen(k) for k in keys if ":runs:" in k)
    return {
        "store": "redis", "keep": keep, "fires": fires, "round_trips_per_fire": evalsha.get("calls", 0) / fires,
        "commands_per_fire": info["total_commands_processed"] / fires,
        "script_us_per_fire": evalsha.get("usec", 0) / fires,
        "server_cpu_us_per_fire": cpu / fires * 1e6, "client_wall_us_per_fire": wall / fires * 1e6,
        "entries": entries, "bytes_per_entry": memory / entries if entries else 0.0,
    }


def list_bytes_per_entry(server: RedisServer, keep: int) -> float:
    """The 0.2.x layout for comparison: a capped list of the same JSON entries."""
    client = server.client()
    entry = json.dumps({"slot": 1796612400, "trigger": None, "attempts": 1, "outcome": "failed", "http_status": 500,
                        "duration_ms": 50, "lateness_ms": 10.0, "finished_at": 1796612400.123,
                        "fencing_token": 1796612399000, "error": "HTTP 500", "excerpt": EXCERPT})
    client.delete("{cmp}:history:j")
    client.lpush("{cmp}:history:j", *[entry] * keep)
    return int(client.memory_usage("{cmp}:history:j", samples=0)) / keep


async def sqlite_one(path: str, keep: int, fires: int, batch: int, jobs: int) -> dict:
    store = LocalStore(path, history=keep, history_age_s=7 * 86400)
    await store.open()
    t0, c0 = time.perf_counter(), time.process_time()
    await drive(store, fires, batch, jobs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await store.close()
    db = sqlite3.connect(path)
    entries = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    try:
        used = db.execute("SELECT SUM(pgsize - unused) FROM dbstat WHERE name IN ('runs', 'runs_slot', "
                          "'sqlite_autoindex_runs_1')").fetchone()[0] or 0
    except sqlite3.OperationalError:  # built without dbstat: the file's pages in use instead
        used = os.path.getsize(path)
    db.close()
    return {
        "store": "sqlite", "keep": keep, "fires": fires, "round_trips_per_fire": 2 * -(-fires // batch) / fires,
        "commands_per_fire": 0.0, "script_us_per_fire": 0.0, "server_cpu_us_per_fire": cpu / fires * 1e6,
        "client_wall_us_per_fire": wall / fires * 1e6, "entries": entries,
        "bytes_per_entry": used / entries if entries else 0.0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fires", type=int, default=20000)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--at-jobs", type=int, default=100_000, help="the job count of the retention bound")
    a = p.parse_args()
    rows = []
    with RedisServer() as server:
        rows += [asyncio.run(redis_one(server, keep, a.fires, a.batch, a.jobs)) for keep in (0, 20)]
        old = list_bytes_per_entry(server, 20)
    with tempfile.TemporaryDirectory() as tmp:
        rows += [asyncio.run(sqlite_one(os.path.join(tmp, f"s{keep}.db"), keep, a.fires, a.batch, a.jobs))
                 for keep in (0, 20)]
    cols = list(rows[0])
    print("  ".join(f"{c:>24}" for c in cols))
    for r in rows:
        print("  ".join(f"{(f'{v:.2f}' if isinstance(v, float) else v):>24}" for v in r.values()))
    print(f"\n0.2.x history list (Redis), for comparison: {old:.0f} bytes per entry")
    print(f"\nretention bound at {a.at_jobs:,} jobs (jobs x SCHEDULER_HISTORY x bytes per entry):")
    for r in rows:
        if r["keep"]:
            for keep in (20, 100, 1000):
                total = a.at_jobs * keep * r["bytes_per_entry"]
                print(f"  {r['store']:>6}  SCHEDULER_HISTORY={keep:<5} {total / 2**30:8.2f} GiB")


if __name__ == "__main__":
    main()
