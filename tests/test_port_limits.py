"""The HTTP port within the process's limits: open files and memory, against a real daemon
under a low RLIMIT_NOFILE and clients that hold connections or never read."""

from __future__ import annotations

import json
import select
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.e2e import standalone_env
from tests.support import Daemon, free_port, wait_until

needs_prlimit = pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is not installed")

LIMIT = 256  # the daemon's open files, soft and hard: raising the soft one gains nothing
CROWD = 400  # idle connections held open to its port: more than it may open


def limited_daemon(env: dict[str, str], tmp_path: Path, nofile: str = f"{LIMIT}:{LIMIT}") -> Daemon:
    daemon = Daemon(env, cwd=tmp_path, start=False)
    daemon.argv = ["prlimit", f"--nofile={nofile}", *daemon.argv]
    return daemon.start()


def events(daemon: Daemon, name: str) -> list[dict]:
    out = []
    for line in daemon.output().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == name:
                out.append(record)
    return out


class Crowd:
    """Keeps up to `size` idle connections open to a port from a thread of its own: each one
    the server closes is opened again on the next round (at most `per_round` a round)."""

    def __init__(self, port: int, size: int, per_round: int = 100) -> None:
        self.port, self.size, self.per_round = port, size, per_round
        self.open: dict[int, socket.socket] = {}
        self.attempts = 0
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crowd", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = select.poll()
        while not self._stop.is_set():
            for fd, _ in poller.poll(0):
                poller.unregister(fd)
                self.open.pop(fd).close()  # answered (a refusal) or closed: either way, gone
            for _ in range(min(self.per_round, self.size - len(self.open))):
                self.attempts += 1
                try:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                except OSError:
                    continue
                self.open[s.fileno()] = s
                poller.register(s, select.POLLIN | select.POLLERR | select.POLLHUP)
            self.rounds += 1
            self._stop.wait(0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for s in self.open.values():
            s.close()


@pytest.fixture
def crowd_factory():
    crowds: list[Crowd] = []

    def make(port: int, size: int) -> Crowd:
        crowds.append(Crowd(port, size))
        return crowds[-1]

    yield make
    for crowd in crowds:
        crowd.close()


@needs_prlimit
def test_idle_connections_past_the_open_files_limit_never_fail_a_fire(receiver, crowd_factory, tmp_path):
    port = free_port()
    jobs = {"tick": {"SCHEDULE": "* * * * * *", "URL": "/tick", "RETRIES": "0", "TIMEOUT": "5s"}}
    env = standalone_env(receiver, tmp_path / "state.db", jobs, http_port=str(port), http_host="127.0.0.1")
    # Each answer closes its connection, so each fire opens a socket of its own.
    receiver.set_handler(lambda request: (200, {"Connection": "close"}, b"{}"))
    daemon = limited_daemon(env, tmp_path)
    try:
        receiver.wait_for_count(2, timeout=20)
        crowd = crowd_factory(port, CROWD)
        wait_until(lambda: crowd.attempts >= CROWD and crowd.rounds >= 5, timeout=30,
                   message="the crowd to make its connections")
        before = len(events(daemon, "fired"))
        wait_until(lambda: len(events(daemon, "fired")) >= before + 6, timeout=30,
                   message="six fires while the crowd held its connections")
        fired = events(daemon, "fired")[before:]
        assert daemon.running
        assert [f for f in fired if f["outcome"] != "ok"] == [], "a fire failed while the port was crowded"
        text = daemon.output()
        assert "Traceback" not in text
        # A line per interval with a count (connections turned away), never one per attempt.
        port_lines = [ln for ln in text.splitlines() if '"logger": "scheduler.http"' in ln or '"logger": "asyncio"' in ln]
        assert len(port_lines) <= 3, port_lines
        # The port still answers, from one of its places, once the crowd leaves.
        crowd.close()
        import httpx

        assert wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200,
                          timeout=15)
    finally:
        daemon.close()
        print(daemon.output()[-5000:])


@needs_prlimit
def test_the_soft_open_files_limit_is_raised_to_the_hard_one_at_start(receiver, tmp_path):
    port = free_port()
    env = standalone_env(receiver, tmp_path / "state.db", {"tick": {"SCHEDULE": "@daily", "URL": "/tick"}},
                         http_port=str(port), http_host="127.0.0.1")
    daemon = limited_daemon(env, tmp_path, nofile="256:4096")
    try:
        daemon.wait_for_output("metrics and probes listening", timeout=20)
        limits = Path(f"/proc/{daemon.pid}/limits").read_text()
        (line,) = [ln for ln in limits.splitlines() if ln.startswith("Max open files")]
        assert line.split()[3:5] == ["4096", "4096"], line
        (raised,) = events(daemon, "open files limit")
        assert raised["soft"] == 4096 and raised["raised_from"] == 256
        (listening,) = events(daemon, "metrics and probes listening")
        assert 16 <= listening["max_connections"] <= 1024
    finally:
        daemon.close()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def closed_by_server(sockets: list[socket.socket]) -> int:
    """How many of `sockets` the other end closed or reset, found without reading them."""
    poller = select.poll()
    for s in sockets:
        poller.register(s, select.POLLRDHUP)
    return sum(1 for _, event in poller.poll(0) if event & (select.POLLRDHUP | select.POLLHUP | select.POLLERR))


