"""The control API and the status page, against real daemons, a real redis-server and a
real app on 127.0.0.1: auth on every route, the CSRF rules, trigger ids, the standby, the
app's error excerpt from end to end, and hostile values shown as text."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.e2e import env_for, log_events, standalone_env
from tests.support import Daemon, Receiver, RedisServer, free_port, run_cli, wait_until

CONTROL = "ctl-4f0a-api"
NS = "apitest"
# What the app answers for the job `broken`: the kind of text an app puts in a 500, with
# markup and quotes that the page must show as text.
APP_ERROR = 'sync failed: upstream said relation "sessions_v2" does not exist <script>alert(\'x\')</script>'
HOSTILE_URL = "/hook?q=<script>alert(\"u\")</script>&a='b'"


def bearer(token: str = CONTROL) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(password: str = CONTROL, user: str = "ops") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


JSON = {"Content-Type": "application/json"}


def app(request):
    if request.path.startswith("/broken"):
        return 500, {"Content-Type": "text/plain; charset=utf-8"}, APP_ERROR.encode()
    return 200, {"Content-Type": "application/json"}, b"{}"


@pytest.fixture(scope="module")
def cluster():
    """A leader and a standby sharing one Redis, each with the control API on its own port."""
    redis = RedisServer()
    receiver = Receiver(app)
    jobs = {name: {"SCHEDULE": "every 1h", "URL": url, "RETRIES": "0"}
            for name, url in (("broken", "/broken"), ("fine", "/fine"), ("hostile", HOSTILE_URL))}
    ports = [free_port(), free_port()]
    daemons = []
    try:
        for port in ports:
            env = env_for(redis, receiver, NS, jobs, http_port=str(port), http_host="127.0.0.1",
                          control_token=CONTROL)
            daemons.append(Daemon(env))
            if len(daemons) == 1:
                wait_until(lambda: redis.client().get(f"{{{NS}}}:leader"), 15, message="a leader")
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for url in urls:
            wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, 15, message="the HTTP port")  # noqa: B023
        leader_id = redis.client().get(f"{{{NS}}}:leader")
        yield {"redis": redis, "receiver": receiver, "leader": urls[0], "standby": urls[1], "daemons": daemons,
               "leader_id": leader_id, "env": env}
    finally:
        for d in daemons:
            d.close()
        receiver.close()
        redis.close()


def job(url: str, name: str) -> dict:
    r = httpx.get(f"{url}/api/v1/jobs/{name}", headers=bearer())
    assert r.status_code == 200, r.text
    return r.json()


def trigger(url: str, name: str, body: object = None, **kw) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/jobs/{name}/trigger", headers={**bearer(), **JSON},
                      content=json.dumps({} if body is None else body), **kw)


ROUTES = [
    ("GET", "/", None),
    ("GET", "/api/v1/jobs", None),
    ("GET", "/api/v1/jobs/fine", None),
    ("POST", "/api/v1/jobs/fine/trigger", "{}"),
    ("POST", "/api/v1/jobs/fine/pause", "{}"),
    ("POST", "/api/v1/jobs/fine/resume", "{}"),
]


@pytest.mark.parametrize("method,path,body", ROUTES)
@pytest.mark.parametrize("auth", ["bearer", "basic", "wrong bearer", "wrong basic", "missing", "other scheme"])
def test_every_route_needs_the_control_token(cluster, method, path, body, auth) -> None:
    headers = {
        "bearer": bearer(), "basic": basic(), "wrong bearer": bearer(CONTROL + "x"), "wrong basic": basic("nope"),
        "missing": {}, "other scheme": {"Authorization": f"Token {CONTROL}"},
    }[auth]
    r = httpx.request(method, cluster["standby"] + path, headers={**headers, **JSON}, content=body)
    if auth in ("bearer", "basic"):
        assert r.status_code in (200, 202), r.text
        if path.endswith("pause"):
            httpx.post(cluster["standby"] + "/api/v1/jobs/fine/resume", headers={**bearer(), **JSON}, content="{}")
        return
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Basic realm="cron-sidecar"')
    assert r.json() == {"error": "unauthorized"}
    assert "fine" not in r.text
    assert cluster["redis"].client().sismember(f"{{{NS}}}:paused", "fine") == 0


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", None])
def test_a_cross_site_form_post_changes_nothing(cluster, ctype) -> None:
    # A browser sends the page's Basic credentials with any form post to this origin, so
    # the credentials alone must not be enough: only application/json changes state.
    headers = basic() | ({"Content-Type": ctype} if ctype else {})
    before = cluster["receiver"].requests
    for action in ("pause", "trigger"):
        r = httpx.post(f"{cluster['leader']}/api/v1/jobs/fine/{action}", headers=headers, content="id=csrf-1")
        assert r.status_code == 415, r.text
        assert "error" in r.json()
        assert not any(k.lower().startswith("access-control-") for k in r.headers)
    assert cluster["redis"].client().sismember(f"{{{NS}}}:paused", "fine") == 0
    assert cluster["redis"].client().llen(f"{{{NS}}}:trigger") == 0
    assert len(cluster["receiver"].requests) == len(before)


def test_no_cors_ever_and_state_changes_only_by_post(cluster) -> None:
    url = cluster["leader"] + "/api/v1/jobs/fine/pause"
    pre = httpx.options(url, headers={**basic(), "Origin": "https://evil.example",
                                     "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 405
    got = httpx.get(url, headers=basic())
    assert got.status_code == 405
    listing = httpx.get(cluster["leader"] + "/api/v1/jobs", headers={**basic(), "Origin": "https://evil.example"})
    for r in (pre, got, listing):
        assert not any(k.lower().startswith("access-control-") for k in r.headers)
    assert cluster["redis"].client().sismember(f"{{{NS}}}:paused", "fine") == 0


@pytest.mark.parametrize("body,why", [
    (b"{not json", "not valid JSON"),
    (b"[1]", "JSON object"),
    (b'{"id": "has space"}', "not allowed"),
    (b'{"id": ""}', "must not be empty"),
    (json.dumps({"id": "x" * 129}).encode(), "at most 128"),
    (json.dumps({"id": "caf\u00e9"}).encode(), "not allowed"),
    (b'{"id": "a:b"}', "not allowed"),
    (b'{"id": 7}', "string"),
    (b'{"ids": "a"}', "unknown field"),
])
def test_bad_trigger_bodies_get_400_and_queue_nothing(cluster, body, why) -> None:
    r = httpx.post(cluster["leader"] + "/api/v1/jobs/fine/trigger", headers={**bearer(), **JSON}, content=body)
    assert r.status_code == 400, r.text
    assert why in r.json()["error"]
    assert cluster["redis"].client().llen(f"{{{NS}}}:trigger") == 0


def test_unknown_job_404_and_oversized_body_413(cluster) -> None:
    for method, path in (("GET", "/api/v1/jobs/nope"), ("POST", "/api/v1/jobs/nope/trigger"),
                         ("POST", "/api/v1/jobs/nope/pause")):
        r = httpx.request(method, cluster["leader"] + path, headers={**bearer(), **JSON},
                          content="{}" if method == "POST" else None)
        assert r.status_code == 404 and "nope" in r.json()["error"]
    big = json.dumps({"id": "a", "pad": "x" * 10_000})
    r = httpx.post(cluster["leader"] + "/api/v1/jobs/fine/trigger", headers={**bearer(), **JSON}, content=big)
    assert r.status_code == 413


def test_the_same_trigger_id_fires_once(cluster) -> None:
    receiver = cluster["receiver"]
    first = trigger(cluster["leader"], "fine", {"id": "deploy-77"})
    again = trigger(cluster["standby"], "fine", {"id": "deploy-77"})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"] == "deploy-77"

    def fired(rid: str) -> list:
        return [r for r in receiver.requests if f"@manual:{rid}" in (r.header("idempotency-key") or "")]

    wait_until(lambda: fired("deploy-77"), 15, message="the trigger fired")
    wait_until(lambda: any(h.get("trigger") == "deploy-77" for h in job(cluster["leader"], "fine")["history"]), 15)
    late = trigger(cluster["leader"], "fine", {"id": "deploy-77"})
    assert late.status_code == 202 and late.json() == {"id": "deploy-77", "result": "taken"}
    # A later trigger fires after it: once it has, the leader has seen the repeated id too.
    trigger(cluster["leader"], "fine", {"id": "deploy-78"})
    wait_until(lambda: fired("deploy-78"), 15, message="the next trigger fired")
    assert len(fired("deploy-77")) == 1


def test_the_app_error_excerpt_reaches_log_status_history_api_and_page(cluster) -> None:
    r = trigger(cluster["standby"], "broken", {"id": "excerpt-1"})
    assert r.status_code == 202
    entry = wait_until(lambda: [h for h in job(cluster["standby"], "broken")["history"] if h["trigger"] == "excerpt-1"],
                       15, message="the failed fire in the history")[0]
    assert entry["outcome"] == "failed" and entry["http_status"] == 500
    assert entry["excerpt"] == APP_ERROR and entry["slot"] == "manual:excerpt-1"
    view = job(cluster["leader"], "broken")
    assert view["last"]["excerpt"] == APP_ERROR and view["last"]["http_status"] == 500
    # The leader's fired log line.
    leader = next(d for d in cluster["daemons"] if log_events(d, "fired"))
    assert any(e.get("excerpt") == APP_ERROR for e in log_events(leader, "fired"))
    # The command line: status and history.
    status = json.loads(run_cli(["status", "--json"], cluster["env"]).stdout)
    assert next(j for j in status["jobs"] if j["name"] == "broken")["last_excerpt"] == APP_ERROR
    hist = run_cli(["history", "broken", "--json"], cluster["env"])
    assert hist.returncode == 0, hist.stderr
    assert json.loads(hist.stdout)[0]["excerpt"] == APP_ERROR
    text = run_cli(["history", "broken"], cluster["env"]).stdout
    assert "the app said: " + APP_ERROR in text and "manual:excerpt-1" in text
    # The page shows it as text.
    page = httpx.get(cluster["standby"] + "/", headers=basic()).text
    assert "sessions_v2" in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script>alert" not in page


def test_hostile_urls_and_quotes_are_shown_as_text(cluster) -> None:
    r = httpx.get(cluster["leader"] + "/", headers=basic())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<script>alert(\"u\")" not in r.text
    assert "q=&lt;script&gt;alert(&quot;u&quot;)&lt;/script&gt;&amp;a=&#x27;b&#x27;" in r.text
    # The one script on the page is ours, allowed by the response's nonce.
    assert r.text.count("<script") == 1
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'nonce-" in csp
    assert '<meta name="viewport"' in r.text
    # The API gives the URL back as it is configured (JSON, not HTML).
    assert job(cluster["leader"], "hostile")["url"].endswith(HOSTILE_URL)


def test_the_standby_answers_from_the_store(cluster) -> None:
    listing = httpx.get(cluster["standby"] + "/api/v1/jobs", headers=bearer()).json()
    assert listing["leader"]["replica"] == cluster["leader_id"]
    assert isinstance(listing["leader"]["epoch"], int)
    assert listing["rejected"] == []
    names = [j["name"] for j in listing["jobs"]]
    assert names == ["broken", "fine", "hostile"]
    fine = next(j for j in listing["jobs"] if j["name"] == "fine")
    assert set(fine) >= {"name", "source", "schedule", "timezone", "method", "url", "state", "next", "last", "overdue"}
    assert fine["source"] == "env" and fine["state"] == "active" and len(fine["next"]) == 3
    r = httpx.post(cluster["standby"] + "/api/v1/jobs/hostile/pause", headers={**bearer(), **JSON}, content="{}")
    assert r.status_code == 200 and r.json()["state"] == "paused" and r.json()["name"] == "hostile"
    assert cluster["redis"].client().sismember(f"{{{NS}}}:paused", "hostile") == 1
    assert job(cluster["leader"], "hostile")["state"] == "paused"
    r = httpx.post(cluster["standby"] + "/api/v1/jobs/hostile/resume", headers={**bearer(), **JSON}, content="{}")
    assert r.status_code == 200 and r.json()["state"] == "active"


def test_without_a_control_token_the_api_and_page_are_absent(tmp_path) -> None:
    port = free_port()
    with Receiver() as receiver:
        env = standalone_env(receiver, tmp_path / "state.db", {"one": {"SCHEDULE": "every 1h", "URL": "/one"}},
                             http_port=str(port), http_host="127.0.0.1")
        with Daemon(env):
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: httpx.get(base + "/healthz").status_code == 200, 15, message="the HTTP port")
            for method, path, _ in ROUTES:
                r = httpx.request(method, base + path, headers={**bearer(), **JSON}, content="{}")
                assert r.status_code == 404, (path, r.status_code)


def test_a_standalone_daemon_serves_the_api_from_sqlite(tmp_path) -> None:
    port = free_port()
    with Receiver(app) as receiver:
        env = standalone_env(receiver, tmp_path / "state.db",
                             {"broken": {"SCHEDULE": "every 1h", "URL": "/broken", "RETRIES": "0"}},
                             http_port=str(port), http_host="127.0.0.1", control_token=CONTROL)
        with Daemon(env):
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: httpx.get(base + "/healthz").status_code == 200, 15, message="the HTTP port")
            assert trigger(base, "broken", {"id": "one"}).status_code == 202
            assert trigger(base, "broken", {"id": "two"}).json()["id"] in ("one", "two")
            hist = wait_until(lambda: job(base, "broken")["history"], 15, message="history in SQLite")
            assert hist[0]["excerpt"] == APP_ERROR and hist[0]["fencing_token"] > 0
