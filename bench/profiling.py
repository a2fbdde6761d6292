"""Where a daemon spends its CPU: a py-spy recording of it, and the functions that
recording ranks first."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench import lifecycle


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
    return lifecycle.spawn(
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
                            r"\(scheduler/__main__\.py\)|^(main|run) \(scheduler/cli(/program)?\.py\)")


def _short_frame(frame: str) -> str:
    """`fn (/long/path/pkg/mod.py:12)` -> `fn (pkg/mod.py)`: lines merged per function."""
    m = re.match(r"^(.*) \((.*?):?(\d+)?\)$", frame.strip())
    if not m:
        return frame.strip()
    fn, file = m.group(1), m.group(2)
    parts = Path(file).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else file
    return f"{fn} ({short})"
