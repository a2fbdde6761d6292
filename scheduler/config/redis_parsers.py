"""The parsers of the state store's settings: the Redis URL (with its TLS query, checked
as redis-py will read it) and Sentinel's host:port list. Each returns the value or raises
ValueError saying what is expected, never with the value of a secret."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .reader import show


def redis_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("expected a host in the URL, like redis://redis:6379/0")
    if parts.scheme == "unix" and not parts.path:
        raise ValueError("expected a socket path, like unix:///run/redis.sock")
    try:
        _ = parts.port  # urllib checks the port only when asked
    except ValueError:
        raise ValueError("expected a numeric port in the URL") from None
    _redis_tls_query(parts.scheme, parts.query)
    return text.strip()


# The TLS options a rediss:// URL's query may hold; redis-py reads them (docs/guarantees.md, "Redis over
# TLS"). Checked here, or a typo or a missing file would only show at the first connection,
# as an outage retried forever.
REDIS_TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
REDIS_TLS_CHOICES = {"ssl_cert_reqs": ("required", "optional", "none"), "ssl_check_hostname": ("true", "false")}


def _redis_tls_query(scheme: str, query: str) -> None:
    known = (*REDIS_TLS_FILES, *REDIS_TLS_CHOICES)
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if not name.startswith("ssl_"):
            continue  # redis-py's other options (a name is no secret; a value may be)
        if name not in known:
            raise ValueError(f"unknown TLS option {show(name)} in the URL's query; expected one of {', '.join(known)}")
        if scheme != "rediss":
            raise ValueError(f"the URL's {name} needs a rediss:// URL (TLS)")
        value = values[-1]
        if name in REDIS_TLS_FILES:
            if not Path(value).is_file():
                shown = show(value, quote=False)  # a path's end names the file: cut at the front
                raise ValueError(f"the URL's {name}: no file at {shown if len(shown) <= 200 else '...' + shown[-197:]!r}")
        elif value.lower() not in REDIS_TLS_CHOICES[name]:
            raise ValueError(f"the URL's {name}: expected {' or '.join(REDIS_TLS_CHOICES[name])}")


def host_ports(text: str) -> tuple[tuple[str, int], ...]:
    out = []
    for item in text.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port[,host:port...], got {item.strip()!r}")
        out.append((host, int(port)))
    return tuple(out)
