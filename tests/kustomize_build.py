"""`kustomize build` in Python, for the features deploy/kubernetes/ uses, so the tests build the
example and its Components without kubectl or kustomize installed.

What it mirrors of kustomize (v5):
- A Kustomization's `resources` (files, or directories built on their own first), then its
  `components` in order (a Component adds its resources to the parent's and patches all of
  them), then its own `patches`: a parent's patches see what its Components added.
- `patches` as strategic merge patches, from `path` or inline `patch`; with a `target`, the
  patch goes to every object the target selects (kind, name, and `key=value` label and
  annotation selectors) whatever name the patch carries; without one, to the object of the
  patch's kind and name.
- The strategic merge rules of the fields the patches touch: maps merge key by key, a null
  deletes; `containers`, `initContainers`, `volumes` and `env` merge by `name`, `volumeMounts`
  by `mountPath` and `ports` by `containerPort` (the patchMergeKeys of the Kubernetes API),
  an element of the patch not in the base is added before the base's elements (the order
  kustomize writes); every other list is replaced whole.
Anything else in a kustomization (generators, JSON 6902 patches, name prefixes, ...) is
refused rather than ignored, so a file using it fails here until this mirrors it too.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name", "env": "name",
              "volumeMounts": "mountPath", "ports": "containerPort"}
FIELDS = {"apiVersion", "kind", "resources", "components", "patches"}


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def read_kustomization(root: Path, kind: str) -> dict:
    k = yaml.safe_load((root / "kustomization.yaml").read_text())
    if k.get("kind", "Kustomization") != kind:
        raise ValueError(f"{root}: a {kind} was expected, found a {k.get('kind')}")
    unknown = set(k) - FIELDS
    if unknown:
        raise ValueError(f"{root}: {sorted(unknown)} not mirrored by tests/kustomize_build.py")
    return k


def build(root: Path, kustomization: dict | None = None) -> list[dict]:
    """The objects `kustomize build root` writes, in its order; `kustomization` in place of
    root's file, its paths relative to root."""
    objects: list[dict] = []
    _accumulate(root, kustomization or read_kustomization(root, "Kustomization"), objects)
    return objects


def _accumulate(root: Path, k: dict, objects: list[dict]) -> None:
    for resource in k.get("resources", []):
        path = root / resource
        objects.extend(build(path) if path.is_dir() else load_all(path))
    for component in k.get("components", []):
        _accumulate(root / component, read_kustomization(root / component, "Component"), objects)
    for patch in k.get("patches", []):
        _apply(root, patch, objects)


def _apply(root: Path, entry: dict, objects: list[dict]) -> None:
    text = (root / entry["path"]).read_text() if "path" in entry else entry["patch"]
    (patch,) = [d for d in yaml.safe_load_all(text) if d is not None]
    if not isinstance(patch, dict):
        raise ValueError(f"{root}: only strategic merge patches are mirrored")
    target = entry.get("target") or {"kind": patch["kind"], "name": patch["metadata"]["name"]}
    for i, obj in enumerate(objects):
        if selects(target, obj):
            body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind", "metadata")}
            meta = {k: v for k, v in patch.get("metadata", {}).items() if k != "name"}
            objects[i] = merge(obj, {**body, "metadata": meta} if meta else body)


def _pairs(selector: str) -> dict[str, str]:
    return dict(term.split("=", 1) for term in selector.split(","))


def selects(target: dict, obj: dict) -> bool:
    meta = obj.get("metadata", {})
    if "kind" in target and target["kind"] != obj["kind"]:
        return False
    if "name" in target and target["name"] != meta.get("name"):
        return False
    for field, selector in (("labels", "labelSelector"), ("annotations", "annotationSelector")):
        have = meta.get(field) or {}
        if selector in target and any(have.get(k) != v for k, v in _pairs(target[selector]).items()):
            return False
    return True


def merge(base: Any, patch: Any, key: str | None = None) -> Any:
    """`patch` merged onto `base` by the strategic merge rules above; neither is changed."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = merge(out[k], v, k) if k in out else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        mk = MERGE_KEYS[key]
        out = copy.deepcopy(base)
        added = []
        for item in patch:
            at = [i for i, b in enumerate(out) if b.get(mk) == item.get(mk)]
            if at:
                out[at[0]] = merge(out[at[0]], item)
            else:
                added.append(copy.deepcopy(item))
        return added + out
    return copy.deepcopy(patch)
