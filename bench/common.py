"""Shared pieces of the benchmarks: a fast recording HTTP receiver, a private redis-server,
daemon processes, /proc CPU and memory sampling, MONITOR-based command counting,
percentiles, tables and JSON output.

Everything a benchmark starts is registered here and stopped when the benchmark ends,
whether it finishes, fails, is interrupted (Ctrl-C, SIGTERM) or runs out of time. Child
processes also get PR_SET_PDEATHSIG, so they die with the benchmark even if it is killed
with SIGKILL. Only loopback addresses are used.

Nothing here imports the ``scheduler`` package except `script_names`, which only reads the
Lua source strings to name the scripts seen in MONITOR output.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # bench scripts run as `python bench/x.py`: the shared harness lives at the root
    sys.path.insert(0, str(REPO))

from harness import procs  # noqa: E402
from harness import daemon as harness_daemon  # noqa: E402
from harness.fast_receiver import AiohttpReceiver, Arrival, RawReceiver, first_arrivals  # noqa: E402, F401
from harness import redis_server as harness_redis  # noqa: E402
from harness.ports import free_port  # noqa: E402, F401  (the bench scripts use c.free_port and c.percentile)
from harness.stats import percentile, stats_ms  # noqa: E402, F401
# Where the `scheduler` package that the daemons run comes from (the checkout by default;
# `--src DIR` runs another copy, e.g. `git archive HEAD scheduler | tar -x -C DIR`).
SRC = REPO
RESULTS = REPO / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------------------------------
# lifecycle: every child registered, everything stopped on any exit, a hard time budget
# ---------------------------------------------------------------------------------------

class BenchTimeout(Exception):
    """The benchmark ran past its time budget."""


_closers: list[Callable[[], None]] = []
_lock = threading.Lock()

def spawn(argv: Sequence[str], *, env: dict[str, str] | None = None, stdout=None, stderr=None,
          cwd: Path | str | None = None) -> subprocess.Popen:
    """Start a child in its own session (Ctrl-C goes to the benchmark only, which then stops
    it), registered for cleanup."""
    return procs.spawn(
        argv, env=env, cwd=cwd,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=stderr if stderr is not None else subprocess.DEVNULL,
    )


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
    """Signal one child we started (by its pid), wait, SIGKILL if it does not go."""
    return procs.stop(proc, sig, timeout)


def on_cleanup(fn: Callable[[], None]) -> None:
    with _lock:
        _closers.append(fn)


def cleanup() -> None:
    """Stop everything this benchmark started: closers last-in first-out, then any child
    still registered (SIGTERM, then SIGKILL)."""
    while True:
        with _lock:
            fn = _closers.pop() if _closers else None
        if fn is None:
            break
        try:
            fn()
        except Exception:  # noqa: BLE001 - keep stopping the rest
            pass
    for proc in procs.live():
        try:
            stop_process(proc, signal.SIGTERM, timeout=5)
        except Exception:  # noqa: BLE001
            try:
                proc.kill()
            except Exception:  # noqa: BLE001
                pass


atexit.register(cleanup)


def run_bounded(main: Callable[[], int], budget_s: float) -> int:
    """Run `main` with a hard time budget; always clean up. SIGTERM/SIGHUP end it like Ctrl-C."""

    def on_alarm(signum, frame):
        raise BenchTimeout(f"time budget of {budget_s:.0f}s exceeded")

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.alarm(max(1, int(math.ceil(budget_s))))
    try:
        return main()
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything started", file=sys.stderr)
        return 130
    except BenchTimeout as exc:
        print(f"\nbenchmark aborted: {exc}; stopping everything started", file=sys.stderr)
        return 124
    finally:
        signal.alarm(0)
        cleanup()


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------

def wait_for(pred: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def sleep_until(t_wall: float) -> None:
    while (left := t_wall - time.time()) > 0:
        time.sleep(min(left, 0.5))


def parse_slot(text: str, _cache: dict[str, int] = {}) -> int:  # noqa: B006 - a cache on purpose
    v = _cache.get(text)
    if v is None:
        v = int(dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())
        _cache[text] = v
    return v


def fmt(v: Any, unit: str = "", digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def print_table(title: str, rows: Iterable[Sequence[Any]], headers: Sequence[str] = ("figure", "value")) -> None:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    print(f"\n{title}")
    print(line)
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print(line)
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    print(line)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def add_src_arg(ap) -> None:
    ap.add_argument("--src", metavar="DIR", help="run the `scheduler` package found in DIR instead of this "
                    "checkout's (e.g. a `git archive` export of a committed version)")


def set_src(path: str | None) -> None:
    global SRC
    if path:
        p = Path(path).resolve()
        if not (p / "scheduler" / "__main__.py").is_file():
            raise SystemExit(f"--src: {p} holds no scheduler/__main__.py")
        SRC = p


def environment_info() -> dict[str, Any]:
    """What was measured: host, interpreter, redis version, and which daemon code."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:  # noqa: BLE001
            return ""

    h = hashlib.sha256()
    for path in sorted((SRC / "scheduler").glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    try:
        redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        redis_version = "?"
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host_cpus": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "redis_server": redis_version,
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "scheduler_src": str(SRC),
        "scheduler_dirty": bool(git("status", "--porcelain", "--", "scheduler")) if SRC == REPO else None,
        "scheduler_sha256": h.hexdigest()[:16],
    }


