"""(d) of bench/sources_cluster.py: the commands and round trips of `RedisStore.load` at
leadership start, with state for every job, for several numbers of jobs."""

from __future__ import annotations

import asyncio
import time


def state_load(redis_url: str, sizes: list[int]) -> list[tuple]:
    """Commands and time of RedisStore.load at leadership start, with state for every job."""
    from scheduler.model import Claim
    from scheduler.store.redis.store import RedisStore

    import redis as redis_lib
    client = redis_lib.Redis.from_url(redis_url, decode_responses=True)

    def total() -> int:
        return sum(v["calls"] for k, v in client.info("commandstats").items())

    async def one(n: int) -> tuple:
        store = RedisStore(redis_url, f"load{n}", 4.0)
        epoch = await store.acquire()
        names = [f"tenant-{i}-digest" for i in range(n)]
        for i in range(0, n, 5000):
            await store.claim(epoch, [Claim(name, 1_700_000_000) for name in names[i:i + 5000]])
        await store.load([])  # the connection and scripts are warm
        rows = []
        for jobs in ([], names):
            before = total()
            t0 = time.perf_counter()
            state = await store.load(jobs)
            ms = (time.perf_counter() - t0) * 1000
            commands = total() - before - 1  # less the INFO that read `before`
            assert len(state.watermarks) == n
            rows.append((f"state load, {n} jobs, load({'all names' if jobs else '[]'})",
                         f"{commands} commands in 1 pipeline (1 round trip), {ms:.0f} ms"))
        await store.close()
        return rows

    out = []
    for n in sizes:
        out += asyncio.run(one(n))
    client.close()
    return out
