"""Redis Sentinel: ``redis-server <dir>/sentinel.conf --sentinel`` watching one master."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from harness.redis_server import RedisServer, no_retry


class Sentinel(RedisServer):
    """A sentinel on 127.0.0.1 monitoring the master at ``master_port``, in a directory of
    its own (temporary unless ``dir`` is given), started like a `RedisServer` (a fresh
    port if the first one is taken; ``start=False`` and ``launch()`` to wait elsewhere).
    The configuration is written anew at each start: sentinel rewrites it as it learns
    replicas and other sentinels, so it must be writable."""

    def __init__(
        self,
        master_port: int,
        *,
        master_name: str = "mymaster",
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        parallel_syncs: int | None = None,
        dir: str | Path | None = None,  # noqa: A002
        ready_timeout: float = 10.0,
        start: bool = True,
    ) -> None:
        self.master_port = master_port
        self.master_name = master_name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.parallel_syncs = parallel_syncs
        super().__init__(dir=dir, ready_timeout=ready_timeout, start=False)
        self.conf_path = self.dir / "sentinel.conf"
        if start:
            self.start()

    def argv(self) -> list[str]:
        name = self.master_name
        lines = [
            f"port {self.port}", f"bind {self.host}", "protected-mode no", "daemonize no",
            f'dir "{self.dir}"', 'logfile ""',
            f"sentinel monitor {name} {self.host} {self.master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
        ]
        if self.parallel_syncs is not None:
            lines.append(f"sentinel parallel-syncs {name} {self.parallel_syncs}")
        self.conf_path.write_text("\n".join(lines) + "\n")
        return [self.binary, str(self.conf_path), "--sentinel"]

    def _command(self, *args: str) -> Any:
        with redis.Redis(host=self.host, port=self.port, decode_responses=True, socket_timeout=1.0,
                         socket_connect_timeout=1.0, retry=no_retry()) as c:
            return c.execute_command(*args)

    def master_addr(self) -> tuple[str, int] | None:
        """(host, port) of the master as this sentinel sees it."""
        addr = self._command("SENTINEL", "get-master-addr-by-name", self.master_name)
        return (addr[0], int(addr[1])) if addr else None

    def master_info(self) -> dict[str, Any]:
        """``SENTINEL master <name>`` as a dict (RESP2's flat list paired up)."""
        flat = self._command("SENTINEL", "master", self.master_name)
        if isinstance(flat, dict):
            return {str(k): v for k, v in flat.items()}
        return dict(zip(flat[::2], flat[1::2]))

    def __repr__(self) -> str:
        return f"<Sentinel {self.host}:{self.port} of {self.master_name} pid={self.pid} running={self.running}>"
