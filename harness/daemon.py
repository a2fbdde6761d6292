"""The daemon (``python -m <module> <args>``, by default ``scheduler run``) as a child
process of tests/ and bench/, with its output in one file.

Started through `harness.procs`: registered, dying with the process that started it,
killed at exit at the latest.  Nothing here imports the ``scheduler`` package.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.procs import Child, forget, spawn
from harness.procs import stop as _reap
from harness.wait import wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent


def child_env(env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Environment for a child Python process running the package.

    Starts from a minimal base (PATH, HOME, LANG and PYTHONPATH=<repo root>);
    nothing else from the test runner's environment (in particular no
    ``SCHEDULER_*`` variables) leaks in.  ``env`` is applied on top; a value of
    ``None`` removes the variable.
    """
    base = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(Path.home())),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    for key, value in (env or {}).items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = str(value)
    return base


class Daemon(Child):
    """``python -m scheduler run`` (or ``module`` with ``args``) as a child process.

    stdout and stderr both go to one file (never a pipe, so the child can't block on
    it): ``log_path`` if given (appended to, kept), else one in a temporary directory
    removed by ``close()``; read it with ``output()``.  The environment is
    ``child_env`` with PYTHONUNBUFFERED=1 (so the output is visible as soon as it is
    written) and ``env`` on top, or with ``exact_env=True`` ``env`` alone.
    """

    def __init__(
        self,
        env: Mapping[str, str | None] | None = None,
        *,
        args: Sequence[str] = ("run",),
        cwd: str | os.PathLike[str] | None = None,
        module: str = "scheduler",
        log_path: str | os.PathLike[str] | None = None,
        exact_env: bool = False,
        start: bool = True,
    ) -> None:
        self.argv = [sys.executable, "-m", module, *[str(a) for a in args]]
        if exact_env:
            self.env = {k: str(v) for k, v in (env or {}).items() if v is not None}
        else:
            self.env = child_env({"PYTHONUNBUFFERED": "1", **(env or {})})
        self.cwd = cwd
        self._dir: Path | None = None
        if log_path is None:
            self._dir = Path(tempfile.mkdtemp(prefix="daemon-test-"))
            self.log_path = self._dir / "output.log"
            self.log_path.touch()
        else:
            self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None
        self._final_output: str | None = None
        self._closed = False
        if start:
            self.start()

    def start(self, env: Mapping[str, str] | None = None, args: Sequence[str] = ()) -> Daemon:
        """Start the process (again, after it exited: output is appended); ``env`` adds
        to the environment and ``args`` to the command line for this run only."""
        if self._closed:
            raise RuntimeError("Daemon is closed")
        if self.running:
            raise RuntimeError("daemon already running")
        if self.proc is not None:
            _reap(self.proc)
        argv = [*self.argv, *[str(a) for a in args]]
        with open(self.log_path, "ab") as logf:
            self.proc = spawn(argv, env={**self.env, **(env or {})}, cwd=self.cwd, stdout=logf, stderr=subprocess.STDOUT)
        return self

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        if self._final_output is not None:
            return self._final_output
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_output(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> str:
        """Wait until ``pattern`` (substring or compiled regex) appears in the
        output; returns the output.  Fails early if the process exits first."""

        def found(text: str) -> bool:
            return bool(pattern.search(text)) if isinstance(pattern, re.Pattern) else pattern in text

        def check() -> tuple[bool, str] | None:
            exited = not self.running
            text = self.output()
            if found(text):
                return True, text
            return (False, text) if exited else None

        try:
            ok, text = wait_until(check, timeout=timeout, message=f"{pattern!r} in daemon output")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- daemon output ---\n{self.output()}") from None
        if not ok:
            raise AssertionError(f"daemon exited with {self.returncode} before printing {pattern!r}\n{text}")
        return text

    def terminate(self) -> None:
        """Send SIGTERM (and SIGCONT, so it is delivered even if paused); does
        not wait.  No-op if the process has already exited."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            self.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for exit and return the exit code (negative: killed by signal).
        Raises ``subprocess.TimeoutExpired`` if still running after ``timeout``."""
        if self.proc is None:
            raise RuntimeError("daemon was never started")
        code = self.proc.wait(timeout)
        forget(self.proc)
        return code

    def _release(self) -> None:
        """Remove the temporary directory, if any (output() keeps working)."""
        if self._dir is not None:
            self._final_output = self.output()
            shutil.rmtree(self._dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<Daemon pid={self.pid} running={self.running} rc={self.returncode}>"
