"""The docs site: it builds with `mkdocs build --strict` (every link and anchor resolves, every
page is in the nav), the troubleshooting page covers every warning and error the daemon logs,
and the README stays a newcomer's page."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.log_messages import messages
from tests.support import REPO_ROOT

DOCS = REPO_ROOT / "docs"
README = REPO_ROOT / "README.md"
TROUBLESHOOTING = DOCS / "troubleshooting.md"


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed (it is in the dev group: uv sync installs it)")
def test_the_site_builds_strict(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "troubleshooting/index.html", "reference/metrics/index.html", "openapi.json",
                 "schema/jobs.schema.json"):
        assert (tmp_path / "site" / page).is_file(), page


def test_every_page_is_in_the_nav():
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())

    def pages(nav):
        for item in nav:
            for value in item.values():
                yield from (pages(value) if isinstance(value, list) else [value])

    listed = set(pages(config["nav"]))
    written = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert listed == written


@pytest.mark.parametrize("message", sorted({m.text for m in messages()}))
def test_every_warning_and_error_the_daemon_logs_is_on_the_troubleshooting_page(message):
    where = sorted({f"scheduler/{m.file}:{m.line}" for m in messages() if m.text == message})
    assert _flat(message) in _flat(TROUBLESHOOTING.read_text()), (
        f"docs/troubleshooting.md does not explain {message!r} (logged at {', '.join(where)}): add its cause and what to do"
    )


def test_the_message_collector_finds_each_kind_of_message():
    found = {m.text for m in messages()}
    assert "claim refused: the lease is not ours" in found  # a string
    assert "failed; restarting it" in found  # an f-string's longest literal part
    assert {"jobs source unreadable; retrying", "jobs source unreadable; keeping its last good jobs"} <= found  # both branches
    assert "state store unreachable; retrying" in found  # through LeaseKeeper.failed(message)
    assert any("neither is set" in m for m in found)  # settings.warnings, logged at start


def test_the_readme_is_a_newcomers_page_under_20_kb():
    text = README.read_text()
    assert len(text.encode()) <= 20 * 1024, f"README.md is {len(text.encode())} bytes"
    # the two commands of the quick start, as .ci/run and the tests run them
    assert "\nuv run python -m scheduler demo\n" in text and "\nuv run pytest\n" in text
    assert re.search(r"^  uv run python -m scheduler$", text, re.MULTILINE), "no standalone daemon command"
    for section in ("## Quick start", "## A first job from the environment", "## A first job from the app's document",
                    "## A first deploy", "## Documentation"):
        assert section in text, section


def test_the_readme_links_resolve():
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)(?:#[^)]*)?\)", README.read_text()):
        assert (REPO_ROOT / target).exists(), f"README.md links {target}, which is not there"
