"""Jobs of one document that differ only by name, URL and schedule are made from one fully
validated job (scheduler/sources/document.py, `_like`): the result must be what validating
each job alone gives, rejections and their messages included."""

from __future__ import annotations

from scheduler.config import loader as config
from scheduler.schedule import slots as sched
from scheduler.sources.document import validate

SETTINGS = config.load({"SCHEDULER_API_URL": "http://127.0.0.1:9/api", "SCHEDULER_JOBS_URL": "/jobs"})
SCHEDULES = ["H H * * *", "h/15 * * * *", "0 7 * * 1-5", "every 90s", 3600, "daily 07:30", "at 2030-01-01T00:00:00Z",
             "H H 30 2 *", "61 * * * *", "", None, True, "0 0 * * * * *", "@daily", "H(0-5) H * * * *"]
URLS = ["/a/1", "https://other.example/x?y=1", "relative/path", "", 5, "//host/x", "ftp://x/y", "/a b"]
SHAPES = [{}, {"timezone": "Europe/Berlin"}, {"retries": 1}, {"retries": True}, {"retries": 1.0},
          {"timeout": "2m", "headers": {"X-Tenant": "7"}}, {"headers": {"X-Tenant": 7}}, {"timezone": "Mars/Base"},
          {"catchup": "all", "catchup_window": 60.5}, {"enabled": False, "method": "get"}, {"tiemout": "1s"}]


def documents() -> list[dict]:
    jobs = []
    for i in range(600):
        job = {"name": f"job-{i}" if i % 97 else f"Bad_{i}", "schedule": SCHEDULES[i % len(SCHEDULES)],
               "url": URLS[(i // 3) % len(URLS)]}
        jobs.append(job | SHAPES[(i // 7) % len(SHAPES)])
    return jobs


def test_alike_jobs_are_what_each_job_alone_would_be() -> None:
    jobs = documents()
    together = validate({"jobs": jobs}, "url", SETTINGS)
    alone_jobs, alone_rejected = {}, []
    for job in jobs:
        one = validate({"jobs": [job]}, "url", SETTINGS)
        alone_jobs |= one.jobs
        alone_rejected += [r for r in one.rejected]
    assert together.jobs == alone_jobs
    assert list(together.jobs) == list(alone_jobs)
    assert [(r.name, r.problem) for r in together.rejected] == [(r.name, r.problem) for r in alone_rejected]
    assert len(together.jobs) > 50 and len(together.rejected) > 100


def test_alike_jobs_are_validated_in_full_once(monkeypatch) -> None:
    calls = []
    from scheduler.sources import document as job_document

    real = job_document.load_job

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(job_document, "load_job", counted)
    jobs = [{"name": f"tenant-{i}", "schedule": "H H * * *" if i % 2 else f"{i % 60} 3 * * *",
             "url": f"/digest/{i}", "timezone": "Europe/Berlin"} for i in range(1000)]
    parsed = validate({"jobs": jobs}, "url", SETTINGS)
    assert len(parsed.jobs) == 1000 and not parsed.rejected
    assert len(calls) == 1
    assert parsed.jobs["tenant-7"].url == "http://127.0.0.1:9/api/digest/7"
    hashed = sched.parse("H H * * *", "Europe/Berlin", "tenant-7")
    assert parsed.jobs["tenant-7"].schedule is hashed  # the Cron of its picks, which jobs share
