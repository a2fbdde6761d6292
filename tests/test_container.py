"""The container image, one Dockerfile step at a time, without a Docker engine.

- the builder stage's commands, run as written (copied files, ENV, RUN lines) into a fresh
  venv, which then runs `check` and `--version` on its own, away from the source tree;
- the runtime user: the installed daemon runs (`check`, `run --dry-run`, health endpoint)
  as an unprivileged uid with its state in a directory that uid owns;
- the HEALTHCHECK command against a live and a stopped daemon;
- a static reading of the Dockerfile, .dockerignore and examples/compose.yaml;
- examples/app.py end to end: a real daemon calls it, it verifies and dedupes.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from datetime import datetime, UTC
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from tests.support import REPO_ROOT, free_port, run_cli, wait_until

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
COMPOSE = REPO_ROOT / "examples" / "compose.yaml"
APP = REPO_ROOT / "examples" / "app.py"
# The one place the version is written (pyproject.toml reads it from there).
VERSION = re.search(r'^__version__ = "([^"]+)"$', (REPO_ROOT / "scheduler" / "__init__.py").read_text(), re.M).group(1)
NOBODY = 65534

SAMPLE_JOBS = {
    "SCHEDULER_JOB_HELLO_SCHEDULE": "every 10s",
    "SCHEDULER_JOB_HELLO_URL": "/hello",
    "SCHEDULER_JOB_NIGHTLY_REPORT_SCHEDULE": "daily 03:00",
    "SCHEDULER_JOB_NIGHTLY_REPORT_TIMEZONE": "Europe/Berlin",
    "SCHEDULER_JOB_NIGHTLY_REPORT_URL": "/tasks/report",
    "SCHEDULER_JOB_NIGHTLY_REPORT_METHOD": "GET",
}


# ---------------------------------------------------------------------------
# reading the Dockerfile
# ---------------------------------------------------------------------------


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in path.read_text().splitlines():
        text = line.strip()
        if text.startswith("#") or (not text and not buf):
            continue  # comments, also inside a continued instruction, and blank lines
        if text.endswith("\\"):
            buf += text[:-1].strip() + " "
            continue
        buf += text
        if buf.strip():
            name, _, args = buf.strip().partition(" ")
            out.append((name.upper(), args.strip()))
        buf = ""
    assert not buf, "the Dockerfile ends inside a continued line"
    return out


def stages(path: Path = DOCKERFILE) -> list[dict]:
    """[{"from": ..., "name": ..., "steps": [(INSTR, args), ...]}] in order."""
    out: list[dict] = []
    for name, args in instructions(path):
        if name == "FROM":
            words = args.split()
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            out.append({"from": words[0], "name": alias, "steps": []})
        elif out:
            out[-1]["steps"].append((name, args))
    return out


def key_values(args: str) -> dict[str, str]:
    """ENV/ARG arguments in KEY=value form (several per line allowed)."""
    out = {}
    for word in shlex.split(args):
        key, eq, value = word.partition("=")
        out[key] = value if eq else ""
    return out


def exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def ignored(rel: str, patterns: list[str]) -> bool:
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        candidates = {rel, *(rel.split("/")[0:1])}
        if pat.startswith("**/"):
            candidates |= {"/".join(rel.split("/")[i:]) for i in range(len(rel.split("/")))}
            pat = pat[3:]
        if any(fnmatch.fnmatchcase(c, pat) for c in candidates):
            result = not negate
    return result


# ---------------------------------------------------------------------------
# the builder stage, run outside Docker
# ---------------------------------------------------------------------------


def _python_ok(exe: str) -> bool:
    try:
        r = subprocess.run([exe, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"],
                           capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def _others_can_run(exe: str) -> bool:
    """Every directory on the way to the interpreter (and to what its links point at) is
    searchable by any user, as /usr/local/bin/python3.11 is in the image."""
    for path in {Path(exe).absolute(), Path(os.path.realpath(exe))}:
        for d in path.parents:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return False
    return bool(os.stat(exe).st_mode & stat.S_IXOTH)


def pick_interpreter() -> tuple[str, bool]:
    """A Python >= 3.11 to build the venv on: one that other users can run if there is
    one (the runtime stage runs it as uid 10001), else the test runner's own."""
    candidates = [
        "/usr/local/bin/python3.11",
        getattr(sys, "_base_executable", None),
        shutil.which("python3.11"),
        "/usr/bin/python3.11",
        "/usr/bin/python3",
    ]
    usable = []
    for exe in candidates:
        if exe and os.path.isfile(exe) and exe not in usable and _python_ok(exe):
            usable.append(exe)
    assert usable, "no Python >= 3.11 found"
    for exe in usable:
        if _others_can_run(exe):
            return exe, True
    return usable[0], False


