"""End to end under a Redis ACL user: a real redis-server, the `ACL SETUSER` line of docs/guarantees.md
(or that line with a permission taken away), the daemon and the CLI as processes, and a real
HTTP receiver."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request

import pytest
from redis.exceptions import NoPermissionError, ResponseError

from scheduler.store.redis.acl import ScriptNames, acl_setuser, refusal
from scheduler.store.redis.store import RedisStore
from scheduler.store.protocol import StoreForbidden
from tests.e2e import env_for, json_lines, log_events, the_leader, ts
from tests.support import REPO_ROOT, free_port, run_cli, wait_until

PASSWORD = "acl-test-pw-3c9e"
CONTROL_TOKEN = "acl-control-tok-81d0"
JOBS = {
    "tick": {"SCHEDULE": "every 1s", "URL": "/tick"},
    "manual": {"SCHEDULE": "at 2099-01-01T00:00:00Z", "URL": "/manual"},
}


def readme_acl() -> str:
    """The ACL SETUSER line as docs/guarantees.md prints it."""
    text = (REPO_ROOT / "docs" / "guarantees.md").read_text()
    (line,) = [x for x in text.splitlines() if x.startswith("ACL SETUSER ")]
    return line


def create_user(redis_server, line: str) -> None:
    redis_server.client().execute_command(*line.replace("<password>", PASSWORD).split())


def user_env(redis_server, receiver, **settings) -> dict[str, str]:
    env = env_for(redis_server, receiver, "scheduler", JOBS, **settings)
    env["SCHEDULER_REDIS_URL"] = f"redis://scheduler:{PASSWORD}@{redis_server.host}:{redis_server.port}/0"
    return env


def refused(redis_server) -> list[dict]:
    """What the server refused the ACL user (ACL LOG), oldest first."""
    entries = redis_server.client().execute_command("ACL", "LOG")
    out = []
    for entry in entries:
        e = dict(zip(entry[::2], entry[1::2])) if isinstance(entry, list) else entry
        if e.get("username") == "scheduler":
            out.append(e)
    return out


def lines_at(daemon, level: str) -> list[dict]:
    return [rec for rec in json_lines(daemon) if rec.get("level") == level]


def readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_readme_acl_is_the_one_the_code_needs():
    assert readme_acl() == acl_setuser("scheduler")


def test_daemon_and_cli_work_under_the_readme_acl(redis_server, receiver, daemon_factory, tmp_path):
    create_user(redis_server, readme_acl())
    env = user_env(redis_server, receiver)
    daemon = daemon_factory(env, cwd=tmp_path)
    the_leader(redis_server, "scheduler", [daemon])
    receiver.wait_for(lambda rs: len([r for r in rs if r.path == "/tick"]) >= 2, timeout=15)

    done = run_cli(["trigger", "manual"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "queued trigger" in done.stdout and "not told" not in done.stderr
    receiver.wait_for(lambda rs: any(r.path == "/manual" for r in rs), timeout=10)
    for args in (["status"], ["history", "tick"], ["pause", "tick"], ["resume", "tick"],
                 ["state", "gc", "--dry-run"], ["state", "quarantine"], ["sources", "refresh"]):
        out = run_cli(args, env, cwd=tmp_path)
        assert out.returncode == 0, (args, out.stderr)

    daemon.terminate()
    assert daemon.wait(15) == 0
    assert log_events(daemon, "released the lease")
    assert not lines_at(daemon, "error"), lines_at(daemon, "error")
    assert "could not release" not in daemon.output() and "not told" not in daemon.output()
    # Nothing was refused, but for what docs/guarantees.md calls optional.
    assert {e["object"] for e in refused(redis_server)} <= {"config|get", "client|setinfo", "client"}


def test_trigger_without_channel_rights_is_queued_and_fires_once(redis_server, receiver, daemon_factory, tmp_path):
    create_user(redis_server, readme_acl().replace(" &{scheduler}:*", ""))
    port = free_port()
    env = user_env(redis_server, receiver, http_port=str(port), control_token=CONTROL_TOKEN)
    daemon = daemon_factory(env, cwd=tmp_path)
    the_leader(redis_server, "scheduler", [daemon])
    receiver.wait_for(lambda rs: any(r.path == "/tick" for r in rs), timeout=15)

    done = run_cli(["trigger", "manual", "--id", "once-1"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "queued trigger once-1 for manual" in done.stdout
    assert "not told at once" in done.stderr and "next look" in done.stderr
    # The fire is recorded (its outcome written) before it is counted: nothing is left to send.
    wait_until(lambda: [e for e in log_events(daemon, "fired") if e.get("job") == "manual"], timeout=10,
               message="the manual fire was never recorded")
    assert len([r for r in receiver.requests if r.path == "/manual"]) == 1
    # The control API says so too, and the request fires once as well.
    api = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/jobs/manual/trigger", data=b'{"id": "api-1"}',
                                 headers={"Authorization": f"Bearer {CONTROL_TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(api, timeout=10) as answer:
        assert answer.status == 202
        assert json.load(answer) == {"id": "api-1", "result": "queued", "notified": False}
    wait_until(lambda: [e for e in log_events(daemon, "fired") if e.get("trigger") == "api-1"], timeout=10,
               message="the API's manual fire was never recorded")
    manual = [r.header("idempotency-key") for r in receiver.requests if r.path == "/manual"]
    assert len(manual) == 2 and len(set(manual)) == 2, manual

    daemon.terminate()
    assert daemon.wait(15) == 0
    out = daemon.output()
    assert log_events(daemon, "released the lease")
    assert "could not release" not in out
    assert len(log_events(daemon, "the standbys were not told of the release; the next one takes the lease at its next try")) == 1
    assert not lines_at(daemon, "error"), lines_at(daemon, "error")


def test_missing_script_permission_is_logged_once_and_fails_readyz(redis_server, receiver, daemon_factory, tmp_path):
    line = readme_acl()
    for command in (" +evalsha", " +script|exists", " +script|load"):
        line = line.replace(command, "")
    create_user(redis_server, line)
    port = free_port()
    daemon = daemon_factory(user_env(redis_server, receiver, http_port=str(port)), cwd=tmp_path)

    # Redis counts repeated refusals in one ACL LOG entry: several tries, and still one log line.
    wait_until(lambda: any(e["object"] == "evalsha" and int(e["count"]) >= 4 for e in refused(redis_server)),
               timeout=20, message="the daemon did not keep trying")
    errors = lines_at(daemon, "error")
    assert len(errors) == 1, errors
    assert "'evalsha'" in errors[0]["error"] and "Redis ACL" in errors[0]["error"]
    assert "state store unreachable" not in daemon.output()

    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
        raise AssertionError("/readyz answered 200")
    except urllib.error.HTTPError as exc:
        assert exc.code == 503
        assert re.search(r"refuses a command", exc.read().decode())
    assert not receiver.requests
    env = user_env(redis_server, receiver)
    done = run_cli(["trigger", "manual"], env, cwd=tmp_path)
    assert done.returncode == 1
    assert "the state store refused the call" in done.stderr and "'evalsha'" in done.stderr

    daemon.terminate()
    assert daemon.wait(15) == 0


def test_state_gc_names_a_refused_command(redis_server, receiver, tmp_path):
    create_user(redis_server, readme_acl().replace(" +scan", ""))
    env = user_env(redis_server, receiver)
    done = run_cli(["state", "gc"], env, cwd=tmp_path)
    assert done.returncode == 1
    assert "the state store refused the call" in done.stderr and "'scan'" in done.stderr


def test_a_refused_command_inside_a_script_is_named(redis_server):
    create_user(redis_server, readme_acl().replace(" +time", ""))

    async def main():
        store = RedisStore(f"redis://scheduler:{PASSWORD}@{redis_server.host}:{redis_server.port}/0", "scheduler", 3.0)
        try:
            with pytest.raises(StoreForbidden) as caught:
                await store.acquire()
            return str(caught.value)
        finally:
            await store.close()

    message = asyncio.run(main())
    assert "(TIME, in a script)" in message and "Redis ACL" in message
    assert "script: " not in message  # the SHA1 and line, replaced by the command they name


def test_a_refusal_names_the_pattern_only_for_keys_and_channels():
    names = ScriptNames(())
    command = refusal(NoPermissionError("this user has no permissions to run the 'hkeys' command"), "ns", names)
    key = refusal(NoPermissionError("this user has no permissions to access one of the keys used as arguments"), "ns", names)
    assert command is not None and "'hkeys'" in command and "~{ns}:*" not in command
    assert key is not None and "~{ns}:*" in key
    assert refusal(ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), "ns", names) is None


def test_a_leader_whose_claims_are_refused_is_not_ready_while_it_renews(redis_server, receiver, daemon_factory,
                                                                         tmp_path):
    create_user(redis_server, readme_acl().replace(" +hsetnx", ""))  # the claim script's first sighting of a job
    port = free_port()
    daemon = daemon_factory(user_env(redis_server, receiver, http_port=str(port)), cwd=tmp_path)

    def tries() -> int:
        return sum(int(e["count"]) for e in refused(redis_server) if e["object"] == "hsetnx")

    wait_until(tries, timeout=20, message="the leader never tried its claim")
    # The lease is renewed meanwhile (its TTL goes back up); /readyz stays 503 through
    # three renewals all the same.
    leader = redis_server.client()
    answers, seen = [], {"renewals": 0, "pttl": leader.pttl("{scheduler}:leader")}

    def renewed_thrice() -> bool:
        answers.append(readyz(port))
        pttl = leader.pttl("{scheduler}:leader")
        seen["renewals"] += pttl > seen["pttl"]
        seen["pttl"] = pttl
        return seen["renewals"] >= 3

    wait_until(renewed_thrice, timeout=20, interval=0.05, message="the lease was not renewed")
    assert set(answers) == {503}, answers
    others = [e for e in refused(redis_server) if e["object"] not in ("hsetnx", "config|get")]
    assert not others, others  # the lease is renewed all along
    (error,) = lines_at(daemon, "error")
    assert "HSETNX" in error["error"]
    daemon.terminate()
    assert daemon.wait(15) == 0


def test_without_client_rights_a_killed_leader_is_waited_out_and_said_once(redis_server, receiver, daemon_factory,
                                                                           tmp_path):
    # The crash check's two commands are the README line's only optional ones: without
    # them the replicas connect unnamed, say so once, and a dead leader's lease runs out.
    create_user(redis_server, readme_acl().replace(" +client|list", "").replace(" +client|setname", ""))
    env = user_env(redis_server, receiver)
    daemons = [daemon_factory(env, cwd=tmp_path) for _ in range(2)]
    leader = the_leader(redis_server, "scheduler", daemons)
    standby = next(d for d in daemons if d is not leader)
    receiver.wait_for(lambda rs: len([r for r in rs if r.path == "/tick"]) >= 2, timeout=15)
    expires_at = time.time() + redis_server.client().pttl("{scheduler}:leader") / 1000
    leader.kill()
    wait_until(lambda: log_events(standby, "became leader"), timeout=15, message="the standby never took over")
    standby.terminate()
    assert standby.wait(15) == 0

    (became,) = log_events(standby, "became leader")
    assert ts(became) >= expires_at - 0.05, "the standby took the lease before it ran out"
    assert len(log_events(standby, "the Redis user may not name its connections (CLIENT SETNAME): if this replica's "
                                   "process dies while it leads, the standbys notice when its lease runs out, not "
                                   "within a second")) == 1
    assert not lines_at(standby, "error"), lines_at(standby, "error")
