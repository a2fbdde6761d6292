"""The parsers of configuration values: each returns the parsed value or raises ValueError
saying what is expected. A parser of a secret never puts the value in that message.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from ..schedule import slots as sched
from .reader import show
from ..http.client.url import Origin, check_url, origin, proxy_target

JOBS_FILE_SUFFIXES = (".json", ".yaml", ".yml")
# Headers the scheduler owns; a job's HEADERS may not replace them: its own, a manual
# fire's id (x-scheduler-trigger), and trace context (traceparent).
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Authorization", "Idempotency-Key", "X-Scheduler-Job", "X-Scheduler-Slot",
        "X-Scheduler-Attempt", "X-Scheduler-Fencing-Token", "webhook-id",
        "webhook-timestamp", "webhook-signature", "Content-Length", "Host",
        "X-Scheduler-Trigger", "traceparent",
    )
)
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def non_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("expected a non-blank value")
    return text


def duration(text: str) -> float:
    return sched.parse_duration_s(text)


def positive_duration(text: str) -> float:
    value = duration(text)
    if value <= 0:
        raise ValueError(f"expected a duration greater than zero, got {text!r}")
    return value


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"expected a whole number from {lo} to {hi}, got {text!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"expected a whole number from {lo} to {hi}, got {value}")
        return value

    return parse


def choice(options: tuple[str, ...], upper: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().upper() if upper else text.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {text!r}")
        return value

    return parse


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def zone(text: str) -> str:
    try:
        ZoneInfo(text.strip())
    except Exception:
        raise ValueError(f"expected an IANA time zone name like UTC or Europe/Berlin, got {text!r}") from None
    return text.strip()


def http_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {text!r}")
    sendable(text.strip())
    return text.strip()


def origins(text: str) -> tuple[Origin, ...]:
    """A comma-separated list of origins, `https://hooks.example.com` or `http://10.0.0.5:8080`:
    scheme, host and port only, each as the HTTP client reads it."""
    found: list[Origin] = []
    for part in (p.strip() for p in text.split(",")):
        parts = urlsplit(part)
        if not part or parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None \
                or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"expected origins like https://hooks.example.com or http://10.0.0.5:8080 "
                             f"(scheme, host and port only), comma-separated, got {show(part)}")
        o = origin(part)
        if o is None:
            raise ValueError(f"the HTTP client cannot send to {show(part)}")
        found.append(o)
    return tuple(dict.fromkeys(found))


def sendable(url: str) -> None:
    """The HTTP client's own test, so a URL accepted here never fails in a fire."""
    problem = check_url(url)
    if problem is not None:
        raise ValueError(f"the HTTP client cannot send to this URL: {problem}")


def pem_file(text: str) -> str:
    path = text.strip()
    try:
        found = Path(path).is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise ValueError(f"expected the path of a PEM file, got {show(text)}: no such file")
    return path


def proxy_url(text: str) -> str:
    # The value may hold a password: the message never shows it.
    try:
        proxy_target(text.strip())
    except ValueError as exc:
        raise ValueError(f"expected a proxy URL like http://proxy:3128: {exc}") from None
    return text.strip()


# A path (and query) of characters that never need quoting: joined to a valid base, it is
# always sendable, so the URL is not split and checked again (100,000 jobs: 2.5 s -> 0.1 s).
PLAIN_PATH = re.compile(r"(?!//)[A-Za-z0-9._~!$&'()*+,;=:@/-]*(?:\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?")


