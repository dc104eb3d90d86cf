#!/usr/bin/env python3
"""Sanity checks for the deployment files (run from the repo root).

- every *.yaml / *.yml under k8s/ and deploy/ parses (PyYAML, all documents);
- every entry under `resources:` in k8s/kustomization.yaml exists;
- each huoke service has a Deployment (args ["serve", NAME]) and a Service
  in k8s/services/NAME.yaml, and a `serve NAME` container in docker-compose.
Exit status 1 on any problem.
"""
import pathlib
import sys

import yaml

SERVICES = ["codes", "cards", "intake", "qualify", "router", "pool", "console", "notify"]
root = pathlib.Path(__file__).resolve().parent.parent
errors = []
docs = {}

for top in ("k8s", "deploy"):
    for path in sorted((root / top).rglob("*")):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        rel = path.relative_to(root)
        try:
            with path.open(encoding="utf-8") as f:
                docs[rel.as_posix()] = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            errors.append(f"{rel}: YAML error: {e}")

kust = docs.get("k8s/kustomization.yaml")
if not kust:
    errors.append("k8s/kustomization.yaml: missing or empty")
else:
    for res in kust[0].get("resources") or []:
        if not (root / "k8s" / res).exists():
            errors.append(f"k8s/kustomization.yaml: resource {res!r} does not exist")

for name in SERVICES:
    rel = f"k8s/services/{name}.yaml"
    if rel not in docs:
        if (root / rel).exists():
            continue  # already reported as a YAML error
        errors.append(f"{rel}: missing")
        continue
    kinds = {d.get("kind"): d for d in docs[rel] if isinstance(d, dict)}
    for kind in ("Deployment", "Service"):
        if kind not in kinds:
            errors.append(f"{rel}: no {kind}")
    dep = kinds.get("Deployment")
    if dep:
        try:
            containers = dep["spec"]["template"]["spec"]["containers"]
        except (KeyError, TypeError):
            containers = []
        if not any(c.get("args") == ["serve", name] for c in containers):
            errors.append(f"{rel}: Deployment has no container with args ['serve', '{name}']")

compose = docs.get("deploy/docker-compose.yml")
if compose:
    services = compose[0].get("services") or {}
    for name in SERVICES + ["migrate", "postgres", "redis", "rabbitmq"]:
        if name not in services:
            errors.append(f"deploy/docker-compose.yml: no service {name!r}")
    for name in SERVICES:
        svc = services.get(name) or {}
        if svc and svc.get("command") != ["serve", name]:
            errors.append(f"deploy/docker-compose.yml: {name}: command is not ['serve', '{name}']")
elif not (root / "deploy/docker-compose.yml").exists():
    errors.append("deploy/docker-compose.yml: missing")

for e in errors:
    print(f"check-deploy: {e}", file=sys.stderr)
print(f"check-deploy: {len(docs)} YAML files, {len(errors)} problem(s)")
sys.exit(1 if errors else 0)
