"""The ledger from the outside (SPEC 8): a daemon on a real redis-server fires at a real app
on 127.0.0.1 whose answers take longer than the job's period, so CONCURRENCY=forbid skips
slots; the API and the CLI list them by page, look them up by slot and by manual id, and
explain why a slot never ran, in one sentence."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from scheduler.schedule import slots as sched
from tests.e2e import env_for, standalone_env
from tests.support import Daemon, Receiver, RedisServer, free_port, run_cli, wait_until

CONTROL = "ctl-ledger-7c2e"
NS = "ledgertest"


def app(request):
    if request.path.startswith("/slow"):
        time.sleep(2.5)
    return 200, {"Content-Type": "application/json"}, b"{}"


@pytest.fixture(scope="module")
def daemon():
    redis = RedisServer()
    receiver = Receiver(app)
    port = free_port()
    jobs = {"slow": {"SCHEDULE": "every 1s", "URL": "/slow", "CONCURRENCY": "forbid", "RETRIES": "0"},
            "quick": {"SCHEDULE": "every 1h", "URL": "/quick", "RETRIES": "0"}}
    env = env_for(redis, receiver, NS, jobs, http_port=str(port), http_host="127.0.0.1", control_token=CONTROL)
    d = Daemon(env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ok(url + "/healthz"), 15, message="the HTTP port")
        yield {"url": url, "env": env, "redis": redis, "daemon": d}
    finally:
        d.close()
        receiver.close()
        redis.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def get(url: str, path: str, **params) -> httpx.Response:
    return httpx.get(url + path, params=params, headers={"Authorization": f"Bearer {CONTROL}"}, timeout=10)


def test_a_skipped_slot_is_listed_and_explained(daemon) -> None:
    url = daemon["url"]

    def skipped():
        runs = get(url, "/api/v1/jobs/slow/runs", limit="100").json()["runs"]
        return [r for r in runs if r["fate"] == "skipped"]

    found = wait_until(skipped, 20, message="a slot skipped for overlap")
    entry = found[-1]
    assert entry["reason"] == "overlap" and entry["policy"] == "forbid"
    one = get(url, f"/api/v1/jobs/slow/runs/{entry['id']}")
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["fate"] == "skipped" and body["id"] == entry["id"]
    assert body["explanation"].startswith("skipped: the fire of ")
    assert body["explanation"].endswith("was still running (CONCURRENCY=forbid)")
    # the CLI says the same sentence, and the same JSON under --json
    cli = run_cli(["explain", "slow", entry["id"]], daemon["env"])
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == body["explanation"]
    as_json = run_cli(["explain", "slow", entry["id"], "--json"], daemon["env"])
    assert json.loads(as_json.stdout)["explanation"] == body["explanation"]


def test_runs_by_page_and_the_running_one_first(daemon) -> None:
    url = daemon["url"]
    wait_until(lambda: len(get(url, "/api/v1/jobs/slow/runs", limit="100").json()["runs"]) >= 6, 20,
               message="six entries for the slow job")
    first = get(url, "/api/v1/jobs/slow/runs", limit="3").json()
    assert len(first["runs"]) == 3 and first["next_cursor"]
    slots = [r["slot"] for r in first["runs"]]
    assert slots == sorted(slots, reverse=True)
    wait_until(lambda: any(r["fate"] == "running"
                           for r in get(url, "/api/v1/jobs/slow/runs", limit="2").json()["runs"]), 20,
               message="the running fire on the first page")
    second = get(url, "/api/v1/jobs/slow/runs", limit="3", cursor=first["next_cursor"]).json()
    assert second["runs"] and max(r["slot"] for r in second["runs"]) <= min(slots)
    assert not {r["id"] for r in second["runs"]} & {r["id"] for r in first["runs"]}
    before = first["runs"][-1]["slot"]
    bounded = get(url, "/api/v1/jobs/slow/runs", before=before, limit="100").json()["runs"]
    assert bounded and all(r["slot"] < before for r in bounded)
    # the CLI pages the same way
    cli = run_cli(["runs", "slow", "--limit", "2", "--json"], daemon["env"])
    assert cli.returncode == 0, cli.stderr
    page = json.loads(cli.stdout)
    assert len(page["runs"]) == 2 and page["next_cursor"]


def test_a_manual_run_by_its_id(daemon) -> None:
    url = daemon["url"]
    r = httpx.post(url + "/api/v1/jobs/quick/trigger", content=json.dumps({"id": "ledger-run-1"}),
                   headers={"Authorization": f"Bearer {CONTROL}", "Content-Type": "application/json"})
    assert r.status_code in (200, 202), r.text
    done = wait_until(lambda: (b := get(url, "/api/v1/jobs/quick/runs/manual:ledger-run-1").json())
                      and b["fate"] == "ok" and b, 20, message="the manual run recorded")
    assert done["id"] == "manual:ledger-run-1" and done["attempts"] == 1 and done["http_status"] == 200
    listed = get(url, "/api/v1/jobs/quick/runs").json()["runs"]
    assert "manual:ledger-run-1" in [e["id"] for e in listed]


def test_slots_that_never_ran_are_explained(daemon) -> None:
    url = daemon["url"]
    hour = (int(time.time()) // 3600 + 5) * 3600
    later = get(url, f"/api/v1/jobs/quick/runs/{sched.format_slot(hour)}").json()
    assert later["fate"] is None and later["explanation"] == f"not due yet: fires at {sched.format_slot(hour)}"
    odd = get(url, f"/api/v1/jobs/quick/runs/{sched.format_slot(hour + 30)}").json()
    assert odd["explanation"].startswith("not a slot of 'every 1h'; the nearest are ")
    old = get(url, "/api/v1/jobs/quick/runs/2020-01-01T00:00:00Z").json()
    assert old["explanation"].startswith("before the job was first seen (")


@pytest.mark.parametrize("params", [{"limit": "0"}, {"before": "yesterday"}, {"cursor": "@@"}, {"sort": "asc"}])
def test_bad_parameters_are_400_with_a_sentence(daemon, params) -> None:
    r = get(daemon["url"], "/api/v1/jobs/slow/runs", **params)
    assert r.status_code == 400
    assert next(iter(params)) in r.json()["error"]  # the sentence names the parameter


def test_a_bad_slot_is_400_in_the_api_and_exit_2_in_the_cli(daemon) -> None:
    r = get(daemon["url"], "/api/v1/jobs/slow/runs/03:00")
    assert r.status_code == 400 and "RFC 3339" in r.text
    cli = run_cli(["explain", "slow", "03:00"], daemon["env"])
    assert cli.returncode == 2 and "RFC 3339" in cli.stderr and cli.stdout == ""
    unknown = get(daemon["url"], "/api/v1/jobs/nope/runs")
    assert unknown.status_code == 404


def test_a_paused_slot_in_the_standalone_ledger(tmp_path) -> None:
    """The same from the CLI on a standalone daemon's SQLite file: slots passed while paused."""
    receiver = Receiver(app)
    env = standalone_env(receiver, tmp_path / "state.db", {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}})
    d = Daemon(env)
    try:
        wait_until(lambda: receiver.requests, 15, message="a first fire")
        assert run_cli(["pause", "tick"], env).returncode == 0

        def paused():
            page = json.loads(run_cli(["runs", "tick", "--json"], env).stdout)
            return [r for r in page["runs"] if r["fate"] == "skipped" and r["reason"] == "paused"]

        entry = wait_until(paused, 20, message="a slot skipped while paused")[0]
        cli = run_cli(["explain", "tick", entry["id"]], env)
        assert cli.returncode == 0 and cli.stdout.strip() == "skipped: the job was paused"
        table = run_cli(["runs", "tick", "--limit", "3"], env)
        assert table.returncode == 0 and table.stdout.startswith("SLOT") and "paused" in table.stdout
    finally:
        d.close()
        receiver.close()
