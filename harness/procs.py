"""Child processes: started in their own session, dying with the process that started them,
registered so that every one is stopped when it exits."""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, Self

_PR_SET_PDEATHSIG = 1
try:  # resolved up front: nothing may be loaded in the child between fork() and exec()
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):  # pragma: no cover
    _prctl = None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that gives the child SIGKILL when this process dies, even by SIGKILL
    (Linux only; None elsewhere).

    PDEATHSIG fires when the *thread* that forked exits, so it is only used when spawning
    from the main thread, which lives as long as the process does.
    """
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def preexec() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # parent already gone
            os._exit(1)

    return preexec


# ---------------------------------------------------------------------------
# every child registered, every one stopped when this process exits
# ---------------------------------------------------------------------------

_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def spawn(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
    """Start a child in its own session (Ctrl-C reaches only this process, which then stops
    it), with no stdin, dying with this process, registered for `kill_all`."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent(),
        **kwargs,
    )
    with _live_lock:
        _live.add(proc)
    return proc


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGKILL, timeout: float = 10.0) -> int | None:
    """Send ``sig`` (if still running; with SIGCONT so a stopped child gets it too), wait
    up to ``timeout``, SIGKILL if it does not go; unregister. Returns the exit code."""
    if proc is None:
        return None
    try:
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                if sig != signal.SIGKILL:
                    proc.send_signal(signal.SIGCONT)  # deliver it even when stopped
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode
    finally:
        forget(proc)


def send_signal(proc: subprocess.Popen | None, sig: int) -> None:
    """Signal a child that must still be running (RuntimeError if it is not)."""
    if proc is None or proc.poll() is not None:
        raise RuntimeError("process is not running")
    proc.send_signal(sig)


def forget(proc: subprocess.Popen | None) -> None:
    """Unregister a child that has been stopped some other way."""
    with _live_lock:
        if proc is not None:
            _live.discard(proc)


def live() -> list[subprocess.Popen]:
    """The registered children, oldest first."""
    with _live_lock:
        return sorted(_live, key=lambda p: p.pid)


@atexit.register
def kill_all() -> None:
    """SIGKILL every registered child still running and wait for it."""
    for proc in live():
        try:
            stop(proc, signal.SIGKILL, timeout=5)
        except Exception:  # noqa: BLE001 - keep stopping the rest
            pass


class Closing:
    """``close()`` on leaving a ``with`` block and, at the latest, when garbage-collected."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


class Child(Closing):
    """One child process at a time in ``proc`` (started by the subclass with `spawn`),
    with the signals a test or a benchmark sends it; ``close()`` kills it, then
    ``_release()`` frees what the subclass holds (once)."""

    proc: subprocess.Popen | None = None
    _closed = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> int | None:
        """SIGKILL and wait for the exit; returns the exit code (-9)."""
        return stop(self.proc, signal.SIGKILL)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (with SIGCONT: delivered even when paused), wait up to ``timeout``,
        then SIGKILL; returns the exit code."""
        return stop(self.proc, signal.SIGTERM, timeout=timeout)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing."""
        send_signal(self.proc, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause()``."""
        send_signal(self.proc, signal.SIGCONT)

    def send_signal(self, sig: int) -> None:
        send_signal(self.proc, sig)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.kill()
        finally:
            self._release()

    def _release(self) -> None:
        pass
