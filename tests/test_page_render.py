"""The status page as a function of a view: every value escaped (job names, URLs, excerpts,
reasons, audit entries, sources), jobs triaged (failing, overdue, held or paused, the rest),
ledger entries in either shape (the history's `outcome`, the ledger's `fate` with `reason`),
and the audit section only when the view holds one. The browser tests drive the same page
against a real daemon (tests/test_page_triage_browser.py)."""

from __future__ import annotations

from html.parser import HTMLParser

from scheduler.control import page

EVIL = '<img src=x onerror="alert(1)">'


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))


def job(name: str, **over) -> dict:
    out = {"name": name, "source": "env", "schedule": "every 1h", "timezone": "UTC", "method": "POST",
           "url": "http://app/x", "state": "active", "next": [], "next_local": [], "last": None,
           "overdue": False, "consecutive_failures": 0, "running": False, "history": []}
    return {**out, **over}


def view(**over) -> dict:
    jobs = [
        job("a-fine"),
        job("b-paused", state="paused"),
        job("c-late", overdue=True),
        job("d-from-file", source="file"),
        job("z-broken" + EVIL, url="http://app/" + EVIL, consecutive_failures=2,
            last={"outcome": "failed", "excerpt": EVIL, "error": "HTTP 500", "http_status": 500},
            history=[
                {"id": "manual:r1", "fate": "failed", "reason": "the app said " + EVIL, "attempts": 3,
                 "http_status": 500, "duration_ms": 2400, "lateness_ms": 12, "excerpt": EVIL},
                {"id": "2026-12-07T03:00:00Z", "fate": "skipped", "explain": "still running (CONCURRENCY=forbid)"},
                {"id": "2026-12-07T04:00:00Z", "fate": "pending"},
                {"slot": "2026-12-07T02:00:00Z", "outcome": "failed", "attempts": 1},
            ]),
    ]
    out = {"leader": {"replica": "r" + EVIL, "epoch": 3}, "jobs": jobs,
           "rejected": [{"name": EVIL, "source": "file", "problem": EVIL}],
           "sources": [{"source": "file", "ok": True, "held": {"dropped": 12, "in_force": 20}}]}
    return {**out, **over}


def test_every_value_is_shown_as_text_and_the_one_script_is_ours() -> None:
    audit = [{"at": "2026-12-07T03:01:00Z", "who": "ops" + EVIL, "action": "pause", "job": "z-broken",
              "reason": EVIL, "status": 200}]
    html = page.render(view(audit=audit), "n0nce")
    assert EVIL not in html
    esc = "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"
    for shown in ("ops" + esc, "the app said " + esc, "z-broken" + esc):  # audit, ledger reason, name
        assert shown in html
    assert html.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;") >= 8
    parsed = Tags()
    parsed.feed(html)
    assert not [t for t, _ in parsed.tags if t == "img"]
    assert not [a for _, attrs in parsed.tags for a in attrs if a.startswith("on")]
    assert [attrs for t, attrs in parsed.tags if t == "script"] == [{"nonce": "n0nce"}]


def test_jobs_are_triaged_and_counted() -> None:
    html = page.render(view(), "n")
    parsed = Tags()
    parsed.feed(html)
    cards = [attrs for t, attrs in parsed.tags if t == "section" and "job" in (attrs.get("class") or "")]
    assert [c["data-name"] for c in cards] == ["z-broken" + EVIL, "c-late", "b-paused", "d-from-file", "a-fine"]
    assert cards[0]["data-states"] == "active failing"
    assert cards[3]["data-states"] == "active held"
    counts = {a["id"]: a for t, a in parsed.tags if t == "a" and a.get("id", "").startswith("sum-")}
    assert set(counts) == {"sum-all", "sum-failing", "sum-overdue", "sum-paused", "sum-held", "sum-rejected"}
    assert counts["sum-failing"]["href"] == "#state=failing"
    for key, n in {"all": 5, "failing": 1, "overdue": 1, "paused": 1, "held": 1, "rejected": 1}.items():
        assert f'id="sum-{key}"' in html and f'<b class="n">{n}</b> ' in html.split(f'id="sum-{key}"')[1][:90]


def test_the_ledger_reads_both_shapes_with_reasons_and_a_retry_for_each_failed_run() -> None:
    html = page.render(view(), "n")
    parsed = Tags()
    parsed.feed(html)
    fates = [a["data-fate"] for t, a in parsed.tags if t == "tr" and a.get("class") == "run"]
    assert fates == ["failed", "skipped", "pending", "failed"]
    assert "still running (CONCURRENCY=forbid)" in html
    retries = [a["data-run"] for t, a in parsed.tags if t == "button" and a.get("data-action") == "retry"]
    assert retries == ["manual:r1", "2026-12-07T02:00:00Z"]
    assert "2.4 s" in html


def test_the_audit_section_is_there_only_when_the_view_holds_one() -> None:
    assert 'id="audit"' not in page.render(view(), "n")
    assert "No control actions recorded yet" in page.render(view(audit=[]), "n")
    html = page.render(view(audit=[{"at": "2026-12-07T03:01:00Z", "who": "ops", "action": "retry",
                                    "job": "z-broken", "reason": "disk cleaned", "status": 202}]), "n")
    section = html.split('id="audit"')[1].split("</section>")[0]
    assert all(x in section for x in ("2026-12-07 03:01:00Z", "ops", "retry", "z-broken", "disk cleaned", "202"))


def test_next_runs_in_the_jobs_zone_with_utc_in_the_title() -> None:
    one = job("berlin", timezone="Europe/Berlin", next=["2026-03-29T01:30:00Z"],
              next_local=["2026-03-29T03:30:00+02:00"])
    html = page.render(view(jobs=[one]), "n")
    assert '<time datetime="2026-03-29T01:30:00Z" title="2026-03-29T01:30:00Z (UTC)">2026-03-29 03:30:00+02:00</time>' in html
