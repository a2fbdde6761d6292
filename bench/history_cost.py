"""What keeping history costs the Redis store: commands, server CPU and memory per fire.

Claims and finishes fires through a real RedisStore against its own redis-server, in
batches as the leader sends them, once with SCHEDULER_HISTORY=0 and once with 20, and
prints per fire: Redis commands processed (round trips stay one EVALSHA per FINISH batch;
the history's LPUSH/LTRIM run inside it), the FINISH script's server time, redis-server CPU,
and the memory the history lists hold. Short: `uv run python bench/history_cost.py`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scheduler.model import Claim, Finished, Outcome  # noqa: E402
from scheduler.store.redis.store import RedisStore  # noqa: E402
from harness.redis_server import RedisServer  # noqa: E402


def cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one(server: RedisServer, keep: int, fires: int, batch: int, jobs: int) -> dict:
    ns = f"bench{keep}"
    store = RedisStore(server.url, ns, 15.0, history=keep)
    client = server.client()
    epoch = await store.acquire()
    base = int(time.time()) - fires - 10
    client.config_resetstat()
    mem0 = int(client.info("memory")["used_memory"])
    cpu0, t0 = cpu_s(server.pid), time.perf_counter()
    for start in range(0, fires, batch):
        claims = [Claim(f"job{i % jobs}", base + i) for i in range(start, min(fires, start + batch))]
        await store.claim(epoch, claims)
        out = Outcome("failed", 1, 0.05, time.time(), 500, "HTTP 500", "upstream said: relation does not exist " * 3)
        await store.finish([Finished(c, epoch, out, 0.01) for c in claims])
    wall = time.perf_counter() - t0
    cpu = cpu_s(server.pid) - cpu0
    stats = client.info("commandstats")
    info = client.info("stats")
    mem = int(client.info("memory")["used_memory"]) - mem0
    await store.close()
    evalsha = stats.get("cmdstat_evalsha", {})
    return {
        "keep": keep, "fires": fires, "commands_per_fire": info["total_commands_processed"] / fires,
        "evalsha_calls": evalsha.get("calls", 0), "evalsha_usec_per_call": evalsha.get("usec_per_call", 0.0),
        "server_cpu_us_per_fire": cpu / fires * 1e6, "client_wall_us_per_fire": wall / fires * 1e6,
        "memory_bytes": mem, "history_keys": len(list(client.scan_iter(f"{{{ns}}}:history:*"))),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fires", type=int, default=20000)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--jobs", type=int, default=200)
    a = p.parse_args()
    with RedisServer() as server:
        rows = [asyncio.run(one(server, keep, a.fires, a.batch, a.jobs)) for keep in (0, 20)]
    cols = list(rows[0])
    print("  ".join(f"{c:>24}" for c in cols))
    for r in rows:
        print("  ".join(f"{(f'{v:.2f}' if isinstance(v, float) else v):>24}" for v in r.values()))


if __name__ == "__main__":
    main()
