"""Logs, metrics and the /metrics /healthz /readyz server."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from bisect import bisect_left
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class Redactor(logging.Filter):
    """Replaces every known secret with *** in each record, whatever path it came by
    (a message, an extra field, an exception from a library that quotes a URL)."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


class _Scrubbing(logging.Formatter):
    redactor: Redactor | None = None

    def format(self, record: logging.LogRecord) -> str:
        line = self._format(record)
        return self.redactor.scrub(line) if self.redactor else line


class JsonFormatter(_Scrubbing):
    def _format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(_Scrubbing):
    def _format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{ts} {record.levelname:<7} {record.getMessage()}" + (f"  {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(fmt: str, level: str, secrets: list[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    formatter.redactor = Redactor(list(secrets))
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (connection pools, request lines) carries URLs and headers; keep it quiet.
    for name in ("httpx", "httpcore", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


class Metrics:
    """Every metric of the daemon, in a registry of its own.

    The per-job families live in plain numbers (JobMetrics) and are turned into Prometheus
    families at scrape time: prometheus_client's labelled children cost about 10 kB per job
    (a value object and a lock per bucket), 100 MB for ten thousand jobs."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.leader = Gauge("scheduler_leader", "1 while this replica holds the lease", registry=r)
        self.transitions = Counter("scheduler_lease_transitions", "Leadership gained or lost", ["change"], registry=r)
        self.inflight = Gauge("scheduler_inflight", "Fires in flight", registry=r)
        self.epoch = Gauge("scheduler_epoch", "Fencing epoch of this replica's current or last lease", registry=r)
        self.clock_skew = Gauge("scheduler_clock_skew_seconds",
                                "This replica's wall clock minus the Redis server's, at the last lease call", registry=r)
        self.format_refused = Gauge("scheduler_state_format_refused",
                                    "1 while the store holds a state format newer than this version reads", registry=r)
        self.malformed = Counter("scheduler_store_malformed_records", "Unreadable store records set aside", registry=r)
        self._jobs: dict[str, JobMetrics] = {}
        r.register(_JobCollector(self._jobs))

    def job(self, name: str) -> "JobMetrics":
        """One job's metrics; its series appear (at zero) from the first call."""
        found = self._jobs.get(name)
        if found is None:
            found = self._jobs[name] = JobMetrics()
        return found


class _Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le is inclusive
        self.sum += value

    def buckets(self) -> list[tuple[str, int]]:
        counts = list(self.counts)  # one copy: a scrape sees consistent buckets and count
        out, total = [], 0
        for bound, n in zip((*map(floatToGoString, self.bounds), "+Inf"), counts):
            total += n
            out.append((bound, total))
        return out


class _Value:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = value


class JobMetrics:
    __slots__ = ("lateness", "duration", "retries", "last_success", "failures", "fires", "skips")

    def __init__(self) -> None:
        self.lateness = _Histogram(LATENESS_BUCKETS)
        self.duration = _Histogram(DURATION_BUCKETS)
        self.retries = _Value()
        self.last_success = _Value()
        self.failures = _Value()
        self.fires: dict[str, int] = {}  # by outcome
        self.skips: dict[str, int] = {}  # by reason

    def fired(self, outcome: str) -> None:
        self.fires[outcome] = self.fires.get(outcome, 0) + 1

    def skipped(self, reason: str) -> None:
        self.skips[reason] = self.skips.get(reason, 0) + 1


class _JobCollector:
    """The per-job families, built from JobMetrics at scrape time (in the server's thread:
    every read below is one atomic copy)."""

    def __init__(self, jobs: dict[str, JobMetrics]):
        self.jobs = jobs

    def collect(self):
        fires = CounterMetricFamily("scheduler_fires", "Fires finished, by job and outcome", labels=["job", "outcome"])
        lateness = HistogramMetricFamily(
            "scheduler_lateness_seconds", "Time from a slot to the first attempt being sent", labels=["job"])
        duration = HistogramMetricFamily(
            "scheduler_fire_duration_seconds", "Time a fire took, retries included", labels=["job"])
        retries = CounterMetricFamily("scheduler_retries", "Attempts after the first, by job", labels=["job"])
        skips = CounterMetricFamily("scheduler_skips", "Slots not fired, by job and reason", labels=["job", "reason"])
        last_success = GaugeMetricFamily("scheduler_last_success_timestamp_seconds", "Last successful fire", labels=["job"])
        failures = GaugeMetricFamily("scheduler_consecutive_failures", "Failed fires since the last success", labels=["job"])
        for name, m in list(self.jobs.items()):
            for outcome, n in list(m.fires.items()):
                fires.add_metric([name, outcome], n)
            for reason, n in list(m.skips.items()):
                skips.add_metric([name, reason], n)
            lateness.add_metric([name], m.lateness.buckets(), m.lateness.sum)
            duration.add_metric([name], m.duration.buckets(), m.duration.sum)
            retries.add_metric([name], m.retries.value)
            last_success.add_metric([name], m.last_success.value)
            failures.add_metric([name], m.failures.value)
        yield from (fires, lateness, duration, retries, skips, last_success, failures)


class OverdueCollector:
    """`scheduler_job_overdue` and `scheduler_job_period_seconds`, computed at scrape time.

    A job is overdue when its last success is older than two of its periods. The period
    comes from the job's own schedule, so changing the schedule moves the alert with it."""

    def __init__(self, source):
        self.source = source  # () -> iterable of (job, period_s or None, last_success or None)

    def collect(self):
        overdue = GaugeMetricFamily("scheduler_job_overdue", "1 when the last success is older than two periods", labels=["job"])
        period = GaugeMetricFamily("scheduler_job_period_seconds", "Time between the job's current slots", labels=["job"])
        now = time.time()
        for job, period_s, last_ok in self.source():
            if period_s is None:
                continue
            period.add_metric([job], period_s)
            overdue.add_metric([job], 1.0 if is_overdue(now, period_s, last_ok) else 0.0)
        yield period
        yield overdue


def is_overdue(now: float, period_s: float | None, last_success: float | None, since: float | None = None) -> bool:
    """Older than two periods: the last success, or, before any, the moment watching began."""
    ref = last_success if last_success is not None else since
    return period_s is not None and ref is not None and now - ref > 2 * period_s


class Health:
    """What /healthz and /readyz report. The engine beats; the store's reachability is noted."""

    def __init__(self, stale_after_s: float = 10.0) -> None:
        self.stale_after_s = stale_after_s
        self.last_beat = time.monotonic()
        self.store_ok = False
        self.clock_ok = True  # within SCHEDULER_MAX_CLOCK_SKEW of the Redis server
        self.format_ok = True  # the store's state format is one this version reads

    def ready(self) -> tuple[bool, str]:
        if not self.store_ok:
            return False, "state store unreachable"
        if not self.clock_ok:
            return False, "clock off from the Redis server's by more than SCHEDULER_MAX_CLOCK_SKEW"
        if not self.format_ok:
            return False, "the state store holds a newer state format than this version reads"
        return True, "ok"

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.last_beat < self.stale_after_s


def serve(host: str, port: int, metrics: Metrics, health: Health) -> ThreadingHTTPServer:
    """Serve in a thread of its own, so a stuck event loop shows as a failing /healthz."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok = health.alive()
                self._reply(200 if ok else 503, b"ok\n" if ok else b"event loop stalled\n")
            elif self.path == "/readyz":
                ok, why = health.ready()
                self._reply(200 if ok else 503, why.encode() + b"\n")
            else:
                self._reply(404, b"not found\n")

        def _reply(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # probes every few seconds are not news
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
