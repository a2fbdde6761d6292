"""The Grafana dashboard and the alert rules query only series that a running daemon exports.

A real standalone daemon fires jobs at a real local receiver (one succeeds, one fails and is
retried, one overlaps itself and is skipped); its /metrics is parsed with prometheus_client's
parser and compared with every metric and label the dashboard and the rules name.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import standalone_env
from tests.support import REPO_ROOT, Daemon, Receiver, free_port, wait_until

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "cron-sidecar.json"
RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yaml"

# Labels Prometheus itself puts on every series of a target (a default scrape config, and
# Kubernetes service discovery through a ServiceMonitor); `le` is the histogram bucket's.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}
SERIES_LABELS = {"le"}

METRIC = re.compile(r"\bcron_sidecar_[a-z0-9_]+\b")
SELECTOR = re.compile(r"\b(cron_sidecar_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
LABEL_VALUES = re.compile(r"label_values\(\s*([^,()]+?)(?:\{[^}]*\})?\s*,\s*([a-zA-Z_]\w*)\s*\)")
TEMPLATE_LABEL = re.compile(r"\{\{\s*\.?([a-zA-Z_]\w*)\s*\}\}|\$labels\.([a-zA-Z_]\w*)")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> list[str]:
    """Every PromQL text of the dashboard: panel targets and template variable queries."""
    board = dashboard()
    out = []
    for panel in board["panels"]:
        out += [t["expr"] for t in panel.get("targets", [])]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            out.append(var["query"]["query"] if isinstance(var["query"], dict) else var["query"])
    return out


def rule_queries() -> list[str]:
    return [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def legend_labels() -> set[str]:
    found = set()
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            for a, b in TEMPLATE_LABEL.findall(target.get("legendFormat", "")):
                found.add(a or b)
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            for text in rule.get("annotations", {}).values():
                found |= {b for _, b in TEMPLATE_LABEL.findall(text) if b}
    return found


def test_dashboard_is_importable_and_covers_what_an_operator_watches():
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    names = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "job", "cronjob"} <= names
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']} is wider than the grid"
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", f"{panel['title']} has a fixed data source"
            assert panel["targets"], f"{panel['title']} queries nothing"
    queries = " ".join(dashboard_queries())
    for needed in ("cron_sidecar_fires_total", 'outcome="failed"', "histogram_quantile(0.5",
                   "histogram_quantile(0.99", "cron_sidecar_lateness_seconds_bucket", "cron_sidecar_job_overdue",
                   "cron_sidecar_leader", "cron_sidecar_lease_transitions_total", "cron_sidecar_retries_total",
                   "cron_sidecar_skips_total"):
        assert needed in queries, f"the dashboard has no panel with {needed}"



def test_every_query_is_scoped_by_the_namespace_variable():
    """Two deployments in two namespaces, scraped by one Prometheus, apart on one board."""
    board = dashboard()
    (var,) = [v for v in board["templating"]["list"] if v["name"] == "namespace"]
    assert var["includeAll"] and var["allValue"] == ".*", "outside Kubernetes `namespace` is absent: All must match that"
    for query in dashboard_queries():
        if query == var["query"]["query"]:
            continue
        selectors = SELECTOR.findall(query)
        assert selectors, f"{query!r} selects no cron_sidecar series"
        for metric, matchers in selectors:
            assert 'namespace=~"$namespace"' in matchers, f"{metric} in {query!r} ignores $namespace"


def test_the_dashboard_shows_sources_holds_rejected_jobs_and_clock_skew():
    queries = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in dashboard()["panels"]}
    wanted = {
        "Sources read": "cron_sidecar_jobs_source_up",
        "Sources unreadable": "cron_sidecar_jobs_source_up",
        "Sources held": "cron_sidecar_jobs_source_held",
        "Rejected jobs": "cron_sidecar_jobs_source_rejected",
        "Held reads: jobs they would remove, by source": "cron_sidecar_jobs_source_held",
        "Clock skew by replica (wall clock minus the store's)": "cron_sidecar_clock_skew_seconds",
    }
    for title, metric in wanted.items():
        assert metric in queries.get(title, ""), f"no panel {title!r} on {metric}"


# ---------------------------------------------------------------------------
# against a running daemon
# ---------------------------------------------------------------------------


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _samples(text: str) -> dict[str, list[dict[str, str]]]:
    """{sample name: [labels of each sample]}, from prometheus_client's own parser."""
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(dict(sample.labels))
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """/metrics of a standalone daemon once every family has samples."""

    def handler(request):
        if request.path == "/fail":
            return 503
        if request.path == "/slow":
            time.sleep(1.5)
        return 200

    tmp = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    jobs = {
        "report": {"SCHEDULE": "every 1s", "URL": "/ok"},
        "flaky": {"SCHEDULE": "every 2s", "URL": "/fail", "RETRIES": "1"},
        "slow": {"SCHEDULE": "every 1s", "URL": "/slow", "CONCURRENCY": "forbid"},
    }
    # A jobs file too, for the sources' series (the alerts on a source down, held or rejected).
    (tmp / "jobs.json").write_text('{"jobs": [{"name": "from-file", "schedule": "every 1h", "url": "/ok"}]}')
    with Receiver(handler) as receiver:
        env = standalone_env(receiver, tmp / "state.db", jobs, http_port=str(port), http_host="127.0.0.1",
                             jobs_file=str(tmp / "jobs.json"))
        with Daemon(env, cwd=tmp) as daemon:
            wanted = ("cron_sidecar_fires_total", "cron_sidecar_retries_total", "cron_sidecar_skips_total",
                      "cron_sidecar_lease_transitions_total", "cron_sidecar_lateness_seconds_bucket",
                      "cron_sidecar_job_overdue", "cron_sidecar_jobs_source_up")

            def ready():
                if not daemon.running:
                    raise AssertionError(daemon.output())
                samples = _samples(_scrape(port))
                return samples if all(samples.get(n) for n in wanted) else None

            yield wait_until(ready, timeout=30, interval=0.2, message="every metric family has samples")


