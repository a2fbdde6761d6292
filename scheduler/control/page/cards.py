"""One job on the page: its state, schedule, next runs in its own zone, last outcome, buttons,
and its ledger of recent runs with each one's fate and reason.

A ledger entry is read in either shape: the finished-fire history (`outcome`, `slot`) or the
ledger's (`fate`, `id`, `reason`/`explain`, pending and running entries too)."""

from __future__ import annotations

from .text import e, ms, tag, when

REASON_HINT = "reason (optional)"


def card(job: dict, states: list[str], operator: bool = True) -> str:
    name = e(job["name"])
    badges = " ".join(tag(s) for s in states)
    buttons = "".join(
        f'<button type="button" data-action="{action}" data-job="{name}">{label}</button>'
        for action, label in (actions(job["state"]) if operator else ())
    )
    ledger = job.get("history") or []
    failed = sum(fate(r) == "failed" for r in ledger)
    return (
        f'<section class="job" id="job-{name}" data-name="{name}" data-states="{e(" ".join(states))}">'
        f"<h2>{name}</h2>"
        f'<dl><dt>state</dt><dd class="state">{badges}</dd>'
        f"<dt>schedule</dt><dd>{e(job['schedule'])} ({e(job['timezone'])})</dd>"
        f"<dt>call</dt><dd>{e(job['method'])} {e(job['url'])}</dd>"
        f'<dt>next</dt><dd class="next">{next_runs(job)}</dd>'
        f"<dt>last</dt><dd>{last_outcome(job)}</dd>"
        f"<dt>failures</dt><dd>{e(job.get('consecutive_failures', 0))} in a row</dd></dl>"
        f'<details{" open" if failed else ""}><summary>ledger ({len(ledger)}{f", {failed} failed" if failed else ""})'
        f"</summary>{ledger_table(job['name'], ledger, operator)}</details>"
        + (f'<div class="acts">{buttons}'
           f'<input class="reason" type="text" maxlength="500" placeholder="{REASON_HINT}" aria-label="reason"></div>'
           if operator else "") +
        "</section>"
    )


def next_runs(job: dict) -> str:
    """Each next slot in the job's zone with its offset; the UTC form on hover."""
    utc = job.get("next") or []
    local = job.get("next_local") or []
    if not utc:
        return "none"
    items = []
    for i, slot in enumerate(utc):
        shown = local[i] if i < len(local) else slot
        items.append(f'<time datetime="{e(slot)}" title="{e(slot)} (UTC)">{when(shown)}</time>')
    return "<br>".join(items)


def last_outcome(job: dict) -> str:
    last = job.get("last")
    if not last:
        return "never fired"
    out = (f"{tag(last.get('outcome'))} HTTP {e(last.get('http_status'))}, {e(last.get('attempts'))} attempt(s), "
           f"{ms(last.get('duration_ms'))}, slot {when(last.get('slot'))}, at {when(last.get('finished_at'))}")
    if last.get("error"):
        out += f"<pre>{e(last['error'])}</pre>"
    if last.get("excerpt"):
        out += f'<pre class="excerpt">{e(last["excerpt"])}</pre>'
    return out


def fate(entry: dict) -> str:
    return str(entry.get("fate") or entry.get("outcome") or "-")


def run_id(entry: dict) -> str | None:
    """The run's id for the API: the ledger's `id`, else the history's readable slot
    (RFC 3339, or manual:<id>)."""
    rid = entry.get("id") or entry.get("slot")
    return str(rid) if rid else None


def ledger_table(job: str, entries: list[dict], operator: bool = True) -> str:
    if not entries:
        return "<p>No runs recorded yet.</p>"
    rows = ["<tr><th>run</th><th>fate</th><th>reason</th><th>attempts</th><th>HTTP</th><th>late</th>"
            "<th>took</th><th>finished</th><th>error</th></tr>"]
    for r in entries:
        why = " ".join(str(x) for x in (r.get("error"), r.get("excerpt")) if x)
        rid = run_id(r)
        # The Retry button sits beside the fate, so a phone shows it without scrolling sideways.
        retry = (f' <button type="button" data-action="retry" data-job="{e(job)}" data-run="{e(rid)}">Retry</button>'
                 if operator and fate(r) == "failed" and rid else "")
        rows.append(
            f'<tr class="run" data-fate="{e(fate(r))}"><td class="id">{when(rid)}</td><td>{tag(fate(r))}{retry}</td>'
            f'<td class="why" data-k="reason">{e(r.get("reason") or r.get("explain") or "")}</td>'
            f'<td data-k="attempts">{e(r.get("attempts"))}</td><td data-k="HTTP">{e(r.get("http_status"))}</td>'
            f'<td data-k="late">{ms(r.get("lateness_ms"))}</td><td data-k="took">{ms(r.get("duration_ms"))}</td>'
            f'<td data-k="finished">{when(r.get("finished_at"))}</td>'
            f'<td class="err" data-k="error">{e(_excerpt(why))}</td></tr>'
        )
    return f'<table class="ledger">{"".join(rows)}</table>'


def _excerpt(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def actions(state: str) -> tuple[tuple[str, str], ...]:
    """Only the buttons that apply to a job's state: a disabled job cannot be run (the app's
    switch is off), a done one-shot has nothing to pause, a paused job can only be resumed
    or run once."""
    run = ("trigger", "Run now")
    if state == "disabled":
        return ()
    if state == "paused":
        return run, ("resume", "Resume")
    if state == "done":
        return (run,)
    return run, ("pause", "Pause")
