#!/usr/bin/env python3
"""Compares deploy/spinkube with a SpinKube SpinApp CRD, for when the spin-operator moves on.

    deploy/spinkube/check-crd.py spin-operator.crds.yaml

The CRD file is a release asset of spinframework/spin-operator
(https://github.com/spinframework/spin-operator/releases/download/<tag>/spin-operator.crds.yaml)
or config/crd/bases/core.spinkube.dev_spinapps.yaml of its source. Checks that
  1. every field spinapp.schema.json describes exists in the CRD with the same type, and
     every field the CRD requires there is required by spinapp.schema.json as well;
  2. spinapp.yaml, and the autoscaling variant README.md describes, validate against the
     CRD's own schema (unknown fields refused, as kubectl's strict field validation does).
Prints what differs and exits 1 when anything does. Needs pyyaml and jsonschema (the venv
that scripts/check-deploy.sh makes has both). Not part of `make test`: the CRD is not in
this repository.
"""
import copy
import json
import pathlib
import sys

import jsonschema
import yaml

HERE = pathlib.Path(__file__).resolve().parent


def spinapp_crd_schema(path):
    """The openAPIV3Schema of the SpinApp CRD in a (possibly multi-document) YAML file."""
    with open(path) as handle:
        for document in yaml.safe_load_all(handle):
            if (document or {}).get("kind") == "CustomResourceDefinition" and \
                    document["spec"]["names"]["kind"] == "SpinApp":
                version = next(v for v in document["spec"]["versions"] if v["name"] == "v1alpha1")
                return version["schema"]["openAPIV3Schema"]
    sys.exit(f"check-crd: no SpinApp CRD (v1alpha1) in {path}")


def strict(node):
    """The CRD schema as JSON Schema that refuses fields the API server would not keep."""
    node = copy.deepcopy(node)
    if isinstance(node, dict):
        for key in ("properties", "items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                if key == "properties":
                    node[key] = {name: strict(child) for name, child in node[key].items()}
                else:
                    node[key] = strict(node[key])
        if "properties" in node and "additionalProperties" not in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    return node


def resolve(node, root):
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def types_of(node, root):
    """The JSON types a schema node allows (None: any)."""
    node = resolve(node, root)
    if "const" in node:
        return {type(node["const"]).__name__.replace("str", "string")}
    if "type" in node:
        return {node["type"]}
    if "anyOf" in node or "oneOf" in node:
        found = set()
        for branch in node.get("anyOf", node.get("oneOf")):
            found |= types_of(branch, root) or set()
        return found
    return None


def compare(ours, crd, root, path, problems):
    ours = resolve(ours, root)
    our_types, crd_types = types_of(ours, root), types_of(crd, {})
    if crd.get("x-kubernetes-int-or-string"):
        crd_types = {"integer", "string"}
    if our_types and crd_types and not our_types <= crd_types:
        problems.append(f"{path}: type {sorted(our_types)} here, {sorted(crd_types)} in the CRD")
    for name in crd.get("required", []):
        if "properties" in ours and name not in ours.get("required", []):
            problems.append(f"{path}.{name}: required by the CRD, optional here")
    for name, child in ours.get("properties", {}).items():
        if name not in crd.get("properties", {}):
            if crd.get("type") == "object" and "properties" not in crd:
                continue  # metadata: the CRD leaves ObjectMeta to the API server
            problems.append(f"{path}.{name}: not in the CRD")
            continue
        compare(child, crd["properties"][name], root, f"{path}.{name}", problems)
    if "items" in ours and "items" in crd:
        compare(ours["items"], crd["items"], root, f"{path}[]", problems)
    if isinstance(ours.get("additionalProperties"), dict) and isinstance(crd.get("additionalProperties"), dict):
        compare(ours["additionalProperties"], crd["additionalProperties"], root, f"{path}.*", problems)


def autoscaling_variant(app):
    """spinapp.yaml as README.md says to change it for a HorizontalPodAutoscaler."""
    variant = copy.deepcopy(app)
    del variant["spec"]["replicas"]
    variant["spec"]["enableAutoscaling"] = True
    return variant


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    crd = spinapp_crd_schema(sys.argv[1])
    with open(HERE / "spinapp.schema.json") as handle:
        ours = json.load(handle)
    with open(HERE / "spinapp.yaml") as handle:
        app = yaml.safe_load(handle)

    problems = []
    compare(ours, crd, ours, "SpinApp", problems)
    checker = jsonschema.Draft202012Validator(strict(crd))
    for name, manifest in (("spinapp.yaml", app), ("spinapp.yaml with autoscaling", autoscaling_variant(app))):
        for error in checker.iter_errors(manifest):
            where = ".".join(str(part) for part in error.absolute_path) or "(top)"
            problems.append(f"{name}: {where}: {error.message}")

    for problem in problems:
        print(f"check-crd: {problem}")
    if problems:
        sys.exit(1)
    print("check-crd: spinapp.schema.json and spinapp.yaml agree with the CRD")


if __name__ == "__main__":
    main()
