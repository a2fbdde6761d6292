"""deploy/kubernetes/, checked offline: the example and its Components built as kustomize
would (tests/kustomize_build.py), Kubernetes' own schemas (kubernetes-validate), the operator's
objects structurally, what the pieces must agree on, the sidecar Component built onto another
app's Deployment, and the sidecar's configuration run through `check` as the container would
read it."""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

import jsonschema
import kubernetes_validate
import pytest
import yaml

from scheduler import __version__
from tests.kustomize_build import build
from tests.support import REPO_ROOT, run_cli

K8S = REPO_ROOT / "deploy" / "kubernetes"
SIDECAR = K8S / "components" / "sidecar"
MONITORING = K8S / "components" / "monitoring"
# The oldest Kubernetes release the schemas ship (still supported by some providers) and the newest.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
SECRET_SETTINGS = ("SCHEDULER_API_TOKEN", "SCHEDULER_SIGNING_SECRET", "SCHEDULER_REDIS_URL")

DURATION = {"type": "string", "pattern": r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1},
                                                                    "labels": LABELS}}
# The parts of the Prometheus Operator's CRDs (monitoring.coreos.com/v1) these objects use,
# with the operator's required fields and no unknown ones.
OPERATOR_SCHEMAS = {
    "PrometheusRule": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"}, "metadata": METADATA,
            "spec": {"type": "object", "additionalProperties": False, "required": ["groups"], "properties": {
                "groups": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "required": ["name", "rules"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1}, "interval": DURATION,
                        "rules": {"type": "array", "minItems": 1, "items": {
                            "type": "object", "additionalProperties": False, "required": ["expr"],
                            "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                            "properties": {"alert": {"type": "string"}, "record": {"type": "string"},
                                           "expr": {"type": "string", "minLength": 1}, "for": DURATION,
                                           "labels": LABELS, "annotations": LABELS}}}}}}}}}},
    "ServiceMonitor": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"}, "metadata": METADATA,
            "spec": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
                     "properties": {
                "selector": {"type": "object", "additionalProperties": False,
                             "properties": {"matchLabels": LABELS, "matchExpressions": {"type": "array"}}},
                "namespaceSelector": {"type": "object"}, "jobLabel": {"type": "string"},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "required": ["port"],
                    "properties": {"port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
                                   "scheme": {"enum": ["http", "https"]}, "interval": DURATION,
                                   "scrapeTimeout": DURATION}}}}}}},
}


def with_monitoring() -> list[dict]:
    """The example with the monitoring Component, as docs/deployment.md's kustomization has it."""
    return build(K8S, {"resources": ["."], "components": ["components/monitoring"]})


def objects() -> dict[str, dict]:
    built = with_monitoring()
    by_kind = {o["kind"]: o for o in built}
    assert len(by_kind) == len(built), "one object of each kind in the example"
    return by_kind


def pod_of(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def sidecar(deployment: dict | None = None) -> dict:
    pod = pod_of(deployment or objects()["Deployment"])
    (container,) = [c for c in pod["containers"] if c["name"] == "cron-sidecar"]
    return container


def env_of(container: dict, deployment: dict | None = None) -> dict[str, str]:
    """The container's environment, a pod label given through the downward API resolved."""
    labels = (deployment or objects()["Deployment"])["spec"]["template"]["metadata"]["labels"]
    env = {}
    for item in container["env"]:
        source = item.get("valueFrom", {})
        assert set(source) <= {"fieldRef"}, f"{item['name']}: give the sidecar secrets as files through {item['name']}_FILE"
        if source:
            label = re.fullmatch(r"metadata\.labels\['([^']+)'\]", source["fieldRef"]["fieldPath"])
            env[item["name"]] = labels.get(label.group(1), "")
        else:
            env[item["name"]] = str(item["value"])
    return env


def built_ids(objs: list[dict]) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in objs]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("obj", with_monitoring(), ids=built_ids(with_monitoring()))
def test_built_object_is_valid_against_the_kubernetes_schema(obj, version):
    if obj["kind"] in OPERATOR_KINDS:
        jsonschema.validate(obj, OPERATOR_SCHEMAS[obj["kind"]])
    else:
        kubernetes_validate.validate(obj, version, strict=True)


def test_structural_check_rejects_what_the_operator_would():
    rule = objects()["PrometheusRule"]
    broken = json.loads(json.dumps(rule))
    del broken["spec"]["groups"][0]["rules"][0]["expr"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, OPERATOR_SCHEMAS["PrometheusRule"])
    monitor = json.loads(json.dumps(objects()["ServiceMonitor"]))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, OPERATOR_SCHEMAS["ServiceMonitor"])


def test_every_manifest_is_used_by_its_kustomization():
    for root in (K8S, SIDECAR, MONITORING):
        k = yaml.safe_load((root / "kustomization.yaml").read_text())
        used = set(k.get("resources", [])) | {p["path"] for p in k.get("patches", []) if "path" in p}
        assert used == {p.name for p in root.glob("*.yaml")} - {"kustomization.yaml"}, root
    assert {"Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule",
            "ConfigMap"} <= set(objects())


