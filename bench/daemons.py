"""The daemon replicas a benchmark runs: their jobs (an env file), their clean environment,
and the process itself."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from bench import lifecycle, measured_code
from harness import daemon as harness_daemon


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
                         cwd=measured_code.SRC, log_path=log_path, start=False)
        self.started = time.time()
        self.start()
        lifecycle.on_cleanup(lambda: self.stop(10))  # at cleanup: 10 s, then SIGKILL

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM and wait up to `timeout` (40 s: a drain is bounded well below), then SIGKILL."""
        return super().stop(timeout)
