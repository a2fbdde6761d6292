"""Free TCP ports on the loopback address."""

from __future__ import annotations

import socket
import threading

LOOPBACK = "127.0.0.1"

_handed_out: set[int] = set()
_lock = threading.Lock()


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that is currently free.

    Ports already returned in this process are not returned again, so two servers
    started back to back never get the same port.
    """
    with _lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("could not find a free port")
