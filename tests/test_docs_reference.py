"""The references generated from the code (docs/gen_reference.py) are equal to what the code
says now: the settings table, the metrics registry, the CLI parser, the control API's routes
and the job fields. After a change there, `uv run python docs/gen_reference.py` rewrites them."""

from __future__ import annotations

import asyncio
import importlib.util
import json

import pytest

from tests.support import REPO_ROOT

DOCS = REPO_ROOT / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
OUTPUTS = GEN.outputs()


@pytest.mark.parametrize("path", sorted(OUTPUTS), ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_the_generated_file_is_what_the_code_says_now(path):
    assert path.is_file() and path.read_text() == OUTPUTS[path], (
        f"{path.relative_to(REPO_ROOT)} is out of date: run `uv run python docs/gen_reference.py`"
    )


def _served_routes() -> set[tuple[str, str]]:
    """What the control API serves, read from its router table, not through the generator."""
    from scheduler.config.settings import Settings
    from scheduler.config.tokens import all_tokens
    from scheduler.control.api import ControlApi

    loop = asyncio.new_event_loop()
    try:
        return {(m, p) for m, p, _, _ in ControlApi(Settings(), None, loop, all_tokens("t", ())).routes() if p.startswith("/api/")}
    finally:
        loop.close()


def test_openapi_describes_every_route_the_server_serves_and_no_other():
    spec = json.loads((DOCS / "openapi.json").read_text())
    described = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    served = _served_routes()
    assert served - described == set(), f"served but not in docs/openapi.json: {sorted(served - described)}"
    assert described - served == set(), f"in docs/openapi.json but not served: {sorted(described - served)}"


def test_openapi_is_3_1_with_valid_schemas_and_a_path_parameter_for_each_placeholder():
    from jsonschema import Draft202012Validator

    spec = json.loads((DOCS / "openapi.json").read_text())
    assert spec["openapi"].startswith("3.1") and spec["info"]["version"]
    for schema in spec["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for path, ops in spec["paths"].items():
        placeholders = {p.strip("{}") for p in path.split("/") if p.startswith("{")}
        for method, op in ops.items():
            assert {p["name"] for p in op.get("parameters", []) if p["in"] == "path"} == placeholders, (method, path)
            assert "401" in op["responses"] and any(code.startswith("2") for code in op["responses"]), (method, path)
            assert ("requestBody" in op) == (method == "post"), (method, path)


def test_the_metrics_reference_lists_every_family_of_a_running_registry():
    text = (DOCS / "reference" / "metrics.md").read_text()
    for family in GEN.metric_families():
        assert f"| `{family['name']}` |" in text
    assert "cron_sidecar_build_info" in text and "scheduler_" not in text.replace("SCHEDULER_", "")


def test_the_cli_reference_names_every_command_and_option_of_the_parser():
    import argparse

    from scheduler.cli.program import build_parser

    text = (DOCS / "reference" / "cli.md").read_text()
    for path, parser in GEN._commands(build_parser(), []):
        if path:
            assert f"## `{' '.join(path)}`" in text, path
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                assert f"`{action.option_strings[0]}" in text, (path, action.option_strings)


def test_the_settings_reference_names_every_setting_and_job_field():
    from scheduler.config.jobs import JOB_FIELDS
    from scheduler.config.settings import SETTINGS

    text = (DOCS / "reference" / "settings.md").read_text()
    for setting in SETTINGS:
        assert f"| `{setting.env}` |" in text
    for field in JOB_FIELDS:
        assert f"| `{field}` | `{field.lower()}` |" in text
