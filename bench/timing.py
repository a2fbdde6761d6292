"""Waiting with a deadline, and the time texts the benchmarks read: a slot header, a
duration."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from typing import Any


def wait_for(pred: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def sleep_until(t_wall: float) -> None:
    while (left := t_wall - time.time()) > 0:
        time.sleep(min(left, 0.5))


def parse_slot(text: str, _cache: dict[str, int] = {}) -> int:  # noqa: B006 - a cache on purpose
    v = _cache.get(text)
    if v is None:
        v = int(dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())
        _cache[text] = v
    return v


def duration_s(text: str) -> float:
    """`3s`, `1500ms`, `1m30s`, `90` -> seconds (the daemon's duration forms)."""
    m = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?", text.strip())
    if text.strip().isdigit():
        return float(text)
    if not m or not any(m.groups()):
        raise ValueError(f"not a duration: {text!r}")
    d, h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s + ms / 1000
