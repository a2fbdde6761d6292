"""Earlier releases of the package, built from git history into venvs of their own.

`release(commit)` extracts the commit's tree with `git archive` and installs it with uv into
`.cache/releases/<commit>/`, once: a later call finds the finished venv and returns at once.
The release then runs as `<venv>/bin/python -m scheduler`, with none of this checkout on its
path, so what runs is exactly what that commit shipped.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / ".cache" / "releases"

# The release before the versioned state format: 0.1.0.
PREVIOUS = "26b8320"


@dataclass(frozen=True)
class Release:
    commit: str  # full hash
    version: str
    python: Path  # the venv's interpreter

    def argv(self, *args: str) -> list[str]:
        return [str(self.python), "-m", "scheduler", *args]


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO_ROOT), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def release(commit: str = PREVIOUS) -> Release:
    """The venv of `commit`, built on first use (a few seconds with a warm uv cache)."""
    try:
        full = _git("rev-parse", "--verify", f"{commit}^{{commit}}")
    except Exception as exc:  # a shallow clone without that commit: nothing to build from
        import pytest

        pytest.skip(f"commit {commit} is not in this clone's history ({exc}); fetch it to run the release tests")
    home = CACHE / full
    python = home / "venv" / "bin" / "python"
    done = home / "version"
    CACHE.mkdir(parents=True, exist_ok=True)
    # Test workers in parallel (pytest-xdist) build one release once: the first takes the lock
    # and builds, the others wait for it and find it done.
    with open(CACHE / f"{full}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _build(full, home)
    return Release(full, done.read_text().strip(), python)


def _build(commit: str, home: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("building a release needs uv on PATH")
    CACHE.mkdir(parents=True, exist_ok=True)
    # Built in a scratch directory and renamed into place, so a run killed half-way never
    # leaves something that looks finished.
    scratch = Path(tempfile.mkdtemp(prefix=f".{commit[:12]}-", dir=CACHE))
    try:
        src = scratch / "src"
        src.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit], check=True,
                                 capture_output=True).stdout
        tar_path = scratch / "tree.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(src, filter="data")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
        venv = scratch / "venv"
        subprocess.run([uv, "venv", "-q", "--python", "3.11", str(venv)], check=True, env=env,
                       capture_output=True)
        # Pinned to what the commit's own lock file says, when it has one.
        constraints: list[str] = []
        if (src / "uv.lock").exists():
            reqs = scratch / "requirements.txt"
            out = subprocess.run([uv, "export", "-q", "--frozen", "--no-dev", "--no-hashes",
                                  "--no-emit-project", "--project", str(src)],
                                 check=True, env=env, capture_output=True, text=True).stdout
            reqs.write_text(out)
            constraints = ["-c", str(reqs)]
        subprocess.run([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                        *constraints, str(src)], check=True, env=env, capture_output=True)
        version = subprocess.run([str(venv / "bin" / "python"), "-c",
                                  "import scheduler; print(scheduler.__version__)"],
                                 check=True, capture_output=True, text=True, cwd=scratch).stdout.strip()
        (scratch / "version").write_text(version + "\n")
        shutil.rmtree(src)
        tar_path.unlink()
        if home.exists():
            shutil.rmtree(home)
        scratch.rename(home)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        detail = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        raise RuntimeError(f"building release {commit[:12]} failed: {exc.cmd[:3]}: {detail}") from exc
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
