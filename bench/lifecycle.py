"""What a benchmark starts, and the stopping of all of it: every child registered,
everything stopped on any exit, a hard time budget.

Everything a benchmark starts is registered here and stopped when the benchmark ends,
whether it finishes, fails, is interrupted (Ctrl-C, SIGTERM) or runs out of time. Child
processes also get PR_SET_PDEATHSIG, so they die with the benchmark even if it is killed
with SIGKILL.
"""

from __future__ import annotations

import atexit
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import procs


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


def make_workdir(prefix: str) -> Path:
    """A temporary directory (env files, MONITOR output), removed when the benchmark ends."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    on_cleanup(lambda: shutil.rmtree(d, ignore_errors=True))
    return d
