"""The shipped alert rules: promtool's own unit tests of them, and the PrometheusRule copy."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.support import REPO_ROOT

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yaml"
RULES_TEST = PROMETHEUS / "alerts_test.yaml"
PROMETHEUS_RULE = REPO_ROOT / "deploy" / "kubernetes" / "components" / "monitoring" / "prometheusrule.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    return subprocess.run([exe, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)


def test_alert_rules_are_valid_promql():
    r = promtool("check", "rules", RULES.name)
    assert r.returncode == 0, r.stdout + r.stderr


def test_alert_rules_pass_their_promtool_unit_tests():
    """Default scrape config, every replica gone, none leading, a short handover, a rolling
    replacement, two deployments: see alerts_test.yaml."""
    r = promtool("test", "rules", RULES_TEST.name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_unit_tests_cover_every_alert_firing_and_staying_quiet():
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    fired = {case["alertname"] for t in tests for case in t["alert_rule_test"] if case["exp_alerts"]}
    quiet = {case["alertname"] for t in tests for case in t["alert_rule_test"] if not case["exp_alerts"]}
    assert fired == alerts and quiet == alerts


def test_prometheus_rule_holds_the_same_groups_as_the_plain_rule_file():
    plain = yaml.safe_load(RULES.read_text())
    obj = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "PrometheusRule"
    assert obj["spec"]["groups"] == plain["groups"], (
        "deploy/kubernetes/components/monitoring/prometheusrule.yaml differs from deploy/prometheus/alerts.yaml: "
        "copy the groups of alerts.yaml under spec:"
    )


def test_rules_name_cron_jobs_by_a_label_a_default_scrape_keeps():
    """`job` and `instance` are the scrape target's labels: a metric label of either name is
    renamed `exported_*` by a default scrape config, so the rules group cron jobs by `cronjob`."""
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            text = rule["expr"] + "".join(rule.get("annotations", {}).values())
            assert "exported_job" not in text
            if "cron_sidecar_job_overdue" in rule["expr"]:
                assert "cronjob" in rule["expr"] and "$labels.cronjob" in text
            assert rule.get("for"), f"{rule['alert']} has no `for`: one bad scrape would page"


def test_every_alert_links_its_section_of_the_troubleshooting_page():
    import re

    page = (REPO_ROOT / "docs" / "troubleshooting.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 _-]", "", m.group(1).strip().lower()).replace(" ", "-")
               for m in re.finditer(r"^#+ (.+)$", page, re.MULTILINE)}
    base = "https://github.com/cron-sidecar/cron-sidecar/blob/main/docs/troubleshooting.md#"
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            url = rule["annotations"].get("runbook_url", "")
            assert url == base + rule["alert"].lower(), f"{rule['alert']}: runbook_url {url!r}"
            assert rule["alert"].lower() in anchors, f"docs/troubleshooting.md has no section {rule['alert']}"
