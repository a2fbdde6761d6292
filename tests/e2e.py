"""Helpers for end-to-end tests: daemon environments and checks on what a receiver got."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime

from scheduler.schedule import slots as sched
from tests.support import wait_until

TOKEN = "tok-e2e-5b1f"


def env_for(redis, receiver, namespace, jobs: dict[str, dict[str, str]], **settings) -> dict[str, str]:
    env = {
        "SCHEDULER_REDIS_URL": redis.url,
        "SCHEDULER_API_URL": receiver.url,
        "SCHEDULER_API_TOKEN": TOKEN,
        "SCHEDULER_NAMESPACE": namespace,
        "SCHEDULER_LEASE_TTL": "3s",
        "SCHEDULER_LEASE_RENEW": "1s",
        "SCHEDULER_HTTP_PORT": "0",
        "SCHEDULER_LOG_FORMAT": "json",
        "SCHEDULER_SHUTDOWN_GRACE": "5s",
    }
    return _with_jobs(env, jobs, settings)


def standalone_env(receiver, state_file, jobs: dict[str, dict[str, str]], **settings) -> dict[str, str]:
    """A daemon without Redis: state in the SQLite file `state_file`."""
    env = {
        "SCHEDULER_API_URL": receiver.url,
        "SCHEDULER_STATE_FILE": str(state_file),
        "SCHEDULER_HTTP_PORT": "0",
        "SCHEDULER_LOG_FORMAT": "json",
    }
    return _with_jobs(env, jobs, settings)


def _with_jobs(env: dict[str, str], jobs: dict[str, dict[str, str]], settings: dict[str, str]) -> dict[str, str]:
    for name, fields in jobs.items():
        for field, value in fields.items():
            env[f"SCHEDULER_JOB_{name.upper().replace('-', '_')}_{field}"] = value
    env.update({f"SCHEDULER_{k.upper()}": v for k, v in settings.items()})
    return env


def slot_of(request) -> int:
    return int(datetime.fromisoformat(request.header("x-scheduler-slot").replace("Z", "+00:00")).timestamp())


def fence(request) -> int:
    return int(request.header("x-scheduler-fencing-token"))


def assert_exactly_once(requests, schedules: dict[str, sched.Schedule]) -> dict[str, list[int]]:
    """No slot sent twice as a first attempt; per job, consecutive slots with no hole."""
    firsts = Counter(r.header("idempotency-key") for r in requests if r.header("x-scheduler-attempt") == "1")
    dupes = {k: n for k, n in firsts.items() if n > 1}
    assert not dupes, f"slots fired twice as attempt 1: {dupes}"
    by_job: dict[str, set[int]] = defaultdict(set)
    for r in requests:
        by_job[r.header("x-scheduler-job")].add(slot_of(r))
    out = {}
    for job, spec in schedules.items():
        slots = sorted(by_job[job])
        for a, b in zip(slots, slots[1:]):
            assert sched.next_after(spec, a) == b, (
                f"{job}: hole between {sched.format_slot(a)} and {sched.format_slot(b)}"
            )
        out[job] = slots
    return out


def leader_pid(redis, namespace) -> int | None:
    holder = redis.client().get("{%s}:leader" % namespace)
    return int(holder.split(":")[-2]) if holder else None


def the_leader(redis, namespace, daemons):
    pid = wait_until(lambda: leader_pid(redis, namespace), timeout=15, message="no leader elected")
    (leader,) = [d for d in daemons if d.pid == pid]
    return leader


def json_lines(daemon) -> list[dict]:
    """Every JSON log line of a daemon, in order."""
    return [json.loads(line) for line in daemon.output().splitlines() if line.startswith("{")]


def log_events(daemon, event: str) -> list[dict]:
    return [rec for rec in json_lines(daemon) if rec.get("event") == event]


def ts(record: dict) -> float:
    return datetime.fromisoformat(record["ts"]).timestamp()
