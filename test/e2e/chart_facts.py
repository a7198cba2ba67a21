"""Checks on the Helm chart's rendered manifests and its values.yaml.

    chart_facts.py values VALUES.yaml
    chart_facts.py render RENDERED.yaml MODE OUTDIR

`values`: every key of values.yaml has a comment line just above it (the
free-form entries under config: excepted). `render`: facts about one render
(MODE deployment or statefulset); writes OUTDIR/imgsink.conf (the
ConfigMap's file) and OUTDIR/rules.yml (the PrometheusRule's groups, if
any). Prints TAP lines.
"""

import json
import sys

import yaml

failed = 0


def check(what, cond):
    global failed
    print(("ok - " if cond else "not ok - ") + what)
    if not cond:
        failed += 1


def values(path):
    lines = open(path).read().splitlines()
    undocumented = []
    in_config = False
    for i, line in enumerate(lines):
        s = line.strip()
        if not s or s.startswith("#") or s.startswith("- "):
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_config = s.startswith("config:")
        elif in_config:
            continue
        if ":" not in s:
            continue
        prev = lines[i - 1].strip() if i else ""
        if not prev.startswith("#"):
            undocumented.append(f"{i + 1}:{s.split(':')[0]}")
    check(
        f"every values.yaml key has a comment ({len(undocumented)} without: {', '.join(undocumented[:8])})",
        not undocumented,
    )


def render(path, mode, outdir):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    print(f"# {mode}: {len(docs)} objects: " + ", ".join(f"{k} x{len(v)}" for k, v in sorted(by_kind.items())))
    check(f"{mode}: no Secret object rendered (secrets by reference only)", "Secret" not in by_kind)
    kind = "StatefulSet" if mode == "statefulset" else "Deployment"
    workers = [d for d in by_kind.get(kind, []) if d["metadata"]["name"].endswith("-worker")]
    check(f"{mode}: one worker {kind}", len(workers) == 1)
    if not workers:
        return
    w = workers[0]
    pod = w["spec"]["template"]["spec"]
    c = pod["containers"][0]
    cm = by_kind["ConfigMap"][0]["data"]["imgsink.conf"]
    conf = dict(
        line.split("=", 1) for line in cm.splitlines() if line.strip() and not line.startswith("#")
    )
    with open(f"{outdir}/imgsink.conf", "w") as f:
        f.write(cm)
    shutdown_s = int(conf.get("shutdown.timeout.ms", "30000")) / 1000
    grace = pod["terminationGracePeriodSeconds"]
    check(f"{mode}: terminationGracePeriodSeconds {grace} > shutdown.timeout.ms {shutdown_s:.0f} s", grace > shutdown_s)
    port = int(conf["http.listen"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(
        f"{mode}: liveness /healthz and readiness /readyz on the http.listen port {port}",
        c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        and ports.get(c["livenessProbe"]["httpGet"]["port"]) == port,
    )
    sc, psc = c["securityContext"], pod["securityContext"]
    check(
        f"{mode}: non-root, read-only root fs, no privilege escalation, ALL capabilities dropped, seccomp RuntimeDefault",
        sc["runAsNonRoot"]
        and sc["readOnlyRootFilesystem"]
        and sc["allowPrivilegeEscalation"] is False
        and sc["capabilities"]["drop"] == ["ALL"]
        and psc["seccompProfile"]["type"] == "RuntimeDefault",
    )
    check(f"{mode}: topology spread over zones and nodes", len(pod.get("topologySpreadConstraints", [])) == 2)
    check(f"{mode}: no service links (IMGSINK_* variables)", pod.get("enableServiceLinks") is False)
    env = {e["name"]: e for e in c["env"]}
    check(f"{mode}: configuration from the ConfigMap (IMGSINK_CONFIG)", env["IMGSINK_CONFIG"]["value"] == "/etc/imgsink/imgsink.conf")
    inline = [n for n, e in env.items() if "SECRET" in n or "TOKEN" in n or "PASSWORD" in n]
    check(
        f"{mode}: secret variables only from Secret references ({', '.join(inline) or 'none'})",
        all("secretKeyRef" in env[n].get("valueFrom", {}) for n in inline),
    )
    gid = env.get("IMGSINK_KAFKA_GROUP_INSTANCE_ID")
    if mode == "statefulset":
        check(
            "statefulset: kafka.group.instance.id from the pod name",
            gid and gid["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name",
        )
    else:
        check("deployment: no static membership", gid is None)
    res = c["resources"]
    print(f"# {mode}: resources {json.dumps(res, sort_keys=True)}")
    sa = by_kind["ServiceAccount"][0]
    role = sa["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn")
    print(f"# {mode}: ServiceAccount {sa['metadata']['name']} role-arn {role}")
    so = by_kind.get("ScaledObject", [])
    if so:
        spec = so[0]["spec"]
        trig = spec["triggers"][0]
        print(
            f"# {mode}: KEDA {trig['type']} trigger lagThreshold {trig['metadata']['lagThreshold']}, "
            f"{spec['minReplicaCount']}..{spec['maxReplicaCount']} pods, polling {spec['pollingInterval']} s, "
            f"cooldown {spec['cooldownPeriod']} s, target {spec['scaleTargetRef']['kind']}"
        )
        check(
            f"{mode}: ScaledObject scales the worker {kind} on the group's lag",
            spec["scaleTargetRef"]["kind"] == kind
            and trig["type"] == "kafka"
            and trig["metadata"]["consumerGroup"] == conf.get("kafka.group.id", "imgsink"),
        )
        check(f"{mode}: no fixed replicas beside the ScaledObject", "replicas" not in w["spec"])
    for pr in by_kind.get("PrometheusRule", []):
        with open(f"{outdir}/rules.yml", "w") as f:
            yaml.safe_dump({"groups": pr["spec"]["groups"]}, f)
    np = [d for d in by_kind.get("NetworkPolicy", []) if d["metadata"]["name"].endswith("-worker")]
    if np:
        eg = np[0]["spec"]["egress"]
        print(f"# {mode}: worker egress rules: {len(eg)} (DNS, Kafka, store)")
        check(f"{mode}: NetworkPolicy limits worker egress to 3 rules", len(eg) == 3)


if sys.argv[1] == "values":
    values(sys.argv[2])
else:
    render(sys.argv[2], sys.argv[3], sys.argv[4])
sys.exit(1 if failed else 0)
