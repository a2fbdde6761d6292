"""Audit and roles (SPEC section 8), against real daemons on 127.0.0.1 with a real redis-server
or a real SQLite file: named tokens with a role, a viewer refused every POST and allowed every
GET, and each state-changing request of the API and the CLI recorded with its token's name
(or the OS user) and its reason, read back through the API, the CLI and the page."""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path

import httpx
import pytest

from scheduler.config import loader
from scheduler.config.tokens import all_tokens
from scheduler.control.api import ControlApi
from tests.e2e import env_for, log_events, standalone_env
from tests.support import Daemon, Receiver, RedisServer, free_port, run_cli, wait_until

NS = "audittest"
SINGLE = "ctl-single-7d21"
OPERATOR = "op-secret-5c9e"
VIEWER = "view-secret-0b44"
TOKENS = f"alice:operator:{OPERATOR}, watcher:viewer:{VIEWER}"
JSON = {"Content-Type": "application/json"}
JOBS = {"fine": {"SCHEDULE": "every 1h", "URL": "/fine"}, "other": {"SCHEDULE": "every 1h", "URL": "/other"}}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def daemon():
    redis = RedisServer()
    receiver = Receiver()
    port = free_port()
    env = env_for(redis, receiver, NS, JOBS, http_port=str(port), http_host="127.0.0.1",
                  control_token=SINGLE, control_tokens=TOKENS)
    d = Daemon(env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), 15, message="the HTTP port")
        yield {"url": url, "redis": redis, "daemon": d, "env": env}
    finally:
        d.close()
        receiver.close()
        redis.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def post(url: str, path: str, token: str, body: object = None) -> httpx.Response:
    return httpx.post(url + path, headers={**auth(token), **JSON}, content=json.dumps({} if body is None else body))


def audit(url: str, token: str = VIEWER, **query: object) -> dict:
    r = httpx.get(url + "/api/v1/audit", headers=auth(token), params=query)
    assert r.status_code == 200, r.text
    return r.json()


def post_routes() -> list[str]:
    """Every POST route the API has, from its own table: a route added later is checked too."""
    settings = loader.load({"SCHEDULER_JOB_FINE_SCHEDULE": "every 1h", "SCHEDULER_JOB_FINE_URL": "/fine"})
    api = ControlApi(settings, None, None, all_tokens("t", ()))  # type: ignore[arg-type]  # routes only
    paths = [path for method, path, _, _ in api.routes() if method == "POST"]
    # Any value does for a parameter: the role is checked before the route's handler runs.
    return [re.sub(r"\{[^}]*\}", lambda m: "fine" if m.group() == "{name}" else "2026-01-01T03:00:00Z", path)
            for path in paths]


@pytest.mark.parametrize("path", post_routes())
def test_a_viewer_is_refused_every_post_with_a_403_and_nothing_changes(daemon, path) -> None:
    before = audit(daemon["url"])["entries"]
    r = post(daemon["url"], path, VIEWER, {"jobs": []} if path.endswith("validate") else {})
    assert r.status_code == 403, r.text
    assert "viewer" in r.json()["error"] and "'watcher'" in r.json()["error"] and VIEWER not in r.text
    assert daemon["redis"].client().smembers(f"{{{NS}}}:paused") == set()
    assert daemon["redis"].client().llen(f"{{{NS}}}:trigger") == 0
    assert audit(daemon["url"])["entries"] == before  # a refusal is no change (and a viewer cannot flood the log)


@pytest.mark.parametrize("path", [p for p in post_routes() if not p.endswith("/validate")])
def test_every_post_route_but_validate_is_recorded_with_who_and_why(daemon, path) -> None:
    r = post(daemon["url"], path, OPERATOR, {"reason": f"checking {path}"})
    if path.endswith("/pause"):
        assert post(daemon["url"], path.replace("/pause", "/resume"), OPERATOR).status_code == 200
    entries = audit(daemon["url"], limit=5)["entries"]
    mine = [e for e in entries if e.get("reason") == f"checking {path}"]
    assert len(mine) == 1, entries
    assert (mine[0]["who"], mine[0]["method"], mine[0]["what"], mine[0]["status"]) == ("alice", "POST", path, r.status_code)


def test_validate_changes_nothing_and_is_not_recorded(daemon) -> None:
    before = audit(daemon["url"])["entries"]
    assert post(daemon["url"], "/api/v1/validate", OPERATOR, {"jobs": []}).status_code == 200
    assert audit(daemon["url"])["entries"] == before


@pytest.mark.parametrize("path", ["/", "/api/v1/jobs", "/api/v1/jobs/fine", "/api/v1/audit"])
def test_a_viewer_may_read_every_get_route(daemon, path) -> None:
    assert httpx.get(daemon["url"] + path, headers=auth(VIEWER)).status_code == 200


