"""What a fire keeps of the app's answer: the excerpt of an error body (scrubbed, escaped,
bounded), a Retry-After in seconds, and an error's text. Pure functions of their arguments."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.utils import parsedate_to_datetime

EXCERPT_BYTES = 512  # of a non-2xx body, kept in the outcome
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def excerpt_of(text: str | None, scrub: Callable[[str], str]) -> str | None:
    """At most EXCERPT_BYTES (as UTF-8) of the start of an error body, secrets scrubbed and
    control characters escaped. The client reads a little more than is kept, so a secret
    cut by the limit is still found whole and scrubbed before the cut."""
    if not text:
        return None
    text = scrub(text)
    if len(text.encode()) > EXCERPT_BYTES:
        text = text.encode()[:EXCERPT_BYTES].decode(errors="ignore")
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match) -> str:
    ch = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def retry_after_s(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None
