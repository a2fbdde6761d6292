from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import pytest

_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests import support  # noqa: E402

# `from support import ...` and `from tests.support import ...` give the same module.
sys.modules.setdefault("support", support)

from tests.support import Daemon, Receiver, RedisServer  # noqa: E402


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server (no persistence) for this test."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """``redis_factory(**RedisServer kwargs)`` starts another server; all are torn down."""
    servers: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A fresh recording HTTP receiver for this test."""
    recv = Receiver()
    try:
        yield recv
    finally:
        recv.close()


@pytest.fixture
def daemon_factory() -> Iterator[Callable[..., Daemon]]:
    """``daemon_factory(env, **Daemon kwargs)`` starts a daemon; all are killed
    at teardown, and their output is printed (pytest shows it on failure)."""
    daemons: list[Daemon] = []

    def make(env: dict[str, Any] | None = None, **kwargs: Any) -> Daemon:
        daemon = Daemon(env, **kwargs)
        daemons.append(daemon)
        return daemon

    try:
        yield make
    finally:
        for i, daemon in enumerate(daemons):
            daemon.close()
            print(f"----- daemon #{i} (pid {daemon.pid}, rc {daemon.returncode}) output -----")
            print(daemon.output())