def test_a_viewer_sees_the_page_without_buttons_and_an_operator_with_them(daemon) -> None:
    viewer = httpx.get(daemon["url"] + "/", headers=auth(VIEWER)).text
    assert "<button" not in viewer and "read-only" in viewer and "watcher" in viewer
    operator = httpx.get(daemon["url"] + "/", headers=auth(OPERATOR)).text
    assert 'data-action="pause"' in operator and "read-only" not in operator


def test_a_wrong_token_is_still_401(daemon) -> None:
    r = httpx.get(daemon["url"] + "/api/v1/audit", headers=auth(VIEWER + "x"))
    assert r.status_code == 401 and r.json() == {"error": "unauthorized"}


def test_an_operators_pause_is_recorded_with_its_name_and_reason_in_the_api_cli_and_page(daemon) -> None:
    url = daemon["url"]
    why = "deploy 4.2\x1b[31m: hold the nightly sync"
    r = post(url, "/api/v1/jobs/fine/pause", OPERATOR, {"reason": why})
    assert r.status_code == 200, r.text
    try:
        got = audit(url, limit=1)["entries"][0]
        assert got["who"] == "alice" and got["method"] == "POST" and got["what"] == "/api/v1/jobs/fine/pause"
        assert got["job"] == "fine" and got["status"] == 200
        assert got["reason"] == "deploy 4.2\\x1b[31m: hold the nightly sync"  # the escape character shown, not sent
        assert got["at"].endswith("Z") and isinstance(got["id"], int)
        cli = run_cli(["audit", "--json", "--limit", "1"], daemon["env"])
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout) == [got]
        text = run_cli(["audit"], daemon["env"]).stdout
        assert "alice" in text and "/api/v1/jobs/fine/pause" in text and "hold the nightly sync" in text
        page = httpx.get(url + "/", headers=auth(VIEWER)).text
        assert 'id="audit"' in page and "hold the nightly sync" in page
    finally:
        assert post(url, "/api/v1/jobs/fine/resume", SINGLE).status_code == 200
    resumed = audit(url, limit=1)["entries"][0]
    assert resumed["who"] == "control-token" and resumed["what"] == "/api/v1/jobs/fine/resume" and "reason" not in resumed


def test_a_cli_pause_is_recorded_as_the_os_user_with_its_reason(daemon) -> None:
    r = run_cli(["pause", "other", "--reason", "disk full on the app"], daemon["env"])
    assert r.returncode == 0, r.stderr
    try:
        got = audit(daemon["url"], limit=1)["entries"][0]
        assert got["who"] == f"cli:{getpass.getuser()}" and got["method"] == "CLI" and got["what"] == "pause"
        assert got["job"] == "other" and got["status"] == 0 and got["reason"] == "disk full on the app"
    finally:
        assert run_cli(["resume", "other"], daemon["env"]).returncode == 0


def test_a_failed_request_is_recorded_with_its_status_and_a_bad_reason_refused(daemon) -> None:
    url = daemon["url"]
    assert post(url, "/api/v1/jobs/nope/pause", OPERATOR, {"reason": "typo"}).status_code == 404
    got = audit(url, limit=1)["entries"][0]
    assert (got["what"], got["status"], got["reason"]) == ("/api/v1/jobs/nope/pause", 404, "typo")
    for reason, said in (("x" * 501, "at most 500"), (7, "must be a string")):
        r = post(url, "/api/v1/jobs/fine/pause", OPERATOR, {"reason": reason})
        assert r.status_code == 400 and said in r.json()["error"], r.text
    assert daemon["redis"].client().smembers(f"{{{NS}}}:paused") == set()
    r = run_cli(["pause", "fine", "--reason", "x" * 501], daemon["env"])
    assert r.returncode == 2 and "at most 500" in r.stderr


def test_the_audit_log_pages_newest_first(daemon) -> None:
    url = daemon["url"]
    for n in range(3):
        assert post(url, "/api/v1/sources/refresh", OPERATOR, {"reason": f"page {n}"}).status_code == 200
    first = audit(url, limit=2)
    assert [e["reason"] for e in first["entries"]] == ["page 2", "page 1"]
    second = audit(url, limit=2, before=first["next"])
    assert second["entries"][0]["reason"] == "page 0" and second["entries"][0]["id"] < first["entries"][1]["id"]
    for query in ({"limit": "0"}, {"limit": "1001"}, {"before": "x"}, {"limit": "²"}):
        r = httpx.get(url + "/api/v1/audit", headers=auth(VIEWER), params=query)
        assert r.status_code == 400 and "must be a whole number" in r.json()["error"], (query, r.text)


def test_an_audit_write_that_fails_never_fails_the_request(daemon) -> None:
    url = daemon["url"]
    daemon["redis"].client().set(f"{{{NS}}}:audit", "a stray string where the log's list belongs")
    r = post(url, "/api/v1/jobs/fine/pause", OPERATOR, {"reason": "while the log is broken"})
    try:
        assert r.status_code == 200, r.text
        assert daemon["redis"].client().sismember(f"{{{NS}}}:paused", "fine")
        warned = log_events(daemon["daemon"], "could not write the audit entry")
        assert warned and warned[-1]["entry"]["reason"] == "while the log is broken"
    finally:
        assert post(url, "/api/v1/jobs/fine/resume", OPERATOR, {"reason": "log mended"}).status_code == 200
    # The key of the wrong type was set aside by the failed write: the next one is recorded.
    assert audit(url, limit=1)["entries"][0]["reason"] == "log mended"


