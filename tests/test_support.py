"""Tests of the shared test helpers themselves (they must not import the package)."""

from __future__ import annotations

import sys
import threading
import time

import httpx
import pytest
import redis

from tests.support import (
    REPO_ROOT,
    Daemon,
    Receiver,
    RedisServer,
    child_env,
    free_port,
    run_cli,
    wait_until,
)


def test_free_port_distinct() -> None:
    ports = {free_port() for _ in range(5)}
    assert len(ports) == 5
    assert all(0 < p < 65536 for p in ports)


def test_wait_until_returns_value_and_times_out() -> None:
    calls = []

    def pred() -> str | None:
        calls.append(1)
        return "ok" if len(calls) >= 3 else None

    assert wait_until(pred, timeout=2) == "ok"
    with pytest.raises(AssertionError, match="never true"):
        wait_until(lambda: False, timeout=0.1, message="never true")


def test_redis_start_kill_restart_same_port(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    c = redis_server.client()
    c.set("k", "v")
    assert c.get("k") == "v"
    port, pid = redis_server.port, redis_server.pid

    assert redis_server.kill() == -9
    assert not redis_server.running
    with pytest.raises(redis.ConnectionError):
        redis_server.client(socket_connect_timeout=0.5).ping()

    redis_server.restart()
    assert redis_server.port == port and redis_server.pid != pid
    assert redis_server.client().ping()
    assert redis_server.client().get("k") is None  # no persistence by default


def test_redis_appendonly_survives_kill(redis_factory) -> None:
    server = redis_factory(appendonly=True)
    server.client().set("durable", "yes")
    server.kill()
    server.restart()
    assert server.client().get("durable") == "yes"


def test_redis_graceful_stop(redis_server: RedisServer) -> None:
    assert redis_server.stop() == 0
    assert not redis_server.running


def test_redis_pause_resume(redis_server: RedisServer) -> None:
    c = redis_server.client(socket_timeout=0.2)
    assert c.ping()
    redis_server.pause()
    try:
        with pytest.raises(redis.TimeoutError):
            c.ping()
    finally:
        redis_server.resume()
    assert wait_until(c.ping, timeout=5)


def test_redis_stop_while_paused(redis_server: RedisServer) -> None:
    redis_server.pause()
    assert redis_server.stop(timeout=5) == 0


def test_redis_password_and_factory(redis_factory) -> None:
    a = redis_factory(password="s3cret")
    b = redis_factory()
    assert a.port != b.port
    assert a.url == f"redis://:s3cret@127.0.0.1:{a.port}/0"
    assert redis.Redis.from_url(a.url).ping()
    with pytest.raises(redis.AuthenticationError):
        a.client(password=None).get("x")
    assert b.client().ping()


def test_redis_context_manager_kills_process() -> None:
    with RedisServer() as server:
        proc = server.proc
        assert server.client().ping()
    assert proc is not None and proc.poll() is not None
    assert not server.dir.exists()


def test_receiver_records_post(receiver: Receiver) -> None:
    with httpx.Client(base_url=receiver.url, timeout=5) as client:
        r1 = client.post("/hooks/a?x=1", json={"n": 1}, headers={"X-Idempotency-Key": "abc"})
        r2 = client.post("/hooks/a", content=b"raw", headers={"X-Idempotency-Key": "abc"})
        r3 = client.put("/other", content=b"", headers={"X-Idempotency-Key": "def"})
    assert r1.status_code == 200 and r1.json() == {}
    assert r2.status_code == 200 and r3.status_code == 200
    assert receiver.connections == 1  # keep-alive: one TCP connection for all three

    reqs = receiver.requests
    assert [r.method for r in reqs] == ["POST", "POST", "PUT"]
    first = reqs[0]
    assert first.path == "/hooks/a?x=1"
    assert first.headers["x-idempotency-key"] == "abc"
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {"n": 1}
    assert reqs[1].body == b"raw"
    assert reqs[2].body == b""
    assert abs(first.received_at - time.time()) < 5

    groups = receiver.by_header("X-Idempotency-Key")
    assert {k: len(v) for k, v in groups.items()} == {"abc": 2, "def": 1}

    receiver.clear()
    assert receiver.requests == []


def test_receiver_set_handler(receiver: Receiver) -> None:
    receiver.set_handler(lambda req: 503)
    r = httpx.get(receiver.url + "/x", timeout=5)
    assert r.status_code == 503

    receiver.set_handler(lambda req: (201, {"X-Echo": req.path}, req.body))
    r = httpx.patch(receiver.url + "/echo", content=b"hello", timeout=5)
    assert (r.status_code, r.headers["x-echo"], r.content) == (201, "/echo", b"hello")

    receiver.set_handler(None)
    r = httpx.delete(receiver.url + "/y", timeout=5)
    assert r.status_code == 200 and r.json() == {}


def test_receiver_slow_handler_does_not_block(receiver: Receiver) -> None:
    release = threading.Event()

    def handler(req):
        if req.path == "/slow":
            release.wait(5)
        return 200

    receiver.set_handler(handler)
    results: list[int] = []
    t = threading.Thread(target=lambda: results.append(httpx.post(receiver.url + "/slow", timeout=10).status_code))
    t.start()
    try:
        receiver.wait_for(lambda rs: any(r.path == "/slow" for r in rs), timeout=5)
        start = time.monotonic()
        assert httpx.post(receiver.url + "/fast", timeout=5).status_code == 200
        assert time.monotonic() - start < 1.0
        assert results == []  # the slow one is still in flight
    finally:
        release.set()
        t.join(10)
    assert results == [200]


def test_receiver_handler_error_is_500() -> None:
    with Receiver() as recv:
        recv.set_handler(lambda req: 1 / 0)
        r = httpx.get(recv.url, timeout=5)
        assert r.status_code == 500
        assert "ZeroDivisionError" in recv.errors[0]
    with pytest.raises(httpx.TransportError):
        httpx.get(recv.url, timeout=1)


def test_child_env_is_minimal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULER_SHOULD_NOT_LEAK", "1")
    env = child_env({"SCHEDULER_REDIS_URL": "redis://x", "HOME": None})
    assert "SCHEDULER_SHOULD_NOT_LEAK" not in env
    assert env["SCHEDULER_REDIS_URL"] == "redis://x"
    assert env["PYTHONPATH"] == str(REPO_ROOT)
    assert "HOME" not in env
    assert set(env) <= {"PATH", "LANG", "PYTHONPATH", "SCHEDULER_REDIS_URL"}


def test_run_cli_mechanics(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Exercised with a stdlib module (timeit runs a statement), since the
    # package under test is not needed here.
    monkeypatch.setenv("SCHEDULER_SHOULD_NOT_LEAK", "1")
    code = (
        "import os, tests.support; "
        "print('FOO=' + os.environ.get('FOO', '-')); "
        "print('LEAK=' + os.environ.get('SCHEDULER_SHOULD_NOT_LEAK', '-'))"
    )
    result = run_cli(["-n", "1", "-r", "1", code], {"FOO": "bar"}, cwd=tmp_path, module="timeit")
    assert result.returncode == 0, result.stderr
    assert "FOO=bar" in result.stdout
    assert "LEAK=-" in result.stdout


def test_daemon_mechanics(receiver: Receiver) -> None:
    port = free_port()
    daemon = Daemon(args=[str(port), "--bind", "127.0.0.1"], module="http.server")
    try:
        daemon.wait_for_output("Serving HTTP", timeout=5)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        daemon.pause()
        with pytest.raises(httpx.TimeoutException):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.2)
        daemon.resume()
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        daemon.terminate()
        assert daemon.wait(5) != 0
        assert "GET /" in daemon.output()
    finally:
        daemon.close()
    assert not daemon.running
    assert "Serving HTTP" in daemon.output()  # still readable after close


def test_daemon_exit_before_output_fails_fast() -> None:
    with Daemon(args=[], module="no_such_module_here") as daemon:
        start = time.monotonic()
        with pytest.raises(AssertionError, match="exited with 1"):
            daemon.wait_for_output("never", timeout=5)
        assert time.monotonic() - start < 4
        assert "No module named" in daemon.output()
    assert sys.executable in daemon.argv


def test_daemon_own_log_exact_env_and_per_run_additions(tmp_path) -> None:
    """The benchmarks' and the chaos harness's way: a log file of the caller's (appended to,
    kept after close), exactly the environment given, and per-run env and args."""
    log = tmp_path / "replica.log"
    (tmp_path / "echo_env.py").write_text(
        "import os, sys\nprint(sorted(k for k in os.environ if k.startswith('H_')), sys.argv[1:])\n"
    )
    env = {"PATH": "/usr/bin:/bin", "H_BASE": "1"}
    daemon = Daemon(env, args=(), module="echo_env", cwd=tmp_path, exact_env=True, log_path=log, start=False)
    try:
        assert daemon.start().wait(10) == 0
        assert daemon.start(env={"H_RUN": "2"}, args=("--dry-run",)).wait(10) == 0
    finally:
        daemon.close()
    lines = log.read_text().splitlines()
    assert lines == ["['H_BASE'] []", "['H_BASE', 'H_RUN'] ['--dry-run']"]


def test_redis_kept_dir_wipe_and_launch(tmp_path) -> None:
    """A directory of the caller's survives close(); wipe() keeps only the log; launch()
    returns before the server answers, answers() tells when it does."""
    server = RedisServer(dir=tmp_path / "r", appendonly=True, start=False)
    try:
        server.launch()
        wait_until(server.answers, timeout=10, message="redis-server to answer")
        server.client().set("k", "v")
        server.kill()
        assert any(p.name != "redis.log" for p in server.dir.iterdir())
        server.wipe()
        assert [p.name for p in server.dir.iterdir()] == ["redis.log"]
        server.start()
        assert server.client().get("k") is None
    finally:
        server.close()
    assert (tmp_path / "r" / "redis.log").exists()