class Built:
    def __init__(self, root: Path, venv: Path, python_for_all: bool, log: str) -> None:
        self.root, self.venv, self.python_for_all, self.log = root, venv, python_for_all, log

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


@pytest.fixture(scope="module")
def built() -> Built:
    """The builder stage's steps, run as the Dockerfile says, into a fresh venv.

    COPY lines copy from the repository into a scratch WORKDIR, ENV lines become the
    environment (the venv path and the interpreter mapped to scratch ones), and RUN lines
    run with `sh -c` (BuildKit --mount flags dropped: the cache is the local uv cache).
    The one RUN that installs uv itself is not repeated: the uv running these tests is used.
    """
    builder, runtime = stages()[0], stages()[-1]
    copied_venv = [shlex.split(a) for n, a in runtime["steps"] if n == "COPY" and a.startswith("--from=")]
    assert copied_venv, "the runtime stage copies nothing from the builder"
    venv_in_image = copied_venv[0][1]

    root = Path(tempfile.mkdtemp(prefix="image-build-"))
    root.chmod(0o755)  # the unprivileged-user test runs the venv from here
    workdir, venv = root / "src", root / "venv"
    workdir.mkdir()
    python, for_all = pick_interpreter()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and not k.startswith("SCHEDULER_")}
    log = [f"interpreter: {python} (runnable by other users: {for_all})"]
    patterns = dockerignore_patterns()
    try:
        for name, args in builder["steps"]:
            if name in ("ENV", "ARG"):
                for key, value in key_values(args).items():
                    if name == "ENV" or key not in env:
                        env[key] = value
            elif name == "WORKDIR":
                assert args == "/src", "the test maps WORKDIR /src to a scratch directory"
            elif name == "COPY":
                *sources, dest = shlex.split(args)
                assert not any(s.startswith("--") for s in sources), f"unexpected COPY flags: {args}"
                target = workdir / dest
                for src in sources:
                    assert not ignored(src, patterns), f".dockerignore excludes {src}, which the Dockerfile copies"
                    path = REPO_ROOT / src
                    if path.is_dir():  # Docker copies a directory's contents into dest
                        shutil.copytree(path, target, dirs_exist_ok=True,
                                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                    elif dest.endswith("/") or len(sources) > 1:
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, target / path.name)
                    else:
                        shutil.copy2(path, target)
            elif name == "RUN":
                command = re.sub(r"--mount=\S+\s*", "", args).strip()
                if re.match(r"pip install\b.*\buv\b", command):
                    log.append(f"skipped (uv is here already: {shutil.which('uv')}): {command}")
                    continue
                assert env.get("UV_PROJECT_ENVIRONMENT") == venv_in_image, (
                    "the builder's UV_PROJECT_ENVIRONMENT is not what the runtime stage copies"
                )
                run_env = {**env, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON": python}
                started = time.monotonic()
                r = subprocess.run(["sh", "-c", command], cwd=workdir, env=run_env,
                                   capture_output=True, text=True, timeout=900)
                log.append(f"$ {command}  ({time.monotonic() - started:.1f}s, exit {r.returncode})\n{r.stderr}")
                assert r.returncode == 0, "\n".join(log)
        assert (venv / "bin" / "python").exists(), "\n".join(log)
        yield Built(root, venv, for_all, "\n".join(log))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def image_env(**extra: str) -> dict[str, str]:
    """The environment a container gets: no PYTHONPATH into the source tree."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


def test_fresh_venv_install_runs_check_and_version_without_the_source_tree(built, tmp_path):
    print(built.log)  # which interpreter, which commands, how long (shown on failure)
    env = image_env(HOME=str(tmp_path), **SAMPLE_JOBS)
    r = subprocess.run([built.python, "-m", "scheduler", "--version"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"cron-sidecar {VERSION}"

    r = subprocess.run([built.python, "-m", "scheduler", "check"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{built.log}"
    assert "configuration OK: 2 job(s)" in r.stdout
    assert "hello" in r.stdout and "nightly-report" in r.stdout

    # A regular install in the venv (the image has no /src), no dev tools, and the script.
    probe = (
        "import importlib.util, json, scheduler; "
        "print(json.dumps({'file': scheduler.__file__, "
        "'pytest': importlib.util.find_spec('pytest') is not None}))"
    )
    r = subprocess.run([built.python, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    assert Path(found["file"]).resolve().is_relative_to(built.venv.resolve()), found
    assert not found["pytest"], "dev dependencies were installed"
    r = subprocess.run([str(built.venv / "bin" / "cron-sidecar"), "--version"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and VERSION in r.stdout, r.stderr


# ---------------------------------------------------------------------------
# the runtime user
# ---------------------------------------------------------------------------


def drop_privileges() -> list[str]:
    """The command prefix that runs a program as uid/gid 65534 (nothing when not root)."""
    if os.geteuid() != 0:
        return []  # already unprivileged: the test shows that as it is
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    pytest.skip("running as root with neither setpriv nor runuser to drop to an unprivileged uid")


@pytest.fixture
def state_dir():
    """Like /var/lib/cron-sidecar in the image: owned by the unprivileged uid, 0750."""
    path = Path(tempfile.mkdtemp(prefix="cron-sidecar-state-"))
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    path.chmod(0o750)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_runs_as_an_unprivileged_user_with_its_state_in_a_directory_it_owns(built, state_dir, daemon_factory, tmp_path):
    prefix = drop_privileges()
    if not built.python_for_all:
        pytest.skip(f"no Python here that other users can run ({built.log.splitlines()[0]})")
    port = free_port()
    state_file = state_dir / "scheduler-state.db"
    env = image_env(
        HOME=str(state_dir), SCHEDULER_STATE_FILE=str(state_file), SCHEDULER_HTTP_HOST="127.0.0.1",
        SCHEDULER_HTTP_PORT=str(port), SCHEDULER_LOG_FORMAT="json",
        SCHEDULER_JOB_TICK_SCHEDULE="every 1s", SCHEDULER_JOB_TICK_URL="http://127.0.0.1:9/tick",
    )
    r = subprocess.run([*prefix, built.python, "-m", "scheduler", "check"], cwd=state_dir, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not list(state_dir.iterdir()), "check must not create the state file"

    daemon = daemon_factory(env, start=False, cwd=state_dir)
    daemon.env = env  # exactly the container's environment, no PYTHONPATH
    daemon.argv = [*prefix, built.python, "-m", "scheduler", "run", "--dry-run"]
    daemon.start()
    daemon.wait_for_output("dry run: would send", timeout=15)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
        assert resp.status == 200
    uids = next(ln for ln in Path(f"/proc/{daemon.pid}/status").read_text().splitlines() if ln.startswith("Uid:"))
    expected_uid = NOBODY if os.geteuid() == 0 else os.geteuid()
    assert uids.split()[1:] == [str(expected_uid)] * 4, uids
    assert state_file.stat().st_uid == expected_uid
    daemon.terminate()
    assert daemon.wait(15) == 0, daemon.output()

    if os.geteuid() == 0:
        # A state directory the user does not own: a clear configuration error, not a crash.
        locked = tmp_path / "root-owned"
        locked.mkdir(mode=0o755)
        env_locked = {**env, "SCHEDULER_STATE_FILE": str(locked / "scheduler-state.db"), "SCHEDULER_HTTP_PORT": "0"}
        r = subprocess.run([*prefix, built.python, "-m", "scheduler", "run"], cwd=state_dir, env=env_locked,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 78, f"{r.returncode}\n{r.stdout}\n{r.stderr}"
        assert "SCHEDULER_STATE_FILE" in r.stderr


# ---------------------------------------------------------------------------
# the HEALTHCHECK command
# ---------------------------------------------------------------------------


def test_healthcheck_command_follows_the_daemon(daemon_factory, tmp_path):
    port = free_port()
    env = {
        "SCHEDULER_STATE_FILE": str(tmp_path / "state.db"),
        "SCHEDULER_HTTP_HOST": "127.0.0.1",
        "SCHEDULER_HTTP_PORT": str(port),
        "SCHEDULER_LOG_FORMAT": "json",
        "SCHEDULER_JOB_TICK_SCHEDULE": "every 1h",
        "SCHEDULER_JOB_TICK_URL": "http://127.0.0.1:9/tick",
    }
    r = run_cli(["healthcheck"], env, cwd=tmp_path)
    assert r.returncode == 1, "healthy before the daemon started?"
    daemon = daemon_factory(env, cwd=tmp_path)
    wait_until(lambda: run_cli(["healthcheck"], env, cwd=tmp_path).returncode == 0, timeout=15, interval=0.2,
               message="healthcheck exits 0 while the daemon runs")
    # A frozen process (SIGSTOP) does not answer: the check fails within its own timeout.
    daemon.pause()
    try:
        started = time.monotonic()
        r = run_cli(["healthcheck"], env, cwd=tmp_path)
        assert r.returncode == 1 and time.monotonic() - started < 10
    finally:
        daemon.resume()
    assert run_cli(["healthcheck"], env, cwd=tmp_path).returncode == 0
    daemon.terminate()
    assert daemon.wait(15) == 0
    r = run_cli(["healthcheck"], env, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr


# ---------------------------------------------------------------------------
# static checks: Dockerfile, .dockerignore
# ---------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_and_runs_the_daemon():
    all_stages = stages()
    assert len(all_stages) >= 2, "expected a builder and a runtime stage"
    assert all(s["from"].startswith("python:3.11-slim") for s in all_stages)
    runtime = all_stages[-1]
    steps = runtime["steps"]

    def last(name: str) -> str | None:
        found = [a for n, a in steps if n == name]
        return found[-1] if found else None

    user = last("USER")
    assert user is not None, "the runtime stage sets no USER"
    uid, _, gid = user.partition(":")
    assert uid not in ("root", "0") and gid not in ("root", "0"), user
    assert uid.isdigit() and int(uid) >= 1000, "a fixed numeric uid (Kubernetes runAsNonRoot can check it)"
    assert exec_form(last("ENTRYPOINT") or "") == ["python", "-m", "scheduler"]
    assert exec_form(last("CMD") or "") == ["run"]
    assert last("STOPSIGNAL") == "SIGTERM"
    assert "9464" in (last("EXPOSE") or "").split()

    health = last("HEALTHCHECK") or ""
    options, _, command = health.partition("CMD")
    assert exec_form(command.strip()) == ["python", "-m", "scheduler", "healthcheck"], health
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in options, f"HEALTHCHECK sets no {option}"

    env = {}
    for name, args in steps:
        if name == "ENV":
            env.update(key_values(args))
    assert env["PATH"].startswith("/opt/venv/bin:")
    state_dir = str(Path(env["SCHEDULER_STATE_FILE"]).parent)
    runs = " ".join(a for n, a in steps if n == "RUN")
    assert re.search(rf"install -d -o \"?\$\{{APP_UID\}}\"?.*{re.escape(state_dir)}", runs), (
        "the state directory is not created owned by the runtime user"
    )
    uid_default = key_values(next(a for n, a in steps if n == "ARG" and a.startswith("APP_UID")))["APP_UID"]
    assert uid == uid_default, "USER and the uid the state directory is owned by differ"


def test_runtime_image_carries_the_oci_labels():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    steps = stages()[-1]["steps"]
    labels: dict[str, str] = {}
    for name, args in steps:
        if name == "LABEL":
            labels.update(key_values(args))
    oci = "org.opencontainers.image."
    assert labels.get(oci + "title") == project["name"]
    assert labels.get(oci + "licenses") == project["license"]
    assert labels.get(oci + "description"), "the image has no description label"
    # The version and the source come from build arguments declared in the same stage and
    # left without a default: the version is written in scheduler/__init__.py only, and the
    # Dockerfile names no host.
    args = {}
    for name, text in steps:
        if name == "ARG":
            args.update(key_values(text))
    for label, arg in (("version", "VERSION"), ("source", "SOURCE")):
        assert labels.get(oci + label) == f"${{{arg}}}", f"{oci}{label} is not read from ARG {arg}"
        assert arg in args and args[arg] == "", f"ARG {arg} is missing from the runtime stage or has a default"
    first_label = next(i for i, (name, _) in enumerate(steps) if name == "LABEL")
    declared = [i for i, (name, text) in enumerate(steps) if name == "ARG" and key_values(text).keys() & {"VERSION", "SOURCE"}]
    assert declared and max(declared) < first_label, "the ARGs must come before the LABEL that reads them"


def test_no_secret_is_baked_into_the_image():
    for name, args in instructions():
        if name in ("ENV", "ARG"):
            for key, value in key_values(args).items():
                assert not re.search(r"TOKEN|SECRET|PASSWORD|PASSWD|REDIS_URL", key, re.I) or key.endswith("_FILE"), (
                    f"{name} {key} in the Dockerfile: secrets are given at run time"
                )
                assert not re.search(r"(whsec_|://[^/@\s]*:[^/@\s]*@)", value), f"{name} {key} holds a credential"
    patterns = dockerignore_patterns()
    for path in (".env", ".env.local", ".venv", ".git", "scheduler-state.db", "examples/secrets/api_token"):
        assert ignored(path, patterns), f".dockerignore lets {path} into the build context"
    for path in ("pyproject.toml", "uv.lock", "README.md", "scheduler/cli/program.py"):
        assert not ignored(path, patterns), f".dockerignore excludes {path}, which the build needs"


# ---------------------------------------------------------------------------
# examples/compose.yaml
# ---------------------------------------------------------------------------


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def mini_yaml(text: str):
    """The block-style YAML subset the compose file uses, for when PyYAML is not installed:
    mappings, `- scalar` sequences, `[a, b]` flow lists, quoted scalars, comments, and
    `&anchor` / `*alias` / `<<: *alias` merges. Anything else fails loudly."""
    lines = []
    for raw in text.splitlines():
        s = _strip_comment(raw).rstrip()
        if s.strip():
            if "\t" in s[: len(s) - len(s.lstrip())]:
                raise ValueError(f"tab in indentation: {raw!r}")
            lines.append((len(s) - len(s.lstrip(" ")), s.strip()))
    anchors: dict[str, object] = {}

    def scalar(v: str):
        if v.startswith("*"):
            return anchors[v[1:]]
        if v[:1] in "\"'":
            if len(v) < 2 or v[-1] != v[0]:
                raise ValueError(f"unterminated quote: {v!r}")
            return v[1:-1]
        if v.startswith("["):
            if not v.endswith("]"):
                raise ValueError(f"unterminated flow list: {v!r}")
            return [scalar(x.strip()) for x in v[1:-1].split(",") if x.strip()]
        if v[:1] in "{&!|>%@`":
            raise ValueError(f"YAML the test does not read: {v!r}")
        return v

    def block(i: int, indent: int):
        if lines[i][1] == "-" or lines[i][1].startswith("- "):
            items = []
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                item = lines[i][1][2:].strip()
                if re.match(r"^[^\"'\[][^:]*:(\s|$)", item):
                    raise ValueError(f"a mapping in a sequence: {item!r}")
                items.append(scalar(item))
                i += 1
            return items, i
        out: dict = {}
        explicit: set[str] = set()  # keys written out; a merge (<<) never overrides them
        while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
            m = re.match(r"^([^\s:\"'][^:]*|\"[^\"]*\"):(?:\s+(.*))?$", lines[i][1])
            if not m:
                raise ValueError(f"not a mapping entry: {lines[i][1]!r}")
            key, rest = m.group(1).strip('"'), (m.group(2) or "").strip()
            anchor = None
            if rest.startswith("&"):
                anchor, _, rest = rest.partition(" ")
                anchor, rest = anchor[1:], rest.strip()
            i += 1
            if rest:
                value = scalar(rest)
            elif i < len(lines) and (lines[i][0] > indent or (lines[i][0] == indent and lines[i][1].startswith("- "))):
                value, i = block(i, lines[i][0])
            else:
                value = None
            if anchor:
                anchors[anchor] = value
            if key == "<<":
                if not isinstance(value, dict):
                    raise ValueError("<< merges a mapping")
                for k, v in value.items():
                    if k not in explicit:
                        out.setdefault(k, v)
            elif key in explicit:
                raise ValueError(f"duplicate key {key!r}")
            else:
                explicit.add(key)
                out[key] = value
        if i < len(lines) and lines[i][0] > indent:
            raise ValueError(f"bad indentation at {lines[i][1]!r}")
        return out, i

    value, end = block(0, lines[0][0])
    if end != len(lines):
        raise ValueError(f"unparsed YAML from {lines[end][1]!r}")
    return value


def load_compose() -> dict:
    text = COMPOSE.read_text()
    try:
        import yaml  # type: ignore[import-not-found]
    except ImportError:
        return mini_yaml(text)
    return yaml.safe_load(text)


def _env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_example_has_redis_with_aof_two_replicas_and_file_secrets(tmp_path):
    compose = load_compose()
    services = compose["services"]

    redis = services["redis"]
    command = redis["command"] if isinstance(redis["command"], list) else shlex.split(redis["command"])
    assert command[0] == "redis-server" and "--appendonly" in command
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(str(v).endswith(":/data") for v in redis.get("volumes", [])), "the AOF needs a volume"

    schedulers = {n: s for n, s in services.items() if any(k.startswith("SCHEDULER_JOB_") for k in _env_of(s))}
    assert len(schedulers) == 2, f"expected two scheduler replicas, found {sorted(schedulers)}"
    envs = [_env_of(s) for s in schedulers.values()]
    assert envs[0] == envs[1], "the replicas must run the same configuration"
    top_secrets = compose["secrets"]
    for name, svc in schedulers.items():
        env = _env_of(svc)
        assert svc["build"]["context"] == ".." and svc["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
        assert env["SCHEDULER_REDIS_URL"].startswith("redis://redis:")
        for var in ("SCHEDULER_API_TOKEN", "SCHEDULER_SIGNING_SECRET"):
            assert var not in env, f"{name}: {var} in plain text; use {var}_FILE"
            path = env[f"{var}_FILE"]
            secret = path.removeprefix("/run/secrets/")
            assert path.startswith("/run/secrets/") and secret in svc["secrets"] and secret in top_secrets
            assert "file" in top_secrets[secret] or "environment" in top_secrets[secret]
        grace = env.get("SCHEDULER_SHUTDOWN_GRACE", "30s")
        assert _seconds(svc["stop_grace_period"]) > _seconds(grace), "stop_grace_period must exceed the shutdown grace"
        assert "redis" in svc["depends_on"] and "app" in svc["depends_on"]

    app = services["app"]
    assert any("app.py" in part for part in app["entrypoint"])
    app_env = _env_of(app)
    assert app_env["APP_TOKEN_FILE"] == envs[0]["SCHEDULER_API_TOKEN_FILE"]
    assert app_env["APP_SIGNING_SECRET_FILE"] == envs[0]["SCHEDULER_SIGNING_SECRET_FILE"]
    assert "SCHEDULER_API_URL" in envs[0] and envs[0]["SCHEDULER_API_URL"].startswith("http://app:")

    # The replicas' configuration is valid as it stands (secrets from files, as mounted).
    env = dict(envs[0])
    (tmp_path / "api_token").write_text("example-token\n")
    (tmp_path / "signing_secret").write_text("whsec_" + base64.b64encode(os.urandom(32)).decode() + "\n")
    env["SCHEDULER_API_TOKEN_FILE"] = str(tmp_path / "api_token")
    env["SCHEDULER_SIGNING_SECRET_FILE"] = str(tmp_path / "signing_secret")
    r = run_cli(["check", "--json"], env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    jobs = json.loads(r.stdout)["jobs"]
    assert len(jobs) >= 2, jobs
    assert {j["name"] for j in jobs} >= {"refresh", "nightly-report"}


def _seconds(text: str) -> float:
    total, units = 0.0, {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    for number, unit in re.findall(r"(\d+)(ms|h|m|s)", str(text)):
        total += int(number) * units[unit]
    return total


def test_mini_yaml_reads_what_it_claims():
    doc = mini_yaml(
        "a: &x\n  b: 'q # not a comment'  # comment\n  c: [1, \"2\"]\nd:\n  <<: *x\n  c: over\n"
        "e:\n- one\n- \"two: 2\"\n"
    )
    assert doc == {"a": {"b": "q # not a comment", "c": ["1", "2"]},
                   "d": {"b": "q # not a comment", "c": "over"}, "e": ["one", "two: 2"]}
    for bad in ("a: {b: 1}\n", "a:\n  - b: 1\n", "a: 1\na: 2\n", "a:\n    b: 1\n  c: 2\n"):
        with pytest.raises(ValueError):
            mini_yaml(bad)


# ---------------------------------------------------------------------------
# examples/app.py, end to end
# ---------------------------------------------------------------------------


def app_events(proc) -> list[dict]:
    return [json.loads(ln) for ln in proc.output().splitlines() if ln.startswith("{")]


def call(url: str, method: str, headers: dict[str, str], body: bytes = b"") -> int:
    req = urllib.request.Request(url, data=body or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_example_app_verifies_fences_and_dedupes_real_calls(daemon_factory, tmp_path):
    token = "app-token-" + os.urandom(8).hex()
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    (tmp_path / "secret").write_text(secret + "\n")
    port = free_port()
    app = daemon_factory({"APP_HOST": "127.0.0.1", "APP_PORT": str(port), "APP_TOKEN": token,
                          "APP_SIGNING_SECRET_FILE": str(tmp_path / "secret")}, start=False, cwd=tmp_path)
    app.argv = [sys.executable, str(APP)]
    app.start()
    app.wait_for_output('"listening"', timeout=15)
    base = f"http://127.0.0.1:{port}"

    daemon = daemon_factory({
        "SCHEDULER_API_URL": base,
        "SCHEDULER_API_TOKEN": token,
        "SCHEDULER_SIGNING_SECRET_FILE": str(tmp_path / "secret"),
        "SCHEDULER_STATE_FILE": str(tmp_path / "state.db"),
        "SCHEDULER_HTTP_PORT": "0",
        "SCHEDULER_LOG_FORMAT": "json",
        "SCHEDULER_JOB_REFRESH_SCHEDULE": "every 1s",
        "SCHEDULER_JOB_REFRESH_URL": "/tasks/refresh",
        "SCHEDULER_JOB_REPORT_SCHEDULE": "every 2s",
        "SCHEDULER_JOB_REPORT_URL": "/tasks/report",
        "SCHEDULER_JOB_REPORT_METHOD": "GET",
    }, cwd=tmp_path)

    def done(job: str) -> list[dict]:
        return [e for e in app_events(app) if e["event"] == "done" and e["job"] == job]

    wait_until(lambda: len(done("refresh")) >= 2 and len(done("report")) >= 1, timeout=20,
               message="the app did the work of both jobs")
    daemon.terminate()
    assert daemon.wait(15) == 0, daemon.output()

    events = app_events(app)
    calls = [e for e in events if "status" in e]
    assert calls and all(e["event"] == "done" and e["status"] == 200 and e["verified"] for e in calls), calls
    assert {e["method"] for e in calls} == {"POST", "GET"}
    work = [e for e in events if e["event"] == "working"]
    assert len(work) == len(calls), "one piece of work per call"
    fired = [json.loads(ln) for ln in daemon.output().splitlines() if '"event": "fired"' in ln]
    assert fired and all(f["outcome"] == "ok" and f["http_status"] == 200 for f in fired), fired

    # A redelivery of a slot the app already did (same Idempotency-Key, next attempt): 200, not redone.
    first = done("refresh")[0]
    key, fence = first["key"], first["fencing_token"]
    slot = key.split("@", 1)[1]
    webhook = Webhook(secret)

    def signed(job: str, key: str, fence: int, attempt: int, auth: str = token) -> tuple[dict, bytes]:
        body = json.dumps({"job": job, "slot": slot, "attempt": attempt, "fencing_token": fence,
                           "idempotency_key": key}, separators=(",", ":")).encode()
        now = datetime.now(UTC)
        return {
            "Authorization": f"Bearer {auth}", "Content-Type": "application/json",
            "Idempotency-Key": f'"{key}"', "X-Scheduler-Job": job, "X-Scheduler-Slot": slot,
            "X-Scheduler-Attempt": str(attempt), "X-Scheduler-Fencing-Token": str(fence),
            "webhook-id": key, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": webhook.sign(key, now, body.decode()),
        }, body

    headers, body = signed("refresh", key, fence, 2)
    assert call(base + "/tasks/refresh", "POST", headers, body) == 200
    dup = wait_until(lambda: [e for e in app_events(app) if e["event"] == "duplicate" and e["key"] == key], timeout=5)
    assert dup[0]["attempt"] == "2"
    assert len([e for e in app_events(app) if e["event"] == "working"]) == len(work), "the replay redid the work"

    # What it turns away: a wrong token, a bad signature, a deposed leader's lower fencing token.
    headers, body = signed("refresh", key, fence, 3, auth="wrong")
    assert call(base + "/tasks/refresh", "POST", headers, body) == 401
    headers, body = signed("refresh", "refresh@new", fence, 1)
    assert call(base + "/tasks/refresh", "POST", headers, body.replace(b"refresh@new", b"refresh@other")) == 401
    headers, body = signed("refresh", "refresh@stale", fence - 1, 1)
    assert call(base + "/tasks/refresh", "POST", headers, body) == 409
    reasons = [e["reason"] for e in app_events(app) if e["event"] == "rejected"]
    assert len(reasons) == 3, reasons
    assert "bad bearer token" in reasons[0] and "bad signature" in reasons[1] and "stale fencing token" in reasons[2]
    assert len([e for e in app_events(app) if e["event"] == "working"]) == len(work)
    app.send_signal(signal.SIGTERM)
    app.wait(10)
