"""The status page triages, in Debian's headless Chromium against a real standalone daemon
firing at a real HTTP receiver: one job fails (the app answers 500), others succeed, one is
paused. The summary counts them, the failing job comes first, the summary's link and the
filter (name box, state menu) show only the matching jobs, and the filter survives a reload
through the URL's fragment. Next runs are in the job's zone, UTC on hover; the failed run in
the ledger has a Retry button that posts the job's reason."""

from __future__ import annotations

import json
import os
from urllib.parse import unquote

import httpx
import pytest

from tests.e2e import standalone_env
from tests.support import Daemon, Receiver, free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "ctl-triage-5e1d"
BEARER = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} missing (apt-get install chromium)")

JOBS = {
    "reports": {"SCHEDULE": "every 1h", "URL": "/reports", "RETRIES": "0"},
    "alpha-sync": {"SCHEDULE": "every 1h", "URL": "/ok"},
    "billing": {"SCHEDULE": "every 1h", "URL": "/ok"},
    "cleanup": {"SCHEDULE": "every 1h", "URL": "/ok"},
    "zeta": {"SCHEDULE": "30 2 * * *", "TIMEZONE": "Asia/Kolkata", "URL": "/ok"},
}


def app(request):
    if request.path.startswith("/reports"):
        return 500, {"Content-Type": "text/plain"}, b"reports failed: <i>disk full</i>"
    return 200, {}, b"{}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    port, state = free_port(), tmp_path_factory.mktemp("page") / "state.db"
    with Receiver(app) as receiver:
        env = standalone_env(receiver, state, JOBS, http_port=str(port), http_host="127.0.0.1", control_token=TOKEN)
        with Daemon(env):
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: httpx.get(base + "/healthz").status_code == 200, 15, message="the HTTP port")
            for name in ("reports", "alpha-sync", "billing"):
                r = httpx.post(f"{base}/api/v1/jobs/{name}/trigger", headers=BEARER, content=f'{{"id": "{name}-1"}}')
                assert r.status_code == 202, r.text
            assert httpx.post(base + "/api/v1/jobs/cleanup/pause", headers=BEARER, content="{}").status_code == 200
            for name in ("reports", "alpha-sync", "billing"):
                wait_until(lambda n=name: httpx.get(f"{base}/api/v1/jobs/{n}", headers=BEARER).json()["history"], 15,
                           message=f"{name} fired")
            with playwright.sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    context = browser.new_context(http_credentials={"username": "ops", "password": TOKEN},
                                                  viewport={"width": 420, "height": 900})
                    yield base, context
                finally:
                    browser.close()


@pytest.fixture
def page(site):
    base, context = site
    page = context.new_page()
    errors: list[str] = []
    # A refused POST is logged by the browser as a failed load; the test that sends one checks it.
    page.on("console", lambda m: errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.goto(base + "/")
    yield page
    page.close()
    assert errors == []


def shown(page) -> list[str]:
    """The ids of the job cards the filter leaves visible, in page order."""
    return page.eval_on_selector_all("section.job", "cs => cs.filter(c => !c.hidden).map(c => c.id)")


def count(page, key: str) -> int:
    return int(page.locator(f"#sum-{key} .n").inner_text())


def test_the_summary_counts_and_the_failing_job_comes_first(page) -> None:
    assert (count(page, "all"), count(page, "failing"), count(page, "paused")) == (5, 1, 1)
    assert (count(page, "overdue"), count(page, "held")) == (0, 0)
    # Failing, then paused, then the rest by name.
    assert shown(page) == ["job-reports", "job-cleanup", "job-alpha-sync", "job-billing", "job-zeta"]
    assert page.locator("#job-reports .state .failing").count() == 1


def test_the_summary_link_shows_only_the_failing_jobs_and_a_reload_keeps_it(page) -> None:
    page.locator("#sum-failing").click()
    page.wait_for_function("location.hash === '#state=failing'")
    assert shown(page) == ["job-reports"]
    assert page.locator("#shown").inner_text() == "1 of 5 jobs shown"
    page.reload()
    assert shown(page) == ["job-reports"]
    assert page.locator("#state").input_value() == "failing"
    page.locator("#sum-all").click()
    page.wait_for_function("location.hash === '#state=all'")
    assert len(shown(page)) == 5


def test_the_filter_box_and_state_menu_filter_in_place_and_live_in_the_url(page, site) -> None:
    base, _ = site
    page.locator("#state").select_option("failing")
    assert shown(page) == ["job-reports"]
    assert page.evaluate("location.hash") == "#state=failing"
    page.locator("#state").select_option("all")
    page.locator("#filter").fill("bill")
    assert shown(page) == ["job-billing"]
    page.locator("#filter").fill("")
    page.locator("#state").select_option("paused")
    assert shown(page) == ["job-cleanup"]
    page.locator("#filter").fill("p")  # reports, cleanup and alpha-sync by name; only cleanup is paused
    assert shown(page) == ["job-cleanup"]
    page.locator("#state").select_option("failing")
    assert shown(page) == ["job-reports"]
    url = page.url
    assert "q=p" in url and "state=failing" in url
    # A shared link (a new page at that URL) shows the same jobs, the controls set from it.
    other = page.context.new_page()
    other.goto(url)
    assert shown(other) == ["job-reports"]
    assert other.locator("#filter").input_value() == "p"
    other.close()
    page.reload()
    assert shown(page) == ["job-reports"]


def test_the_jobs_view_gives_next_runs_in_the_jobs_zone_and_failures_in_a_row(site) -> None:
    base, _ = site
    jobs = {j["name"]: j for j in httpx.get(base + "/api/v1/jobs", headers=BEARER).json()["jobs"]}
    zeta = jobs["zeta"]
    assert len(zeta["next"]) == len(zeta["next_local"]) == 3
    assert zeta["next"][0].endswith("T21:00:00Z") and zeta["next_local"][0].endswith("T02:30:00+05:30")
    assert (jobs["reports"]["consecutive_failures"], jobs["billing"]["consecutive_failures"]) == (1, 0)


def test_next_runs_are_in_the_jobs_zone_with_utc_on_hover(page) -> None:
    first = page.locator("#job-zeta .next time").first
    assert first.inner_text().endswith("02:30:00+05:30")
    utc = first.get_attribute("datetime")
    assert utc.endswith("T21:00:00Z")
    assert first.get_attribute("title") == f"{utc} (UTC)"


def test_the_failed_run_has_a_retry_button_that_posts_the_reason(page) -> None:
    run = page.locator('#job-reports tr.run[data-fate="failed"]')
    assert run.count() == 1
    assert "disk full" in run.locator(".err").inner_text()  # the app's excerpt, as text
    assert run.locator(".err i").count() == 0
    assert page.locator('#job-billing tr.run[data-fate="ok"] button').count() == 0
    page.locator("#job-reports input.reason").fill("disk cleaned <b>up</b>")
    with page.expect_request(lambda r: r.url.endswith("/retry")) as sent:
        run.locator('button[data-action="retry"]').click()
    request = sent.value
    assert unquote(request.url).endswith("/api/v1/jobs/reports/runs/manual:reports-1/retry")
    assert request.method == "POST" and request.post_data_json == {"reason": "disk cleaned <b>up</b>"}
    answer = request.response()
    if answer is not None and not answer.ok:  # the page tells why (a 2xx reloads it instead)
        text = answer.text().strip()
        try:
            error = json.loads(text)["error"]
        except ValueError:
            error = f"{answer.status} {text}"
        page.wait_for_function("document.getElementById('msg').textContent !== ''")
        assert page.locator("#msg").inner_text() == f"reports manual:reports-1: {error}"
