"""Redis commands issued by clients, counted from MONITOR.

INFO commandstats and total_commands_processed count the commands a Lua script runs as
well as the EVALSHA that ran it (checked on Redis 7.0: one EVAL making 3 calls adds 4 to
total_commands_processed), and Redis 7.0 has no per-client command counter. MONITOR
tells them apart: a client's command is printed as `[db ip:port]`, a script's inner call
as `[db lua]`; the ip:port also tells which client sent it.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import lifecycle, measured_code
from harness.ports import LOOPBACK

_MONITOR_RE = re.compile(r'^(\d+\.\d+) \[\d+ ([^\]]+)\] "([^"]*)"(?: "([^"]*)")?')


def monitor_sample(redis_port: int, seconds: float, out_path: Path) -> tuple[float, float, Path]:
    """Record MONITOR output for `seconds` with redis-cli (a C client, so the sampling costs
    the machine little); returns (start, end, path)."""
    with open(out_path, "w") as out:
        proc = lifecycle.spawn(["redis-cli", "-h", LOOPBACK, "-p", str(redis_port), "monitor"], stdout=out)
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        lifecycle.stop_process(proc, signal.SIGTERM, timeout=5)
    return t0, t1, out_path


@dataclass
class MonitorCount:
    client_commands: int = 0
    script_inner_calls: int = 0
    by_client: dict[str, int] = field(default_factory=dict)
    by_command: dict[str, int] = field(default_factory=dict)  # client commands only


def parse_monitor(path: Path, t0: float, t1: float, only_clients: set[str] | None = None,
                  names: dict[str, str] | None = None) -> MonitorCount:
    """Count client commands (not `lua`) between t0 and t1 by the Redis timestamp; with
    `only_clients`, only those ip:port sources. EVALSHA is named by its script."""
    names = names or {}
    count = MonitorCount()
    with open(path, errors="replace") as f:
        for line in f:
            m = _MONITOR_RE.match(line)
            if not m:
                continue
            ts = float(m.group(1))
            if ts < t0 or ts > t1:
                continue
            src, cmd = m.group(2), m.group(3).lower()
            if src == "lua":
                count.script_inner_calls += 1
                continue
            if only_clients is not None and src not in only_clients:
                continue
            count.client_commands += 1
            count.by_client[src] = count.by_client.get(src, 0) + 1
            if cmd in ("evalsha", "eval") and m.group(4):
                cmd = f"{cmd} {names.get(m.group(4), m.group(4)[:8])}"
            count.by_command[cmd] = count.by_command.get(cmd, 0) + 1
    return count


def script_names() -> dict[str, str]:
    """sha1 -> name of the daemon's Lua scripts, read from the strings of the Redis store's
    modules (store/redis/ since the folders; redis_store.py in an older --src)."""
    import importlib

    out: dict[str, str] = {}
    sys.path.insert(0, str(measured_code.SRC))
    try:
        for name in ("scheduler.store.redis.scripts", "scheduler.store.redis.reads", "scheduler.store.redis.gc",
                     "scheduler.store.redis.quarantine",
                     "scheduler.redis_store", "scheduler.redis_scripts"):
            try:
                module = importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a layout this --src does not have
                continue
            for key, value in vars(module).items():
                if isinstance(value, str) and "redis.call" in value:
                    out[hashlib.sha1(value.encode()).hexdigest()] = key.lower()
    finally:
        if sys.path and sys.path[0] == str(measured_code.SRC):
            sys.path.pop(0)
    return out


def tcp_peers_of(pid: int, remote_port: int) -> set[str]:
    """`127.0.0.1:<local port>` of each TCP connection process `pid` holds to `remote_port`
    on loopback: the names MONITOR gives that process's commands."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    out = set()
    for table in ("/proc/net/tcp",):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if inode in inodes and int(remote.split(":")[1], 16) == remote_port:
                out.add(f"{LOOPBACK}:{int(local.split(':')[1], 16)}")
    return out
