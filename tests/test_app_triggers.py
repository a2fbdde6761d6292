"""The app's triggers, live (SPEC section 8: refresh now, guard, validate), against a leader
and a standby on a real redis-server, and a real app on 127.0.0.1 that keeps its users'
triggers in a table and serves them at SCHEDULER_JOBS_URL. The sources' own refresh period
is long (1 h), so only a refresh request can make a change visible in time."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.e2e import env_for
from tests.support import Daemon, Receiver, RedisServer, free_port, run_cli, wait_until

CONTROL = "ctl-app-triggers"
NS = "apptrig"
AUTH = {"Authorization": f"Bearer {CONTROL}", "Content-Type": "application/json"}


class App:
    """The app: a table of triggers, served as the jobs document."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.lock = threading.Lock()

    def handle(self, request):
        if request.path == "/internal/cron-jobs":
            with self.lock:
                body = json.dumps({"jobs": list(self.rows.values())}).encode()
            return 200, {"Content-Type": "application/json"}, body
        return 200, {"Content-Type": "application/json"}, b"{}"

    def put(self, *rows: dict) -> None:
        with self.lock:
            for row in rows:
                self.rows[row["name"]] = row

    def replace(self, rows: list[dict]) -> None:
        with self.lock:
            self.rows = {r["name"]: r for r in rows}


@pytest.fixture(scope="module")
def cluster():
    redis = RedisServer()
    app = App()
    app.put({"name": "seed", "schedule": "every 1h", "url": "/seed"})
    receiver = Receiver(app.handle)
    ports = [free_port(), free_port()]
    daemons = []
    try:
        for port in ports:
            env = env_for(redis, receiver, NS, {}, http_port=str(port), http_host="127.0.0.1", control_token=CONTROL,
                          jobs_url="/internal/cron-jobs", jobs_refresh="1h")
            daemons.append(Daemon(env))
            if len(daemons) == 1:
                wait_until(lambda: redis.client().get(f"{{{NS}}}:leader"), 15, message="a leader")
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for url in urls:
            wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, 15, message="the HTTP port")  # noqa: B023
        yield {"redis": redis, "app": app, "receiver": receiver, "leader": urls[0], "standby": urls[1],
               "daemons": daemons, "env": env}
    finally:
        for d in daemons:
            d.close()
        receiver.close()
        redis.close()


def post(url: str, path: str, body: object = None) -> httpx.Response:
    return httpx.post(url + path, headers=AUTH, content=json.dumps({} if body is None else body), timeout=60)


def fires(receiver, path: str) -> list:
    return [r for r in receiver.requests if r.path == path]


def listed(url: str) -> dict:
    return httpx.get(url + "/api/v1/jobs", headers=AUTH, timeout=30).json()


def test_a_row_created_then_refreshed_on_the_standby_fires_at_its_next_slot(cluster):
    app, receiver = cluster["app"], cluster["receiver"]
    app.put({"name": "created", "schedule": "every 1s", "url": "/created"})
    answer = post(cluster["standby"], "/api/v1/sources/refresh")
    assert answer.status_code == 200, answer.text
    (src,) = answer.json()["sources"]
    assert src["source"] == "url" and src["ok"] and src["jobs"] >= 2 and src["changed"] >= 1 and src["held"] is None
    # The leader learns of the request through the store (the sources' own refresh is 1 h);
    # bench/refresh.py measures how soon.
    receiver.wait_for(lambda rs: fires(receiver, "/created"), timeout=10)
    app.replace([r for r in app.rows.values() if r["name"] != "created"])
    post(cluster["standby"], "/api/v1/sources/refresh")


def test_run_now_right_after_creating_a_trigger(cluster):
    app, receiver = cluster["app"], cluster["receiver"]
    app.put({"name": "yearly-report", "schedule": "0 0 1 1 *", "url": "/yearly"})
    answer = post(cluster["standby"], "/api/v1/jobs/yearly-report/trigger", {"id": "run-now-1"})
    assert answer.status_code == 202, answer.text
    receiver.wait_for(lambda rs: fires(receiver, "/yearly"), timeout=15)
    (fired,) = fires(receiver, "/yearly")
    assert fired.header("x-scheduler-trigger") == "run-now-1"
    unknown = post(cluster["standby"], "/api/v1/jobs/never-created/trigger")
    assert unknown.status_code == 404 and "never-created" in unknown.json()["error"]


