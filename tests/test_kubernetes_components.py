"""deploy/kubernetes/components/: the monitoring objects apart from the core example, and the
sidecar Component built onto another app's Deployment as kustomize would (tests/kustomize_build.py,
whose merge rules a case here pins down)."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

from tests.kustomize_build import build, load_all, merge
from tests.test_kubernetes import K8S, MONITORING, OPERATOR_KINDS, SIDECAR, VERSIONS, env_of, pod_of, sidecar


def kustomization(root: Path, resources: list[Path], components: list[Path]) -> Path:
    """A kustomization at `root` (as a user's own would be) of these resources and Components."""
    text = yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                           "resources": [str(p) for p in resources], "components": [str(p) for p in components]})
    (root / "kustomization.yaml").write_text(text)
    return root


def test_core_needs_no_prometheus_operator_and_the_monitoring_component_brings_it():
    """`kubectl apply -k` fails whole on a kind the cluster does not know."""
    assert yaml.safe_load((K8S / "kustomization.yaml").read_text())["components"] == ["components/sidecar"]
    assert not [o["kind"] for o in build(K8S) if o["apiVersion"].startswith("monitoring.coreos.com/")]
    monitoring = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    assert monitoring["kind"] == "Component"
    kinds = {o["kind"]: o["apiVersion"] for p in monitoring["resources"] for o in load_all(MONITORING / p)}
    assert kinds == dict.fromkeys(OPERATOR_KINDS, "monitoring.coreos.com/v1")


LEDGER = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ledger
  labels: {app.kubernetes.io/name: ledger}
  annotations: {cron-sidecar/inject: "true"}
spec:
  replicas: 2
  selector: {matchLabels: {app.kubernetes.io/name: ledger}}
  template:
    metadata: {labels: {app.kubernetes.io/name: ledger}}
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
        - name: web
          image: registry.example.com/ledger:7.1
          ports: [{name: http, containerPort: 8000}]
          readinessProbe: {httpGet: {path: /ready, port: http}}
          volumeMounts: [{name: data, mountPath: /var/lib/ledger}]
      volumes:
        - name: data
          emptyDir: {}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ledger-worker
  labels: {app.kubernetes.io/name: ledger-worker}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: ledger-worker}}
  template:
    metadata: {labels: {app.kubernetes.io/name: ledger-worker}}
    spec:
      containers: [{name: worker, image: registry.example.com/ledger:7.1}]
"""


def test_sidecar_component_adds_the_sidecar_to_another_apps_annotated_deployment(tmp_path):
    (tmp_path / "deployments.yaml").write_text(LEDGER)
    web, worker = yaml.safe_load_all(LEDGER)
    built = {o["metadata"]["name"]: o for o in build(kustomization(tmp_path, [Path("deployments.yaml")], [SIDECAR]))}
    assert built["ledger-worker"] == worker, "a Deployment without the annotation is left alone"
    ledger = built["ledger"]
    for version in VERSIONS:
        kubernetes_validate.validate(ledger, version, strict=True)
    pod, before = pod_of(ledger), pod_of(web)
    assert [c for c in pod["containers"] if c["name"] == "web"] == before["containers"], "the app's container untouched"
    assert sorted(c["name"] for c in pod["containers"]) == ["cron-sidecar", "web"]
    assert pod["securityContext"]["runAsNonRoot"] is True, "the app's pod settings stay"

    c = sidecar(ledger)
    assert "readinessProbe" not in c and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 9464}

    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"] == before["volumes"][0]
    assert {m["name"] for m in c["volumeMounts"]} <= set(volumes)
    assert volumes["cron-sidecar-secrets"]["secret"]["secretName"] == "cron-sidecar"
    assert volumes["cron-sidecar-jobs"]["configMap"]["name"] == "cron-sidecar-jobs"
    assert "emptyDir" in volumes["cron-sidecar-tmp"]
    env = env_of(c, ledger)
    assert env["SCHEDULER_NAMESPACE"] == "ledger", "each app its own namespace in a shared Redis"
    assert {name for name in env if name.startswith("SCHEDULER_JOB_")} == set(), "the example's jobs stay in the example"
    assert pod["terminationGracePeriodSeconds"] > int(env["SCHEDULER_SHUTDOWN_GRACE"].rstrip("s"))
    assert pod["securityContext"]["fsGroup"] == c["securityContext"]["runAsGroup"]
    assert c["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, "whatever the app's pod sets"


def test_kustomize_build_mirror_merges_as_kustomize_does():
    """tests/kustomize_build.py's rules on a case whose `kubectl kustomize` (kustomize v5.5.0) output this is."""
    base = {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}], "args": ["x"]}],
            "volumes": [{"name": "v", "emptyDir": {}}], "drop": 1}
    patch = {"containers": [{"name": "b"}, {"name": "a", "env": [{"name": "Y", "value": "2"}], "args": ["y"]}],
             "volumes": [{"name": "v", "emptyDir": {"medium": "Memory"}}], "drop": None}
    assert merge(base, patch) == {
        "containers": [{"name": "b"}, {"name": "a", "args": ["y"],
                                       "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]}],
        "volumes": [{"name": "v", "emptyDir": {"medium": "Memory"}}]}
