"""The HTTP port (/metrics, /healthz, /readyz) against abuse, over real sockets on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port, run_cli, wait_until


@pytest.fixture
def port_server():
    """The daemon's routes on a real server, with a 1 s read timeout."""
    from scheduler.http.server.server import HTTPServer
    from scheduler.observe import Health, Metrics
    from scheduler.observe.routes import routes

    metrics, health = Metrics(), Health()
    health.store_ok = True
    metrics.job("nightly").fired("ok")
    server = HTTPServer("127.0.0.1", 0, routes(metrics, health), read_timeout=1.0)
    yield server, routes
    server.shutdown()


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_healthz_answers_and_stalled_connections_are_closed_under_300_half_requests(port_server):
    server, _ = port_server
    threads_before = threading.active_count()
    stalled = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
            stalled.append(s)
        answer = httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
        assert answer.status_code == 200 and answer.text == "ok\n"
        assert threading.active_count() < threads_before + 10  # no thread per connection
        for s in stalled:
            s.setblocking(False)
        wait_until(lambda: all(_closed_by_server(s) for s in stalled), timeout=15,
                   message="the server never timed out the half-sent requests")
    finally:
        for s in stalled:
            s.close()


def test_a_request_trickled_a_byte_at_a_time_is_cut_off_at_the_read_timeout(port_server):
    server, _ = port_server
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.settimeout(0.2)
        deadline = time.monotonic() + 15
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                s.sendall(b"X")  # a header line that never ends, one byte every 0.2 s
                closed = s.recv(1) == b""
            except TimeoutError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        assert closed, "a trickling client held its connection past the read timeout"


def test_head_is_served_and_query_strings_are_tolerated(port_server):
    server, _ = port_server
    base = f"http://127.0.0.1:{server.port}"
    plain = {"Accept-Encoding": "identity"}
    head = httpx.head(f"{base}/metrics", headers=plain)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(httpx.get(f"{base}/metrics", headers=plain).content)
    assert httpx.get(f"{base}/metrics", params={"name[]": "cron_sidecar_leader"}).status_code == 200
    assert httpx.get(f"{base}/healthz?verbose=1").text == "ok\n"
    assert httpx.head(f"{base}/readyz?x").status_code == 200


