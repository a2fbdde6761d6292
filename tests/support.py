"""Shared test helpers: the runner for the ``scheduler`` command line, and (from
the top-level ``harness`` package) real redis-server processes, a recording HTTP
receiver and the daemon runner.

Nothing here imports the ``scheduler`` package; the CLI and the daemon are
always exercised as separate processes.

Every child process started through ``harness`` is registered and killed at
interpreter exit at the latest.  On Linux, processes started from the main
thread additionally get ``PR_SET_PDEATHSIG`` so they die with the test runner
even if the runner itself is SIGKILLed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

from harness.daemon import REPO_ROOT, Daemon, child_env
from harness.ports import free_port
from harness.receiver import Receiver, Request
from harness.redis_server import RedisServer
from harness.wait import wait_until

__all__ = [
    "REPO_ROOT",
    "Daemon",
    "Receiver",
    "RedisServer",
    "Request",
    "child_env",
    "free_port",
    "run_cli",
    "wait_until",
]

# ---------------------------------------------------------------------------
# CLI / daemon processes
# ---------------------------------------------------------------------------


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str | None] | None = None,
    timeout: float = 30,
    cwd: str | os.PathLike[str] | None = None,
    *,
    input: str | None = None,  # noqa: A002
    module: str = "scheduler",
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m scheduler *args`` with a minimal environment (see
    ``child_env``) and return the CompletedProcess (text stdout/stderr).
    Does not check the exit code."""
    return subprocess.run(
        [sys.executable, "-m", module, *[str(a) for a in args]],
        env=child_env(env),
        cwd=cwd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
