"""Every value on the page passes through here: job names and URLs come from the
configuration, error excerpts from the app, reasons from operators, so any may hold markup."""

from __future__ import annotations

from html import escape


def e(value: object) -> str:
    """A value as HTML text (quotes too, so it is safe in an attribute); None is shown as '-'."""
    return escape("-" if value is None else str(value), quote=True)


def tag(text: object) -> str:
    """A small coloured label whose class is its own (escaped) text: ok, failed, paused..."""
    return f'<span class="tag {e(text)}">{e(text)}</span>'


def ms(value: object) -> str:
    """A duration in milliseconds, readable: 340 ms, 2.4 s, 3.1 min."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return e(value)
    if abs(value) < 1000:
        return f"{value:.0f} ms"
    if abs(value) < 120_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60_000:.1f} min"


def when(iso: object) -> str:
    """An RFC 3339 time, easier to read: the T becomes a space (the offset stays)."""
    return e(iso.replace("T", " ", 1) if isinstance(iso, str) else iso)
