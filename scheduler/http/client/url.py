"""A URL as the HTTP/1.1 client sends it: origin, Host header, request target, Basic auth.

`check_url` is the one test of "can this URL be sent"; config uses it, so a URL it accepts
never fails in the client. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit

_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


@dataclass(frozen=True)
class Target:
    origin: tuple[str, str, int]  # scheme, host, port: connections are kept per origin
    host_header: str
    path: str  # request target: path and query
    basic_auth: str | None  # from user:password@ in the URL


# A URL whose path and query need no escaping and that has no fragment: the common case of
# thousands of jobs on one app, read as origin + path without urlsplit and quote.
_PLAIN = re.compile(r"(?P<origin>(?P<scheme>https?)://[^/?#%\s\\]+)"
                    r"(?P<path>/[A-Za-z0-9/:@!$&'()*+,;=._~-]*)?(?P<query>\?[A-Za-z0-9/?:@!$&'()*+,;=._~-]+)?")


def target(url: str) -> Target:
    """Raises ValueError, saying why, for a URL that cannot be sent. A plain URL costs one
    match and a lookup of its origin (parsed once per origin); ten thousand jobs with as
    many URLs on one app would otherwise each miss a cache of whole URLs at every fire."""
    m = _PLAIN.fullmatch(url)
    if m is None:
        return _parsed(url)
    origin = _parsed(m["origin"] + "/")
    path = (m["path"] or "/") + (m["query"] or "")
    if path == "/":
        return origin
    return Target(origin.origin, origin.host_header, path, origin.basic_auth)


Origin = tuple[str, str, int]


def origin(url: str) -> Origin | None:
    """(scheme, host, port) as the client connects for `url`, or None when it cannot be
    sent: the one reading of "where does this go" for the client and for every check of
    where a credential may go, so the two never disagree."""
    try:
        return target(url).origin
    except ValueError:
        return None


def origin_prefix(url: str | None) -> str:
    """`scheme://authority/` of `url`: a URL whose text starts with it is on `url`'s origin
    (its authority ends at that slash), so a check of many URLs against one origin parses only
    those that do not start so. Of no URL (None), a prefix that starts no URL."""
    if not url:
        return "\0"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


def show_origin(o: Origin) -> str:
    scheme, host, port = o
    host = f"[{host}]" if ":" in host else host
    default = (scheme, port) in (("http", 80), ("https", 443))
    return f"{scheme}://{host}" if default else f"{scheme}://{host}:{port}"


@lru_cache(maxsize=4096)
def _parsed(url: str) -> Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"expected an http:// or https:// URL, got scheme {scheme or 'none'!r}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the port must be a number from 1 to 65535")
    port = port or (443 if scheme == "https" else 80)
    host = _host(parts.hostname or "", "[" in parts.netloc)
    netloc_host = f"[{host}]" if ":" in host else host
    default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    path = quote(_lone_percent(parts.path or "/"), safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(_lone_percent(parts.query), safe="/?%:@!$&'()*+,;=-._~")
    basic = None
    if parts.username is not None:
        user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        basic = "Basic " + base64.b64encode(user_pass.encode()).decode()
    return Target((scheme, host, port), netloc_host if default_port else f"{netloc_host}:{port}", path, basic)


def _host(host: str, bracketed: bool) -> str:
    """The host as a Host header and SNI take it: an IP literal, or a name in A-label form."""
    if not host:
        raise ValueError("the URL has no host")
    if bracketed:
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    name = host.removesuffix(".")  # a fully qualified name may end in a dot
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")  # IDNA 2003, as Python's codec has it
        except UnicodeError as exc:
            reason = str(exc).rpartition("(")[2].rstrip(")").removeprefix("UnicodeError: ") or "not valid IDNA"
            raise ValueError(f"the host {host!r} cannot be encoded for DNS ({reason})") from None
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        bad = next((label for label in labels if not _LABEL.fullmatch(label)), name)
        what = "an empty label" if bad == "" else f"the label {bad!r}"
        raise ValueError(f"the host {host!r} is not a valid DNS name: {what} "
                         "(labels are 1-63 letters, digits or hyphens, separated by single dots)")
    return name


def check_url(url: str) -> str | None:
    """Why the client cannot send to `url`, or None when it can."""
    try:
        target(url)
    except ValueError as exc:
        return str(exc)
    return None


def proxy_target(url: str) -> Target:
    """A proxy's URL: http://[user:password@]host[:port], nothing after the authority."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        raise ValueError("expected an http:// proxy URL (a TLS connection to the proxy is not supported)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("expected a proxy URL without a path or query, like http://proxy:3128")
    return target(url)


def _lone_percent(text: str) -> str:
    """A % that does not start an escape is itself escaped; %XX stays as written."""
    return re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", text)
