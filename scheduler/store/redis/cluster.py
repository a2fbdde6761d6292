"""Redis Cluster: telling a cluster node from a plain server, and the few calls that must
name the master of the namespace's hash slot.

Every key is under `{namespace}:`, one hash slot, so every script and every pipeline of the
store goes to one master, and redis-py's cluster client follows that slot through failovers
and MOVED redirects. What it cannot route by a key is named here: WAIT (on the connection
that carried the claim), the master's replication state, and the pub/sub subscription.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, NoPermissionError, RedisError, ResponseError

from .connect import SOCKET_TIMEOUT_S

log = logging.getLogger("scheduler.redis")


def cluster_reply(exc: BaseException) -> bool:
    """An error reply that only a Redis Cluster node gives: a redirect (MOVED, ASK), a
    cluster that is down, keys of several slots, SELECT refused in cluster mode."""
    if isinstance(exc, AskError):  # MovedError is one too
        return True
    text = str(exc)
    return isinstance(exc, ResponseError) and (text.startswith(("CLUSTERDOWN", "CROSSSLOT", "TRYAGAIN"))
                                               or "cluster mode" in text)


async def probe(url: str) -> bool | None:
    """Whether the server at `url` is a Redis Cluster node; None when it cannot tell (not
    reachable). One connection of its own, closed at once."""
    client = aioredis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
                                     decode_responses=True, retry=Retry(NoBackoff(), 0))
    try:
        try:
            info = await client.info("cluster")
            return str(info.get("cluster_enabled")) == "1"
        except NoPermissionError:
            # INFO is in @dangerous, which a restricted ACL user may lack; CLUSTER INFO is not.
            await client.execute_command("CLUSTER", "INFO")
            return True
    except ResponseError as exc:
        # The server answered. A cluster node says so even when refusing (SELECT of a database
        # other than 0); a plain server's "cluster support disabled", a proxy without INFO, or
        # both questions refused by an ACL: taken for a plain server. A cluster node that is
        # not the slot's master then answers MOVED, which the store names in one log line.
        log.debug("Redis did not say it is a cluster node", extra={"error": str(exc)})
        return cluster_reply(exc)
    except (RedisError, OSError, TimeoutError):
        return None
    finally:
        await client.aclose()


async def queue_script(pipe: Any, script: Any, keys: Sequence[str], args: Sequence[Any]) -> None:
    """Add a registered script to a pipeline. redis-py loads a plain pipeline's scripts
    before it runs; a cluster pipeline does not, and a master promoted by a failover has
    none loaded (the script cache is not replicated), so there the script's text goes with
    it: a few kilobytes, and a reply that never depends on what the master has cached."""
    if isinstance(pipe, ClusterPipeline):
        pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
    else:
        await script(keys=keys, args=args, client=pipe)


async def owner_target(client: Any, key: str) -> dict[str, Any]:
    """Keyword arguments that send a keyless command (WAIT, INFO) to the master of `key`'s
    slot; none for a plain client."""
    if not isinstance(client, RedisCluster):
        return {}
    await client.initialize()  # the slot map, on first use or after a failure reset it
    return {"target_nodes": client.get_node_from_key(key)}


async def where(client: Any, key: str) -> dict[str, Any]:
    """`key`'s hash slot and the master that holds it now, for a log line."""
    node = (await owner_target(client, key))["target_nodes"]
    return {"slot": key_slot(key.encode()), "master": node.name}


async def follow_redirect(client: Any, exc: BaseException) -> None:
    """A cluster pipeline run without redirections raised MOVED: point the slot at its new
    master, so the next call goes there instead of failing the same way."""
    if isinstance(client, RedisCluster) and isinstance(exc, MovedError):
        await client.nodes_manager.move_slot(exc)


async def pubsub(client: Any) -> Any:
    """A pub/sub object. On a cluster it subscribes on the master of the first channel's slot
    (the namespace's): PUBLISH reaches every node of a cluster, so any node would hear the
    scripts' messages, and that one is followed through failovers like the keys."""
    if isinstance(client, RedisCluster):
        await client.initialize()  # ClusterPubSub picks its node from the slot map
    return client.pubsub()