@functools.lru_cache(maxsize=16)  # one parser per base, not one per job
def job_url(api_url: str | None) -> Callable[[str], str]:
    prefix = None
    if api_url is not None:
        base = urlsplit(api_url)
        prefix = urlunsplit((base.scheme, base.netloc, base.path.rstrip("/"), "", ""))

    def parse(text: str) -> str:
        text = text.strip()
        if prefix is not None and PLAIN_PATH.fullmatch(text) and ":" not in text.partition("/")[0]:
            if text[:1] == "/" and text[-1:] != "?":
                return prefix + text  # most jobs of a large document: what the lines below make of it
            path, _, query = text.partition("?")
            return f"{prefix}/{path.lstrip('/')}" + (f"?{query}" if query else "")
        parts = urlsplit(text)
        if parts.scheme:
            return http_url(text)
        if parts.netloc or text.startswith("//"):
            raise ValueError(f"expected a path like /tasks/x or an absolute http(s) URL, got {text!r}")
        if api_url is None:
            raise ValueError("cannot be joined to SCHEDULER_API_URL, which is invalid")
        # The base's path is kept: /api + tasks/x -> /api/tasks/x (what operators expect,
        # unlike urljoin, which would drop the base's last segment).
        base = urlsplit(api_url)
        path = base.path.rstrip("/") + "/" + parts.path.lstrip("/")
        joined = urlunsplit((base.scheme, base.netloc, path, parts.query, ""))
        sendable(joined)
        return joined

    return parse


def json_headers(text: str) -> tuple[tuple[str, str], ...]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ValueError('expected a JSON object of header names to strings, like {"X-Team": "ops"}') from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError('expected a JSON object of header names to strings, like {"X-Team": "ops"}')
    bad = [k for k in data if k.lower() in RESERVED_HEADERS]
    if bad:
        raise ValueError(f"may not set {', '.join(bad)}: the scheduler sets these headers itself")
    invalid = [k for k in data if not _TOKEN_RE.fullmatch(k)]
    if invalid:
        raise ValueError(f"invalid header name {invalid[0]!r}")
    if any(_CONTROL_RE.search(v) for v in data.values()):
        raise ValueError("header values may not contain line breaks or other control characters")
    return tuple(data.items())


def signing_secret(text: str) -> str:
    import base64
    import binascii

    if not text.startswith("whsec_"):
        raise ValueError("expected a Standard Webhooks secret of the form whsec_<base64>")
    try:
        raw = base64.b64decode(text[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected base64 after the whsec_ prefix") from None
    if len(raw) < 16:
        raise ValueError("expected at least 16 bytes of key after the whsec_ prefix")
    return text


def namespace(text: str) -> str:
    if not _NAMESPACE_RE.fullmatch(text):
        raise ValueError(f"expected 1-64 characters of A-Z a-z 0-9 _ . : -, got {text!r}")
    return text


def tls_verify(text: str) -> bool | str:
    value = text.strip()
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        found = Path(value).is_file()
    except (OSError, ValueError):  # a name too long, a NUL
        found = False
    if not found:
        raise ValueError(f"expected true, false or the path of a CA bundle file, got {show(text)}")
    return value


def jobs_file(text: str) -> str:
    # The file need not exist yet: a source that cannot be read is retried, never fatal.
    path = text.strip()
    if not path:
        raise ValueError("expected the path of a .json, .yaml or .yml file")
    if not path.lower().endswith(JOBS_FILE_SUFFIXES):
        raise ValueError(f"expected a path ending in .json, .yaml or .yml, got {show(text)}")
    return path


def rate(text: str) -> float:
    """Calls per second: a number greater than zero, `50` or `0.5` (or `50/s`)."""
    t = text.strip().removesuffix("/s").strip()
    value = float(t) if re.fullmatch(r"\d+(\.\d+)?|\.\d+", t) else 0.0
    if not 0 < value <= 1_000_000:
        raise ValueError(f"expected calls per second, a number greater than zero like 50 or 0.5, got {show(text)}")
    return value


def share(text: str) -> float:
    """A share as a percentage, `50%` (or `50`), from 0 to 100; returned as a fraction."""
    t = text.strip().removesuffix("%").strip()
    try:
        value = float(t) if re.fullmatch(r"\d+(\.\d+)?", t) else -1.0
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise ValueError(f"expected a percentage from 0% to 100%, like 50%, got {show(text)}")
    return value / 100


def refresh(text: str) -> float:
    value = duration(text)
    if value < 1:
        raise ValueError(f"expected a duration of at least 1s, got {text!r}")
    return value