def test_sidecar_has_probes_resources_and_a_locked_down_filesystem():
    c = sidecar()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["metrics"] == 9464
    for probe in ("livenessProbe", "startupProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz" and ports.get(get["port"], get["port"]) == 9464, probe
    # A readiness probe gates the whole pod: a Redis outage would take the app out of its Service.
    assert "readinessProbe" not in c
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    dockerfile_user = re.search(r"^USER (\d+):(\d+)$", (REPO_ROOT / "Dockerfile").read_text(), re.M)
    assert (str(sc["runAsUser"]), str(sc["runAsGroup"])) == dockerfile_user.groups()
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    assert c["image"].endswith(f":{__version__}"), "the image tag is the package's version"
    pod = pod_of(objects()["Deployment"])
    grace = env_of(c).get("SCHEDULER_SHUTDOWN_GRACE", "30s")
    assert pod["terminationGracePeriodSeconds"] > int(grace.rstrip("s")), "fires in flight need the grace"


def mounted_files(container: dict, pod: dict, kind: str) -> dict[str, tuple[str, str]]:
    """{path in the container: (volume name, key)} for every file of `kind` volumes."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    out = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if kind not in volume:
            continue
        assert "subPath" not in mount, f"{mount['name']}: a subPath mount never sees an update"
        source = volume[kind]
        for item in source.get("items", []):
            out[str(PurePosixPath(mount["mountPath"]) / item["path"])] = (mount["name"], item["key"])
        if not source.get("items"):
            out[mount["mountPath"]] = (mount["name"], "*")
    return out


def test_every_secret_comes_from_a_mounted_secret_file():
    c = sidecar()
    pod = pod_of(objects()["Deployment"])
    env = env_of(c)
    files = mounted_files(c, pod, "secret")
    for name in SECRET_SETTINGS:
        assert name not in env, f"{name} as a plain value: use {name}_FILE"
        path = env[f"{name}_FILE"]
        assert path in files, f"{name}_FILE={path} is not a file of a mounted Secret"
    secret_volumes = [v for v in pod["volumes"] if "secret" in v]
    assert all(v["secret"].get("defaultMode", 0o644) & 0o007 == 0 for v in secret_volumes), "secret files readable by all"
    assert pod["securityContext"]["fsGroup"] == c["securityContext"]["runAsGroup"], "the sidecar cannot read 0440 files"


def jobs_document() -> tuple[str, dict]:
    configmap = objects()["ConfigMap"]
    (key, text), = configmap["data"].items()
    return key, yaml.safe_load(text)


def job_env(document: dict) -> dict[str, str]:
    """The document's jobs as SCHEDULER_JOB_* variables (section 2's fields, same values)."""
    env = {}
    for job in document["jobs"]:
        prefix = "SCHEDULER_JOB_" + job["name"].upper().replace("-", "_") + "_"
        for field, value in job.items():
            if field == "name":
                continue
            text = json.dumps(value) if isinstance(value, dict) else str(value).lower() if isinstance(value, bool) else str(value)
            env[prefix + field.upper()] = text
    return env


def test_jobs_configmap_is_mounted_as_a_directory_where_scheduler_jobs_file_points():
    c = sidecar()
    pod = pod_of(objects()["Deployment"])
    key, document = jobs_document()
    path = env_of(c)["SCHEDULER_JOBS_FILE"]
    assert PurePosixPath(path).suffix in (".yaml", ".yml", ".json")
    mounts = mounted_files(c, pod, "configMap")
    (directory,) = mounts
    assert PurePosixPath(path) == PurePosixPath(directory) / key
    names = [j["name"] for j in document["jobs"]]
    assert len(names) == len(set(names)) and all(re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?", n) for n in names)


def test_sidecar_configuration_passes_check_as_the_container_reads_it(tmp_path):
    """The Deployment's env with the Secret's files and the ConfigMap's document in place."""
    env = env_of(sidecar())
    for name in SECRET_SETTINGS:
        values = {"SCHEDULER_REDIS_URL": "redis://:example@redis:6379/0",
                  "SCHEDULER_SIGNING_SECRET": "whsec_" + "A" * 43 + "="}
        (tmp_path / name).write_text(values.get(name, "example-token") + "\n")
        env[f"{name}_FILE"] = str(tmp_path / name)
    key, document = jobs_document()
    (tmp_path / key).write_text(objects()["ConfigMap"]["data"][key])
    env["SCHEDULER_JOBS_FILE"] = str(tmp_path / key)
    r = run_cli(["check", "--json"], env, cwd=tmp_path)
    if "SCHEDULER_JOBS_FILE: unknown setting" in r.stderr:
        # A daemon without job files: the same jobs as SCHEDULER_JOB_* variables.
        del env["SCHEDULER_JOBS_FILE"]
        r = run_cli(["check", "--json"], {**env, **job_env(document)}, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    checked = {j["name"] for j in json.loads(r.stdout)["jobs"]}
    assert checked >= {"nightly-report"} | {j["name"] for j in document["jobs"]}
    assert env["SCHEDULER_NAMESPACE"] == "myapp"


def test_service_monitor_service_and_budget_select_the_pods():
    o = objects()
    pod_labels = o["Deployment"]["spec"]["template"]["metadata"]["labels"]
    service, monitor, budget = o["Service"], o["ServiceMonitor"], o["PodDisruptionBudget"]

    def selects(selector: dict, labels: dict) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    assert selects(service["spec"]["selector"], pod_labels)
    assert selects(budget["spec"]["selector"]["matchLabels"], pod_labels)
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in sidecar()["ports"]} and port["port"] == 9464
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {port["name"]}
    assert all(e.get("path", "/metrics") == "/metrics" for e in monitor["spec"]["endpoints"])
    assert o["Deployment"]["spec"]["replicas"] > 1 and budget["spec"].get("maxUnavailable", 0) <= 1

