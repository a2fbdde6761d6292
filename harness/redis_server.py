"""A real ``redis-server`` on the loopback address, for tests/ and bench/.

Started through `harness.procs`, so it is registered, dies with the process that
started it and is killed at exit at the latest.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness.ports import LOOPBACK, free_port
from harness.procs import Child, spawn, stop


def no_retry() -> Retry:
    """A redis-py retry policy that makes a failing command raise at once."""
    return Retry(NoBackoff(), 0)


class RedisServer(Child):
    """``redis-server`` on 127.0.0.1 in a directory of its own.

    The directory is a new temporary one (removed by ``close()``) unless ``dir`` is
    given (then it is created if need be and kept).  Persistence is off by default
    (``--save "" --appendonly no``); ``appendonly=True`` turns the AOF on, written with
    ``appendfsync`` (``always`` by default: data acknowledged before a ``kill()``
    survives a ``restart()``).  The log (stdout and stderr) goes to ``<dir>/redis.log``.
    """

    host = LOOPBACK

    def __init__(
        self,
        *,
        port: int | None = None,
        dir: str | Path | None = None,  # noqa: A002
        appendonly: bool = False,
        appendfsync: str = "always",
        protected_mode: bool = False,
        password: str | None = None,
        extra_args: Iterable[str] = (),
        binary: str | None = None,
        ready_timeout: float = 10.0,
        start: bool = True,
    ) -> None:
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.protected_mode = protected_mode
        self.password = password
        self.extra_args = list(extra_args)
        self.binary = binary or shutil.which("redis-server") or "redis-server"
        self.ready_timeout = ready_timeout
        self._own_dir = dir is None
        self.dir = Path(tempfile.mkdtemp(prefix="redis-test-")) if dir is None else Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "redis.log"
        self.proc: subprocess.Popen | None = None
        self._clients: list[redis.Redis] = []
        self._closed = False
        if start:
            self.start()

    # -- info ---------------------------------------------------------------

    @property
    def url(self) -> str:
        auth = ""
        if self.password is not None:
            auth = ":" + urllib.parse.quote(self.password, safe="") + "@"
        return f"redis://{auth}{self.host}:{self.port}/0"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self, **kwargs: Any) -> redis.Redis:
        """A sync ``redis.Redis`` (decode_responses=True); kwargs override.

        Unlike redis-py's default (retries with backoff, i.e. seconds before an error
        surfaces), a failing command raises at once: poll instead.  The client still
        reconnects on the next command, e.g. after ``restart()``.  Closed by ``close()``."""
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "password": self.password,
            "decode_responses": True,
            "retry": no_retry(),
        }
        options.update(kwargs)
        c = redis.Redis(**options)
        self._clients.append(c)
        return c

    def commandstats(self) -> dict[str, int]:
        """Calls per command name, as INFO commandstats reports them (scripts' inner calls included)."""
        probe = self.client(socket_timeout=10)
        try:
            info = probe.info("commandstats")
        finally:
            probe.close()
            self._clients.remove(probe)
        return {k[len("cmdstat_"):]: int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_")}

    # -- lifecycle ----------------------------------------------------------

    def argv(self) -> list[str]:
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--protected-mode", "yes" if self.protected_mode else "no",
            "--logfile", "",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
        ]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        return argv + self.extra_args

    def launch(self) -> subprocess.Popen:
        """Start the process and return at once (``answers()`` tells when it is up)."""
        if self._closed:
            raise RuntimeError("RedisServer is closed")
        with open(self.log_path, "ab") as logf:
            self.proc = spawn(self.argv(), stdout=logf, stderr=subprocess.STDOUT, cwd=self.dir)
        return self.proc

    def answers(self) -> bool:
        """One PING on a connection of its own (1 s timeouts); False on any Redis error."""
        probe = redis.Redis(
            host=self.host, port=self.port, password=self.password,
            socket_timeout=1.0, socket_connect_timeout=1.0, retry=no_retry(),
        )
        try:
            return bool(probe.ping())
        except redis.RedisError:
            return False
        finally:
            probe.close()

    def start(self) -> RedisServer:
        """Start the server (if not running) and wait until it answers PING."""
        if self.running:
            return self
        # A port picked by free_port() can be taken by someone else before
        # redis binds it; on a fresh server just pick another one.
        attempts = 1 if (self._fixed_port or self.proc is not None) else 5
        deadline = time.monotonic() + self.ready_timeout
        for attempt in range(attempts):
            proc = self.launch()
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if self.answers():
                    return self
                time.sleep(0.01)
            else:
                stop(proc)
                raise AssertionError(
                    f"redis-server on port {self.port} not ready after {self.ready_timeout}s\n{self.log()}"
                )
            stop(proc)
            if attempt + 1 < attempts:
                self.port = free_port()
        raise AssertionError(f"redis-server on port {self.port} exited during startup\n{self.log()}")

    def restart(self) -> RedisServer:
        """Start again on the same port and dir (stopping gracefully first if running)."""
        if self.running:
            self.stop()
        return self.start()

    def wipe(self) -> None:
        """Remove everything in the directory but the log, as a Redis without
        persistence forgets all on restart (call it while the server is down)."""
        for path in self.dir.iterdir():
            if path != self.log_path:
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def _release(self) -> None:
        """Close the clients, remove the directory if it is a temporary one."""
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        self._clients.clear()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} pid={self.pid} running={self.running}>"
