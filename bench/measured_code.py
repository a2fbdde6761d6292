"""Which `scheduler` code the daemons run (`--src`), and what a result records of the
machine and of that code."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Where the `scheduler` package that the daemons run comes from (the checkout by default;
# `--src DIR` runs another copy, e.g. `git archive HEAD scheduler | tar -x -C DIR`).
# Read it as `measured_code.SRC`: `set_src` rebinds it.
SRC = REPO


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
    for path in sorted((SRC / "scheduler").rglob("*.py")):
        h.update(str(path.relative_to(SRC)).encode() + b"\0" + path.read_bytes())
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