def make_workdir(prefix: str) -> Path:
    """A temporary directory (env files, MONITOR output), removed when the benchmark ends."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    on_cleanup(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def default_json_path(name: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return RESULTS / f"{name}-{stamp}.json"


def write_json(path: Path | str, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def log_dir(name: str) -> Path:
    """Daemon logs of one run, under bench/results/ (git-ignored), kept for inspection."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    d = RESULTS / "logs" / f"{name}-{stamp}-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------------------------------
# /proc sampling
# ---------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float | None:
    """utime + stime of the whole process (all threads), in seconds."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and the context switch counters from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches", "Threads"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


@dataclass
class CpuWindow:
    """CPU used by a process between `start` and `stop`, as % of one core."""

    pid: int
    t0: float = 0.0
    c0: float | None = None
    t1: float = 0.0
    c1: float | None = None
    s0: dict = field(default_factory=dict)
    s1: dict = field(default_factory=dict)

    def start(self) -> None:
        self.t0, self.c0, self.s0 = time.monotonic(), cpu_seconds(self.pid), proc_status(self.pid)

    def stop(self) -> None:
        self.t1, self.c1, self.s1 = time.monotonic(), cpu_seconds(self.pid), proc_status(self.pid)

    @property
    def percent(self) -> float | None:
        if self.c0 is None or self.c1 is None or self.t1 <= self.t0:
            return None
        return round(100.0 * (self.c1 - self.c0) / (self.t1 - self.t0), 2)

    @property
    def cpu_s(self) -> float | None:
        return None if self.c0 is None or self.c1 is None else round(self.c1 - self.c0, 3)

    @property
    def wakeups_per_s(self) -> float | None:
        """Voluntary context switches per second: how often the process went to sleep."""
        a, b = self.s0.get("voluntary_ctxt_switches"), self.s1.get("voluntary_ctxt_switches")
        if a is None or b is None or self.t1 <= self.t0:
            return None
        return round((b - a) / (self.t1 - self.t0), 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid, "seconds": round(self.t1 - self.t0, 3), "cpu_s": self.cpu_s,
            "cpu_percent_of_core": self.percent, "rss_kb": self.s1.get("VmRSS"), "peak_rss_kb": self.s1.get("VmHWM"),
            "threads": self.s1.get("Threads"), "voluntary_switches_per_s": self.wakeups_per_s,
        }


def mb(kb: int | None) -> str:
    return "n/a" if kb is None else f"{kb / 1024:.1f} MB"


# ---------------------------------------------------------------------------------------
# redis-server
# ---------------------------------------------------------------------------------------

class RedisServer(harness_redis.RedisServer):
    """`harness.redis_server.RedisServer` as the benchmarks run it: append-only persistence
    on (appendfsync everysec), as a production deployment would run it (the daemon warns
    at start when persistence is off), protected mode on, stopped when the benchmark ends.
    `conn` is a client with redis-py's default retries and a 10 s socket timeout."""

    def __init__(self) -> None:
        import redis  # the daemon's own dependency

        super().__init__(appendonly=True, appendfsync="everysec", protected_mode=True, start=False)
        on_cleanup(self.close)
        self.start()
        self.conn = redis.Redis(host=LOOPBACK, port=self.port, decode_responses=True, socket_timeout=10)
        on_cleanup(self._stop_first)

    def _stop_first(self) -> None:
        """At cleanup: close the client, then shut the server down gracefully (SIGTERM)."""
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass
        self.stop()


