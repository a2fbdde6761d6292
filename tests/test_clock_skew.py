"""SPEC 3, rule 7 with real clocks: a replica whose wall clock is 20 s off (libfaketime)
next to a real redis-server never leads, says why on /readyz and in its log, and the
replica with a good clock fires every slot on time."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import pytest

from tests.e2e import env_for, slot_of
from tests.support import free_port, wait_until

LIBFAKETIME = next((p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                                "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
                                "/usr/lib/faketime/libfaketimeMT.so.1") if os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime is not installed (Debian: faketime)")


def readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize("offset", ["+20s", "-20s"])
def test_a_replica_with_a_skewed_clock_never_leads_and_fires_nothing_early_or_late(
        offset, redis_server, receiver, daemon_factory):
    jobs = {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}}
    port = free_port()
    skewed_env = env_for(redis_server, receiver, "skew", jobs, http_port=str(port))
    skewed_env.update({"LD_PRELOAD": LIBFAKETIME, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                       "FAKETIME_NO_CACHE": "1"})
    skewed = daemon_factory(skewed_env)  # started first: it would take the lease if it could
    skewed.wait_for_output("clock is off", timeout=20)
    status, text = readyz(port)
    assert status == 503 and "clock" in text
    good = daemon_factory(env_for(redis_server, receiver, "skew", jobs))
    good.wait_for_output("became leader", timeout=20)
    receiver.wait_for_count(4, timeout=20)
    client = redis_server.client()
    holders = set()
    wait_until(lambda: holders.add(client.get("{skew}:leader")) or len(receiver.requests) >= 6, timeout=20)
    assert "became leader" not in skewed.output()
    assert skewed.running and "Traceback" not in skewed.output()
    for r in receiver.requests:
        early = slot_of(r) - r.received_at
        assert early <= 0.05, f"fired {early:.3f}s before its slot"
        assert r.received_at - slot_of(r) < 5, "fired late"


def test_a_leader_whose_wall_clock_jumps_steps_down_and_fires_nothing_early(redis_server, receiver, daemon_factory, tmp_path):
    """The clock is set 15 s ahead under a running leader (a VM resumed, a hand-set clock):
    between two renewals no store has said so yet, so the leader notices the jump against its
    monotonic clock, steps down, and the replica with a good clock takes over."""
    jobs = {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}}
    clock_file = tmp_path / "faketime"
    clock_file.write_text("+0s\n")
    env = env_for(redis_server, receiver, "jump", jobs)
    jumpy = daemon_factory({**env, "LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(clock_file),
                            "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    jumpy.wait_for_output("became leader", timeout=20)
    good = daemon_factory(env)
    good.wait_for_output("standing by", timeout=20)
    receiver.wait_for_count(2, timeout=20)
    clock_file.write_text("+15s\n")
    jumped_at = len(receiver.requests)
    good.wait_for_output("became leader", timeout=20)
    receiver.wait_for(lambda rs: len(rs) >= jumped_at + 3, timeout=20)
    assert "wall clock jumped" in jumpy.output() or "clock is off" in jumpy.output()
    for r in receiver.requests:
        assert slot_of(r) - r.received_at <= 0.05, f"fired {slot_of(r) - r.received_at:.3f}s before its slot"
    assert jumpy.running and "Traceback" not in jumpy.output()