def test_metrics_are_gzipped_only_when_the_scraper_asks(port_server):
    server, _ = port_server
    url = f"http://127.0.0.1:{server.port}/metrics"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"\r\nContent-Encoding: gzip" in head
    assert b'cron_sidecar_fires_total{cronjob="nightly",outcome="ok"} 1' in gzip.decompress(body)
    plain = httpx.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and b"cron_sidecar_leader" in plain.content
    refused = httpx.get(url, headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_router_takes_routes_with_a_method_a_path_parameter_and_a_body_limit():
    from scheduler.http.server.server import HTTPServer, Response, Router

    router = Router()
    router.add("POST", "/api/v1/jobs/{name}/trigger",
               lambda r: Response(202, json.dumps({"job": r.params["name"], "body": r.body.decode()}).encode(),
                                  "application/json"), max_body=16)
    router.add("GET", "/", lambda r: Response(200, b"<html></html>", "text/html"))
    server = HTTPServer("127.0.0.1", 0, router, read_timeout=2.0)
    base = f"http://127.0.0.1:{server.port}"
    try:
        ok = httpx.post(f"{base}/api/v1/jobs/data-refresh/trigger", content=b'{"id": "a1"}')
        assert ok.status_code == 202 and ok.json() == {"job": "data-refresh", "body": '{"id": "a1"}'}
        assert httpx.post(f"{base}/api/v1/jobs/x/trigger", content=b"x" * 17).status_code == 413
        chunked = httpx.post(f"{base}/api/v1/jobs/x/trigger", content=iter([b"x" * 10, b"x" * 10]))
        assert chunked.status_code == 413
        wrong = httpx.get(f"{base}/api/v1/jobs/x/trigger")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
        assert httpx.post(f"{base}/", content=b"body").status_code == 405
        assert httpx.get(f"{base}/api/v1/jobs").status_code == 404
        assert httpx.post(f"{base}/api/v1/jobs", content=b"").status_code == 404
        assert httpx.get(f"{base}/").headers["content-type"] == "text/html"
        huge = _raw(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert huge.startswith(b"HTTP/1.1 431 ")
        assert _raw(server.port, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        # Two requests pipelined on one connection: two answers, in order.
        both = _raw(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert both.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 404 " in both
    finally:
        server.shutdown()


def test_a_busy_port_is_an_oserror_at_once():
    from scheduler.observe import Health, Metrics
    from scheduler.observe.routes import serve

    first = serve("127.0.0.1", 0, Metrics(), Health())
    try:
        with pytest.raises(OSError):
            serve("127.0.0.1", first.port, Metrics(), Health())
    finally:
        first.shutdown()


def test_fast_exposition_equals_prometheus_clients_and_names_jobs_in_cronjob():
    from scheduler.observe import Metrics, OverdueCollector

    metrics = Metrics()
    for name in ("a", "b-2", 'odd"name\\x'):
        m = metrics.job(name)
        m.fired("ok")
        m.skipped("overlap")
        m.retries.inc()
        m.last_success.set(1_700_000_000.25)
        m.lateness.observe(0.003)
        m.duration.observe(1.5)
    metrics.leader.set(1)
    metrics.registry.register(OverdueCollector(lambda: [("a", 60.0, 0.0), ("b-2", None, None)]))

    def samples(text: bytes) -> dict:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text.decode()) for s in f.samples}

    fast, reference = samples(metrics.exposition()), samples(generate_latest(metrics.registry))
    assert fast == reference
    assert fast[("cron_sidecar_fires_total", (("cronjob", 'odd"name\\x'), ("outcome", "ok")))] == 1
    assert fast[("cron_sidecar_job_overdue", (("cronjob", "a"),))] == 1
    assert ("cron_sidecar_job_period_seconds", (("cronjob", "b-2"),)) not in fast
    assert not any(dict(labels).get("job") for _, labels in fast)
    assert fast[("cron_sidecar_lateness_seconds_count", ())] == 3  # one histogram over all jobs
    assert fast[("cron_sidecar_fire_duration_seconds_bucket", (("le", "2.5"),))] == 3


def _listening(port: int):
    from scheduler.observe import Health, Metrics
    from scheduler.observe.routes import serve

    return serve("127.0.0.1", port, Metrics(), Health())


def test_healthcheck_reads_the_port_from_the_env_file_whatever_else_it_holds(tmp_path):
    server = _listening(0)
    try:
        env_file = tmp_path / "jobs.env"
        # A job the daemon would refuse: the healthcheck asks only where /healthz is.
        env_file.write_text(f"export SCHEDULER_HTTP_PORT='{server.port}'\nSCHEDULER_HTTP_HOST=127.0.0.1\n"
                            "SCHEDULER_JOB_X_SCHEDULE=not a schedule\n")
        assert run_cli(["healthcheck", "--env-file", str(env_file)], cwd=tmp_path).returncode == 0
        (tmp_path / ".env").write_text(f"SCHEDULER_HTTP_PORT={server.port}\nSCHEDULER_JOB_Y_URL=/y\n")
        assert run_cli(["healthcheck"], cwd=tmp_path).returncode == 0
        # The process environment wins over the file.
        elsewhere = run_cli(["healthcheck"], {"SCHEDULER_HTTP_PORT": str(free_port())}, cwd=tmp_path)
        assert elsewhere.returncode == 1
    finally:
        server.shutdown()


@pytest.mark.parametrize("value, problem", [("", "SCHEDULER_HTTP_PORT: expected a port number"),
                                            ("http", "SCHEDULER_HTTP_PORT: expected a port number")])
def test_healthcheck_refuses_a_bad_port_with_exit_78(tmp_path, value, problem):
    out = run_cli(["healthcheck"], {"SCHEDULER_HTTP_PORT": value}, cwd=tmp_path)
    assert out.returncode == 78 and problem in out.stderr
