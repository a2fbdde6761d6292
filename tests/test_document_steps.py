"""A refresh's document decoded job by job gives what json.loads gives, value or error; and
what a refresh hands on (the names that changed) leads the merge and the job set to the
same jobs as comparing everything again."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from scheduler.sources import text as document_text
from scheduler.config import loader as config
from scheduler.sources.text import DocumentError, loads_in_steps, parse_bytes
from scheduler.sources.document import validate
from scheduler.engine.jobset import JobSet
from scheduler.sources.changes import diff
from scheduler.sources.watch import JobSources

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                      max_leaves=8)
documents = st.dictionaries(st.sampled_from(["jobs", "other", "", "j"]), values, max_size=3) | st.fixed_dictionaries(
    {"jobs": st.lists(st.dictionaries(st.sampled_from(["name", "schedule", "url", "x"]), values, max_size=4), max_size=6)})


def both(data: bytes):
    """(value or error text) of each way of decoding."""
    out = []
    for in_steps in (False, True):
        try:
            out.append(parse_bytes(data, "json", in_steps=in_steps))
        except DocumentError as exc:
            out.append(f"error: {exc}")
    return out


@pytest.fixture(params=[0, 7, 64 * 1024])
def chunk(request, monkeypatch):
    """Pieces of every size: one item, a few (a split often lands inside one), the daemon's."""
    monkeypatch.setattr(document_text, "CHUNK_CHARS", request.param)


tricky = st.sampled_from(["}, {", "},{", '"}, {"', "[{}, {}]", "\\", '\\"}, {'])  # split look-alikes in strings
jobs_like = st.lists(st.dictionaries(st.sampled_from(["name", "url", "h"]), values | tricky
                                     | st.dictionaries(tricky, tricky, max_size=2) | st.lists(st.dictionaries(tricky, tricky), max_size=2),
                                     max_size=3), max_size=8).map(lambda jobs: {"jobs": jobs})


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents | jobs_like, st.sampled_from([None, 0, 2]), st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]))
def test_a_document_decoded_in_steps_is_the_one_json_loads_gives(chunk, doc, indent, separators):
    text = json.dumps(doc, indent=indent, separators=separators)
    assert loads_in_steps(text) == json.loads(text)
    stepped, whole = both(text.encode())
    assert stepped == whole


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents | jobs_like, st.integers(0, 80), st.sampled_from(["", "x", ",", "]", "}", " ", "\ufeff", "\x00", "},{"]))
def test_a_broken_document_gets_the_error_json_loads_gives(chunk, doc, cut, junk):
    text = json.dumps(doc, separators=(",", ":"))
    broken = (text[:cut] + junk + text[cut:]).encode()
    stepped, whole = both(broken)
    assert stepped == whole


def test_the_keys_of_the_jobs_are_shared_as_json_loads_shares_them():
    """json.loads keeps one string per distinct key; a piece does the same within itself,
    so 100,000 jobs do not hold 100,000 copies of "name" (18 MB more if they did)."""
    text = json.dumps({"jobs": [{"name": f"job-{i}", "url": "/x"} for i in range(20_000)]})
    jobs = loads_in_steps(text)["jobs"]
    assert len({id(next(iter(job))) for job in jobs}) < len(jobs) / 100


SETTINGS = config.load({"SCHEDULER_API_URL": "http://127.0.0.1:1", "SCHEDULER_JOBS_URL": "/jobs",
                        "SCHEDULER_STATE_FILE": "/tmp/unused.db", "SCHEDULER_JOB_ENVJOB_SCHEDULE": "every 1h",
                        "SCHEDULER_JOB_ENVJOB_URL": "/e"})


def job_docs():
    names = st.sampled_from(["a", "b", "c", "d", "envjob", "Bad"])
    job = st.fixed_dictionaries({"name": names, "schedule": st.sampled_from(["every 1m", "every 2m", "61 * * * *"]),
                                 "url": st.sampled_from(["/x", "/y"]),
                                 "enabled": st.booleans()})
    return st.lists(job, max_size=6).map(lambda jobs: {"jobs": jobs})


@hsettings(max_examples=200, deadline=None)
@given(st.lists(job_docs(), min_size=1, max_size=5))
def test_the_changes_handed_on_lead_to_the_jobs_a_full_comparison_gives(docs):
    sources = JobSources(SETTINGS)
    source = sources._sources[0]
    offered: list[tuple[dict, set]] = []
    sources.on_change = lambda jobs, source_of, names: offered.append((jobs, names))
    jobset = JobSet(SETTINGS)
    previous = None
    for doc in docs:
        parsed = validate(doc, "url", SETTINGS, previous)
        if previous is not None:
            added, changed, removed = diff(previous.jobs, parsed.jobs)
            assert parsed.fresh == added | changed
            assert parsed.gone == removed
        source.good = previous = parsed
        sources._merge(set(parsed.fresh | parsed.gone))
        want = {n: j for n, j in parsed.jobs.items() if n != "envjob"}
        assert sources.current() == want
        assert {r["name"] for r in sources.rejected() if "environment" in r["problem"]} == (
            {"envjob"} & parsed.jobs.keys())
        for jobs, names in offered:
            jobset.offer(jobs, names)
        offered.clear()
        if jobset.pending is not None:
            from scheduler.engine.plan import Plan

            jobset.apply(Plan(jobset.jobs, 0.25), 1_700_000_000.0, lambda name: None, {})
        assert jobset.jobs == {**{n: j for n, j in want.items() if j.enabled}, **jobset.env}
