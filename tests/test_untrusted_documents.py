"""SPEC section 6 rule 6: a document of jobs is untrusted input written by the app's users.

Any value of any type in any field rejects that job alone with a sentence; nothing in a
document stops its source from being read again or exhausts memory (YAML aliases); and a
job's URL must lie on SCHEDULER_API_URL's origin unless SCHEDULER_JOBS_ALLOWED_ORIGINS lists
its origin. The bearer token goes to the API URL's origin only, for env jobs too.
"""

from __future__ import annotations

import json
import math
import os
import tracemalloc
from collections.abc import Iterator

import pytest
import yaml
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from harness.receiver import Receiver
from scheduler.config import loader as config
from scheduler.sources.text import DocumentError, parse_bytes
from scheduler.sources.document import FIELDS, validate
from tests.e2e import standalone_env
from tests.support import run_cli

API = "http://127.0.0.1:9"


def settings(**env: str) -> config.Settings:
    return config.load({"SCHEDULER_API_URL": API, "SCHEDULER_JOB_BASE_SCHEDULE": "every 1h",
                        "SCHEDULER_JOB_BASE_URL": "/base", **env})


def job(name: str, **fields) -> dict:
    return {"name": name, "schedule": "every 1m", "url": f"/tasks/{name}", **fields}


# Every JSON type, and what YAML adds (other key types, non-finite floats, huge numbers).
SCALARS = (st.none() | st.booleans() | st.integers() | st.sampled_from([30, -400, 5000]).map(lambda n: 10**n if n > 0 else -(10**-n)) | st.floats()
           | st.text(max_size=20) | st.sampled_from(["", " ", "\x00", "every 1s", "0 * * * *", "/x", "http://evil:1/x",
                                                     "1e400", "nan", "-1", "9" * 5000, "true", "POST", "UTC"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6) | st.integers(), inner, max_size=3), max_leaves=10)
KEYS = st.sampled_from(["name", *FIELDS, "nmae", "Schedule", ""]) | st.text(max_size=8)


def is_sentence(problem: str) -> bool:
    return bool(problem) and "\n" not in problem and "Traceback" not in problem and len(problem) <= 600


# A longer run: DOCUMENT_FUZZ_EXAMPLES=20000 uv run pytest -n 0 tests/test_untrusted_documents.py
EXAMPLES = int(os.environ.get("DOCUMENT_FUZZ_EXAMPLES", "300"))


@hsettings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(KEYS, VALUES, max_size=5), max_size=4),
       st.lists(st.tuples(st.integers(0, 3), KEYS, VALUES), max_size=6))
def test_any_value_of_any_type_in_any_field_rejects_that_job_alone_with_a_sentence(extra_jobs, edits):
    # Valid jobs first, so that later ones take the alike-job path as well as the full one.
    items: list = [job("good-1"), job("good-2", headers={"X-A": "1"}, timeout=5)]
    for i, key, value in edits:
        edited = job(f"edited-{i}")
        edited[key] = value
        items.append(edited)
    items += extra_jobs
    items.append(job("good-last"))
    s = settings()
    first = validate({"jobs": items}, "url", s)
    again = validate({"jobs": list(reversed(items))}, "url", s, previous=first)
    for parsed in (first, again):
        assert {"good-1", "good-2", "good-last"} <= parsed.jobs.keys()
        assert all(is_sentence(r.problem) for r in parsed.rejected), parsed.rejected
        assert len(parsed.jobs) + len(parsed.rejected) == len(items)


@pytest.mark.parametrize("bad", [
    {"body": {"a": 1}}, {"body": {"a": [1]}}, {"headers": {"X-A": {"a": 1}}}, {"headers": {"X-A": [1]}},
    {"headers": {"X-A": None}}, {"headers": {1: "x"}}, {"timeout": 1e400}, {"timeout": -1e400},
    {"timeout": math.nan}, {"jitter": 10**5000}, {"retries": 1e400}, {"catchup_window": 10**30},
])
def test_a_value_that_used_to_raise_rejects_its_job_after_a_valid_one(bad):
    parsed = validate({"jobs": [job("model", headers={"X-A": "1"}), job("odd", **bad), job("after")]}, "url", settings())
    assert set(parsed.jobs) == {"model", "after"}
    (rejected,) = parsed.rejected
    assert rejected.name == "odd" and is_sentence(rejected.problem), rejected


