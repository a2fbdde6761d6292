"""A real Redis Cluster on the loopback address: three masters, each with one replica, made
with ``redis-cli --cluster create``, for tests/ and bench/.

Each node is a `RedisServer` (registered, dying with the process that started it) with
``--cluster-enabled yes``; the cluster's node table lives in the node's own directory.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from harness.redis_server import RedisServer
from harness.wait import wait_until

NODE_TIMEOUT_MS = 1000  # a dead master is failed over after about this long, plus an election


class RedisCluster:
    """``masters`` masters with ``replicas`` replicas each. ``nodes`` are the RedisServers,
    masters first; which node holds which slots is the cluster's to say (`owner`)."""

    def __init__(self, masters: int = 3, replicas: int = 1, *, ready_timeout: float = 30.0) -> None:
        self.nodes: list[RedisServer] = []
        self._clients: dict[int, Any] = {}
        try:
            for _ in range(masters * (1 + replicas)):
                self.nodes.append(RedisServer(extra_args=[
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                    # A replica of a dead master takes over at once, however long its link was down.
                    "--cluster-replica-validity-factor", "0",
                ]))
            cli = shutil.which("redis-cli") or "redis-cli"
            subprocess.run(
                [cli, "--cluster", "create", *(f"{n.host}:{n.port}" for n in self.nodes),
                 "--cluster-replicas", str(replicas), "--cluster-yes"],
                check=True, capture_output=True, text=True, timeout=60,
            )
            wait_until(self.ready, timeout=ready_timeout, interval=0.1, message="every node sees cluster_state:ok")
        except BaseException:
            self.close()
            raise

    def ready(self) -> bool:
        """Every running node says the cluster is ok and every master has its replicas in sync."""
        for node in self.nodes:
            if not node.running:
                continue
            c = self.client(node)
            if "cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
                return False
            info = c.info("replication")
            if info["role"] == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    def client(self, node: RedisServer) -> Any:
        """One sync client per node (1 s timeouts), reused: polling makes no new connections."""
        if node.port not in self._clients:
            self._clients[node.port] = node.client(socket_timeout=1.0, socket_connect_timeout=1.0)
        return self._clients[node.port]

    def replica_client(self, node: RedisServer) -> Any:
        """A client that may read from a replica (READONLY on its one connection), to see
        what a failover would keep."""
        c = node.client(socket_timeout=1.0, socket_connect_timeout=1.0, single_connection_client=True)
        c.execute_command("READONLY")
        return c

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def slot_of(self, key: str) -> int:
        return int(self.client(self.any_node()).execute_command("CLUSTER", "KEYSLOT", key))

    def any_node(self) -> RedisServer:
        return next(n for n in self.nodes if n.running)

    def owner(self, key: str) -> RedisServer:
        """The master that holds `key`'s slot, as a running node sees it now."""
        slot = self.slot_of(key)
        for start, end, master, *_ in self.client(self.any_node()).execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                return self.node_at(int(master[1]))
        raise AssertionError(f"no master holds slot {slot}")

    def not_owner(self, key: str) -> RedisServer:
        """A running master that does not hold `key`'s slot (it answers MOVED for it)."""
        owner = self.owner(key)
        return next(n for n in self.nodes if n.running and n is not owner and self.role(n) == "master")

    def replica_of(self, master: RedisServer) -> RedisServer:
        for n in self.nodes:
            if n.running and n is not master:
                info = self.client(n).info("replication")
                if info["role"] == "slave" and int(info["master_port"]) == master.port:
                    return n
        raise AssertionError(f"no replica of the master on port {master.port}")

    def node_at(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def role(self, node: RedisServer) -> str:
        return str(self.client(node).info("replication")["role"])

    def wait_promoted(self, replica: RedisServer, timeout: float = 30.0) -> Any:
        """Until `replica` is a master and every running node says the cluster is ok."""
        return wait_until(lambda: self.role(replica) == "master" and self.ready(), timeout=timeout, interval=0.1,
                          message=f"the replica on port {replica.port} promoted and the cluster ok")

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> RedisCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
