"""Every bench script starts: `python bench/<script>.py --help` exits 0 with its usage.

Guards the imports of the scripts (a helper moved out of a shared bench module once left a script
that no longer imported). The scripts are found in bench/: a module with a top-level
`if __name__ == "__main__":` and an argparse parser is a script; the helper modules
(chaos_*.py imported by chaos.py, doc_server.py, ...) have neither and are left out.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

_MAIN = re.compile(r'^if __name__ == ["\']__main__["\']:', re.M)


def bench_scripts(bench: Path = REPO_ROOT / "bench") -> list[Path]:
    scripts = []
    for path in sorted(bench.glob("*.py")):
        text = path.read_text()
        if _MAIN.search(text) and "ArgumentParser(" in text:
            scripts.append(path)
    return scripts


SCRIPTS = bench_scripts()


def test_the_scripts_are_found() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"latency.py", "sources.py", "sources_cluster.py", "chaos.py"} <= names
    assert not names & {"__init__.py", "chaos_proc.py", "doc_server.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_help(script: Path) -> None:
    r = subprocess.run([sys.executable, str(script.relative_to(REPO_ROOT)), "--help"], cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: {script.name} "), r.stdout[:500]
