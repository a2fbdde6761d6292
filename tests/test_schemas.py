"""docs/schema/jobs.schema.json against the parser of jobs documents (scheduler/sources/
document.py): it accepts every document the project ships, and rejects documents the parser
rejects, for the reasons a schema can see (types, names, choices, unknown fields)."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from jsonschema import Draft202012Validator

from scheduler.config.settings import Settings
from scheduler.sources.document import DocumentError, validate
from tests.support import REPO_ROOT

SCHEMA = json.loads((REPO_ROOT / "docs" / "schema" / "jobs.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)
SETTINGS = Settings()  # SCHEDULER_API_URL http://localhost:8000: the documents' paths join it


def shipped() -> dict[str, object]:
    """Every jobs document in the repository: example files, the ConfigMap's, the pages' JSON."""
    found: dict[str, object] = {}
    for path in sorted((REPO_ROOT / "examples").glob("*.y*ml")) + sorted((REPO_ROOT / "examples").glob("*.json")):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and "jobs" in data:
            found[path.name] = data
    configmap = yaml.safe_load((REPO_ROOT / "deploy" / "kubernetes" / "configmap-jobs.yaml").read_text())
    found["configmap-jobs.yaml"] = yaml.safe_load(configmap["data"]["jobs.yaml"])
    for page in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]:
        for i, block in enumerate(re.findall(r"```json\n(.*?)```", page.read_text(), re.S)):
            if block.lstrip().startswith('{"jobs"'):
                found[f"{page.name} block {i}"] = json.loads(block)
    return found


SHIPPED = shipped()


def test_every_shipped_document_is_found():
    assert {"jobs.yaml", "configmap-jobs.yaml", "README.md block 0"} <= set(SHIPPED)


def test_the_schema_is_valid_json_schema():
    Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_schema_and_the_parser_accept_every_shipped_document(name):
    document = SHIPPED[name]
    errors = [e.message for e in VALIDATOR.iter_errors(document)]
    assert not errors, errors
    parsed = validate(document, "file", SETTINGS)
    assert parsed.jobs and not parsed.rejected, parsed.rejected


def _job(**fields) -> dict:
    return {"jobs": [{"name": "j", "schedule": "every 1m", "url": "/j", **fields}]}


def _without(key: str) -> dict:
    document = _job()
    del document["jobs"][0][key]
    return document


BAD = {
    "not an object": [],
    "no jobs list": {},
    "jobs not a list": {"jobs": {"name": "j"}},
    "a job not an object": {"jobs": ["j"]},
    "no name": _without("name"),
    "no schedule": _without("schedule"),
    "no url": _without("url"),
    "a name with capitals": {"jobs": [{"name": "Bad_Name", "schedule": "every 1m", "url": "/j"}]},
    "a name ending in -": {"jobs": [{"name": "j-", "schedule": "every 1m", "url": "/j"}]},
    "an unknown field": _job(schedul="every 1m"),
    "headers as text": _job(headers="X-Team: ops"),
    "a header's value a number": _job(headers={"X-Team": 1}),
    "enabled as text": _job(enabled="yes"),
    "retries a boolean": _job(retries=True),
    "retries over 100": _job(retries=101),
    "an unknown method": _job(method="FETCH"),
    "an unknown catchup": _job(catchup="sometimes"),
    "an unknown concurrency": _job(concurrency="parallel"),
    "an empty timeout": _job(timeout=""),
    "a null schedule": _job(schedule=None),
    "a timeout as a list": _job(timeout=[30]),
    "a url as a number": _job(url=5),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_the_schema_rejects_what_the_parser_rejects(name):
    document = BAD[name]
    try:
        parsed = validate(document, "file", SETTINGS)
    except DocumentError:
        pass
    else:
        assert parsed.rejected and not parsed.jobs, f"the parser takes {name!r}: not a bad document"
    assert not VALIDATOR.is_valid(document), f"the schema accepts {name!r}, which the parser rejects"


def test_choices_of_any_case_pass_both():
    document = _job(method="post", catchup="ALL", concurrency="Replace", timeout=1.5, retries="3")
    assert VALIDATOR.is_valid(document)
    assert not validate(document, "file", SETTINGS).rejected
