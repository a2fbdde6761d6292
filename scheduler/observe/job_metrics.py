"""Per-job metrics: one job's numbers as plain values, and the per-job families written from
them as Prometheus text directly.

prometheus_client's labelled children cost about 10 kB per job, and rendering them took
seconds of CPU at 10,000 jobs. Here a job's numbers are a few floats and dicts (JobMetrics),
and a scrape turns them into text a slice of jobs at a time (JobCollector, OverdueCollector),
letting the registry release the GIL between two slices (metrics.Registry)."""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

JOB_LABEL = "cronjob"  # not `job`: a default Prometheus scrape overwrites that one with its target's
JOBS_PER_SLICE = 500  # about 2 ms of rendering between two releases of the GIL


def _num(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(value) if math.isfinite(value) else floatToGoString(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Histogram:
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
    """One job's numbers. `lateness` and `duration` are the histograms shared by all jobs."""

    __slots__ = ("lateness", "duration", "retries", "last_success", "failures", "fires", "skips")

    def __init__(self, lateness: Histogram, duration: Histogram) -> None:
        self.lateness = lateness
        self.duration = duration
        self.retries = _Value()
        self.last_success = _Value()
        self.failures = _Value()
        self.fires: dict[str, int] = {}  # by outcome
        self.skips: dict[str, int] = {}  # by reason

    def fired(self, outcome: str) -> None:
        self.fires[outcome] = self.fires.get(outcome, 0) + 1

    def skipped(self, reason: str) -> None:
        self.skips[reason] = self.skips.get(reason, 0) + 1


def _header(name: str, kind: str, help_: str) -> str:
    return f"# HELP {name} {help_}\n# TYPE {name} {kind}\n"


def _histogram_text(name: str, help_: str, h: Histogram) -> str:
    total = h.sum
    buckets = h.buckets()
    lines = [_header(name, "histogram", help_)]
    lines += [f'{name}_bucket{{le="{le}"}} {n}\n' for le, n in buckets]
    lines.append(f"{name}_count {buckets[-1][1]}\n{name}_sum {_num(total)}\n")
    return "".join(lines)


# (name, type, help) of the per-job families, in exposition order.
_FIRES = ("cron_sidecar_fires_total", "counter", "Fires finished, by job and outcome")
_RETRIES = ("cron_sidecar_retries_total", "counter", "Attempts after the first, by job")
_SKIPS = ("cron_sidecar_skips_total", "counter", "Slots not fired, by job and reason")
_LAST_OK = ("cron_sidecar_last_success_timestamp_seconds", "gauge", "Last successful fire")
_FAILURES = ("cron_sidecar_consecutive_failures", "gauge", "Failed fires since the last success")
_LATENESS = ("cron_sidecar_lateness_seconds", "Time from a slot to the first attempt being sent, all jobs")
_DURATION = ("cron_sidecar_fire_duration_seconds", "Time a fire took, retries included, all jobs")


class _Labels:
    """`cronjob="name"` per job name, escaped once."""

    def __init__(self) -> None:
        self.cache: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        found = self.cache.get(name)
        if found is None:
            found = self.cache[name] = f'{JOB_LABEL}="{_escape(name)}"'
        return found


class JobCollector:
    """The per-job families. Runs in the HTTP server's threads: every read below is one
    atomic copy of something the event loop's thread may change meanwhile."""

    def __init__(self, jobs: dict[str, JobMetrics], lateness: Histogram, duration: Histogram):
        self.jobs, self.lateness, self.duration = jobs, lateness, duration
        self.label = _Labels()

    def slices(self) -> Iterator[str]:
        yield _histogram_text(*_LATENESS, self.lateness) + _histogram_text(*_DURATION, self.duration)
        fires, retries, skips, last_ok, failures = [], [], [], [], []
        items = list(self.jobs.items())
        label = self.label
        for start in range(0, len(items), JOBS_PER_SLICE):
            for name, m in items[start:start + JOBS_PER_SLICE]:
                job = label(name)
                for outcome, n in list(m.fires.items()):
                    fires.append(f'cron_sidecar_fires_total{{{job},outcome="{_escape(outcome)}"}} {n}\n')
                for reason, n in list(m.skips.items()):
                    skips.append(f'cron_sidecar_skips_total{{{job},reason="{_escape(reason)}"}} {n}\n')
                retries.append(f"cron_sidecar_retries_total{{{job}}} {_num(m.retries.value)}\n")
                last_ok.append(f"cron_sidecar_last_success_timestamp_seconds{{{job}}} {_num(m.last_success.value)}\n")
                failures.append(f"cron_sidecar_consecutive_failures{{{job}}} {_num(m.failures.value)}\n")
            if start + JOBS_PER_SLICE < len(items):
                yield ""  # a slice boundary: the GIL is released here
        for family, lines in ((_FIRES, fires), (_RETRIES, retries), (_SKIPS, skips), (_LAST_OK, last_ok), (_FAILURES, failures)):
            yield _header(*family) + "".join(lines)

    def collect(self):
        """The same series as prometheus_client families (slow; for generate_latest and tests)."""
        lateness = HistogramMetricFamily(_LATENESS[0], _LATENESS[1])
        lateness.add_metric([], self.lateness.buckets(), self.lateness.sum)
        duration = HistogramMetricFamily(_DURATION[0], _DURATION[1])
        duration.add_metric([], self.duration.buckets(), self.duration.sum)
        fires = CounterMetricFamily("cron_sidecar_fires", _FIRES[2], labels=[JOB_LABEL, "outcome"])
        retries = CounterMetricFamily("cron_sidecar_retries", _RETRIES[2], labels=[JOB_LABEL])
        skips = CounterMetricFamily("cron_sidecar_skips", _SKIPS[2], labels=[JOB_LABEL, "reason"])
        last_ok = GaugeMetricFamily(_LAST_OK[0], _LAST_OK[2], labels=[JOB_LABEL])
        failures = GaugeMetricFamily(_FAILURES[0], _FAILURES[2], labels=[JOB_LABEL])
        for name, m in list(self.jobs.items()):
            for outcome, n in list(m.fires.items()):
                fires.add_metric([name, outcome], n)
            for reason, n in list(m.skips.items()):
                skips.add_metric([name, reason], n)
            retries.add_metric([name], m.retries.value)
            last_ok.add_metric([name], m.last_success.value)
            failures.add_metric([name], m.failures.value)
        yield from (lateness, duration, fires, retries, skips, last_ok, failures)


class OverdueCollector:
    """`cron_sidecar_job_overdue` and `cron_sidecar_job_period_seconds`, computed at scrape time.

    A job is overdue when its last success is older than two of its periods. The period
    comes from the job's own schedule, so changing the schedule moves the alert with it."""

    _PERIOD = ("cron_sidecar_job_period_seconds", "gauge", "Time between the job's current slots")
    _OVERDUE = ("cron_sidecar_job_overdue", "gauge", "1 when the last success is older than two periods")

    def __init__(self, source: Callable[[], Iterable[tuple[str, float | None, float | None]]]):
        self.source = source  # () -> iterable of (job, period_s or None, last_success or None)
        self.label = _Labels()

    def _rows(self) -> list[tuple[str, float, int]]:
        now = time.time()
        return [
            (job, period_s, 1 if is_overdue(now, period_s, last_ok) else 0)
            for job, period_s, last_ok in self.source() if period_s is not None
        ]

    def slices(self) -> Iterator[str]:
        rows = self._rows()
        label = self.label
        yield _header(*self._PERIOD) + "".join(
            f"cron_sidecar_job_period_seconds{{{label(job)}}} {_num(period)}\n" for job, period, _ in rows)
        yield _header(*self._OVERDUE) + "".join(
            f"cron_sidecar_job_overdue{{{label(job)}}} {overdue}\n" for job, _, overdue in rows)

    def collect(self):
        period = GaugeMetricFamily(self._PERIOD[0], self._PERIOD[2], labels=[JOB_LABEL])
        overdue = GaugeMetricFamily(self._OVERDUE[0], self._OVERDUE[2], labels=[JOB_LABEL])
        for job, period_s, late in self._rows():
            period.add_metric([job], period_s)
            overdue.add_metric([job], late)
        yield period
        yield overdue


def is_overdue(now: float, period_s: float | None, last_success: float | None, since: float | None = None) -> bool:
    """Older than two periods: the last success, or, before any, the moment watching began."""
    ref = last_success if last_success is not None else since
    return period_s is not None and ref is not None and now - ref > 2 * period_s
