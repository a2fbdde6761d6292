"""One overloaded app stalls no other (SPEC 8 "Protecting the app"): a daemon fires 300 slots
due on one second at app A, a real HTTP server on 127.0.0.1 that serves 2 calls at once, slowly,
and answers 503 beyond (with or without a Retry-After), while app B, another server, is healthy and has a job every second.
A's calls wait for A's lane (its limit lowered to a call or two by the 503s) without holding
SCHEDULER_MAX_CONCURRENCY's places, which count calls in flight only: every slot of B goes out
within a second of its moment while A's burst drains (it takes over a minute)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from harness.fast_receiver import RawReceiver
from tests.e2e import standalone_env
from tests.support import wait_until

BURST = 300  # slots of A on one second: far more than the global cap's 64 places
APP_LIMIT = 2  # calls A serves at once, 503 beyond
HOLD_MS = 500  # each call A serves takes this long
WATCHED = 5  # B's slots checked: the boundary and the seconds after it
LATE_S = 1.0  # the most any of them may be late (a behavioural bound, not a speed figure)


def at(instant: float) -> str:
    return "at " + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(instant))


def slot_of(arrival) -> float:
    return datetime.fromisoformat(arrival.slot.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("retry_after_s", [None, 2], ids=["503", "503-retry-after"])
def test_a_healthy_origin_is_called_on_time_while_another_drains_a_burst(tmp_path, daemon_factory, retry_after_s) -> None:
    """503 alone: A's limit falls to a call or two and its fires queue in its lane. With a
    Retry-After: A's lane is held (no call starts) and its refused fires sleep it out."""
    a, b = RawReceiver(HOLD_MS, limit=APP_LIMIT, retry_after_s=retry_after_s), RawReceiver()
    try:
        boundary = float(int(time.time()) + 4)  # time for the daemon to read its jobs and lead
        jobs = {f"a{i:03d}": {"SCHEDULE": at(boundary), "URL": f"{a.url}/busy", "RETRIES": "10"} for i in range(BURST)}
        jobs["healthy"] = {"SCHEDULE": "every 1s", "URL": f"{b.url}/tick", "RETRIES": "0"}
        daemon_factory(standalone_env(a, tmp_path / "state.db", jobs, log_level="WARNING"))
        watched = {boundary + i for i in range(WATCHED)}

        def b_slots() -> set[float]:
            return {slot_of(r) for r in list(b.arrivals)}

        wait_until(lambda: watched <= b_slots(), timeout=boundary + WATCHED + 6 - time.time(), interval=0.1,
                   message=f"B's slots of the {WATCHED} seconds from the boundary delivered while A drains")
        a_arrivals, b_arrivals = list(a.arrivals), list(b.arrivals)
    finally:
        a.stop()
        b.stop()

    late = {slot_of(r) - boundary: round(r.t - slot_of(r), 3) for r in b_arrivals if slot_of(r) in watched}
    delivered_a = sum(1 for r in a_arrivals if r.status == 200)
    print(f"\nB's lateness by slot: {late}; A meanwhile: {len(a_arrivals)} calls, {delivered_a} answered 200")
    assert delivered_a < BURST, "A's burst drained before B's slots were checked: the test proves nothing"
    assert all(s <= LATE_S for s in late.values()), f"B's calls held up behind A's burst: {late}"