def leader_of(r, namespace: str = "scheduler") -> tuple[str | None, int | None]:
    """(replica id, pid) of the current lease holder; the id is hostname:pid:random."""
    rid = r.get("{" + namespace + "}:leader")
    if not rid:
        return None, None
    try:
        return rid, int(rid.split(":")[-2])
    except (IndexError, ValueError):
        return rid, None


def subscribers(r, namespace: str = "scheduler") -> int:
    """Clients subscribed to the release channel (each replica subscribes once it waits)."""
    ch = "{" + namespace + "}:released"
    return int(dict(r.pubsub_numsub(ch)).get(ch, 0))


# ---------------------------------------------------------------------------------------
# Redis commands issued by clients: MONITOR
# ---------------------------------------------------------------------------------------
# INFO commandstats and total_commands_processed count the commands a Lua script runs as
# well as the EVALSHA that ran it (checked on Redis 7.0: one EVAL making 3 calls adds 4 to
# total_commands_processed), and Redis 7.0 has no per-client command counter. MONITOR
# tells them apart: a client's command is printed as `[db ip:port]`, a script's inner call
# as `[db lua]`; the ip:port also tells which client sent it.

_MONITOR_RE = re.compile(r'^(\d+\.\d+) \[\d+ ([^\]]+)\] "([^"]*)"(?: "([^"]*)")?')


def monitor_sample(redis_port: int, seconds: float, out_path: Path) -> tuple[float, float, Path]:
    """Record MONITOR output for `seconds` with redis-cli (a C client, so the sampling costs
    the machine little); returns (start, end, path)."""
    with open(out_path, "w") as out:
        proc = spawn(["redis-cli", "-h", LOOPBACK, "-p", str(redis_port), "monitor"], stdout=out)
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        stop_process(proc, signal.SIGTERM, timeout=5)
    return t0, t1, out_path


@dataclass
class MonitorCount:
    client_commands: int = 0
    script_inner_calls: int = 0
    by_client: dict[str, int] = field(default_factory=dict)
    by_command: dict[str, int] = field(default_factory=dict)  # client commands only


def parse_monitor(path: Path, t0: float, t1: float, only_clients: set[str] | None = None,
                  names: dict[str, str] | None = None) -> MonitorCount:
    """Count client commands (not `lua`) between t0 and t1 by the Redis timestamp; with
    `only_clients`, only those ip:port sources. EVALSHA is named by its script."""
    names = names or {}
    count = MonitorCount()
    with open(path, errors="replace") as f:
        for line in f:
            m = _MONITOR_RE.match(line)
            if not m:
                continue
            ts = float(m.group(1))
            if ts < t0 or ts > t1:
                continue
            src, cmd = m.group(2), m.group(3).lower()
            if src == "lua":
                count.script_inner_calls += 1
                continue
            if only_clients is not None and src not in only_clients:
                continue
            count.client_commands += 1
            count.by_client[src] = count.by_client.get(src, 0) + 1
            if cmd in ("evalsha", "eval") and m.group(4):
                cmd = f"{cmd} {names.get(m.group(4), m.group(4)[:8])}"
            count.by_command[cmd] = count.by_command.get(cmd, 0) + 1
    return count


def script_names() -> dict[str, str]:
    """sha1 -> name of the daemon's Lua scripts, read from scheduler.redis_store's strings."""
    try:
        sys.path.insert(0, str(SRC))
        import scheduler.store.redis.store as rs  # noqa: PLC0415
    except Exception:  # noqa: BLE001
        return {}
    finally:
        if sys.path and sys.path[0] == str(SRC):
            sys.path.pop(0)
    out = {}
    for name, value in vars(rs).items():
        if isinstance(value, str) and "redis.call" in value:
            out[hashlib.sha1(value.encode()).hexdigest()] = name.lower()
    return out


