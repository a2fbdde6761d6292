"""The fault-injection harness, short: kill -9, SIGSTOP and a network partition of the leader.

Three real replicas, a real redis-server behind one TCP proxy per replica, a recording
HTTP target (all from bench/chaos.py). Every slot of every CATCHUP=all job must arrive,
none twice as a first attempt, and each fault must have handed the lease to a new leader
that fired. The full run is `uv run python bench/chaos.py --duration 600 --faults all`.
"""

from __future__ import annotations

import shutil

import pytest

from bench import chaos

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not on PATH")


def test_kill9_sigstop_and_partition_of_the_leader_neither_duplicate_nor_lose_a_slot(tmp_path):
    report = chaos.run(chaos.quick_config(workdir=tmp_path, seed=7, quiet=True))
    rows = report["rows"]
    overall = rows["overall"]
    detail = chaos.chaos_report.format_report(report)

    assert overall["duplicate_first_attempts"] == 0, detail
    assert overall["missed_beyond_policy"] == 0, detail
    assert not report["violations"]["unexpected_exits"], detail
    assert not report["violations"]["unclean_exits"], detail
    assert overall["expected"] > 100, detail
    # What did not arrive is exactly what the policies allow: CATCHUP=latest making up
    # only the newest missed slot, and CONCURRENCY=forbid skips.
    allowed = overall["beyond_catchup"] + overall["skipped_forbid"] + overall["lost_no_aof"]
    assert overall["delivered"] + allowed == overall["expected"], detail
    for fault in ("kill9", "sigstop", "partition"):
        assert rows[fault]["injected"] == 1, detail
        # A leader that began after the fault fired: the lease changed hands.
        assert rows[fault]["failover"]["n"] == 1, detail
    assert report["ok"], detail


def test_partition_proxy_holds_bytes_until_healed_and_then_delivers_them():
    import asyncio

    async def scenario() -> tuple[bytes, bytes, bool]:
        async def echo(reader, writer):
            while data := await reader.read(100):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        proxy = await chaos.Proxy(server.sockets[0].getsockname()[1]).start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"before")
            first = await asyncio.wait_for(reader.read(100), 5)
            proxy.blackhole()
            writer.write(b"during")
            try:
                await asyncio.wait_for(reader.read(100), 0.5)
                held = False
            except TimeoutError:
                held = True
            proxy.heal()
            late = await asyncio.wait_for(reader.read(100), 5)
            writer.close()
            return first, late, held
        finally:
            await proxy.close()
            server.close()

    first, late, held = asyncio.run(scenario())
    assert first == b"before"
    assert held, "bytes went through a blackholed proxy"
    assert late == b"during"
