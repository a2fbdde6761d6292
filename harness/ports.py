"""Free TCP ports on the loopback address."""

from __future__ import annotations

import os
import socket
import threading

LOOPBACK = "127.0.0.1"

_handed_out: set[int] = set()
_lock = threading.Lock()


# Ports handed out come from below the kernel's ephemeral range (32768-60999 on Linux),
# which bind(0) and every outgoing connection draw from: a port picked there and closed
# could be taken by some process's outgoing connection before the server under test
# bound it (seen: a daemon refused to start, "port already in use"). Each pytest-xdist
# worker, and each other process, draws from a block of its own.
FIRST_PORT = 10_000
BLOCK = 1_000
BLOCKS = 22  # 10,000-31,999


def _block_start() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 8 + os.getpid() % (BLOCKS - 8)
    return FIRST_PORT + (index % BLOCKS) * BLOCK


_next = {"i": 0}


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that is currently free.

    Ports already returned in this process are not returned again, so two servers
    started back to back never get the same port.
    """
    with _lock:
        start = _block_start()
        for _ in range(BLOCK):
            port = start + _next["i"] % BLOCK
            _next["i"] += 1
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue  # in use
            _handed_out.add(port)
            return port
    raise RuntimeError("could not find a free port")
