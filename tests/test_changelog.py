"""CHANGELOG.md keeps the Keep a Changelog form: `[Unreleased]` on top, then each release
with its date, newest first, and every entry under one of the known categories."""

from __future__ import annotations

import re
import subprocess
from datetime import date

import pytest

from scheduler import __version__
from tests.support import REPO_ROOT

CHANGELOG = REPO_ROOT / "CHANGELOG.md"
CATEGORIES = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")
RELEASE = re.compile(r"^## \[(\d+)\.(\d+)\.(\d+)\] - (\d{4}-\d{2}-\d{2})$")


def sections() -> list[tuple[str, list[str]]]:
    """(## heading, its lines) in order; what comes before the first heading is left out."""
    out: list[tuple[str, list[str]]] = []
    for line in CHANGELOG.read_text().splitlines():
        if line.startswith("## "):
            out.append((line, []))
        elif out:
            out[-1][1].append(line)
    return out


def test_unreleased_is_on_top_and_every_release_has_a_date_newest_first():
    headings = [h for h, _ in sections()]
    assert headings and headings[0] == "## [Unreleased]", headings[:1]
    releases = []
    for heading in headings[1:]:
        m = RELEASE.match(heading)
        assert m, f"{heading!r} is not `## [X.Y.Z] - YYYY-MM-DD`"
        releases.append((tuple(int(g) for g in m.groups()[:3]), date.fromisoformat(m.group(4))))
    assert releases, "no release section"
    assert [v for v, _ in releases] == sorted((v for v, _ in releases), reverse=True), "versions out of order"
    assert [d for _, d in releases] == sorted((d for _, d in releases), reverse=True), "dates out of order"
    assert tuple(int(p) for p in __version__.split(".")) in {v for v, _ in releases}, (
        f"the package's version {__version__} has no section"
    )


def test_every_entry_sits_under_a_known_category():
    for heading, lines in sections():
        category = None
        seen: list[str] = []
        for line in lines:
            if line.startswith("### "):
                category = line[4:].strip()
                assert category in CATEGORIES, f"{heading}: unknown category {category!r}"
                assert category not in seen, f"{heading}: {category} appears twice"
                seen.append(category)
            elif line.startswith(("- ", "* ")):
                assert category is not None, f"{heading}: an entry outside any category: {line[:60]!r}"
            elif line.startswith("#"):
                raise AssertionError(f"{heading}: unexpected heading {line!r}")
        assert seen == sorted(seen, key=CATEGORIES.index), f"{heading}: categories out of order: {seen}"


def test_a_tagged_release_is_dated_on_its_commit():
    checked = []
    for heading, _ in sections()[1:]:
        m = RELEASE.match(heading)
        assert m
        tag = "v{}.{}.{}".format(*m.groups()[:3])
        r = subprocess.run(["git", "-C", str(REPO_ROOT), "log", "-1", "--format=%as", f"{tag}^{{commit}}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            continue  # not in this clone: tags are fetched separately
        assert r.stdout.strip() == m.group(4), f"{tag} is on a commit of {r.stdout.strip()}, not {m.group(4)}"
        checked.append(tag)
    if not checked:
        pytest.skip("no release tag in this clone (tags are fetched separately)")
