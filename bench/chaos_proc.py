"""The processes of the chaos harness: redis-server, the replicas, and what kills them.

Every child is started in its own session, registered, and killed when the harness
exits, even by SIGKILL (PR_SET_PDEATHSIG on Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bench.chaos_net import HOST
from harness.daemon import Daemon
from harness.redis_server import RedisServer

LIBFAKETIME_PATHS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
    "/usr/local/lib/faketime/libfaketimeMT.so.1",
)


async def _wait_exit(proc: subprocess.Popen, timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return proc.poll()


def find_libfaketime() -> str | None:
    return next((p for p in LIBFAKETIME_PATHS if os.path.exists(p)), None)


class RedisProcess:
    """`harness.redis_server.RedisServer` in `<workdir>/redis` on one port for the whole
    run, so it can be killed and started again; started and awaited without blocking
    the event loop."""

    def __init__(self, workdir: Path):
        self.server = RedisServer(dir=workdir / "redis", start=False)
        self.dir = self.server.dir
        self.port = self.server.port

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.server.proc

    @property
    def aof(self) -> bool:
        return self.server.appendonly

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self, aof: bool) -> None:
        self.server.appendonly = aof
        proc = self.server.launch()
        client = self.client()
        try:
            for _ in range(500):  # 10 s
                if proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {proc.returncode}; see {self.server.log_path}")
                with contextlib.suppress(Exception):
                    if await client.ping():
                        return
                await asyncio.sleep(0.02)
            raise RuntimeError("redis-server did not answer PING within 10 s")
        finally:
            await client.aclose()

    def kill(self) -> None:
        self.server.kill()

    def wipe(self) -> None:
        """Forget everything on disk, as a Redis without persistence does on restart."""
        self.server.wipe()

    async def enable_aof(self) -> bool:
        """Turn AOF on at run time and wait until the first rewrite has made it durable."""
        client = self.client()
        try:
            await client.config_set("appendonly", "yes")
            for _ in range(300):  # 15 s
                info = await client.info("persistence")
                if info.get("aof_enabled") == 1 and not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
                    self.server.appendonly = True
                    return True
                await asyncio.sleep(0.05)
            return False
        finally:
            await client.aclose()

    def client(self) -> aioredis.Redis:
        """A direct connection (never through a proxy) with short timeouts and no retries."""
        return aioredis.Redis(
            host=HOST, port=self.port, socket_timeout=1.0, socket_connect_timeout=1.0,
            decode_responses=True, retry=Retry(NoBackoff(), 0),
        )


class Replica(Daemon):
    """One `python -m scheduler run`; its log file collects every run of this replica."""

    def __init__(self, index: int, env: dict[str, str], workdir: Path, faketime_lib: str | None = None):
        cwd = workdir / f"replica-{index}"
        cwd.mkdir(parents=True, exist_ok=True)  # no stray ./.env is ever read
        super().__init__(env, exact_env=True, cwd=cwd, log_path=workdir / f"replica-{index}.log", start=False)
        self.index = index
        self.clock_file: Path | None = None
        if faketime_lib:
            # The wall clock is shifted by the offset in this file, re-read on every call;
            # the monotonic clock (the lease's) is left alone, as a real clock step does.
            self.clock_file = workdir / f"replica-{index}.faketime"
            self.clock_file.write_text("+0\n")
            self.env.update({
                "LD_PRELOAD": faketime_lib, "FAKETIME_TIMESTAMP_FILE": str(self.clock_file),
                "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            })
        self.run_env: dict[str, str] = {}  # what this run adds to the environment
        self.expect_down = False
        self.stopped = False
        self.pids: list[int] = []

    def start(self, env: Mapping[str, str] | None = None, args: Sequence[str] = ()) -> Replica:
        """Start this replica (if not running); `env` adds to its environment for this run
        only (a faked clock), `args` to `scheduler run` (`--dry-run`)."""
        if self.running:
            return self
        self.run_env = dict(env or {})
        proc = super().start(env, args).proc
        assert proc is not None
        self.pids.append(proc.pid)
        self.expect_down = False
        self.stopped = False
        self.mark("start", pid=proc.pid, args=list(args))
        return self

    async def shut_down(self, grace_s: float) -> int | None:
        """SIGTERM, wait for the exit (SIGKILL after grace_s + 10 s)."""
        self.terminate()
        rc = await self.wait_exit(grace_s + 10)
        if rc is None:
            self.kill()
        return rc

    def kill(self) -> int | None:
        if not self.running:
            return None
        self.expect_down = True
        rc = super().kill()
        self.stopped = False
        self.mark("kill9", pid=self.pid)
        return rc

    def terminate(self) -> None:
        if self.running:
            self.expect_down = True
            super().terminate()
            self.stopped = False
            self.mark("sigterm", pid=self.pid)

    def pause(self) -> None:
        if self.running:
            super().pause()
            self.stopped = True
            self.mark("sigstop", pid=self.pid)

    def resume(self) -> None:
        if self.running and self.stopped:
            super().resume()
            self.stopped = False
            self.mark("sigcont", pid=self.pid)

    async def wait_exit(self, timeout_s: float) -> int | None:
        return None if self.proc is None else await _wait_exit(self.proc, timeout_s)

    async def wait_started(self, timeout_s: float = 15.0) -> bool:
        """Until this run has logged its `starting` line."""
        deadline = time.monotonic() + timeout_s
        needle = f'"replica": "{socket.gethostname()}:{self.pid}:'
        while time.monotonic() < deadline and self.running:
            with contextlib.suppress(OSError):
                if needle in self.log_path.read_text(errors="replace"):
                    return True
            await asyncio.sleep(0.05)
        return False

    def replica_id(self) -> str | None:
        """The lease value of this run (`<host>:<pid>:<random>`), from its `starting` line."""
        needle = f'"replica": "{socket.gethostname()}:{self.pid}:'
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                at = line.find(needle)
                if at >= 0:
                    return line[at + len('"replica": "'):].split('"', 1)[0]
        return None

    def set_clock_offset(self, seconds: int) -> None:
        assert self.clock_file is not None
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(f"{seconds:+d}\n")
        os.replace(tmp, self.clock_file)  # atomic: libfaketime never reads a half-written file
        self.mark("clock", offset_s=seconds)

    def mark(self, what: str, **fields) -> None:
        """A harness line in the replica's log (appends are atomic), for the analysis and
        for whoever reads the log: what was done to the process, and when."""
        line = "#chaos " + json.dumps({"t": time.time(), "what": what, **fields}) + "\n"
        with open(self.log_path, "a") as f:
            f.write(line)


