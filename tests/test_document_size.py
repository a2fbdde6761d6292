"""SPEC section 6 rule 6: the size of a document from SCHEDULER_JOBS_URL cannot exhaust the
daemon's memory. A document over the 64 MiB limit is refused while it is read: at once when
its Content-Length says so, and once over when it is chunked; what was read is not kept, so
refusing it again and again costs nothing more, and the last good set keeps firing.

One real daemon (standalone) against a real HTTP server serving a 72 MiB document; its peak
RSS is VmHWM from /proc. The bound, 200 MB, is generous: the daemon idles at about 40 MB and
holds up to the limit (64 MiB) while a chunked document arrives. Before the fix each refusal
stayed in memory (a reference cycle through the HTTP parser), some 64 MB a retry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.document_server import DocumentServer, oversized_document
from harness.wait import wait_until
from tests.e2e import standalone_env

MIB = 1 << 20
PEAK_BOUND_KB = 200 * 1000  # 200 MB
REFUSALS = 2  # of each framing


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture
def documents():
    server = DocumentServer()
    try:
        yield server
    finally:
        server.close()


def test_a_daemon_refuses_a_72_mib_document_as_it_reads_it_and_keeps_firing_its_last_good_set(
        tmp_path, receiver, documents, daemon_factory):
    good = {"jobs": [{"name": "tick", "schedule": "every 1s", "url": "/tick"}]}
    documents.serve(json.dumps(good).encode())
    env = standalone_env(receiver, tmp_path / "state.db", {}, jobs_url=documents.jobs_url, jobs_refresh="1s")
    daemon = daemon_factory(env)
    receiver.wait_for(lambda rs: any(r.path == "/tick" for r in rs), timeout=20)

    big = oversized_document(72 * MIB)
    first = documents.gets()
    documents.serve(big)
    wait_until(lambda: documents.gets() - first >= REFUSALS, timeout=60, message="refusals with a Content-Length")
    announced = documents.answers[first:]
    documents.serve(big, chunked=True)
    wait_until(lambda: documents.gets() - first >= 2 * REFUSALS, timeout=60, message="refusals of a chunked body")
    wait_until(lambda: all(a.complete or a.closed_early for a in documents.answers[first:first + 2 * REFUSALS]),
               timeout=30, message="each answer finished or cut short")
    chunked = documents.answers[first + REFUSALS:first + 2 * REFUSALS]
    peak = peak_rss_kb(daemon.pid)

    assert peak < PEAK_BOUND_KB, f"peak RSS {peak / 1000:.0f} MB while refusing a 72 MiB document {2 * REFUSALS} times"
    # Refused as it was read: with a Content-Length at once (what was sent is no more than
    # the sockets' buffers hold); chunked once past the limit, never the whole of it.
    said = [line for line in daemon.output().splitlines() if "source" in line]
    assert all(not a.complete and a.sent < 32 * MIB for a in announced[:REFUSALS]), (documents.answers, first, said)
    assert all(not a.complete for a in chunked), [a.sent for a in chunked]
    assert "over the limit" in daemon.output() and "keeping its last good jobs" in daemon.output()

    # The last good set is still in force.
    ticks = sum(r.path == "/tick" for r in receiver.requests)
    receiver.wait_for(lambda rs: sum(r.path == "/tick" for r in rs) > ticks + 1, timeout=20)
    assert "Traceback" not in daemon.output()
    daemon.terminate()
    assert daemon.wait() == 0
