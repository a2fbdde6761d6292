"""Prometheus metrics: the daemon's registry and every metric in it.

Per job (label `cronjob`): fires by outcome, retries, skips by reason, last success time,
consecutive failures, period and overdue. Lateness and duration are histograms over all jobs:
per job they were 33 of a job's 41 series (24.6 MB a scrape at 10,000 jobs), and lateness
measures the scheduler, not the job. The per-job families are written as text directly
(job_metrics.py), a slice of jobs at a time, and the registry releases the GIL between
slices, so a scrape neither costs seconds of CPU nor stalls the thread that fires."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .job_metrics import Histogram, JobCollector, JobMetrics

LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


class Registry(CollectorRegistry):
    """A CollectorRegistry (generate_latest on it gives every series, through prometheus_client)
    that also renders its fast collectors (those with `slices()`) as text directly."""

    def __init__(self) -> None:
        super().__init__()
        self._plain = CollectorRegistry()
        self._fast: list = []

    def register(self, collector) -> None:
        super().register(collector)
        if hasattr(collector, "slices"):
            self._fast.append(collector)
        else:
            self._plain.register(collector)

    def unregister(self, collector) -> None:
        super().unregister(collector)
        if collector in self._fast:
            self._fast.remove(collector)
        else:
            self._plain.unregister(collector)

    def exposition(self) -> bytes:
        """The Prometheus text format (0.0.4) of every series."""
        parts = [generate_latest(self._plain)]
        for collector in list(self._fast):
            for text in collector.slices():
                parts.append(text.encode())
                time.sleep(0)  # let the event loop's thread have the GIL between two slices
        return b"".join(parts)


class Metrics:
    """Every metric of the daemon, in a registry of its own.

    The per-job families live in plain numbers (JobMetrics) and are turned into text at
    scrape time: prometheus_client's labelled children cost about 10 kB per job."""

    def __init__(self, version: str = "unknown") -> None:
        r = self.registry = Registry()
        build = Gauge("cron_sidecar_build_info", "Always 1: the running version and Python", ["version", "python"], registry=r)
        build.labels(version=version, python=platform.python_version()).set(1)
        self.leader = Gauge("cron_sidecar_leader", "1 while this replica holds the lease", registry=r)
        self.transitions = Counter("cron_sidecar_lease_transitions", "Leadership gained or lost", ["change"], registry=r)
        self.inflight = Gauge("cron_sidecar_inflight", "Fires in flight", registry=r)
        self.epoch = Gauge("cron_sidecar_epoch", "Fencing epoch of this replica's current or last lease", registry=r)
        self.clock_skew = Gauge("cron_sidecar_clock_skew_seconds",
                                "This replica's wall clock minus the Redis server's, at the last lease call", registry=r)
        self.format_refused = Gauge("cron_sidecar_state_format_refused",
                                    "1 while the store holds a state format newer than this version reads", registry=r)
        self.malformed = Counter("cron_sidecar_store_malformed_records", "Unreadable store records set aside", registry=r)
        self.notifications = Counter("cron_sidecar_notifications", "Events for SCHEDULER_NOTIFY_URL by outcome: sent, "
                                     "failed (given up after retries), dropped (the queue was full)", ["outcome"], registry=r)
        self.notifications_queued = Gauge("cron_sidecar_notifications_queued", "Events waiting to be sent or retried", registry=r)
        self.lateness = Histogram(LATENESS_BUCKETS)
        self.duration = Histogram(DURATION_BUCKETS)
        self._jobs: dict[str, JobMetrics] = {}
        r.register(JobCollector(self._jobs, self.lateness, self.duration))

    def job(self, name: str) -> JobMetrics:
        """One job's metrics; its series appear (at zero) from the first call."""
        found = self._jobs.get(name)
        if found is None:
            found = self._jobs[name] = JobMetrics(self.lateness, self.duration)
        return found

    def forget(self, name: str) -> None:
        """A job that left the running set: its series go with it."""
        self._jobs.pop(name, None)

    def exposition(self) -> bytes:
        return self.registry.exposition()


class OriginsCollector:
    """Per origin the fires call (label `origin`), read from `Origins.states()` at scrape time:
    the limit in force (SCHEDULER_TARGET_MAX_IN_FLIGHT, lowered by overload), calls in flight,
    and calls waiting for a place."""

    def __init__(self, states: Callable[[], Iterable[dict]]):
        self.states = states

    def collect(self):
        limit = GaugeMetricFamily("cron_sidecar_target_limit", "Calls to the origin allowed in flight now (adaptive)",
                                  labels=["origin"])
        in_flight = GaugeMetricFamily("cron_sidecar_target_in_flight", "Calls to the origin in flight", labels=["origin"])
        waiting = GaugeMetricFamily("cron_sidecar_target_waiting", "Calls to the origin waiting for a place", labels=["origin"])
        for o in list(self.states()):
            label = [o["origin"]]
            limit.add_metric(label, o["limit"])
            in_flight.add_metric(label, o["in_flight"])
            waiting.add_metric(label, o["waiting"])
        yield from (limit, in_flight, waiting)


# ---- job sources (scheduler/sources/) -------------------------------------------------
class SourcesCollector:
    """Per source of jobs (label `source`: file or url), read from `JobSources.states()` at
    scrape time: register it with `registry.register(SourcesCollector(sources.states))`."""

    def __init__(self, states: Callable[[], Iterable[dict]]):
        self.states = states

    def collect(self):
        up = GaugeMetricFamily("cron_sidecar_jobs_source_up", "1 when the last read of the source succeeded", labels=["source"])
        jobs = GaugeMetricFamily("cron_sidecar_jobs_source_jobs", "Valid jobs in the source's last good document", labels=["source"])
        rejected = GaugeMetricFamily("cron_sidecar_jobs_source_rejected",
                                     "Jobs of the source's last good document rejected by validation", labels=["source"])
        failures = CounterMetricFamily("cron_sidecar_jobs_source_read_failures", "Failed reads of the source", labels=["source"])
        last_ok = GaugeMetricFamily("cron_sidecar_jobs_source_last_success_timestamp_seconds",
                                    "Last successful read of the source", labels=["source"])
        held = GaugeMetricFamily("cron_sidecar_jobs_source_held",
                                 "Jobs in force that the source's held read would remove (0: not held; SCHEDULER_JOBS_MAX_DROP)",
                                 labels=["source"])
        for s in list(self.states()):
            label = [s["source"]]
            up.add_metric(label, 1 if s["ok"] else 0)
            jobs.add_metric(label, s["jobs"])
            rejected.add_metric(label, s["rejected"])
            failures.add_metric(label, s["failures_total"])
            if s["last_success"] is not None:
                last_ok.add_metric(label, s["last_success"])
            hold = s.get("held")
            held.add_metric(label, hold["dropped"] if hold else 0)
        yield from (up, jobs, rejected, failures, last_ok, held)
# ---- end of the job sources' metrics ---------------------------------------------------
