"""What the Redis store asks of its Redis user (the ACL docs/guarantees.md lists), and the sentence
for a call Redis refused for want of one of those permissions.

A refusal is no outage: retrying does not help until an operator grants the permission, so
the caller names it once instead of retrying it under "unreachable" (caller.call).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from redis.exceptions import NoPermissionError

# Every command the daemon and the CLI send, the scripts' inner ones included (Redis checks
# those against the caller's ACL too). redis-py runs a script by EVALSHA, loads it with
# SCRIPT LOAD when the server does not know it, and a pipeline first asks SCRIPT EXISTS.
SCRIPT_RUNNING = ("evalsha", "script|load", "script|exists")
INNER = ("time", "get", "set", "incr", "del", "pexpire", "rename", "type", "hget", "hset", "hsetnx", "hexists",
         "hdel", "hkeys", "hmget", "hgetall", "pttl", "rpush", "lpush", "lrange", "lrem", "ltrim", "sismember", "publish",
         "zadd", "zcard", "zpopmin", "zrangebyscore", "zrem")  # the z*: the ledger's sorted sets
DIRECT = ("ping", "get", "pttl", "hget", "hgetall", "hkeys", "hdel", "del", "smembers", "sadd", "srem", "lrange",
          "lindex", "scan", "publish", "subscribe", "hincrby", "hmget",  # hincrby, hmget: the sources' requests
          "zrevrangebyscore", "zrangebyscore", "zrevrange",  # the ledger's pages, and state gc
          "client|setname", "client|list")  # a standby's crash check (handover.py); optional
# With SCHEDULER_REDIS_SENTINELS only: claims wait for a replica, and the master is asked
# about its replicas.
SENTINEL_ONLY = ("wait", "info")
COMMANDS = tuple(sorted(set(SCRIPT_RUNNING + INNER + DIRECT + SENTINEL_ONLY)))

_SCRIPT_LINE = re.compile(r"script: ([0-9a-f]{40}), on @user_script:(\d+)")
_CALLED = re.compile(r"redis\.p?call\('([A-Za-z]+)'")


def acl_setuser(namespace: str, user: str = "scheduler", password: str = "<password>") -> str:
    """The one ACL SETUSER line that gives `user` what the scheduler needs in `namespace`."""
    commands = " ".join("+" + c for c in COMMANDS)
    return (f"ACL SETUSER {user} on >{password} resetkeys ~{{{namespace}}}:* resetchannels &{{{namespace}}}:* "
            f"-@all {commands}")


class ScriptNames:
    """The commands each line of the store's scripts calls, by the script's SHA1: Redis 7.0
    names only the script and the line of a refused inner command."""

    def __init__(self, scripts: Iterable[str]):
        self._lines = {hashlib.sha1(s.encode()).hexdigest(): s.splitlines() for s in scripts}

    def commands_at(self, sha: str, line: int) -> list[str]:
        lines = self._lines.get(sha) or []
        return [c.upper() for c in _CALLED.findall(lines[line - 1])] if 0 < line <= len(lines) else []


def refusal(exc: Exception, namespace: str, scripts: ScriptNames) -> str | None:
    """The sentence for a call refused by the user's ACL (NOPERM, or a script's inner
    command refused), None for any other error."""
    text = str(exc)
    lowered = text.lower()
    # Redis 7.0 reports a script's refused inner command as a plain error, without NOPERM.
    if not (isinstance(exc, NoPermissionError) or "noperm" in lowered or "user executing the script can't" in lowered):
        return None
    found = _SCRIPT_LINE.search(text)
    if found:
        called = scripts.commands_at(found.group(1), int(found.group(2)))
        text = text[:found.start()].rstrip() + (f" ({' or '.join(called)}, in a script)" if called else " (in a script)")
    if "of the keys" in lowered:
        text += f"; the scheduler's keys match ~{{{namespace}}}:*"
    elif "the channel" in lowered:
        text += f"; the scheduler's channels match &{{{namespace}}}:*"
    return f"Redis refused a command to this user: {text}; grant the ACL of docs/guarantees.md, \"Redis ACL\""
