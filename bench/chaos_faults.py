"""The chaos faults that come from inputs, clocks and neighbours rather than from a crash:
hostile input (odd trigger ids through the real CLI, stray records written into the
namespace), a replica whose wall clock is 20 s ahead and one 20 s behind, a dry-run replica
in the cluster, a planned Sentinel failover, and an application that serves few calls at once
and answers 503 beyond.

Each is `async def fault_x(h, rec)` like the faults in chaos.py: `h` is the Harness, `rec`
the FaultRecord that the report reads.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time

# Ids the trigger grammar (1-128 of A-Z a-z 0-9 . _ -) refuses; today's CLI queues some of them.
ODD_TRIGGER_IDS = ("a@b", "x:y", "caf\u00e9-\u65e5\u672c", "z" * 300)
USAGE_EXIT = 2
SKEW_S = 20
SKEW_HOLD_S = {SKEW_S: 8.0, -SKEW_S: SKEW_S + 6.0}  # 20 s behind fires nothing for 20 s
_FIELD_OK = re.compile(r"[A-Za-z0-9_-]+@(\d{1,12}|manual:[A-Za-z0-9._-]{1,128})")
FAKETIME_LIB = "libfaketime.so.1"


async def cli(h, *args: str, timeout_s: float = 30.0) -> dict:
    """`python -m scheduler ARGS` with a replica's settings, straight at Redis."""
    env = {**h.replicas[0].env, "SCHEDULER_REDIS_URL": h.redis.url}
    env = {k: v for k, v in env.items() if not k.startswith(("LD_PRELOAD", "FAKETIME"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scheduler", *args, env=env, cwd=str(h.replicas[0].cwd),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    text = (err or out).decode(errors="replace").strip().splitlines()
    return {"args": [a[:40] for a in args], "rc": proc.returncode, "said": text[-1][:200] if text else ""}


def _ns(h, key: str) -> str:
    return "{%s}:%s" % (h.cfg.namespace, key)


async def _write_stray_records(h) -> list[str]:
    """What an older version, a bug or a person with redis-cli can leave in the namespace."""
    r = h.direct_bytes()
    rng = h.rng
    noise = bytes(rng.randrange(256) for _ in range(24))
    try:
        await r.hset(_ns(h, "inflight"), "garbage", "not json")
        await r.hset(_ns(h, "inflight"), "tick@notanumber", json.dumps({"slot": 1, "epoch": 1, "attempt": 1}))
        await r.hset(_ns(h, "inflight"), "sec@" + str(int(time.time()) - 5), b"\xff\xfe" + noise)
        await r.rpush(_ns(h, "trigger"), "{broken", b"\x00\x01" + noise, json.dumps({"job": 7}))
        await r.hset(_ns(h, "slots"), b"\xc3\x28" + noise[:6], noise)
        await r.hset(_ns(h, "slots"), "five", noise)  # a real job's watermark, unreadable
        await r.delete(_ns(h, "paused"))
        await r.set(_ns(h, "paused"), "a string where a set belongs")
        await r.set(_ns(h, "job:two"), "a string where a hash belongs")
    finally:
        await r.aclose()
    return ["inflight garbage", "inflight tick@notanumber", "inflight binary value", "trigger x3",
            "slots binary field", "slots five=binary", "paused as string", "job:two as string"]


async def _repair(h) -> int:
    """What an operator would clean by hand afterwards, so the faults after this one measure
    their own effect; the count says how much the daemons left in place."""
    r = h.direct_bytes()
    left = 0
    try:
        for field, value in (await r.hgetall(_ns(h, "inflight"))).items():
            name = field.decode(errors="replace")
            try:
                ok = bool(_FIELD_OK.fullmatch(name)) and isinstance(json.loads(value), dict)
            except ValueError:
                ok = False
            if not ok:
                left += await r.hdel(_ns(h, "inflight"), field)
        for entry in await r.lrange(_ns(h, "trigger"), 0, -1):
            try:
                ok = isinstance(json.loads(entry), dict) and isinstance(json.loads(entry).get("job"), str)
            except ValueError:
                ok = False
            if not ok:
                left += await r.lrem(_ns(h, "trigger"), 0, entry)
        for field, value in (await r.hgetall(_ns(h, "slots"))).items():
            if not value.isdigit():
                left += 1
                job = field.decode(errors="replace")
                seen = [a.slot for a in h.target.arrivals if a.job == job and not a.manual]
                if seen:
                    await r.hset(_ns(h, "slots"), field, str(max(seen)))
                else:
                    await r.hdel(_ns(h, "slots"), field)
        for key, kind in (("paused", b"set"), ("job:two", b"hash")):
            have = await r.type(_ns(h, key))
            if have not in (kind, b"none"):
                left += await r.delete(_ns(h, key))
    finally:
        await r.aclose()
    return left


async def fault_hostile_input(h, rec) -> None:
    """Odd trigger ids through the real CLI, stray records in the namespace, then a
    takeover (the new leader reads all of it) and the control commands again."""
    rec.t_inject = time.time()
    triggers = [await cli(h, "trigger", "tick", "--id", tid) for tid in ODD_TRIGGER_IDS]
    rec.notes["odd_ids_refused"] = sum(t["rc"] == USAGE_EXIT for t in triggers)
    rec.notes["odd_ids_queued"] = sum(t["rc"] == 0 for t in triggers)
    rec.notes["stray_records"] = await _write_stray_records(h)
    await asyncio.sleep(2)
    leader = await h.leader(timeout_s=10)
    if leader is not None:  # a takeover reads slots, inflight and the trigger list afresh
        rec.target, rec.target_pid = leader.index, leader.pid
        rec.failover_points.append(time.time())
        leader.kill()
        await asyncio.sleep(h.cfg.lease_ttl_s + 2)
        leader.start()
    commands = [await cli(h, "status"), await cli(h, "trigger", "sec", "--id", f"chaos-ok-{rec.occurrence}"),
                await cli(h, "trigger", "three", "--id", "a@b"), await cli(h, "status", "--json")]
    rec.notes["control"] = [t for t in triggers] + commands
    # A command that answered neither 0 nor the usage error crashed or could not read the state.
    rec.notes["control_failures"] = [c for c in triggers + commands if c["rc"] not in (0, USAGE_EXIT)]
    rec.notes["manual_key"] = f"sec@manual:chaos-ok-{rec.occurrence}"
    await asyncio.sleep(4)
    rec.notes["records_left_in_place"] = await _repair(h)
    rec.t_heal = time.time()


async def hand_lease_to(h, r0, rec, timeout_s: float) -> bool:
    """Make r0 the leader if it will lead: freeze the other standbys, stop the leader
    gracefully, wait. Everything is running again on return."""
    leader = await h.leader(timeout_s=15)
    if leader is r0:
        return True
    others = [r for r in h.replicas if r not in (r0, leader) and r.running]
    for r in others:
        r.pause()
    try:
        if leader is not None:
            await leader.shut_down(h.cfg.shutdown_grace_s)
        return await h.leader(timeout_s=timeout_s) is r0
    finally:
        for r in others:
            r.resume()
        if leader is not None:
            leader.start()


def faketime_env(offset_s: int) -> dict[str, str] | None:
    """The environment that runs a replica with its wall clock offset_s off; the monotonic
    clock (the lease's) is left alone. None without libfaketime."""
    for d in ("/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime", "/usr/lib/faketime"):
        lib = os.path.join(d, FAKETIME_LIB)
        if os.path.exists(lib):
            return {"LD_PRELOAD": lib, "FAKETIME": f"{offset_s:+d}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    return None


async def fault_clock_skew(h, rec) -> None:
    """One replica restarted with its wall clock 20 s ahead, then one 20 s behind (via
    libfaketime); each is offered the lease (the others frozen, the leader stopped
    gracefully) and kept as leader if it takes it. A replica off by more than
    SCHEDULER_MAX_CLOCK_SKEW should refuse."""
    if faketime_env(0) is None:
        rec.skipped = "libfaketime not found (Debian: apt-get install libfaketime)"
        return
    rec.t_inject = time.time()
    rec.notes["skewed"] = []
    for offset in (SKEW_S, -SKEW_S):
        leader = await h.leader(timeout_s=15)
        r0 = next((r for r in reversed(h.replicas) if r is not leader and r.clock_file is None), None)
        if r0 is None:
            rec.skipped = "no standby to skew (needs 3 replicas with clock-jump, else 2)"
            break
        await r0.shut_down(h.cfg.shutdown_grace_s)
        r0.mark("clock", offset_s=offset)
        r0.start(env=faketime_env(offset))
        await r0.wait_started()
        skew = {"replica": r0.index, "pid": r0.pid, "offset_s": offset, "t_from": time.time()}
        led = await hand_lease_to(h, r0, rec, h.cfg.lease_ttl_s + 5)
        skew["led"] = led
        if led:
            await asyncio.sleep(SKEW_HOLD_S[offset])
        await r0.shut_down(h.cfg.shutdown_grace_s)
        skew["t_to"] = time.time()
        r0.mark("clock", offset_s=0)
        r0.start()
        rec.notes["skewed"].append(skew)
        h.skewed.append(skew)
        await asyncio.sleep(2)
    rec.t_heal = time.time()


async def fault_dry_run(h, rec) -> None:
    """A `run --dry-run` replica on the cluster's Redis, the only candidate when the leader
    stops (the other standbys frozen). It must never lead, claim or record an outcome."""
    dry = h.dry_replica
    rec.t_inject = time.time()
    dry.start(args=("--dry-run",))
    await dry.wait_started()
    rec.notes["dry_run_replica_id"] = dry.replica_id()
    h.dry_runs.append({"pid": dry.pid, "id": rec.notes["dry_run_replica_id"], "t_from": time.time()})
    leader = await h.leader(timeout_s=15)
    if leader is not None:
        rec.target, rec.target_pid = leader.index, leader.pid
        others = [r for r in h.replicas if r is not leader and r.running]
        for r in others:
            r.pause()
        rec.failover_points.append(time.time())
        try:
            await leader.shut_down(h.cfg.shutdown_grace_s)
            await asyncio.sleep(h.cfg.lease_ttl_s + 3)
        finally:
            for r in others:
                r.resume()
            leader.start()
    await asyncio.sleep(2)
    await dry.shut_down(h.cfg.shutdown_grace_s)
    h.dry_runs[-1]["t_to"] = time.time()
    rec.t_heal = time.time()


async def fault_sentinel_failover(h, rec) -> None:
    """SENTINEL FAILOVER on the Sentinel cell; its own target counts the repeats."""
    if h.sentinel is None:
        rec.skipped = "no Sentinel cell"
        return
    deadline = time.monotonic() + 20  # the cell fires steadily first
    while len(h.sentinel.target.arrivals) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    rec.t_inject = time.time()
    try:
        rec.notes.update(await h.sentinel.failover())
    except RuntimeError as exc:
        rec.notes["error"] = str(exc)
    n = len(h.sentinel.target.arrivals)
    deadline = time.monotonic() + 15
    while len(h.sentinel.target.arrivals) < n + 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    rec.t_heal = time.time()


OVERLOAD_LIMIT, OVERLOAD_SERVE_S, OVERLOAD_S = 2, 0.4, 20.0


async def fault_overloaded_target(h, rec) -> None:
    """The application serves 2 calls at once, each for 0.4 s (5 calls/s, above the jobs' 3.5 a
    second but not their bursts on shared boundaries), and answers 503 at once beyond, for 20 s.
    The notes give the share of its calls answered 503 while overloaded."""
    n = len(h.target.arrivals)
    rec.t_inject = time.time()
    h.target.overload(OVERLOAD_LIMIT, OVERLOAD_SERVE_S)
    try:
        await asyncio.sleep(OVERLOAD_S)
    finally:
        h.target.overload()
    rec.t_heal = time.time()
    calls = h.target.arrivals[n:]
    busy = sum(1 for a in calls if a.answer == "503")
    rec.notes.update({"calls": len(calls), "answered_503": busy,
                      "share_503": round(busy / len(calls), 3) if calls else None})


ACTIONS = {
    "hostile-input": fault_hostile_input,
    "clock-skew": fault_clock_skew,
    "dry-run": fault_dry_run,
    "sentinel-failover": fault_sentinel_failover,
    "overloaded-target": fault_overloaded_target,
}
BUDGET_S = {"clock-skew": 150.0, "hostile-input": 120.0}
