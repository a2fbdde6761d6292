"""The benchmarks' private redis-server, and what it tells of the replicas: who holds the
lease, how many wait for it."""

from __future__ import annotations

from bench import lifecycle
from harness import redis_server as harness_redis
from harness.ports import LOOPBACK


class RedisServer(harness_redis.RedisServer):
    """`harness.redis_server.RedisServer` as the benchmarks run it: append-only persistence
    on (appendfsync everysec), as a production deployment would run it (the daemon warns
    at start when persistence is off), protected mode on, stopped when the benchmark ends.
    `conn` is a client with redis-py's default retries and a 10 s socket timeout."""

    def __init__(self) -> None:
        import redis  # the daemon's own dependency

        super().__init__(appendonly=True, appendfsync="everysec", protected_mode=True, start=False)
        lifecycle.on_cleanup(self.close)
        self.start()
        self.conn = redis.Redis(host=LOOPBACK, port=self.port, decode_responses=True, socket_timeout=10)
        lifecycle.on_cleanup(self._stop_first)

    def _stop_first(self) -> None:
        """At cleanup: close the client, then shut the server down gracefully (SIGTERM)."""
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass
        self.stop()


def leader_of(r, namespace: str = "scheduler") -> tuple[str | None, int | None]:
    """(replica id, pid) of the current lease holder; the id is hostname:pid:random."""
    rid = r.get("{" + namespace + "}:leader")
    if not rid:
        return None, None
    try:
        return rid, int(rid.split(":")[-2])
    except (IndexError, ValueError):
        return rid, None


def subscribers(r, namespace: str = "scheduler") -> int:
    """Clients subscribed to the release channel (each replica subscribes once it waits)."""
    ch = "{" + namespace + "}:released"
    return int(dict(r.pubsub_numsub(ch)).get(ch, 0))

