"""Standalone JSON schemas for kubeconform, made once by scripts/deps.sh.

    k8s-schemas.py OUTDIR K8S_SCHEMA_DIR [CRD.yaml...]

K8S_SCHEMA_DIR is one of PyPI kubernetes-validate's strict schema folders
(kubernetes-json-schema/vX.Y.Z-local-strict): one file per kind whose $refs
point at /api/_definitions.json#/$defs/NAME. For every top-level kind (a
schema with apiVersion and kind) this writes OUTDIR/KIND-GROUP-VERSION.json
with the definitions it reaches inlined under $defs, so kubeconform needs
no resolver. Each CRD's openAPIV3Schema becomes KIND-GROUP-VERSION.json too
(GROUP's first label, as kubeconform names it), strict: objects with
properties get additionalProperties: false unless they say otherwise.
"""

import json
import os
import sys

import yaml

out, src = sys.argv[1], sys.argv[2]
crds = sys.argv[3:]
os.makedirs(out, exist_ok=True)
defs = json.load(open(os.path.join(src, "_definitions.json")))["$defs"]
PREFIX = "/api/_definitions.json#/$defs/"
LOCAL = "#/$defs/"  # refs between the definitions themselves


def refs(node, acc):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str) and r.startswith(PREFIX):
            r = r[len(PREFIX) - len(LOCAL):]
        if isinstance(r, str) and r.startswith(LOCAL):
            name = r[len(LOCAL):]
            node["$ref"] = "#/$defs/" + name
            if name not in acc:
                acc[name] = None
                d = json.loads(json.dumps(defs[name]))
                acc[name] = d
                refs(d, acc)
        for v in node.values():
            refs(v, acc)
    elif isinstance(node, list):
        for v in node:
            refs(v, acc)


n = 0
for f in sorted(os.listdir(src)):
    if not f.endswith(".json") or f.startswith("_") or f == "all.json":
        continue
    schema = json.load(open(os.path.join(src, f)))
    props = schema.get("properties", {})
    if "apiVersion" not in props or "kind" not in props:
        continue
    acc = {}
    refs(schema, acc)
    # Its $id (https://kubernetes.io/api/...) would make a resolver look
    # for the refs online; they are all local now.
    schema.pop("$id", None)
    schema["$defs"] = acc
    with open(os.path.join(out, f), "w") as fh:
        json.dump(schema, fh, separators=(",", ":"))
    n += 1


def strict(node):
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node and not node.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            node["additionalProperties"] = False
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)


for path in crds:
    for crd in yaml.safe_load_all(open(path)):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        kind = spec["names"]["kind"].lower()
        group = spec["group"].split(".")[0]
        for v in spec["versions"]:
            schema = json.loads(json.dumps(v["schema"]["openAPIV3Schema"]))
            strict(schema)
            name = f"{kind}-{group}-{v['name']}.json"
            with open(os.path.join(out, name), "w") as fh:
                json.dump(schema, fh, separators=(",", ":"))
            n += 1
print(n)
