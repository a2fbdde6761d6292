"""The package as published: licence, metadata and one version, read from a built wheel."""

from __future__ import annotations

import email
import json
import re
import shlex
import shutil
import subprocess
import tomllib
import zipfile

import pytest
from trove_classifiers import classifiers as KNOWN_CLASSIFIERS

from scheduler import __version__
from tests.support import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
REPOSITORY = "https://github.com/cron-sidecar/cron-sidecar"


@pytest.fixture(scope="module")
def wheel_metadata(tmp_path_factory) -> email.message.Message:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([uv, "build", "--wheel", "--out-dir", str(out), str(REPO_ROOT)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        message = email.message_from_bytes(z.read(meta))
        message["X-Files"] = " ".join(names)
    return message


def test_licence_is_mit_for_the_contributors():
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} cron-sidecar contributors$", text, re.M)
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text


def test_the_version_is_written_once():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "scheduler/__init__.py"
    written = [p.relative_to(REPO_ROOT) for p in (REPO_ROOT / "scheduler").glob("*.py")
               if re.search(r"""["']\d+\.\d+\.\d+["']""", p.read_text())]
    assert [str(p) for p in written] == ["scheduler/__init__.py"]
    from scheduler.dispatch import USER_AGENT

    assert USER_AGENT == f"cron-sidecar/{__version__}"


def test_wheel_carries_licence_classifiers_urls_keywords_and_the_version(wheel_metadata):
    meta = wheel_metadata
    assert meta["Version"] == __version__
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in meta.get_all("License-File")
    assert re.search(r"\.dist-info/licenses/LICENSE\b", meta["X-Files"]), "the licence file is not in the wheel"
    classifiers = meta.get_all("Classifier")
    assert classifiers and set(classifiers) <= KNOWN_CLASSIFIERS, set(classifiers) - KNOWN_CLASSIFIERS
    assert not [c for c in classifiers if c.startswith("License ::")], "PEP 639: the expression replaces these"
    assert "Programming Language :: Python :: 3.11" in classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Source", "Issues"} <= set(urls)
    assert all(u.startswith(REPOSITORY) for u in urls.values()), urls
    assert "cron" in meta["Keywords"].split(",") and "kubernetes" in meta["Keywords"].split(",")


def test_dockerfile_installs_from_the_lock_file_and_fails_when_it_is_stale():
    runs = [line for line in (REPO_ROOT / "Dockerfile").read_text().splitlines() if "uv sync" in line]
    assert runs and all("--locked" in r and "--frozen" not in r for r in runs), runs


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normalized(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0))


def _sbom_commands() -> list[list[str]]:
    page = (REPO_ROOT / "docs" / "deployment.md").read_text()
    return [shlex.split(line) for line in page.splitlines() if line.startswith("uv export ")]


def _exported_names(path, fmt: str) -> set[str]:
    if fmt.startswith("cyclonedx"):
        return {_normalized(c["name"]) for c in json.loads(path.read_text())["components"]}
    return {_normalized(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", path.read_text(), re.M)}


def test_the_documented_sbom_commands_list_the_runtime_dependencies_from_the_lock_alone(tmp_path):
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    commands = _sbom_commands()
    assert {c[c.index("--format") + 1] for c in commands} >= {"cyclonedx1.5", "requirements-txt"}, (
        "docs/deployment.md documents no SBOM command for each format"
    )
    runtime = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    runtime |= {_requirement_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["fast"]}
    dev = {_requirement_name(r) for r in PYPROJECT["dependency-groups"]["dev"]} - runtime
    for command in commands:
        assert "--frozen" in command and "--no-dev" in command, command
        fmt = command[command.index("--format") + 1]
        out = tmp_path / f"sbom.{fmt}"
        argv = [uv, *command[1:command.index("-o")], "--offline", "-o", str(out)]
        r = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        names = _exported_names(out, fmt)
        assert runtime <= names, f"{fmt}: missing {runtime - names}"
        assert not dev & names, f"{fmt}: development dependencies listed: {dev & names}"
