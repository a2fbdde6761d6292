"""The whole page for a jobs view (`operations.jobs_view(..., with_history=True)`, with the
sources added by the API): the leader, the summary line, the filter, the job sources that
need a look, every job (failing first), the audit log when the view holds one, and the
rejected jobs."""

from __future__ import annotations

from .cards import card
from .script import SCRIPT
from .style import STYLE
from .text import e, tag, when
from .triage import FILTERS, held_sources, ordered, states, summary

# The summary's items: (count key, label, filter state or None for an anchor, class when > 0)
SUMMARY = (("failing", "failing", "failing", "bad"), ("overdue", "overdue", "overdue", "bad"),
           ("paused", "paused", "paused", "warn"), ("held", "held sources", "held", "bad"),
           ("rejected", "rejected", None, "bad"))


def render(view: dict, nonce: str, viewer: str | None = None) -> str:
    """The page; `viewer`: the name of a viewer's token, whose page has no buttons (its POSTs
    would be refused)."""
    leader = view["leader"]
    who = (f"leader <b>{e(leader['replica'])}</b>, epoch {e(leader['epoch'])}" if leader
           else "no leader is running now")
    if viewer is not None:
        who += f' &middot; <span id="role">read-only: signed in with the viewer token {e(viewer)}</span>'
    held = held_sources(view.get("sources") or [])
    jobs = "".join(card(j, states(j, held), viewer is None) for j in ordered(view["jobs"], held))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no request for /favicon.ico
        f"<title>cron-sidecar</title><style>{STYLE}</style></head><body>"
        f'<h1>cron-sidecar</h1><div class="meta" id="leader">{who}</div>'
        f"{summary_line(view)}{filters()}"
        f'<div id="msg" role="status"></div>'
        f"{_sources(view.get('sources') or [])}{_origins(view.get('origins') or [])}<main id=\"jobs\">{jobs}</main>"
        f"{audit(view['audit']) if 'audit' in view else ''}{_rejected(view.get('rejected') or [])}"
        f'<script nonce="{e(nonce)}">{SCRIPT}</script></body></html>'
    )


def summary_line(view: dict) -> str:
    """Counts at the top, each a link that filters the jobs to it (the rejected: to their list)."""
    counts = summary(view)
    total = len(view.get("jobs") or [])
    items = [f'<a id="sum-all" data-state="all" href="#state=all"><b class="n">{total}</b> jobs</a>']
    for key, label, state, bad in SUMMARY:
        n = counts[key]
        if state is None and not n:
            continue
        href = f"#state={state}" if state else f"#{key}"
        attrs = f' data-state="{state}"' if state else ""
        cls = f' class="{bad}"'
        items.append(f'<a id="sum-{key}"{attrs} href="{href}"{cls if n else ""}>'
                     f'<b class="n">{n}</b> {label}</a>')
    return f'<nav id="summary" aria-label="summary">{"".join(items)}</nav>'


def filters() -> str:
    options = "".join(f'<option value="{s}">{s}</option>' for s in FILTERS)
    return ('<div id="filters"><input id="filter" type="search" placeholder="filter by name" aria-label="filter by name">'
            f'<select id="state" aria-label="state">{options}</select><span id="shown"></span></div>')


# -- the audit log -------------------------------------------------------------------------
# Shown when the view holds `audit`: a list of recent entries, newest first, each a dict
# with at, who, action, job, reason and status. Nothing here reads the store: the API puts
# the entries in the view.
def audit(entries: object) -> str:
    if entries is None:
        return '<section id="audit"><h2>Audit</h2><p>The audit log could not be read just now.</p></section>'
    if not isinstance(entries, list):
        return ""
    if not entries:
        return '<section id="audit"><h2>Audit</h2><p>No control actions recorded yet.</p></section>'
    rows = ["<tr><th>when</th><th>who</th><th>what</th><th>job</th><th>reason</th><th>status</th></tr>"]
    for a in entries:
        a = a if isinstance(a, dict) else {}
        rows.append(f"<tr><td>{when(a.get('at'))}</td><td>{e(a.get('who'))}</td><td>{e(_action(a))}</td>"
                    f"<td>{e(a.get('job'))}</td><td class=\"why\">{e(a.get('reason'))}</td>"
                    f"<td>{e(a.get('status'))}</td></tr>")
    return f'<section id="audit"><h2>Audit</h2><table>{"".join(rows)}</table></section>'


def _action(entry: dict) -> str:
    """What an audit entry did: its action, or its method and path."""
    return entry.get("action") or " ".join(str(entry[k]) for k in ("method", "what") if entry.get(k))


def _rejected(rejected: list[dict]) -> str:
    if not rejected:
        return ""
    items = "".join(f"<li><b>{e(r.get('name'))}</b> ({e(r.get('source'))}): {e(r.get('problem'))}</li>"
                    for r in rejected)
    return f'<h2 id="rejected">Rejected jobs</h2><ul>{items}</ul>'


def _origins(origins: list[dict]) -> str:
    """One line per origin this replica calls: its limit (SCHEDULER_TARGET_MAX_IN_FLIGHT, lowered
    by overload), calls in flight and waiting, and a Retry-After hold."""
    items = [f"<li><b>{e(o.get('origin'))}</b>: limit {e(o.get('limit'))} of {e(o.get('max'))}, "
             f"{e(o.get('in_flight'))} in flight, {e(o.get('waiting'))} waiting"
             + (f", held {e(o.get('held_s'))}s by Retry-After" if o.get("held_s") else "") + "</li>" for o in origins]
    return f'<h2>Calls per origin</h2><ul id="origins">{"".join(items)}</ul>' if items else ""


def _sources(sources: list[dict]) -> str:
    """The job sources that need a look: held by the guard, unreadable, or not read yet."""
    items = []
    for s in sources:
        where = f"<b>{e(s.get('source'))}</b>"
        held = s.get("held")
        if held:
            items.append(f'<li class="held">{tag("held")} {where} is held: its last read would remove '
                         f'{e(held.get("dropped"))} of {e(held.get("in_force"))} jobs; the last good set stays in '
                         "force until the read is accepted (POST /api/v1/sources/accept, or "
                         "<code>sources accept</code>)</li>")
        if s.get("ok") is None:
            items.append(f"<li>{where} has not been read yet</li>")
        elif not s.get("ok"):
            items.append(f"<li>{where} cannot be read: {e(s.get('error'))}; its last good set stays in force</li>")
    return f'<h2>Job sources</h2><ul id="sources">{"".join(items)}</ul>' if items else ""
