"""Waiting on a condition with a deadline (never sleep-and-hope)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "",
) -> Any:
    """Call ``predicate`` until it returns a truthy value and return that value.

    Raises ``AssertionError`` (with ``message``) if the deadline passes.  If the
    predicate raised on its last call, that exception is chained.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    last_value: Any = None
    while True:
        try:
            last_value = predicate()
            last_exc = None
            if last_value:
                return last_value
        except Exception as exc:  # noqa: BLE001 - keep polling
            last_exc = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    detail = message or getattr(predicate, "__name__", "condition")
    text = f"timed out after {timeout:.2f}s waiting for: {detail}"
    if last_exc is not None:
        text += f" (last error: {last_exc!r})"
    else:
        text += f" (last value: {last_value!r})"
    raise AssertionError(text) from last_exc