def test_an_empty_document_is_held_while_jobs_keep_firing_then_accepted(cluster):
    app, receiver = cluster["app"], cluster["receiver"]
    rows = [{"name": f"tenant-{i}", "schedule": "every 1h", "url": f"/t/{i}"} for i in range(11)]
    app.replace([*rows, {"name": "beat", "schedule": "every 1s", "url": "/beat"}])
    post(cluster["standby"], "/api/v1/sources/refresh")
    receiver.wait_for(lambda rs: fires(receiver, "/beat"), timeout=10)

    app.replace([])  # a failed restore: the table is empty
    answer = post(cluster["leader"], "/api/v1/sources/refresh")
    (src,) = answer.json()["sources"]
    assert src["held"] is not None and src["held"]["dropped"] == 12 and src["held"]["jobs"] == 0, src
    wait_until(lambda: all((listed(u)["sources"][0]["held"] or {}).get("dropped") == 12
                           for u in (cluster["leader"], cluster["standby"])), 10, message="both replicas hold")
    seen = len(fires(receiver, "/beat"))
    receiver.wait_for(lambda rs: len(fires(receiver, "/beat")) >= seen + 2, timeout=10)  # still in force
    assert "beat" in {j["name"] for j in listed(cluster["standby"])["jobs"]}
    metrics = httpx.get(cluster["leader"] + "/metrics").text
    assert 'cron_sidecar_jobs_source_held{source="url"} 12.0' in metrics
    assert "jobs source held" in cluster["daemons"][0].output()
    page = httpx.get(cluster["leader"] + "/", headers=AUTH, timeout=30).text
    assert "is held: its last read would remove 12 of 12 jobs" in page
    ready = httpx.get(cluster["standby"] + "/readyz", timeout=10)
    assert ready.status_code == 200 and "jobs url held: its last read would remove 12 jobs" in ready.text

    wait_until(lambda: "HELD" in run_cli(["status"], cluster["env"]).stdout, 10, message="status shows the hold")
    report = json.loads(run_cli(["status", "--json"], cluster["env"]).stdout)
    assert {r["sources"][0]["held"]["dropped"] for r in report["sources"]} == {12} and len(report["sources"]) == 2

    # The operator says it is meant (the CLI, through the store): every replica applies it.
    done = run_cli(["sources", "accept"], cluster["env"])
    assert done.returncode == 0, done.stderr
    wait_until(lambda: all("beat" not in {j["name"] for j in listed(u)["jobs"]}
                           for u in (cluster["leader"], cluster["standby"])), 10, message="the read applied")
    settled = len(fires(receiver, "/beat"))
    wait_until(lambda: listed(cluster["leader"])["sources"][0]["held"] is None, 5, message="no hold left")
    assert len(fires(receiver, "/beat")) <= settled + 1
    assert "held" not in httpx.get(cluster["leader"] + "/readyz", timeout=10).text
    wait_until(lambda: "HELD" not in run_cli(["status"], cluster["env"]).stdout, 10, message="status without the hold")


def test_validate_answers_per_job_and_changes_nothing(cluster):
    doc = {"jobs": [
        {"name": "digest", "schedule": "0 7 * * 1-5", "url": "/digest", "timezone": "Europe/Berlin"},
        {"name": "Bad Name", "schedule": "every 1m", "url": "/x"},
        {"name": "bad-cron", "schedule": "61 * * * *", "url": "/x"},
        {"name": "elsewhere", "schedule": "every 1m", "url": "http://169.254.169.254/x"},
        {"name": "digest", "schedule": "every 1m", "url": "/again"},
    ]}
    before = listed(cluster["standby"])
    answer = post(cluster["standby"], "/api/v1/validate", doc)
    assert answer.status_code == 200, answer.text
    jobs = answer.json()["jobs"]
    assert [j["ok"] for j in jobs] == [True, False, False, False, False]
    assert len(jobs[0]["next"]) == 3
    first = jobs[0]["next"][0]
    assert first["utc"].endswith("Z") and first["local"][11:16] == "07:00" and first["local"][-6:] in ("+01:00", "+02:00")
    assert "name" in jobs[1]["problem"] and "minute" in jobs[2]["problem"] and "not the origin" in jobs[3]["problem"]
    assert "defined again" in jobs[4]["problem"]
    assert listed(cluster["standby"])["jobs"] == before["jobs"]
    assert post(cluster["standby"], "/api/v1/validate", {"nope": 1}).status_code == 400


def test_check_document_gives_the_same_answer(cluster, tmp_path):
    path = tmp_path / "doc.yaml"
    path.write_text("jobs:\n  - {name: ok-job, schedule: every 5m, url: /x}\n  - {name: bad, schedule: nope, url: /x}\n")
    done = run_cli(["check", "--document", str(path), "--json"], cluster["env"])
    assert done.returncode == 78, done.stderr
    jobs = json.loads(done.stdout)["jobs"]
    assert [(j["name"], j["ok"]) for j in jobs] == [("ok-job", True), ("bad", False)]


@pytest.mark.parametrize("good, new, max_drop, held", [
    (20, 9, 0.5, 11),     # more than half, and at least 10
    (20, 10, 0.5, None),  # exactly half: an edit
    (12, 3, 0.5, None),   # 9 of 12 is over half, but under 10: an edit
    (3, 0, 0.5, 3),       # every one of them, however few
    (30, 0, 1.0, None),   # 100% turns the guard off
    (0, 0, 0.5, None),    # nothing in force: nothing to guard
])
def test_the_guard_holds_a_read_that_removes_too_many(good, new, max_drop, held):
    from scheduler.sources.document import validate
    from scheduler.sources.guard import dropped_if_held
    from tests.test_sources import settings

    s = settings()
    before = validate({"jobs": [{"name": f"j-{i}", "schedule": "every 1m", "url": "/x"} for i in range(good)]}, "url", s)
    after = validate({"jobs": [{"name": f"j-{i}", "schedule": "every 1m", "url": "/x"} for i in range(new)]}, "url", s,
                     previous=before)
    assert dropped_if_held(before, after, max_drop) == held


def test_readyz_says_of_a_source_not_read_yet_or_unreadable_and_stays_ready():
    from scheduler.observe import Health

    health = Health()
    health.store_ok = True
    states = [{"source": "url", "ok": None, "held": None}]
    health.sources = lambda: states
    assert health.ready() == (True, "ok; jobs url not read yet")
    states[0]["ok"] = False
    assert health.ready() == (True, "ok; jobs url unreadable (its last good set in force)")
    states[0]["ok"] = True
    assert health.ready() == (True, "ok")
