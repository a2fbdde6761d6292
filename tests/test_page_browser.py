"""The status page in a real browser: Debian's headless Chromium, driven by Playwright (which
never downloads a browser here). A page load with Basic auth, a press of Pause, and the
job paused in the store; the screenshot on docs/operations.md is taken here."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.e2e import standalone_env
from tests.support import REPO_ROOT, Daemon, Receiver, free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "ctl-browser-81c2"
# The screenshot of docs/operations.md is refreshed only when asked: UPDATE_SCREENSHOT=1 uv run pytest ...
SCREENSHOT = REPO_ROOT / "docs" / "status-page.png"

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} missing (apt-get install chromium)")


def app(request):
    if request.path.startswith("/reports"):
        return 500, {"Content-Type": "text/plain"}, b'relation "sessions_v2" does not exist <b>bold?</b>'
    return 200, {}, b"{}"


def paused(state: Path) -> set[str]:
    db = sqlite3.connect(state)
    try:
        return {name for (name,) in db.execute("SELECT name FROM paused")}
    finally:
        db.close()


def test_page_loads_with_basic_auth_and_pause_pauses_the_job(tmp_path) -> None:
    port, state = free_port(), tmp_path / "state.db"
    jobs = {
        "nightly-sync": {"SCHEDULE": "30 2 * * *", "TIMEZONE": "Europe/Berlin", "URL": "/sync"},
        "reports": {"SCHEDULE": "every 1h", "URL": "/reports?format=<pdf>", "RETRIES": "0"},
        "heartbeat": {"SCHEDULE": "every 1m", "URL": "/beat"},
    }
    with Receiver(app) as receiver:
        env = standalone_env(receiver, state, jobs, http_port=str(port), http_host="127.0.0.1", control_token=TOKEN)
        with Daemon(env):
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: httpx.get(base + "/healthz").status_code == 200, 15, message="the HTTP port")
            auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            httpx.post(base + "/api/v1/jobs/reports/trigger", headers=auth, content="{}")
            wait_until(lambda: httpx.get(base + "/api/v1/jobs/reports", headers=auth).json()["history"], 15)
            with playwright.sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    context = browser.new_context(http_credentials={"username": "ops", "password": TOKEN},
                                                  viewport={"width": 420, "height": 900})
                    page = context.new_page()
                    errors: list[str] = []
                    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                    page.goto(base + "/")
                    assert "epoch" in page.locator("#leader").inner_text()
                    card = page.locator("#job-reports")
                    assert "sessions_v2" in card.locator(".excerpt").inner_text()
                    assert "<b>bold?</b>" in card.locator(".excerpt").inner_text()  # shown as text
                    assert card.locator(".excerpt b").count() == 0
                    card.locator("summary").click()
                    shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") else tmp_path / "status-page.png"
                    page.screenshot(path=str(shot), full_page=True)
                    assert shot.stat().st_size > 10_000
                    page.locator('#job-nightly-sync button[data-action="pause"]').click()
                    wait_until(lambda: "nightly-sync" in paused(state), 10, message="the job paused in the store")
                    page.wait_for_load_state()
                    page.locator("#job-nightly-sync .state .paused").wait_for(timeout=10_000)
                    # Only the buttons that apply: a paused job is resumed, not paused again.
                    assert page.locator('#job-nightly-sync button[data-action="pause"]').count() == 0
                    assert page.locator('#job-nightly-sync button[data-action="resume"]').count() == 1
                    assert page.locator("#msg").inner_text() == ""
                    assert errors == []
                finally:
                    browser.close()