def test_every_series_the_dashboard_and_rules_query_is_exported(exported):
    names = set(exported)
    for query in dashboard_queries() + rule_queries():
        for metric in METRIC.findall(query):
            assert metric in names, f"{metric} (in {query!r}) is not on /metrics; it has {sorted(names)}"


def test_every_label_the_dashboard_and_rules_use_is_exported_or_a_target_label(exported):
    """Per-job series carry `cronjob`; `job` and `instance` are left to the scrape target, so
    a default scrape config renames nothing and the queries group by the cron job."""
    per_job = [n for n, samples in exported.items() if any("cronjob" in s for s in samples)]
    daemon_labels = {k for samples in exported.values() for s in samples for k in s}
    clashing = {n: sorted(TARGET_LABELS & set(s)) for n, ss in exported.items() for s in ss if TARGET_LABELS & set(s)}
    assert not clashing, f"series with a label the scrape target overwrites: {clashing}"
    for family in ("cron_sidecar_fires_total", "cron_sidecar_retries_total",
                   "cron_sidecar_skips_total", "cron_sidecar_job_overdue", "cron_sidecar_last_success_timestamp_seconds"):
        assert family in per_job, f"{family} does not name its cron job in `cronjob`"
    known = daemon_labels | TARGET_LABELS | SERIES_LABELS
    for query in dashboard_queries() + rule_queries():
        for metric, matchers in SELECTOR.findall(query):
            for label in MATCHER.findall(matchers):
                on_metric = {k for s in exported.get(metric, []) for k in s} | TARGET_LABELS
                assert label in on_metric, f"{metric} has no label {label!r} (in {query!r})"
        for group in GROUPING.findall(query):
            for label in (x.strip() for x in group.split(",") if x.strip()):
                assert label in known, f"{label!r} in {query!r} is on no series"
        for metric, label in LABEL_VALUES.findall(query):
            assert label in {k for s in exported.get(metric.strip(), []) for k in s} | TARGET_LABELS, query
    for label in legend_labels():
        assert label in known, f"a legend or annotation shows {label!r}, which no series has"


def test_the_daemon_exports_its_version_in_build_info(exported):
    from scheduler import __version__

    assert [s["version"] for s in exported["cron_sidecar_build_info"]] == [__version__]
