"""What a claim batch costs when it waits for a replica (WAIT 1, as under Sentinel).

A real master and a real replica on loopback; the same RedisStore claims batches of slots
with `wait_replicas` 0 and 1, and the script prints the latency of a batch for each.

    uv run python bench/claim_wait.py [--batches 300] [--sizes 1,100,500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.stats import percentile  # noqa: E402
from scheduler.model import Claim  # noqa: E402
from scheduler.store.redis.store import RedisStore  # noqa: E402
from harness.redis_server import RedisServer  # noqa: E402
from harness.wait import wait_until  # noqa: E402


async def measure(url: str, wait: int, size: int, batches: int) -> list[float]:
    store = RedisStore(url, f"wait{wait}-{size}", 30.0, replica_id="bench")
    epoch = await store.acquire()
    store.wait_replicas = wait
    out = []
    slot = int(time.time()) - batches - 10
    for i in range(batches):
        claims = [Claim(f"job-{j}", slot + i) for j in range(size)]
        started = time.perf_counter()
        await store.claim(epoch, claims)
        out.append((time.perf_counter() - started) * 1000)
    await store.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--sizes", default="1,100,500")
    args = parser.parse_args()
    master = RedisServer()
    replica = RedisServer(extra_args=["--replicaof", master.host, str(master.port)])
    try:
        wait_until(lambda: replica.client().info("replication").get("master_link_status") == "up", timeout=10)
        print(f"{'claims/batch':>12} {'WAIT':>5} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
        for size in [int(s) for s in args.sizes.split(",")]:
            for wait in (0, 1):
                ms = asyncio.run(measure(master.url, wait, size, args.batches))
                print(f"{size:>12} {wait:>5} {statistics.median(ms):>8.3f} {percentile(ms, 99):>8.3f} "
                      f"{statistics.fmean(ms):>8.3f}")
    finally:
        replica.close()
        master.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
