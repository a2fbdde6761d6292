"""The compose example and the deployment commands of docs/deployment.md: the metrics ports are published,
and nothing assumes which replica leads."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

from tests.e2e import standalone_env
from tests.support import REPO_ROOT, Receiver, run_cli, wait_until
from tests.test_container import _env_of, load_compose

README = REPO_ROOT / "README.md"
DEPLOYMENT = REPO_ROOT / "docs" / "deployment.md"
GITHUB = "https://github.com/cron-sidecar/cron-sidecar/"
COMPOSE = REPO_ROOT / "examples" / "compose.yaml"


def schedulers() -> dict[str, dict]:
    services = load_compose()["services"]
    return {n: s for n, s in services.items() if any(k.startswith("SCHEDULER_JOB_") for k in _env_of(s))}


def test_compose_publishes_each_replicas_metrics_port_on_its_own_host_port():
    host_ports = []
    for name, service in schedulers().items():
        port = _env_of(service).get("SCHEDULER_HTTP_PORT", "9464")
        published = [str(p) for p in service.get("ports", [])]
        matching = [p for p in published if p.rsplit(":", 1)[-1] == port]
        assert matching, f"{name} does not publish its metrics port {port}: {published}"
        host, host_port, _ = matching[0].split(":")
        assert host == "127.0.0.1", f"{name}: publish on the loopback address only, not every interface"
        host_ports.append(host_port)
        # The replica id starts with the hostname: `status` then names the leader's service.
        assert service.get("hostname") == name
    assert len(host_ports) == len(set(host_ports)) == 2, host_ports


def test_no_demo_command_assumes_which_replica_leads():
    services = "|".join(map(re.escape, schedulers()))
    for path in (README, DEPLOYMENT, COMPOSE):
        for line in path.read_text().splitlines():
            assert not re.search(rf"\b(stop|kill|restart|rm)\s+(-\S+\s+)*({services})\b", line), (
                f"{path.name}: {line.strip()!r} assumes that replica leads"
            )


def _leader_snippet() -> str:
    """The one-liner of docs/deployment.md that reads the leader's hostname from `status --json`."""
    m = re.search(r"\| python3 -c '([^']+)'\)", DEPLOYMENT.read_text())
    assert m, "the compose commands of docs/deployment.md do not find the leader from status --json"
    return m.group(1)


def test_the_documented_one_liner_finds_the_leader_from_status_of_a_running_daemon(daemon_factory, tmp_path):
    with Receiver() as receiver:
        env = standalone_env(receiver, tmp_path / "state.db", {"tick": {"SCHEDULE": "every 1s", "URL": "/t"}})
        daemon_factory(env, cwd=tmp_path)
        receiver.wait_for_count(1, timeout=15)
        status = wait_until(lambda: (r := run_cli(["status", "--json"], env, cwd=tmp_path)).returncode == 0
                            and json.loads(r.stdout)["leader"] and r.stdout, timeout=10)
    r = subprocess.run([sys.executable, "-c", _leader_snippet()], input=status,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == socket.gethostname()


def test_links_to_the_deploy_files_resolve():
    """README.md links them by path; the docs pages (a site apart from the repository) by their
    address on the repository's host."""
    links = re.findall(r"\]\(((?:deploy|examples|docs)/[^)#]*|[A-Z]+\.md|LICENSE)\)", README.read_text())
    assert {"LICENSE", "deploy/prometheus/alerts.yaml", "deploy/kubernetes/components/monitoring/prometheusrule.yaml",
            "deploy/grafana/cron-sidecar.json", "deploy/kubernetes/"} <= set(links)
    for page in (REPO_ROOT / "docs").rglob("*.md"):
        links += re.findall(rf"\]\({re.escape(GITHUB)}(?:blob|tree)/main/([^)#]*)\)", page.read_text())
    assert {"examples/compose.yaml", "examples/app.py", "deploy/kubernetes/"} <= set(links)
    for link in links:
        assert (REPO_ROOT / link).exists(), f"a link to {link}, which does not exist"
