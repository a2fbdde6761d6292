"""The audit log (SPEC section 8, "Audit and roles"): every state-changing request through the
control API, and every steering command of the CLI, recorded in the state store with who,
when, what and the outcome, and an optional reason.

Recording never fails what it records: a store that cannot take the entry costs a warning in
the log (with the entry), and the request's answer stands.
"""

from __future__ import annotations

import getpass
import logging
import os
from datetime import UTC, datetime
from typing import Any

from ..store.protocol import Store

log = logging.getLogger("scheduler.audit")

MAX_REASON = 500  # characters of a reason
PAGE_ENTRIES = 20  # the last entries the status page shows
DEFAULT_LIMIT = 50  # entries a read returns unless asked


def escaped(text: str) -> str:
    """Control characters escaped: an entry is shown on a terminal and in a log line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def reason_problem(value: Any) -> str | None:
    """Why a reason cannot be taken (None: it can; None as a value is no reason)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return "reason must be a string"
    if len(value) > MAX_REASON:
        return f"reason is {len(value)} characters long; at most {MAX_REASON}"
    return None


def entry(who: str, method: str, what: str, job: str | None, status: int, reason: str | None) -> dict:
    """One entry: `what` is the API's path or the CLI's command."""
    out: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "who": escaped(who), "method": method, "what": escaped(what),
        "job": None if job is None else escaped(job), "status": status,
    }
    if reason:
        out["reason"] = escaped(reason)
    return out


async def record(store: Store, value: dict) -> None:
    """Write `value` to the store's audit log; a failure is a warning, never an error."""
    try:
        await store.audit_append(value)
    except Exception as exc:  # noqa: BLE001 - the request it records has been answered already
        log.warning("could not write the audit entry", extra={"entry": value, "error": f"{type(exc).__name__}: {exc}"})
    else:
        log.info("audit", extra={k: v for k, v in value.items() if k != "at"})


def cli_who() -> str:
    """The CLI acts on the store itself, under the OS user that runs it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a container's)
        return f"cli:uid {os.getuid()}"


def render(entries: list[dict]) -> str:
    """The entries as the CLI prints them, newest first."""
    if not entries:
        return "no audit entries recorded yet"
    header = ("ID", "AT", "WHO", "METHOD", "WHAT", "JOB", "STATUS")
    rows: list[tuple[str, ...]] = [header]
    for e in entries:
        rows.append(tuple(str(v if v is not None else "-") for v in (
            e.get("id"), e.get("at"), e.get("who"), e.get("method"), e.get("what"), e.get("job"), e.get("status"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines += [f"  {e.get('id')}: reason: {e['reason']}" for e in entries if e.get("reason")]
    return "\n".join(lines)