# -- YAML aliases -------------------------------------------------------------------------

def bomb_lines() -> list[str]:
    """The billion laughs: nine anchors, each an object of nine aliases of the one before."""
    lines = ["a: &a {" + ", ".join(f"k{k}: lol" for k in range(9)) + "}"]
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} {{" + ", ".join(f"k{k}: *{prev}" for k in range(9)) + "}")
    return lines


def bomb_document() -> bytes:
    body = "defaults:\n" + "".join("  " + line + "\n" for line in bomb_lines())
    return (body + "jobs:\n  - name: bomb\n    schedule: every 1m\n    url: /x\n    headers: *i\n").encode()


def test_a_yaml_alias_bomb_is_refused_with_bounded_memory():
    data = bomb_document()
    assert len(data) < 1200  # 9 values nested 9 deep: 9^9 once expanded
    tracemalloc.start()
    try:
        with pytest.raises(DocumentError, match="aliases expand"):
            parse_bytes(data, "yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak


def test_a_recursive_yaml_alias_is_refused():
    with pytest.raises(DocumentError, match="contains it"):
        parse_bytes(b"jobs: &j\n  - name: a\n    schedule: every 1m\n    url: /x\n    headers: {x: *j}\n", "yaml")


def test_anchors_that_share_a_small_value_still_load():
    lines = ["defaults: &h {X-Team: ops, X-Env: prod}", "jobs:"]
    lines += [f"  - {{name: j-{i}, schedule: every 1m, url: /x/{i}, headers: *h}}" for i in range(2000)]
    data = parse_bytes("\n".join(lines).encode(), "yaml")
    parsed = validate(data, "file", settings())
    assert len(parsed.jobs) == 2000 and not parsed.rejected


@hsettings(max_examples=max(150, EXAMPLES // 4), deadline=None)
@given(st.lists(st.tuples(st.integers(1, 12), st.integers(0, 8)), min_size=1, max_size=8))
def test_any_nest_of_aliases_loads_within_its_bound_or_is_refused(levels):
    """Anchors, each a list of `width` aliases of the one before: either the expanded
    document stays under the bound (and validates), or it is refused, never a crash."""
    lines, prev = [], None
    for i, (width, _) in enumerate(levels):
        items = ", ".join([f"*a{prev}" if prev is not None else "v"] * width)
        lines.append(f"  k{i}: &a{i} [{items}]")
        prev = i
    text = "defaults:\n" + "\n".join(lines) + f"\njobs:\n  - {{name: a, schedule: every 1m, url: /x, body: *a{prev}}}\n"
    try:
        data = parse_bytes(text.encode(), "yaml")
    except DocumentError:
        return
    parsed = validate(data, "file", settings())
    assert [r.name for r in parsed.rejected] == ["a"]


# -- where a job may send, and where the token goes ---------------------------------------

def test_a_document_job_on_another_origin_is_rejected_unless_allowed():
    items = [job("home"), job("meta", url="http://169.254.169.254/latest/meta-data/"),
             job("other-port", url="http://127.0.0.1:10/x"), job("same", url=f"{API}/y"),
             job("userinfo", url="http://127.0.0.1:9@evil.example/x"), job("hooks", url="https://hooks.example.com/h")]
    parsed = validate({"jobs": items}, "url", settings())
    assert set(parsed.jobs) == {"home", "same"}
    problems = {r.name: r.problem for r in parsed.rejected}
    assert "not the origin of SCHEDULER_API_URL" in problems["meta"] and "169.254.169.254" in problems["meta"]
    assert set(problems) == {"meta", "other-port", "userinfo", "hooks"}

    allowed = settings(SCHEDULER_JOBS_ALLOWED_ORIGINS="https://hooks.example.com, http://127.0.0.1:10")
    parsed = validate({"jobs": items}, "url", allowed)
    assert set(parsed.jobs) == {"home", "same", "hooks", "other-port"}


@pytest.mark.parametrize("value", ["https://h/x", "ftp://h", "hooks.example.com", "https://u:p@h", "https://h?x=1", ","])
def test_an_allowed_origin_is_only_scheme_host_and_port(value):
    with pytest.raises(config.ConfigError) as err:
        settings(SCHEDULER_JOBS_ALLOWED_ORIGINS=value)
    assert "SCHEDULER_JOBS_ALLOWED_ORIGINS" in str(err.value)


@pytest.fixture
def other() -> Iterator[Receiver]:
    """A second server: another origin than the app's."""
    recv = Receiver()
    try:
        yield recv
    finally:
        recv.close()


def test_a_running_daemon_keeps_reading_a_hostile_document_and_sends_the_token_to_the_app_only(
        tmp_path, receiver, other, daemon_factory):
    """One real daemon, standalone: a document full of values that used to kill the
    source, jobs aimed at another origin (allowed, and not), an env job on another origin,
    and the jobs URL's own request. The source goes on applying changes."""
    jobs_file = tmp_path / "jobs.json"
    hostile = [job("model", headers={"X-A": "1"}), job("odd-body", body={"a": 1}),
               job("odd-header", headers={"X-A": {"a": 1}}), job("odd-timeout", timeout=1e308 * 10),
               job("tick", schedule="every 1s", url="/tick"),
               job("stealer", schedule="every 1s", url=f"{other.url}/steal"),
               job("meta", schedule="every 1s", url="http://169.254.169.254/latest/")]
    jobs_file.write_text(json.dumps({"jobs": hostile}).replace("Infinity", "1e400"))
    allowed_host = other.url.replace("127.0.0.1", "localhost")
    env = standalone_env(receiver, tmp_path / "state.db", {"ENV_ELSEWHERE": {"SCHEDULE": "every 1s",
                                                                           "URL": f"{other.url}/env"}},
                         jobs_file=str(jobs_file), api_token="app-token-123",
                         jobs_allowed_origins=allowed_host)
    daemon = daemon_factory(env)
    receiver.wait_for(lambda rs: any(r.path == "/tick" for r in rs), timeout=20)
    other.wait_for(lambda rs: any(r.path == "/env" for r in rs), timeout=20)
    out = daemon.output()
    for name in ("odd-body", "odd-header", "odd-timeout", "stealer", "meta"):
        assert f'"{name}"' in out, name

    # The source is still read: a job added now fires, one on an allowed origin without the token.
    tmp = tmp_path / "jobs.tmp"
    tmp.write_text(json.dumps({"jobs": [*hostile[:5], job("late", schedule="every 1s", url="/late"),
                                        job("hooks", schedule="every 1s", url=f"{allowed_host}/hook")]})
                   .replace("Infinity", "1e400"))
    os.replace(tmp, jobs_file)
    receiver.wait_for(lambda rs: any(r.path == "/late" for r in rs), timeout=20)
    other.wait_for(lambda rs: any(r.path == "/hook" for r in rs), timeout=20)

    assert all(r.header("authorization") == "Bearer app-token-123" for r in receiver.requests)
    assert not any(r.path == "/steal" for r in other.requests)
    assert other.requests and all(r.header("authorization") is None for r in other.requests)
    assert "Traceback" not in daemon.output()
    assert "app-token-123" not in daemon.output()
    daemon.terminate()
    assert daemon.wait() == 0


def test_check_lists_what_a_hostile_document_rejects_and_strict_exits_78(tmp_path):
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_text(yaml.safe_dump({"jobs": [job("fine", headers={"X-A": "1"}), job("odd", headers={"X-A": {"a": 1}}),
                                                  job("far", url="http://10.1.2.3/x")]})
                         + "extra: {t: .inf}\n")
    env = {"SCHEDULER_API_URL": API, "SCHEDULER_JOBS_FILE": str(jobs_file)}
    done = run_cli(["check"], env)
    assert done.returncode == 0, done.stderr
    assert "odd" in done.stdout + done.stderr and "far" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    strict = run_cli(["check", "--strict"], env)
    assert strict.returncode == 78 and "Traceback" not in strict.stderr


def test_check_on_an_alias_bomb_says_so_without_a_traceback(tmp_path):
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_bytes(bomb_document())
    done = run_cli(["check"], {"SCHEDULER_API_URL": API, "SCHEDULER_JOBS_FILE": str(jobs_file)})
    assert "aliases expand" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
