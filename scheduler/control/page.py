"""The status page at `/`: one HTML document built from the jobs view, with its style and
its one small script inline (no external assets, no build step), readable on a phone.

Every value shown passes through `html.escape`: job names and URLs come from the
configuration, and error excerpts from the app, so any of them may hold markup. The script
reads a job's name from a data attribute (escaped like any other value) and calls the API
with `fetch`, a JSON body and the page's own Basic credentials.
"""

from __future__ import annotations

from html import escape

STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;padding:1em;max-width:60em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em}
.meta{color:#555;margin-bottom:1em}
.job{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em;margin:0 0 1em}
.job h2{font-size:1.1em;margin:0 0 .4em;word-break:break-all}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15em .8em;margin:.3em 0}
dt{color:#666}dd{margin:0;word-break:break-word}
.tag{display:inline-block;padding:0 .45em;border-radius:3px;font-size:.85em;background:#eee}
.ok{background:#d9f2dd}.failed,.overdue{background:#f9d6d5}.paused,.disabled{background:#fbeec8}
.done,.expired{background:#e2e6f3}
.held{background:#f9d6d5}
pre{white-space:pre-wrap;word-break:break-word;background:#f4f4f4;padding:.4em;margin:.3em 0;font-size:.85em}
button{font:inherit;padding:.35em .9em;margin:.3em .4em 0 0;border:1px solid #888;border-radius:4px;background:#fff}
table{border-collapse:collapse;font-size:.85em;width:100%;display:block;overflow-x:auto}
td,th{border-bottom:1px solid #eee;padding:.2em .4em;text-align:left;white-space:nowrap}
#msg{min-height:1.4em;color:#a00}
"""

SCRIPT = """
document.addEventListener('click', async (ev) => {
  const b = ev.target.closest('button[data-action]');
  if (!b) return;
  const msg = document.getElementById('msg');
  msg.textContent = '';
  b.disabled = true;
  try {
    const r = await fetch('api/v1/jobs/' + encodeURIComponent(b.dataset.job) + '/' + b.dataset.action, {
      method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json'}, body: '{}'});
    if (!r.ok) {
      let why = r.status + ' ' + r.statusText;
      try { why = (await r.json()).error || why; } catch (e) {}
      msg.textContent = b.dataset.job + ': ' + why;
    } else { location.reload(); }
  } catch (e) { msg.textContent = String(e); }
  b.disabled = false;
});
"""


def _e(value: object) -> str:
    return escape("-" if value is None else str(value), quote=True)


def _tag(text: str) -> str:
    return f'<span class="tag {_e(text)}">{_e(text)}</span>'


def _history(entries: list[dict]) -> str:
    if not entries:
        return "<p>No finished fires recorded yet.</p>"
    rows = ["<tr><th>finished</th><th>slot</th><th>outcome</th><th>HTTP</th><th>attempts</th><th>ms</th>"
            "<th>error</th></tr>"]
    for h in entries:
        why = " ".join(x for x in (h.get("error"), h.get("excerpt")) if x)
        rows.append(
            f"<tr><td>{_e(h.get('finished_at'))}</td><td>{_e(h.get('slot'))}</td><td>{_tag(str(h.get('outcome')))}</td>"
            f"<td>{_e(h.get('http_status'))}</td><td>{_e(h.get('attempts'))}</td><td>{_e(h.get('duration_ms'))}</td>"
            f"<td>{_e(why or None)}</td></tr>"
        )
    return f"<table>{''.join(rows)}</table>"


def _job(job: dict) -> str:
    last = job.get("last")
    if last:
        outcome = (f"{_tag(last['outcome'])} HTTP {_e(last.get('http_status'))}, {_e(last.get('attempts'))} attempt(s), "
                   f"{_e(last.get('duration_ms'))} ms, slot {_e(last.get('slot'))}, at {_e(last.get('finished_at'))}")
        if last.get("error"):
            outcome += f"<pre>{_e(last['error'])}</pre>"
        if last.get("excerpt"):
            outcome += f"<pre class=\"excerpt\">{_e(last['excerpt'])}</pre>"
    else:
        outcome = "never fired"
    state = _tag(job["state"]) + (" " + _tag("overdue") if job.get("overdue") else "") + (
        " " + _tag("running") if job.get("running") else "")
    name = _e(job["name"])
    buttons = "".join(
        f'<button type="button" data-action="{action}" data-job="{name}">{label}</button>'
        for action, label in _actions(job["state"])
    )
    history = job.get("history") or []
    return (
        f'<section class="job" id="job-{name}"><h2>{name}</h2>'
        f"<dl><dt>state</dt><dd class=\"state\">{state}</dd>"
        f"<dt>schedule</dt><dd>{_e(job['schedule'])} ({_e(job['timezone'])})</dd>"
        f"<dt>call</dt><dd>{_e(job['method'])} {_e(job['url'])}</dd>"
        f"<dt>next</dt><dd>{'<br>'.join(_e(s) for s in job['next']) or 'none'}</dd>"
        f"<dt>last</dt><dd>{outcome}</dd>"
        f"<dt>overdue</dt><dd>{'yes' if job.get('overdue') else 'no'}</dd></dl>"
        f"<details><summary>history ({len(history)})</summary>{_history(history)}</details>"
        f"<div>{buttons}</div></section>"
    )


def _actions(state: str) -> tuple[tuple[str, str], ...]:
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


def _rejected(rejected: list[dict]) -> str:
    if not rejected:
        return ""
    items = "".join(f"<li><b>{_e(r.get('name'))}</b> ({_e(r.get('source'))}): {_e(r.get('problem'))}</li>"
                    for r in rejected)
    return f"<h2>Rejected jobs</h2><ul>{items}</ul>"


def _sources(sources: list[dict]) -> str:
    """The job sources that need a look: held by the guard, unreadable, or not read yet."""
    items = []
    for s in sources:
        where = f"<b>{_e(s.get('source'))}</b>"
        held = s.get("held")
        if held:
            items.append(f'<li class="held">{where} is held: its last read would remove {_e(held.get("dropped"))} '
                         f"of {_e(held.get('in_force'))} jobs; the last good set stays in force until the read is "
                         "accepted (POST /api/v1/sources/accept, or <code>sources accept</code>)</li>")
        if s.get("ok") is None:
            items.append(f"<li>{where} has not been read yet</li>")
        elif not s.get("ok"):
            items.append(f"<li>{where} cannot be read: {_e(s.get('error'))}; its last good set stays in force</li>")
    return f'<h2>Job sources</h2><ul id="sources">{"".join(items)}</ul>' if items else ""


def _origins(origins: list[dict]) -> str:
    """One line per origin this replica calls: its limit (SCHEDULER_TARGET_MAX_IN_FLIGHT, lowered
    by overload), calls in flight and waiting, and a Retry-After hold."""
    items = [f"<li><b>{_e(o.get('origin'))}</b>: limit {_e(o.get('limit'))} of {_e(o.get('max'))}, "
             f"{_e(o.get('in_flight'))} in flight, {_e(o.get('waiting'))} waiting"
             + (f", held {_e(o.get('held_s'))}s by Retry-After" if o.get("held_s") else "") + "</li>" for o in origins]
    return f'<h2>Calls per origin</h2><ul id="origins">{"".join(items)}</ul>' if items else ""


def render(view: dict, nonce: str) -> str:
    """The whole page for a jobs view (`operations.jobs_view(..., with_history=True)`)."""
    leader = view["leader"]
    who = (f"leader <b>{_e(leader['replica'])}</b>, epoch {_e(leader['epoch'])}" if leader
           else "no leader is running now")
    jobs = "".join(_job(j) for j in view["jobs"])
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no request for /favicon.ico
        f"<title>cron-sidecar</title><style>{STYLE}</style></head><body>"
        f'<h1>cron-sidecar</h1><div class="meta" id="leader">{who}</div><div id="msg" role="status"></div>'
        f"{_sources(view.get('sources') or [])}{_origins(view.get('origins') or [])}{jobs}{_rejected(view.get('rejected') or [])}"
        f'<script nonce="{_e(nonce)}">{SCRIPT}</script></body></html>'
    )