def test_standalone_records_the_api_and_the_cli_in_the_state_file(tmp_path: Path) -> None:
    port = free_port()
    receiver = Receiver()
    env = standalone_env(receiver, tmp_path / "state.db", JOBS, http_port=str(port), http_host="127.0.0.1",
                         control_tokens=TOKENS)
    d = Daemon(env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), 15, message="the HTTP port")
        assert post(url, "/api/v1/jobs/fine/trigger", VIEWER).status_code == 403
        assert post(url, "/api/v1/jobs/fine/trigger", OPERATOR, {"id": "audit-1", "reason": "rerun"}).status_code == 202
        assert run_cli(["sources", "refresh", "--reason", "new jobs"], env, cwd=tmp_path).returncode == 0
        cli = run_cli(["audit", "--json"], env, cwd=tmp_path)
        assert cli.returncode == 0, cli.stderr
        got = [(e["who"], e["what"], e["job"], e["status"], e["reason"]) for e in json.loads(cli.stdout)]
        assert got == [(f"cli:{getpass.getuser()}", "sources refresh", None, 0, "new jobs"),
                       ("alice", "/api/v1/jobs/fine/trigger", "fine", 202, "rerun")]
        assert [e["reason"] for e in audit(url)["entries"]] == ["new jobs", "rerun"]
    finally:
        d.close()
        receiver.close()


# -- the configuration ----------------------------------------------------------------

CONFIG_JOB = {"SCHEDULER_JOB_FINE_SCHEDULE": "every 1h", "SCHEDULER_JOB_FINE_URL": "http://127.0.0.1:9/fine"}


@pytest.mark.parametrize(("tokens", "said"), [
    ("alice:admin:s3cret-1", "entry 1: the role must be operator or viewer"),
    ("alice:s3cret-1:viewer", "entry 1: the role must be operator or viewer"),  # swapped: the secret not shown
    ("alices3cret-1", "entry 1 is not name:role:secret"),
    ("alice:viewer:", "entry 1: the secret is empty"),
    ("al ice:viewer:s3cret-1", "entry 1: the name must be 1-64 of A-Z a-z 0-9 . _ -"),
    ("alice:viewer:s3cret-1,alice:operator:s3cret-2", "the name 'alice' is given to 2 tokens"),
    ("alice:viewer:s3cret-1,bob:operator:s3cret-1", "two entries have the same secret"),
    ("control-token:viewer:s3cret-2", "the name 'control-token' is SCHEDULER_CONTROL_TOKEN's"),
    ("bob:viewer:s3cret-1", "an entry has the same secret as SCHEDULER_CONTROL_TOKEN"),
], ids=["role", "swapped", "no-colons", "empty-secret", "name", "same-name", "same-secret", "single-name",
        "single-secret"])
def test_a_bad_token_list_is_a_config_error_naming_the_variable_and_never_the_secret(tmp_path, tokens, said) -> None:
    env = {**CONFIG_JOB, "SCHEDULER_CONTROL_TOKEN": "s3cret-1", "SCHEDULER_CONTROL_TOKENS": tokens}
    r = run_cli(["check"], env, cwd=tmp_path)
    assert r.returncode == 78, r.stderr
    assert "SCHEDULER_CONTROL_TOKENS" in r.stderr and said in r.stderr, r.stderr
    assert "s3cret" not in r.stderr + r.stdout


def test_the_token_list_file_is_read_one_per_line_and_named_in_its_errors(tmp_path) -> None:
    good, bad = tmp_path / "tokens", tmp_path / "bad"
    good.write_text(f"alice:operator:{OPERATOR}\nwatcher:viewer:{VIEWER}\n")
    bad.write_text("alice:root:s3cret-9\n")
    r = run_cli(["check"], {**CONFIG_JOB, "SCHEDULER_CONTROL_TOKENS_FILE": str(good)}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_cli(["check"], {**CONFIG_JOB, "SCHEDULER_CONTROL_TOKENS_FILE": str(bad)}, cwd=tmp_path)
    assert r.returncode == 78 and "SCHEDULER_CONTROL_TOKENS_FILE: the file's content: entry 1" in r.stderr, r.stderr
    assert "s3cret" not in r.stderr


def test_named_tokens_are_redacted_from_the_log_like_every_secret() -> None:
    settings = loader.load({**CONFIG_JOB, "SCHEDULER_CONTROL_TOKENS": TOKENS})
    assert {OPERATOR, VIEWER} <= set(loader.secret_values(settings))
    assert OPERATOR not in repr(settings) and VIEWER not in repr(settings)
