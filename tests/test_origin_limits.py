"""Per-origin limits against an overloaded app (SPEC 8 "Protecting the app"): a daemon on a real
redis-server fires 1,000 slots due on one second at a real HTTP app on 127.0.0.1 that serves 20
calls at once and answers 503 at once beyond. Every slot is delivered once, none lost, none
doubled, and at most 10 % of all calls meet a 503: the origin's limit comes down to what the
app serves instead of the global cap's 64 calls retried with backoff."""

from __future__ import annotations

import time
from collections import Counter

from harness.fast_receiver import RawReceiver
from tests.e2e import env_for
from tests.support import wait_until

JOBS = 1000
APP_LIMIT = 20  # calls the app serves at once
HOLD_MS = 100  # each call it serves takes this long


def at(instant: float) -> str:
    return "at " + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(instant))


def test_a_thousand_slots_on_one_boundary_reach_an_app_of_20_calls(redis_server, daemon_factory) -> None:
    app = RawReceiver(HOLD_MS, limit=APP_LIMIT)
    try:
        boundary = float(int(time.time()) + 6)  # time for the daemon to read 1,000 jobs and lead
        jobs = {f"o{i:04d}": {"SCHEDULE": at(boundary), "URL": f"{app.url}/hook", "RETRIES": "10"}
                for i in range(JOBS)}
        daemon_factory(env_for(redis_server, app, "origins", jobs, log_level="WARNING"))

        def ok() -> set[str]:
            return {a.key for a in list(app.arrivals) if a.status == 200}

        wait_until(lambda: len(ok()) >= JOBS, timeout=45, interval=0.1,
                   message=f"{JOBS} slots answered 200 by the app")
        arrivals = list(app.arrivals)
    finally:
        app.stop()

    firsts = Counter(a.key for a in arrivals if a.attempt == "1")
    oks = Counter(a.key for a in arrivals if a.status == 200)
    busy = sum(1 for a in arrivals if a.status == 503)
    last = max(a.t for a in arrivals if a.status == 200)
    print(f"\n{len(arrivals)} calls for {JOBS} slots; 503: {busy} ({busy / len(arrivals):.1%}); "
          f"boundary to last delivery: {last - boundary:.2f} s; most open at the app: {app.max_open}")
    assert len(firsts) == JOBS and set(firsts.values()) == {1}, "a slot lost or sent twice as a first attempt"
    assert set(oks.values()) == {1}, "a slot delivered twice"
    assert busy <= 0.10 * len(arrivals), f"{busy} of {len(arrivals)} calls answered 503"
    assert min(a.t for a in arrivals) >= boundary, "a slot went out before its moment"