def tcp_peers_of(pid: int, remote_port: int) -> set[str]:
    """`127.0.0.1:<local port>` of each TCP connection process `pid` holds to `remote_port`
    on loopback: the names MONITOR gives that process's commands."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    out = set()
    for table in ("/proc/net/tcp",):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if inode in inodes and int(remote.split(":")[1], 16) == remote_port:
                out.add(f"{LOOPBACK}:{int(local.split(':')[1], 16)}")
    return out


# ---------------------------------------------------------------------------------------
# the receiver
# ---------------------------------------------------------------------------------------
# (`harness.fast_receiver`: Arrival, AiohttpReceiver, RawReceiver, first_arrivals)

def make_receiver(kind: str, hold_ms: float = 0.0) -> AiohttpReceiver:
    """The receiver `--receiver` names, stopped when the benchmark ends."""
    receiver = RawReceiver(hold_ms) if kind == "raw" else AiohttpReceiver(hold_ms)
    on_cleanup(receiver.stop)
    return receiver


def add_receiver_arg(ap, default: str = "raw") -> None:
    ap.add_argument("--receiver", choices=("aiohttp", "raw"), default=default,
                    help=f"the HTTP receiver: aiohttp's low-level server, or a bare asyncio protocol that costs "
                         f"several times less per request (default {default})")


# ---------------------------------------------------------------------------------------
# the daemon
# ---------------------------------------------------------------------------------------

def write_env_file(path: Path, jobs: dict[str, str], url_prefix: str = "/j/") -> Path:
    """One job per schedule: SCHEDULER_JOB_<NAME>_SCHEDULE and _URL (path joined to API_URL)."""
    with open(path, "w") as f:
        for name, schedule in jobs.items():
            f.write(f'SCHEDULER_JOB_{name}_SCHEDULE="{schedule}"\n')
            f.write(f'SCHEDULER_JOB_{name}_URL="{url_prefix}{name.lower().replace("_", "-")}"\n')
    return path


def job_names(n: int, prefix: str = "J") -> list[str]:
    width = max(4, len(str(n)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def daemon_env(settings: dict[str, str]) -> dict[str, str]:
    """A clean environment: no SCHEDULER_* leaks in from the caller's."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ") if k in os.environ}
    env.update(settings)
    return env


