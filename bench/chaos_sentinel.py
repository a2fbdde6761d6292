"""A Redis Sentinel cell beside the chaos harness's main cluster: a master, a replica, three
sentinels (all the same `redis-server` binary on loopback ports) and two daemons that find
the master through the sentinels and fire one job every second at a target of their own.

`SENTINEL FAILOVER` is the planned switch a managed Redis makes during maintenance: the
replica is promoted while the old master still takes writes until the sentinels tell it to
follow. A claim written in that window is lost with the old master's data and the slot is
sent again as a first attempt; the target of this cell counts such repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import redis.asyncio as aioredis

from bench.chaos_net import HOST, Target
from bench.chaos_proc import Replica
from harness.redis_server import RedisServer
from harness.sentinel import Sentinel

MASTER = "chaosmaster"
JOB = {"SCHEDULE": "every 1s", "CATCHUP": "all", "CONCURRENCY": "allow", "TIMEOUT": "2s", "RETRIES": "2"}


class SentinelCell:
    def __init__(self, workdir: Path, env: dict[str, str], seed: int, first_index: int):
        self.dir = workdir / "sentinel"
        self.dir.mkdir(parents=True, exist_ok=True)
        # each server in a directory of its own under sentinel/ (a, b, sentinel-0..2), its log there
        self.servers = {"a": RedisServer(dir=self.dir / "a", appendonly=True, appendfsync="everysec", start=False)}
        self.servers["b"] = RedisServer(dir=self.dir / "b", appendonly=True, appendfsync="everysec", start=False,
                                        extra_args=["--replicaof", HOST, str(self.servers["a"].port)])
        self.ports = {name: server.port for name, server in self.servers.items()}
        self.sentinels = [Sentinel(self.ports["a"], master_name=MASTER, dir=self.dir / f"sentinel-{i}", start=False)
                          for i in range(3)]
        self.sentinel_ports = [s.port for s in self.sentinels]
        self.target = Target(seed + 1)
        self.base_env = env
        self.first_index = first_index
        self.replicas: list[Replica] = []
        self.workdir = workdir

    def _client(self, port: int) -> aioredis.Redis:
        return aioredis.Redis(host=HOST, port=port, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True)

    async def _cmd(self, port: int, *args):
        client = self._client(port)
        try:
            return await client.execute_command(*args)
        finally:
            await client.aclose()

    async def _until(self, pred, timeout_s: float, what: str):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                got = await pred()
                if got:
                    return got
            await asyncio.sleep(0.1)
        raise RuntimeError(f"sentinel cell: {what} within {timeout_s:.0f} s; see {self.dir}")

    async def start(self) -> None:
        for server in self.servers.values():
            server.launch()
        await self._until(lambda self=self: self._linked(), 15, "the replica in sync")
        for sentinel in self.sentinels:
            sentinel.launch()
        await self._until(self._sentinels_ready, 20, "sentinels that know the replica and each other")
        await self.target.start()
        env = dict(self.base_env)
        for key in [k for k in env if k.startswith("SCHEDULER_JOB_") or k == "SCHEDULER_REDIS_URL"]:
            del env[key]
        env.update({
            "SCHEDULER_REDIS_SENTINELS": ",".join(f"{HOST}:{p}" for p in self.sentinel_ports),
            "SCHEDULER_REDIS_SENTINEL_MASTER": MASTER, "SCHEDULER_API_URL": self.target.url,
            "SCHEDULER_NAMESPACE": "chaos-sentinel",
            **{f"SCHEDULER_JOB_STICK_{k}": v for k, v in JOB.items()}, "SCHEDULER_JOB_STICK_URL": "/jobs/stick",
        })
        self.replicas = [Replica(self.first_index + i, env, self.workdir) for i in range(2)]
        for r in self.replicas:
            r.start()

    async def _linked(self) -> bool:
        info = await self._client(self.ports["b"]).info("replication")
        return info.get("master_link_status") == "up"

    async def _sentinels_ready(self) -> bool:
        for port in self.sentinel_ports:
            flat = await self._cmd(port, "SENTINEL", "master", MASTER)
            info = flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2]))
            if int(info.get("num-slaves", 0)) < 1 or int(info.get("num-other-sentinels", 0)) < 2:
                return False
        return True

    async def master_port(self) -> int | None:
        with contextlib.suppress(Exception):
            addr = await self._cmd(self.sentinel_ports[0], "SENTINEL", "get-master-addr-by-name", MASTER)
            return int(addr[1]) if addr else None
        return None

    async def failover(self) -> dict:
        """SENTINEL FAILOVER, then wait for the promotion and for the old master to follow."""
        old = await self.master_port()
        t0 = time.time()
        await self._cmd(self.sentinel_ports[0], "SENTINEL", "FAILOVER", MASTER)
        new = await self._until(lambda: self._moved(old), 20, "the promotion")
        promoted = time.time() - t0

        async def demoted() -> bool:
            return (await self._client(old).info("replication")).get("role") == "slave"

        await self._until(demoted, 30, "the old master to follow")
        return {"t": t0, "from_port": old, "to_port": new, "promoted_s": round(promoted, 2),
                "demoted_s": round(time.time() - t0, 2)}

    async def _moved(self, old: int | None) -> int | None:
        port = await self.master_port()
        return port if port is not None and port != old else None

    async def close(self) -> None:
        await self.target.close()
        for server in [*self.servers.values(), *self.sentinels]:
            with contextlib.suppress(OSError):
                server.kill()