def test_clients_that_never_read_their_answers_hold_no_more_than_the_answer_budget(tmp_path):
    import httpx

    jobs = 2000  # /metrics is about 190 kB: more than the kernel takes off a connection
    minute = (time.gmtime().tm_min + 30) % 60  # nothing fires during the test
    env = {"SCHEDULER_API_URL": "http://127.0.0.1:9", "SCHEDULER_STATE_FILE": str(tmp_path / "state.db"),
           "SCHEDULER_LOG_FORMAT": "json", "SCHEDULER_HTTP_HOST": "127.0.0.1"}
    for i in range(jobs):
        env[f"SCHEDULER_JOB_J{i}_SCHEDULE"] = f"{minute} * * * *"
        env[f"SCHEDULER_JOB_J{i}_URL"] = f"/j/{i}"
    port = free_port()
    env["SCHEDULER_HTTP_PORT"] = str(port)
    daemon = Daemon(env, cwd=tmp_path)
    readers: list[socket.socket] = []
    try:
        daemon.wait_for_output("metrics and probes listening", timeout=30)
        size = len(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).content)
        assert size > 150_000
        before = rss_kb(daemon.pid)
        # 300 answers held whole would be over 55 MB: more than three times the 16 MiB the port
        # may hold.
        for _ in range(300):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel takes little
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
            readers.append(s)
        # At most 16 MiB / 190 kB = 88 answers are held: the server closes the others' connections.
        wait_until(lambda: closed_by_server(readers) >= 200, timeout=30,
                   message="the server to close connections whose clients do not read")
        closed = daemon.wait_for_output("HTTP port: closed connections whose clients stopped reading", timeout=10)
        (line,) = [ln for ln in closed.splitlines() if "clients stopped reading" in ln]
        record = json.loads(line)
        assert record["held_bytes"] <= record["limit_bytes"] == 16 * 1024 * 1024
        # Generous: the budget, the answers being made, the allocator's slack; not 300 answers.
        print("rss growth kB", rss_kb(daemon.pid) - before)
        assert rss_kb(daemon.pid) - before < 45_000, "the daemon's memory grew with the clients that do not read"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200
    finally:
        for s in readers:
            s.close()
        daemon.close()


SERVER_UNDER_A_LOW_LIMIT = """
import threading
from scheduler.http.server import HTTPServer
from scheduler.observe import Health, Metrics, setup_logging
from scheduler.observe.routes import routes

setup_logging("json", "INFO")
health = Health()
health.store_ok = True
# More connections than the 64 open files allow: accept() itself runs out of descriptors.
server = HTTPServer("127.0.0.1", 0, routes(Metrics(), health), max_connections=1024)
print(server.port, flush=True)
threading.Event().wait()  # until the test stops the process
"""


@needs_prlimit
def test_accept_failing_for_want_of_descriptors_is_logged_once_an_interval_and_the_port_recovers(tmp_path):
    import subprocess
    import sys

    import httpx

    from harness.procs import spawn, stop
    from tests.support import REPO_ROOT, child_env

    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = spawn(["prlimit", "--nofile=64:64", sys.executable, "-c", SERVER_UNDER_A_LOW_LIMIT],
                     env=child_env(), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log)
    crowd: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        for _ in range(150):  # the kernel completes each handshake; the server runs out of files
            crowd.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        wait_until(lambda: "Too many open files" in log_path.read_text(), timeout=15,
                   message="the server to run out of descriptors")
        for s in crowd:
            s.close()
        crowd.clear()
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200, timeout=15)
        text = log_path.read_text()
        assert "Traceback" not in text
        failures = [ln for ln in text.splitlines() if "Too many open files" in ln]
        assert len(failures) == 1, failures
        assert json.loads(failures[0])["event"] == "HTTP port: cannot accept connections"
    finally:
        for s in crowd:
            s.close()
        stop(proc)


def test_the_ports_share_of_open_files_leaves_the_fires_and_the_store_theirs():
    from scheduler.http.server.open_files import FIXED_RESERVE, port_connection_cap

    assert port_connection_cap(1024, 64) == 416  # (1024 - 64 - 128) / 2
    assert port_connection_cap(256, 64) == 32
    assert port_connection_cap(1_048_576, 64) == 1024  # never more than before
    assert port_connection_cap(200, 64) == 16  # a tiny limit still serves the probes
    for limit in (300, 1024, 4096, 65536):
        for fires in (1, 64, 500):
            cap = port_connection_cap(limit, fires)
            if cap > 16:
                assert cap + 2 + fires + FIXED_RESERVE <= limit  # + the listener, + one being turned away


def test_a_flood_of_one_event_is_one_log_line_an_interval_with_its_count(caplog):
    from scheduler.http.server.limits import Every

    now = [0.0]
    every = Every(30, "HTTP port: cannot accept connections", interval_s=10.0, clock=lambda: now[0])
    with caplog.at_level("INFO", logger="scheduler.http"):
        for _ in range(500):
            every.note()
            now[0] += 0.01  # 500 in 5 s: one line, at the first
        now[0] = 10.5
        every.note()
    assert [r.count for r in caplog.records] == [1, 500]  # type: ignore[attr-defined]
    assert every.total == 501