class Daemon(harness_daemon.Daemon):
    """One `python -m scheduler run --env-file F` replica of the `scheduler` in SRC, in the
    clean `daemon_env`; its output to `log_path` (appended); stopped with SIGTERM when the
    benchmark ends."""

    def __init__(self, env_file: Path, settings: dict[str, str], log_path: Path, extra_args: Sequence[str] = ()) -> None:
        super().__init__(daemon_env(settings), exact_env=True, args=("run", "--env-file", str(env_file), *extra_args),
                         cwd=SRC, log_path=log_path, start=False)
        self.started = time.time()
        self.start()
        on_cleanup(lambda: self.stop(10))  # at cleanup: 10 s, then SIGKILL

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM and wait up to `timeout` (40 s: a drain is bounded well below), then SIGKILL."""
        return super().stop(timeout)


def log_events(path: Path) -> list[dict]:
    """The JSON log lines of a daemon (other lines, e.g. tracebacks, as {'raw': line})."""
    out = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"raw": line})
    return out


def log_problems(paths: Iterable[Path], limit: int = 5) -> dict[str, Any]:
    """Warnings, errors and non-JSON lines (tracebacks) the daemons logged."""
    counts: dict[str, int] = {}
    examples: list[str] = []
    for path in paths:
        for ev in log_events(path):
            level = ev.get("level", "raw" if "raw" in ev else "info")
            if level in ("info", "debug"):
                continue
            what = (ev.get("event") or ev.get("raw", "")).strip().splitlines()[0] if (ev.get("event") or ev.get("raw")) else ""
            key = f"{level}: {what}"[:120]
            counts[key] = counts.get(key, 0) + 1
            if len(examples) < limit:
                examples.append(f"{path.name}: {json.dumps(ev)[:300] if 'raw' not in ev else ev['raw'][:300]}")
    return {"counts": counts, "examples": examples}


def summarize_problems(problems: dict[str, Any]) -> str:
    if not problems["counts"]:
        return "none"
    return "; ".join(f"{n}x {k}" for k, n in sorted(problems["counts"].items(), key=lambda kv: -kv[1])[:4])


# ---------------------------------------------------------------------------------------
# py-spy
# ---------------------------------------------------------------------------------------

def py_spy_command() -> list[str] | None:
    """py-spy from PATH, else through uvx (a separate tool environment)."""
    if shutil.which("py-spy"):
        return ["py-spy"]
    if shutil.which("uvx"):
        return ["uvx", "py-spy"]
    return None


def start_py_spy(pid: int, seconds: float, raw_path: Path, rate: int = 100) -> subprocess.Popen | None:
    cmd = py_spy_command()
    if cmd is None:
        return None
    return spawn(
        [*cmd, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", str(rate),
         "--format", "raw", "--nonblocking", "-o", str(raw_path)],
        stdout=subprocess.DEVNULL, stderr=open(str(raw_path) + ".log", "w"),
    )


def summarize_collapsed(path: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive % of samples per function from py-spy's collapsed ('raw') output
    (`frame;frame;... count`, frames as `function (file:line)`); the inclusive ranking
    leaves out the frames that every sample passes through."""
    self_n: dict[str, int] = {}
    incl_n: dict[str, int] = {}
    total = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {"total_samples": 0, "self": [], "inclusive": []}
    for line in lines:
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = [_short_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        leaf = frames[-1]
        self_n[leaf] = self_n.get(leaf, 0) + count
        for f in set(frames):
            if not _WRAPPER_FRAME.search(f):
                incl_n[f] = incl_n.get(f, 0) + count

    def ranked(d: dict[str, int]) -> list[dict[str, Any]]:
        return [{"function": k, "samples": v, "percent": round(100 * v / total, 1) if total else 0.0}
                for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {"total_samples": total, "self": ranked(self_n), "inclusive": ranked(incl_n)}


# Frames every sample passes through (interpreter start, event loop, CLI entry points):
# left out of the inclusive ranking, where they would only fill the top rows.
_WRAPPER_FRAME = re.compile(r"\(<frozen runpy>\)|\(asyncio/(runners|base_events|events)\.py\)|"
                            r"\(scheduler/__main__\.py\)|^(main|run) \(scheduler/cli\.py\)")


def _short_frame(frame: str) -> str:
    """`fn (/long/path/pkg/mod.py:12)` -> `fn (pkg/mod.py)`: lines merged per function."""
    m = re.match(r"^(.*) \((.*?):?(\d+)?\)$", frame.strip())
    if not m:
        return frame.strip()
    fn, file = m.group(1), m.group(2)
    parts = Path(file).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else file
    return f"{fn} ({short})"


def duration_s(text: str) -> float:
    """`3s`, `1500ms`, `1m30s`, `90` -> seconds (the daemon's duration forms)."""
    m = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?", text.strip())
    if text.strip().isdigit():
        return float(text)
    if not m or not any(m.groups()):
        raise ValueError(f"not a duration: {text!r}")
    d, h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s + ms / 1000


def log_time(ev: dict) -> float | None:
    """A JSON log event's `ts` as Unix seconds."""
    try:
        return dt.datetime.fromisoformat(ev["ts"]).timestamp()
    except (KeyError, ValueError, TypeError):
        return None


# ---------------------------------------------------------------------------------------
# receiver self-check: is the receiver fast enough not to be what a benchmark measures?
# ---------------------------------------------------------------------------------------

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
    proc = spawn([sys.executable, "-c", _LOAD_CLIENT, LOOPBACK, str(receiver.port), str(rate), str(seconds)],
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
    res = run_bounded(lambda: print(json.dumps(check_receiver(a.rate, a.seconds, a.hold_ms, a.receiver), indent=2)) or 0,
                      a.seconds + 90)
    sys.exit(res)
