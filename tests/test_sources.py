"""Jobs from a file and from the app's URL (SPEC section 6): the rules that hold without the
engine, against real files and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.document_server import DocumentServer
from scheduler.sources import document as job_document
from scheduler.sources import readers as source_readers
from scheduler.config import loader as config
from scheduler.sources.document import validate
from scheduler.sources.readers import UNCHANGED, SourceError, UrlReader
from scheduler.sources.changes import diff
from scheduler.sources.state import backoff_s
from scheduler.sources.watch import JobSources
from tests.support import Receiver, run_cli

JOB = {"name": "tenant-42-digest", "schedule": "0 7 * * 1-5", "url": "/api/digest/42"}


def settings(**env: str) -> config.Settings:
    """Settings with one env job (`base`), so that a configuration without a source loads."""
    return config.load({"SCHEDULER_API_URL": "http://127.0.0.1:9", "SCHEDULER_JOB_BASE_SCHEDULE": "every 1h",
                        "SCHEDULER_JOB_BASE_URL": "/base", **env})


def doc(*jobs: dict) -> dict:
    return {"jobs": list(jobs)}


def job(name: str, **fields) -> dict:
    return {"name": name, "schedule": "every 1m", "url": f"/tasks/{name}", **fields}


async def until(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return found


# -- one document ------------------------------------------------------------------------

def test_a_document_job_maps_every_field_to_the_env_rules():
    d = doc({**JOB, "method": "put", "timeout": 90, "retries": 0, "body": "{}", "headers": {"X-Team": "ops"},
             "timezone": "Europe/Berlin", "jitter": "5s", "catchup": "none", "catchup_window": 1.5,
             "concurrency": "allow", "enabled": False})
    (spec,) = validate(d, "url", settings()).jobs.values()
    assert (spec.name, spec.method, spec.timeout_s, spec.retries, spec.body) == ("tenant-42-digest", "PUT", 90.0, 0, "{}")
    assert spec.headers == (("X-Team", "ops"),) and spec.url == "http://127.0.0.1:9/api/digest/42"
    assert (spec.timezone, spec.jitter_s, spec.catchup, spec.catchup_window_s) == ("Europe/Berlin", 5.0, "none", 1.5)
    assert (spec.concurrency, spec.enabled) == ("allow", False)


def test_a_document_job_is_the_same_spec_as_the_env_job_of_that_name():
    (env,) = [j for j in settings(SCHEDULER_JOB_H_JOB_SCHEDULE="H * * * *", SCHEDULER_JOB_H_JOB_URL="/x").jobs
              if j.name == "h-job"]
    (from_doc,) = validate(doc({"name": "h-job", "schedule": "H * * * *", "url": "/x"}), "file", settings()).jobs.values()
    assert from_doc == env  # the H spread too: moving a job into a file keeps its minute


def test_a_rejected_job_never_takes_the_others_with_it():
    parsed = validate(doc(job("good"), job("bad", schedule="61 * * * *"), job("Bad_Name"), 7, job("also-good")),
                      "file", settings())
    assert list(parsed.jobs) == ["good", "also-good"]
    assert [(r.name, r.source) for r in parsed.rejected] == [("bad", "file"), ("Bad_Name", "file"), ("jobs[3]", "file")]


def test_a_rejected_job_has_the_env_jobs_message():
    with pytest.raises(config.ConfigError) as env:
        settings(SCHEDULER_JOB_BAD_SCHEDULE="61 * * * *", SCHEDULER_JOB_BAD_URL="/x", SCHEDULER_JOB_BAD_METHOD="GRT")
    (r,) = validate(doc(job("bad", schedule="61 * * * *", method="GRT")), "url", settings()).rejected
    expected = [p.split(": ", 1)[1] for p in env.value.problems]
    assert [p.split(": ", 1)[1] for p in r.problem.split("; ")] == expected


def test_an_unknown_field_is_a_problem_of_that_job_with_a_suggestion():
    (r,) = validate(doc(job("a", schedual="every 1m")), "file", settings()).rejected
    assert r.name == "a" and "schedual: unknown field" in r.problem and "did you mean schedule?" in r.problem


@pytest.mark.parametrize("name", ["", "-a", "a-", "A", "a_b", "a" * 65, 42])
def test_a_name_outside_the_rule_is_rejected(name):
    (r,) = validate(doc(job("x") | {"name": name}), "file", settings()).rejected
    assert "name: expected 1-64 of a-z 0-9 -" in r.problem


@pytest.mark.parametrize("fields, problem", [
    ({"enabled": "false"}, "enabled: expected true or false (a boolean), got a string"),
    ({"headers": '{"X": "1"}'}, "headers: expected an object"),
    ({"retries": True}, "retries: expected a number or a string, got a boolean"),
    ({"url": None}, "url: is null"),
    ({"method": ""}, "method: is empty"),
    ({"headers": {"Authorization": "x"}}, "headers: may not set Authorization"),
])
def test_a_field_of_the_wrong_kind_is_rejected(fields, problem):
    (r,) = validate(doc(job("a", **fields)), "url", settings()).rejected
    assert problem in r.problem


def test_a_name_defined_twice_in_one_document_keeps_the_first():
    parsed = validate(doc(job("a"), job("a", url="/other")), "url", settings())
    assert parsed.jobs["a"].url.endswith("/tasks/a")
    assert "defined again at jobs[1]" in parsed.rejected[0].problem


def test_an_unchanged_job_keeps_its_spec_object():
    first = validate(doc(job("a"), job("b")), "url", settings())
    second = validate(doc(job("a"), job("b", url="/new")), "url", settings(), first)
    assert second.jobs["a"] is first.jobs["a"] and second.jobs["b"] != first.jobs["b"]


@pytest.mark.parametrize("data, kind, problem", [
    (b"{not json", "json", "not valid JSON at line 1"),
    (b"jobs: [\n", "yaml", "not valid YAML"),
    (b'{"job": []}', "json", 'expected an object with a "jobs" list'),
    (b"[]", "json", 'expected an object with a "jobs" list'),
])
def test_a_document_that_cannot_be_used_says_why(data, kind, problem):
    with pytest.raises(job_document.DocumentError, match=problem):
        validate(job_document.parse_bytes(data, kind), "file", settings())


# -- diff and backoff ----------------------------------------------------------------------

def test_diff_names_added_changed_and_removed_jobs():
    s = settings()
    old = validate(doc(job("keep"), job("edit"), job("gone")), "url", s).jobs
    new = validate(doc(job("keep"), job("edit", schedule="every 2m"), job("new")), "url", s).jobs
    assert diff(old, new) == ({"new"}, {"edit"}, {"gone"})
    assert diff(new, new) == (set(), set(), set())


def test_a_rename_is_a_removal_and_an_addition():
    s = settings()
    assert diff(validate(doc(job("a")), "url", s).jobs, validate(doc(job("b", url="/tasks/a")), "url", s).jobs) == (
        {"b"}, set(), {"a"})


def test_backoff_doubles_from_one_second_and_never_passes_the_refresh():
    assert [backoff_s(n, 30, lambda: 1.0) for n in (1, 2, 3, 4, 5, 6, 50)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_s(3, 30, lambda: 0.0) == 2  # the upper half of the cap
    assert backoff_s(10, 2, lambda: 1.0) == 2


# -- the file ----------------------------------------------------------------------------

def write(path: Path, document: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document))
    os.replace(tmp, path)  # a new inode, as a ConfigMap's ..data swap gives


def test_an_unreadable_document_keeps_the_last_good_set(tmp_path):
    path = tmp_path / "jobs.json"
    write(path, doc(job("a")))
    sources = JobSources(settings(SCHEDULER_JOBS_FILE=str(path)))
    asyncio.run(sources.read_once())
    assert list(sources.current()) == ["a"]
    path.write_text('{"jobs": [')
    asyncio.run(sources.read_once())
    (state,) = sources.states()
    assert list(sources.current()) == ["a"] and state["ok"] is False and "not valid JSON" in state["error"]
    path.unlink()
    asyncio.run(sources.read_once())
    assert list(sources.current()) == ["a"] and "cannot read" in sources.states()[0]["error"]


def test_a_yaml_file_is_read(tmp_path):
    path = tmp_path / "jobs.yml"
    path.write_text("jobs:\n  - name: a\n    schedule: every 30s\n    url: /a\n    enabled: no\n    timeout: 2m\n")
    sources = JobSources(settings(SCHEDULER_JOBS_FILE=str(path)))
    asyncio.run(sources.read_once())
    assert sources.current()["a"].enabled is False and sources.current()["a"].timeout_s == 120


def test_a_file_over_the_size_limit_is_a_failed_read(tmp_path, monkeypatch):
    monkeypatch.setattr(source_readers, "MAX_DOCUMENT_BYTES", 100)
    path = tmp_path / "jobs.json"
    write(path, doc(*(job(f"j{i}") for i in range(10))))
    sources = JobSources(settings(SCHEDULER_JOBS_FILE=str(path)))
    asyncio.run(sources.read_once())
    assert sources.current() == {} and "over the limit of 100" in sources.states()[0]["error"]


def test_a_file_change_is_read_while_running(tmp_path):
    path = tmp_path / "jobs.json"
    write(path, doc(job("a")))
    seen: list[list[str]] = []

    async def main():
        sources = JobSources(settings(SCHEDULER_JOBS_FILE=str(path)), file_poll_s=0.02,
                             on_change=lambda jobs, source_of, names: seen.append(sorted(jobs)))
        await sources.start(sighup=False)
        await until(lambda: seen == [["a"]], what="the first read")
        write(path, doc(job("a"), job("b")))
        await until(lambda: len(seen) == 2, what="the change")
        await sources.aclose()

    asyncio.run(main())
    assert seen == [["a"], ["a", "b"]]


def test_sighup_rereads_the_file_even_when_its_stat_is_unchanged(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(doc(job("a"))))
    seen: list[list[str]] = []

    async def main():
        sources = JobSources(settings(SCHEDULER_JOBS_FILE=str(path)), file_poll_s=3600,
                             on_change=lambda jobs, source_of, names: seen.append(sorted(jobs)))
        await sources.start()
        await sources.wait_first_read()
        before = os.stat(path)
        with open(path, "r+") as f:  # same inode and size, mtime put back: only SIGHUP tells
            f.write(json.dumps(doc(job("b"))))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: len(seen) == 2, what="the re-read on SIGHUP")
        await sources.aclose()

    asyncio.run(main())
    assert seen == [["a"], ["b"]]


# -- the URL -----------------------------------------------------------------------------

class App:
    """The app's side: one document of jobs with an ETag, answering If-None-Match with 304."""

    def __init__(self, document: dict, status: int = 200):
        self.document, self.status = document, status
        self.receiver = Receiver(self.handle)

    def handle(self, request):
        if self.status != 200:
            return self.status, {"Location": "/elsewhere"}, b"no"
        body = json.dumps(self.document).encode()
        etag = f'"{hash(body) & 0xffffffff:x}"'
        if request.header("if-none-match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, {"ETag": etag, "Content-Type": "application/json"}, body


def url_settings(app: App, **env: str) -> config.Settings:
    return settings(SCHEDULER_API_URL=app.receiver.url, SCHEDULER_JOBS_URL="/internal/jobs",
                    SCHEDULER_API_TOKEN="tok-123", **env)


def test_the_url_is_asked_with_the_bearer_token_and_if_none_match_and_a_304_is_unchanged():
    app = App(doc(job("a")))
    with app.receiver:
        s = url_settings(app)

        async def main():
            reader = UrlReader(s, s.jobs_url)
            first = await reader.read(None)
            again = await reader.read(first)
            await reader.aclose()
            return first, again

        first, again = asyncio.run(main())
        one, two = app.receiver.requests
    assert list(first.jobs) == ["a"] and again is UNCHANGED
    assert one.path == "/internal/jobs" and one.header("authorization") == "Bearer tok-123"
    assert one.header("if-none-match") is None and two.header("if-none-match") == reader_etag(app)


def reader_etag(app: App) -> str:
    body = json.dumps(app.document).encode()
    return f'"{hash(body) & 0xffffffff:x}"'


def test_a_redirect_is_a_failed_read_and_never_followed():
    app = App(doc(job("a")), status=302)
    with app.receiver:
        s = url_settings(app)

        async def main():
            reader = UrlReader(s, s.jobs_url)
            try:
                with pytest.raises(SourceError, match="HTTP 302: redirects are not followed"):
                    await reader.read(None)
            finally:
                await reader.aclose()

        asyncio.run(main())
        assert [r.path for r in app.receiver.requests] == ["/internal/jobs"]


def test_a_document_over_the_size_limit_is_a_failed_read(monkeypatch):
    monkeypatch.setattr(source_readers, "MAX_DOCUMENT_BYTES", 100)
    app = App(doc(*(job(f"j{i}") for i in range(10))))
    with app.receiver:
        sources = JobSources(url_settings(app))
        asyncio.run(sources.read_once())
    assert sources.current() == {} and "over the limit of 100 bytes" in sources.states()[0]["error"]


def test_a_url_that_does_not_answer_in_time_is_a_failed_read():
    receiver = Receiver(lambda request: (time.sleep(2), 200)[1])
    with receiver:
        s = settings(SCHEDULER_API_URL=receiver.url, SCHEDULER_JOBS_URL="/jobs")

        async def main():
            reader = UrlReader(s, s.jobs_url)
            reader.timeout_s = 0.2
            try:
                with pytest.raises(SourceError, match="no answer within 0.2s"):
                    await reader.read(None)
            finally:
                await reader.aclose()

        asyncio.run(main())


def test_at_start_with_no_document_yet_the_source_is_retried_until_it_answers():
    app = App(doc(job("a")), status=503)
    seen: list[dict] = []
    with app.receiver:
        async def main():
            sources = JobSources(url_settings(app, SCHEDULER_JOB_ENV_SCHEDULE="every 1m", SCHEDULER_JOB_ENV_URL="/e"),
                                 on_change=lambda jobs, source_of, names: seen.append(dict(source_of)), rand=lambda: 0.0)
            await sources.start(sighup=False)
            await sources.wait_first_read()
            assert sources.current() == {} and sources.states()[0]["ok"] is False
            app.status = 200
            await until(lambda: seen, what="the retried read")
            await sources.aclose()

        asyncio.run(main())
        assert len(app.receiver.requests) >= 2
    assert seen == [{"a": "url"}]


def test_a_failing_url_keeps_its_last_good_set():
    app = App(doc(job("a")))
    with app.receiver:
        sources = JobSources(url_settings(app))
        asyncio.run(sources.read_once())
        app.status = 500
        app.document = doc(job("b"))
        asyncio.run(sources.read_once())
    assert list(sources.current()) == ["a"] and sources.states()[0]["error"].startswith("HTTP 500")


# -- merging -----------------------------------------------------------------------------

def test_env_wins_over_a_source_and_the_file_wins_over_the_url(tmp_path):
    path = tmp_path / "jobs.json"
    write(path, doc(job("env-job"), job("shared"), job("file-only")))
    app = App(doc(job("shared", url="/from-url"), job("url-only"), job("env-job")))
    with app.receiver:
        s = url_settings(app, SCHEDULER_JOBS_FILE=str(path),
                         SCHEDULER_JOB_ENV_JOB_SCHEDULE="every 1m", SCHEDULER_JOB_ENV_JOB_URL="/e")
        sources = JobSources(s)
        asyncio.run(sources.read_once())
    assert sources.source_of() == {"shared": "file", "file-only": "file", "url-only": "url"}
    assert sources.current()["shared"].url.endswith("/tasks/shared")
    problems = {(r["name"], r["source"]): r["problem"] for r in sources.rejected()}
    assert set(problems) == {("env-job", "file"), ("env-job", "url"), ("shared", "url")}
    assert "also defined in the environment" in problems[("env-job", "file")]
    assert "environment's definition applies" in problems[("env-job", "url")]
    assert "the file's definition applies" in problems[("shared", "url")]


def test_a_rejected_job_is_logged_once_per_change(tmp_path, caplog):
    path = tmp_path / "jobs.json"
    write(path, doc(job("a", method="GRT")))
    sources = JobSources(settings(SCHEDULER_JOBS_FILE=str(path)))
    with caplog.at_level("WARNING", logger="scheduler.sources"):
        for _ in range(3):
            asyncio.run(sources.read_once())
            os.utime(path)  # read again
        write(path, doc(job("a", method="GRRT")))
        asyncio.run(sources.read_once())
    rejected = [r for r in caplog.records if r.getMessage() == "job rejected"]
    assert [r.problem for r in rejected] == [
        "method: expected one of GET, POST, PUT, PATCH, DELETE, got 'GRT'",
        "method: expected one of GET, POST, PUT, PATCH, DELETE, got 'GRRT'",
    ]
    assert all(r.job == "a" and r.source == "file" for r in rejected)


# -- configuration and check ----------------------------------------------------------------

def test_no_env_jobs_is_fine_with_a_source_and_still_an_error_without():
    assert config.load({"SCHEDULER_JOBS_URL": "/jobs"}).jobs == ()
    assert config.load({"SCHEDULER_JOBS_FILE": "/etc/jobs.yaml"}).jobs == ()
    with pytest.raises(config.ConfigError, match="no jobs configured"):
        config.load({})


@pytest.mark.parametrize("env, problem", [
    ({"SCHEDULER_JOBS_FILE": "/etc/jobs.txt"}, "SCHEDULER_JOBS_FILE: expected a path ending in .json, .yaml or .yml"),
    ({"SCHEDULER_JOBS_URL": "ftp://x/jobs"}, "SCHEDULER_JOBS_URL: expected an http:// or https:// URL"),
    ({"SCHEDULER_JOBS_URL": "/jobs", "SCHEDULER_JOBS_REFRESH": "500ms"}, "SCHEDULER_JOBS_REFRESH: expected a duration of at least 1s"),
])
def test_bad_source_settings_are_configuration_errors(env, problem):
    with pytest.raises(config.ConfigError) as exc:
        settings(**env)
    assert any(p.startswith(problem) for p in exc.value.problems), exc.value.problems


def test_check_reports_each_jobs_source_and_the_rejected_ones(tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_text("jobs:\n  - {name: from-file, schedule: every 1m, url: /f}\n  - {name: broken, schedual: every 1m}\n")
    app = App(doc(job("from-url")))
    with app.receiver:
        env = {"SCHEDULER_API_URL": app.receiver.url, "SCHEDULER_JOBS_FILE": str(path), "SCHEDULER_JOBS_URL": "/jobs",
               "SCHEDULER_JOB_FROM_ENV_SCHEDULE": "every 1m", "SCHEDULER_JOB_FROM_ENV_URL": "/e"}
        text = run_cli(["check"], env, cwd=tmp_path)
        out = run_cli(["check", "--json"], env, cwd=tmp_path)
        strict = run_cli(["check", "--strict"], env, cwd=tmp_path)
    assert text.returncode == 0 and out.returncode == 0, text.stderr + out.stderr
    assert "from-url  (from url)" in text.stdout and "from-file  (from file)" in text.stdout
    assert "rejected  broken (file): schedual: unknown field" in text.stdout
    report = json.loads(out.stdout)
    assert {j["name"]: j["source"] for j in report["jobs"]} == {"from-env": "env", "from-file": "file", "from-url": "url"}
    assert [r["name"] for r in report["rejected"]] == ["broken"] and all(s["ok"] for s in report["sources"])
    assert strict.returncode == 78 and "1 rejected job(s)" in strict.stderr


@pytest.fixture
def documents() -> Iterator[DocumentServer]:
    server = DocumentServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def assert_unreadable(done, *reasons: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "configuration OK" not in done.stdout
    assert all(reason in done.stderr for reason in reasons), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("make, reasons", [
    (lambda tmp: tmp / "missing.json", ("jobs file", "missing.json", "cannot be read", "No such file or directory")),
    (lambda tmp: (tmp / "jobs.json").write_text('{"jobs": [') and tmp / "jobs.json", ("jobs file", "not valid JSON")),
    (lambda tmp: (tmp / "jobs.yaml").write_text("jobs: [a, b") and tmp / "jobs.yaml", ("jobs file", "not valid YAML")),
], ids=["missing", "not-json", "not-yaml"])
def test_check_on_a_jobs_file_that_cannot_be_read_exits_1_with_the_reason(tmp_path, make, reasons):
    env = {"SCHEDULER_JOBS_FILE": str(make(tmp_path))}
    assert_unreadable(run_cli(["check"], env, cwd=tmp_path), *reasons)
    strict = run_cli(["check", "--strict", "--json"], env, cwd=tmp_path)
    assert_unreadable(strict, *reasons)
    assert json.loads(strict.stdout)["sources"][0]["ok"] is False


def test_check_on_a_jobs_url_that_answers_500_or_hangs_up_exits_1_with_the_reason(tmp_path, documents):
    env = {"SCHEDULER_API_URL": documents.url, "SCHEDULER_JOBS_URL": documents.path,
           "SCHEDULER_JOB_FROM_ENV_SCHEDULE": "every 1m", "SCHEDULER_JOB_FROM_ENV_URL": "/e"}
    documents.status = 500
    failed = run_cli(["check"], env, cwd=tmp_path)
    assert_unreadable(failed, "jobs url", documents.path, "HTTP 500")
    assert "from-env" in failed.stdout  # the env jobs are listed: they would run
    documents.hang_up = True
    assert_unreadable(run_cli(["check", "--json"], env, cwd=tmp_path), "jobs url", "connection closed before a response")
    assert documents.gets() == 2  # read once each time, as the daemon's first read


def test_check_on_a_jobs_url_that_never_answers_exits_1_once_the_daemon_would_give_up(tmp_path, silent_port):
    env = {"SCHEDULER_API_URL": f"http://127.0.0.1:{silent_port}", "SCHEDULER_JOBS_URL": "/jobs",
           "SCHEDULER_JOBS_REFRESH": "1s"}  # the request's timeout: 5 s, its lowest
    assert_unreadable(run_cli(["check"], env, cwd=tmp_path), "jobs url", "no answer within 5s")


def test_each_source_is_exported_as_metrics(tmp_path):
    from scheduler.observe.metrics import Metrics, SourcesCollector

    path = tmp_path / "jobs.json"
    write(path, doc(job("a"), job("b", method="GRT")))
    sources = JobSources(settings(SCHEDULER_JOBS_FILE=str(path), SCHEDULER_JOBS_URL="http://127.0.0.1:9/jobs"))
    asyncio.run(sources.read_once())
    metrics = Metrics()
    metrics.registry.register(SourcesCollector(sources.states))
    text = metrics.exposition().decode()
    for line in ('cron_sidecar_jobs_source_up{source="file"} 1.0', 'cron_sidecar_jobs_source_up{source="url"} 0.0',
                 'cron_sidecar_jobs_source_jobs{source="file"} 1.0', 'cron_sidecar_jobs_source_rejected{source="file"} 1.0',
                 'cron_sidecar_jobs_source_read_failures_total{source="url"} 1.0'):
        assert line in text, text


@pytest.mark.parametrize("base", ["http://app:8000", "https://u:p@app/api/", "http://[::1]:81/x"])
@pytest.mark.parametrize("path", ["/tasks/x", "tasks/x?a=1&b=2", "/t?", "/a/b/", "", "/a:b", "/x%20y", "/a b", "a:b/c"])
def test_a_plain_path_is_joined_as_the_full_check_joins_it(base, path):
    from scheduler.config import parsers

    fast = parsers.job_url(base)
    slow = parsers.job_url(base)
    plain, parsers.PLAIN_PATH = parsers.PLAIN_PATH, __import__("re").compile(r"(?!)")
    try:
        try:
            expected = slow(path)
        except ValueError as exc:
            expected = exc
    finally:
        parsers.PLAIN_PATH = plain
    try:
        got = fast(path)
    except ValueError as exc:
        got = exc
    assert str(got) == str(expected)


def test_the_example_app_serves_its_triggers_to_the_sidecar(tmp_path):
    """examples/app.py: a user creates a trigger, the sidecar's next read has it; deleted, it is gone."""
    import subprocess
    import sys
    import urllib.request

    from tests.support import REPO_ROOT, free_port, wait_until

    port = free_port()
    secret = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUE="
    app = subprocess.Popen([sys.executable, str(REPO_ROOT / "examples" / "app.py")], cwd=tmp_path,
                           env={**os.environ, "APP_TOKEN": "tok", "APP_SIGNING_SECRET": secret,
                                "APP_PORT": str(port), "APP_HOST": "127.0.0.1", "APP_DB": str(tmp_path / "t.db")},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def call(method, path, body=None):
        request = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": "Bearer tok", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status

    try:
        wait_until(lambda: call("GET", "/internal/cron-jobs") == 200, message="the app")
        s = settings(SCHEDULER_API_URL=base, SCHEDULER_JOBS_URL="/internal/cron-jobs", SCHEDULER_API_TOKEN="tok")
        sources = JobSources(s)

        async def main():
            reader = sources._sources[0].reader  # noqa: SLF001
            await sources.read_once()
            empty = dict(sources.current())
            assert call("POST", "/triggers", {"name": "user-7-digest", "schedule": "every 1m"}) == 201
            await sources.read_once()
            created = dict(sources.current())
            assert await reader.read(sources._sources[0].good) is UNCHANGED  # noqa: SLF001 - a 304
            await reader.aclose()
            assert call("DELETE", "/triggers/user-7-digest") == 200
            await sources.read_once()
            # The last trigger deleted empties the source: the guard holds that read.
            held = dict(sources.current())
            assert sources.states()[0]["held"]["dropped"] == 1 and held == created
            sources.accept()
            return empty, created, dict(sources.current())

        empty, created, deleted = asyncio.run(main())
    finally:
        app.terminate()
        app.wait(10)
    assert empty == {} and deleted == {}
    assert created["user-7-digest"].url == f"{base}/triggers/user-7-digest/run"
