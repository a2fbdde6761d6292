"""CPU per request of the HTTP client that fires jobs, at 1 and at 64 requests in flight.

The target is harness.fast_receiver's RawReceiver (a bare asyncio protocol in its own thread); the
figure is the CPU time of the client's thread only (time.thread_time), divided by the
number of requests, so the receiver's own cost is not counted.

    uv run python bench/http_client.py                 # this checkout's client
    uv run python bench/http_client.py --src DIR       # another copy of the package, e.g.
        # mkdir DIR && git archive <commit> scheduler | tar -x -C DIR
    uv run python bench/http_client.py --clients lean,httpx,aiohttp

Each figure is the median (and the minimum, the least disturbed by other load on a shared
machine) of --rounds rounds. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from collections.abc import Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.output import print_table  # noqa: E402
from harness.fast_receiver import RawReceiver  # noqa: E402

BODY = b'{"job":"bench","slot":"2026-11-22T03:00:00Z","attempt":1,"fencing_token":7,"idempotency_key":"bench@2026-11-22T03:00:00Z"}'
HEADERS = {
    "User-Agent": "cron-sidecar/bench",
    "Idempotency-Key": '"bench@2026-11-22T03:00:00Z"',
    "X-Scheduler-Job": "bench",
    "X-Scheduler-Slot": "2026-11-22T03:00:00Z",
    "X-Scheduler-Attempt": "1",
    "X-Scheduler-Fencing-Token": "7",
    "Content-Type": "application/json",
}

Send = Callable[[str], Awaitable[int]]


def lean_client() -> tuple[Send, Callable[[], Awaitable[None]]]:
    """The scheduler's own client: scheduler.http.client when present, else the older one that
    lived in scheduler.dispatch (so a `--src` copy of an older commit is measured too)."""
    try:
        from scheduler.http.client.client import Http1Client
    except ImportError:
        from scheduler.dispatch import Request, _Http1Client
        from tests.test_dispatch import make_settings

        old = _Http1Client(make_settings())

        async def send_old(url: str) -> int:
            status, _ = await old.send(Request("POST", url, dict(HEADERS), BODY), 30.0)
            return status

        return send_old, old.aclose
    client = Http1Client()

    async def send(url: str) -> int:
        return (await client.send("POST", url, HEADERS, BODY, 30.0)).status

    return send, client.aclose


def httpx_client() -> tuple[Send, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=None, max_keepalive_connections=None))

    async def send(url: str) -> int:
        response = await client.post(url, headers=HEADERS, content=BODY)
        return response.status_code

    return send, client.aclose


def aiohttp_client() -> tuple[Send, Callable[[], Awaitable[None]]]:
    import aiohttp

    state: dict[str, aiohttp.ClientSession] = {}

    async def send(url: str) -> int:
        if "s" not in state:
            state["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        async with state["s"].post(url, headers=HEADERS, data=BODY) as response:
            await response.read()
            return response.status

    async def close() -> None:
        if "s" in state:
            await state["s"].close()

    return send, close


CLIENTS = {"lean": lean_client, "httpx": httpx_client, "aiohttp": aiohttp_client}


async def one_round(make, url: str, in_flight: int, requests: int) -> float:
    """CPU microseconds of this thread per request, after one warm-up request per slot."""
    send, close = make()
    try:
        await asyncio.gather(*(send(url) for _ in range(in_flight)))  # connections opened, not measured
        per_worker = requests // in_flight

        async def worker() -> None:
            for _ in range(per_worker):
                status = await send(url)
                if status != 200:
                    raise RuntimeError(f"unexpected HTTP {status}")

        cpu0 = time.thread_time()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        cpu = time.thread_time() - cpu0
        return cpu / (per_worker * in_flight) * 1e6
    finally:
        await close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", metavar="DIR", help="import the scheduler package from DIR")
    ap.add_argument("--clients", default="lean", help="comma list of lean, httpx, aiohttp (default lean)")
    ap.add_argument("--requests", type=int, default=3200, help="requests per round (default 3200)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.src:
        sys.path.insert(0, str(Path(args.src).resolve()))
    receiver = RawReceiver()
    url = receiver.url + "/fire"
    rows = []
    try:
        for name in args.clients.split(","):
            make = CLIENTS[name.strip()]
            for in_flight in (1, 64):
                figures = [asyncio.run(one_round(make, url, in_flight, args.requests)) for _ in range(args.rounds)]
                rows.append((name, str(in_flight), f"{statistics.median(figures):.1f}", f"{min(figures):.1f}",
                             " ".join(f"{f:.1f}" for f in figures)))
    finally:
        receiver.stop()
    import scheduler

    print(f"scheduler package: {Path(scheduler.__file__).parent}")
    print_table("HTTP client CPU per request (client thread only)", rows,
                ("client", "in flight", "CPU us/request (median)", "min", "rounds"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
