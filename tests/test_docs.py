"""README.md and env.example stay in step with the configuration the code accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scheduler.config import GLOBAL_DEFAULTS, JOB_FIELDS, SECRETS
from tests.support import REPO_ROOT, run_cli

README = REPO_ROOT / "README.md"
ENV_EXAMPLE = REPO_ROOT / "env.example"

GLOBAL_NAMES = list(GLOBAL_DEFAULTS) + [f"{name}_FILE" for name in SECRETS]

# `SCHEDULER_X=value` or `# SCHEDULER_X=value`, one per line.
_ASSIGNMENT = re.compile(r"^\s*(?:#\s*)?(SCHEDULER_[A-Z0-9_<>]+)=(.*)$")


def _mentions(text: str, name: str) -> bool:
    """`name` as a whole variable name (SCHEDULER_API_TOKEN does not match inside
    SCHEDULER_API_TOKEN_FILE)."""
    return re.search(rf"(?<![A-Z0-9_]){re.escape(name)}(?![A-Z0-9_])", text) is not None


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return re.sub(r"\s+#.*$", "", value)  # an unquoted value's trailing comment


def _assignments(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = _ASSIGNMENT.match(line)
        if m:
            found.setdefault(m.group(1), []).append(_unquote(m.group(2)))
    return found


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text()


@pytest.fixture(scope="module")
def env_example() -> str:
    return ENV_EXAMPLE.read_text()


@pytest.mark.parametrize("name", GLOBAL_NAMES)
def test_global_setting_is_documented_in_readme(readme: str, name: str) -> None:
    assert _mentions(readme, name), f"README.md does not mention {name}"


@pytest.mark.parametrize("name", GLOBAL_NAMES)
def test_global_setting_is_listed_in_env_example(env_example: str, name: str) -> None:
    assert name in _assignments(env_example), f"env.example has no `{name}=` line"


@pytest.mark.parametrize("field", list(JOB_FIELDS))
def test_job_field_is_documented_in_readme(readme: str, field: str) -> None:
    assert f"`{field}`" in readme, f"README.md does not document job field {field}"


@pytest.mark.parametrize("field", list(JOB_FIELDS))
def test_job_field_is_listed_in_env_example(env_example: str, field: str) -> None:
    assert f"SCHEDULER_JOB_<NAME>_{field}" in _assignments(env_example), (
        f"env.example has no `SCHEDULER_JOB_<NAME>_{field}=` line"
    )


@pytest.mark.parametrize("name", [n for n, d in GLOBAL_DEFAULTS.items() if d is not None])
def test_env_example_shows_the_code_default(env_example: str, name: str) -> None:
    values = _assignments(env_example).get(name)
    assert values, f"env.example has no `{name}=` line"
    assert values == [GLOBAL_DEFAULTS[name]] * len(values), (
        f"env.example shows {name}={values}, the code's default is {GLOBAL_DEFAULTS[name]!r}"
    )


@pytest.mark.parametrize("field", [f for f, d in JOB_FIELDS.items() if d is not None])
def test_env_example_shows_the_job_field_default(env_example: str, field: str) -> None:
    name = f"SCHEDULER_JOB_<NAME>_{field}"
    values = _assignments(env_example).get(name)
    assert values == [JOB_FIELDS[field]], (
        f"env.example shows {name}={values}, the code's default is {JOB_FIELDS[field]!r}"
    )


def test_env_example_is_a_valid_configuration(tmp_path: Path) -> None:
    result = run_cli(["check", "--env-file", str(ENV_EXAMPLE.resolve())], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    assert not list(tmp_path.iterdir()), "check must not create files"
