"""Receiver self-check: is the receiver fast enough not to be what a benchmark measures?

    uv run python bench/receiver_check.py --rate 1000 --receiver raw
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python bench/receiver_check.py`: the shared harness lives at the root
    sys.path.insert(0, str(REPO))

from bench import lifecycle  # noqa: E402
from bench.procstat import CpuWindow  # noqa: E402
from bench.receivers import add_receiver_arg, make_receiver  # noqa: E402
from bench.timing import parse_slot  # noqa: E402
from harness.ports import LOOPBACK  # noqa: E402
from harness.stats import stats_ms  # noqa: E402

_LOAD_CLIENT = r"""
import asyncio, sys, time

host, port, rate, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def request(i, slot):
    text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(slot))
    body = b"{}"
    return (f"POST /x HTTP/1.1\r\nHost: {host}\r\nIdempotency-Key: \"c{i}@{text}\"\r\n"
            f"X-Scheduler-Job: c{i}\r\nX-Scheduler-Slot: {text}\r\nX-Scheduler-Attempt: 1\r\n"
            f"X-Scheduler-Fencing-Token: 1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body

async def main():
    conns = [await asyncio.open_connection(host, port) for _ in range(rate)]
    start = int(time.time()) + 1
    for k in range(seconds):
        slot = start + k
        reqs = [request(i, slot) for i in range(rate)]  # built before the slot: sending is all that is timed
        await asyncio.sleep(max(0.0, slot - time.time()))
        for (_, w), data in zip(conns, reqs):
            w.write(data)
        for r, _ in conns:
            await r.readuntil(b"\r\n\r\n")  # the answer has no body
    for _, w in conns:
        w.close()

asyncio.run(main())
"""


def check_receiver(rate: int, seconds: int, hold_ms: float = 0.0, kind: str = "aiohttp") -> dict[str, Any]:
    """Send `rate` requests at every second boundary for `seconds` from a separate process
    (pre-built requests written on `rate` open connections, so the client costs next to
    nothing) and measure at the receiver as the benchmarks do: arrival - slot. This is the
    floor that the receiver itself adds to a benchmark's lateness at that rate."""
    receiver = make_receiver(kind, hold_ms)
    proc = lifecycle.spawn([sys.executable, "-c", _LOAD_CLIENT, LOOPBACK, str(receiver.port), str(rate), str(seconds)],
                            stderr=subprocess.PIPE)
    me, client = CpuWindow(os.getpid()), CpuWindow(proc.pid)
    me.start()
    client.start()
    time.sleep(seconds)
    me.stop()
    client.stop()
    proc.wait(seconds + 60)
    time.sleep(0.5)
    arrivals = list(receiver.arrivals)
    receiver.stop()
    first_slot = min((parse_slot(a.slot) for a in arrivals), default=0)
    late = [a.t - parse_slot(a.slot) for a in arrivals if parse_slot(a.slot) > first_slot]
    return {"receiver": kind, "requests": len(arrivals), "expected": rate * seconds,
            "lateness_ms_after_first_second": stats_ms(late),  # the first second opens the connections
            "max_open": receiver.max_open, "connections": len(receiver.connections),
            "receiver_cpu_percent": me.percent, "client_cpu_percent": client.percent,
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Receiver self-check: arrival - slot when a nearly free client "
                                 "sends RATE requests, one per connection, at each second boundary.")
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--hold-ms", type=float, default=0.0)
    add_receiver_arg(ap, "aiohttp")
    a = ap.parse_args()
    res = lifecycle.run_bounded(lambda: print(json.dumps(check_receiver(a.rate, a.seconds, a.hold_ms, a.receiver), indent=2)) or 0,
                                a.seconds + 90)
    sys.exit(res)
