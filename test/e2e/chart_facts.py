"""Checks on the Helm chart's rendered manifests and its values.yaml.

    chart_facts.py values VALUES.yaml
    chart_facts.py render RENDERED.yaml MODE OUTDIR
    chart_facts.py analytics RENDERED.yaml OUTDIR SINK-ROLE-ARN ROLLUP-ROLE-ARN
    chart_facts.py registry RENDERED.yaml CIDR PORT

`values`: every key of values.yaml has a comment line just above it (the
free-form entries under config: excepted). `render`: facts about one render
(MODE deployment or statefulset); writes OUTDIR/imgsink.conf (the
ConfigMap's file) and OUTDIR/rules.yml (the PrometheusRule's groups, if
any). `analytics`: the sink's Deployment and the rollup's CronJob of a
render with both enabled (and the ServiceMonitors), among them that
Prometheus scrapes the sink; writes OUTDIR/rollup.sh (the CronJob's script).
`registry`: a render with schema.registry.url and
networkPolicy.schemaRegistry CIDR and PORT: the workers' and the sink's
NetworkPolicies let them reach it, the rollup's does not. Prints TAP lines.
"""

import json
import re
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


def check_hardened(what, pod, c):
    """The securityContext every imgsink container and pod has."""
    sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
    check(
        f"{what}: non-root, read-only root fs, no privilege escalation, ALL capabilities dropped, seccomp RuntimeDefault",
        sc.get("runAsNonRoot") is True
        and psc.get("runAsNonRoot") is True
        and sc.get("readOnlyRootFilesystem") is True
        and sc.get("allowPrivilegeEscalation") is False
        and sc.get("privileged") is False
        and sc.get("capabilities", {}).get("drop") == ["ALL"]
        and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
    )


def pod_specs(docs):
    """(name, pod spec) of every workload of a render."""
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] in ("Deployment", "StatefulSet"):
            yield d["metadata"]["name"], spec["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield d["metadata"]["name"], spec["jobTemplate"]["spec"]["template"]["spec"]


def conf_of(docs):
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    text = cm["data"]["imgsink.conf"]
    return cm["metadata"]["name"], text, dict(
        line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def scrape_targets(docs, pod_labels, container_ports):
    """(ServiceMonitor, Service, endpoint, container port) of every
    ServiceMonitor endpoint that reaches pods with pod_labels, whose
    container ports are container_ports (name: number)."""
    out = []
    for sm in (d for d in docs if d["kind"] == "ServiceMonitor"):
        sel = sm["spec"].get("selector", {}).get("matchLabels", {})
        ns = sm["spec"].get("namespaceSelector", {}).get("matchNames", [sm["metadata"].get("namespace")])
        for svc in (d for d in docs if d["kind"] == "Service"):
            if not sel or not selects(sel, svc["metadata"].get("labels", {})) \
                    or svc["metadata"].get("namespace") not in ns \
                    or not svc["spec"].get("selector") or not selects(svc["spec"]["selector"], pod_labels):
                continue
            sports = {p.get("name"): p for p in svc["spec"].get("ports", [])}
            for ep in sm["spec"].get("endpoints", []):
                sp = sports.get(ep.get("port"))
                if not sp:
                    continue
                tp = sp.get("targetPort", sp["port"])
                cport = container_ports.get(tp) if isinstance(tp, str) else (tp if tp in container_ports.values() else None)
                if cport is not None:
                    out.append((sm["metadata"]["name"], svc["metadata"]["name"], ep, cport))
    return out


def registry(path, cidr, port):
    """The Schema Registry egress rule in the workers' and the sink's
    NetworkPolicies, not in the rollup's."""
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    port = int(port)
    _, _, conf = conf_of(docs)
    check(f"registry: the ConfigMap has schema.registry.url={conf.get('schema.registry.url')}",
          bool(conf.get("schema.registry.url")))

    def allows(np):
        return [r for r in np["spec"].get("egress", [])
                if cidr in [t.get("ipBlock", {}).get("cidr") for t in r.get("to", [])]
                and {"port": port, "protocol": "TCP"} in r.get("ports", [])]

    for what, suffix in (("workers'", "-worker"), ("analytics sink's", "-analytics")):
        wl = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet") and d["metadata"]["name"].endswith(suffix)]
        labels = wl[0]["spec"]["template"]["metadata"]["labels"] if wl else {}
        nps = [d for d in docs if d["kind"] == "NetworkPolicy" and labels
               and selects(d["spec"]["podSelector"]["matchLabels"], labels)]
        rules = [r for np in nps for r in allows(np)]
        n_eg = [len(np["spec"]["egress"]) for np in nps]
        check(f"registry: the {what} NetworkPolicy ({', '.join(n['metadata']['name'] for n in nps)}) has an egress rule "
              f"to {cidr} on TCP {port} ({len(rules)} found; egress rules {n_eg}: DNS, Kafka, the store, the registry)",
              len(nps) == 1 and len(rules) == 1 and n_eg == [4])
    crons = [d for d in docs if d["kind"] == "CronJob"]
    if crons:
        labels = crons[0]["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        nps = [d for d in docs if d["kind"] == "NetworkPolicy" and selects(d["spec"]["podSelector"]["matchLabels"], labels)]
        check("registry: the rollup's NetworkPolicy has no registry rule (it reads files, not events)",
              len(nps) == 1 and not allows(nps[0]))


def analytics(path, outdir, sink_role, rollup_role):
    """The analytics sink's Deployment and the rollup's CronJob of a render
    with both enabled; writes OUTDIR/rollup.sh (the CronJob's script)."""
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    named = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    cm_name, _, conf = conf_of(docs)
    port = int(conf["http.listen"].rsplit(":", 1)[1])
    check(f"analytics: the ConfigMap names the events topic the sink reads (events.topic={conf.get('events.topic')})",
          bool(conf.get("events.topic")))
    sas = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    inline = [f"{w}:{e['name']}" for w, pod in pod_specs(docs) for c in pod["containers"] for e in c.get("env", [])
              if re.search(r"SECRET|TOKEN|PASSWORD|_KEY$", e["name"]) and "valueFrom" not in e]
    check(f"analytics: no secret variable inline in any workload ({', '.join(inline) or 'none'})", not inline)

    def uses_config(what, pod, c):
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v.get("configMap", {}).get("name") for v in pod.get("volumes", [])}
        check(f"{what}: configuration from the release's ConfigMap {cm_name} (IMGSINK_CONFIG)",
              env.get("IMGSINK_CONFIG") == "/etc/imgsink/imgsink.conf"
              and any(vols.get(n) == cm_name and p == "/etc/imgsink" for n, p in mounts.items()))

    def own_identity(what, pod, role):
        sa = sas.get(pod.get("serviceAccountName"), {})
        arn = sa.get("metadata", {}).get("annotations", {}).get("eks.amazonaws.com/role-arn")
        check(f"{what}: its own ServiceAccount {pod.get('serviceAccountName')}, IRSA role {arn}, no API token",
              arn == role and pod.get("automountServiceAccountToken") is False
              and sa.get("automountServiceAccountToken") is False)

    def policy_of(labels):
        return [d for d in docs if d["kind"] == "NetworkPolicy" and selects(d["spec"]["podSelector"]["matchLabels"], labels)]

    # --- the sink
    sinks = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-analytics")]
    check("analytics: one sink Deployment", len(sinks) == 1)
    if sinks:
        d = sinks[0]
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        labels = d["spec"]["template"]["metadata"]["labels"]
        check(f"analytics sink: runs `imgsink {' '.join(c.get('args', []))}`, {d['spec'].get('replicas')} replica(s)",
              c.get("args") == ["analytics"] and "command" not in c and d["spec"].get("replicas", 0) >= 1)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        lp, rp = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
        check(f"analytics sink: liveness {lp['path']} and readiness {rp['path']} on the http.listen port {port}",
              lp["path"] == "/healthz" and rp["path"] == "/readyz"
              and ports.get(lp["port"]) == port and ports.get(rp["port"]) == port)
        check_hardened("analytics sink", pod, c)
        uses_config("analytics sink", pod, c)
        own_identity("analytics sink", pod, sink_role)
        check(f"analytics sink: memory request = limit ({c['resources']['requests']['memory']})",
              c["resources"]["requests"]["memory"] == c["resources"]["limits"]["memory"])
        # Not a worker: the workers' Service, PDB and ScaledObject must not count it.
        worker = [x for x in docs if x["kind"] in ("Deployment", "StatefulSet") and x["metadata"]["name"].endswith("-worker")]
        wsel = worker[0]["spec"]["selector"]["matchLabels"] if worker else {}
        check(f"analytics sink: pods labelled component={labels.get('app.kubernetes.io/component')}, "
              "outside the workers' selector", bool(wsel) and not selects(wsel, labels))
        nps = policy_of(labels)
        ok_np = len(nps) == 1 and len(nps[0]["spec"]["egress"]) == 3 and [
            p["port"] for r in nps[0]["spec"]["ingress"] for p in r["ports"]] == [port]
        check(f"analytics sink: a NetworkPolicy selects its pods ({', '.join(n['metadata']['name'] for n in nps)}): "
              f"ingress on {port} only, egress to DNS, Kafka and the store", ok_np)
        # Prometheus scrapes it: a ServiceMonitor selects a Service (same
        # namespace) whose selector matches the sink's pod labels, and its
        # endpoint names a port of that Service that reaches the container
        # port of http.listen.
        scrapes = scrape_targets(docs, labels, ports)
        for sm, svc, ep, cport in scrapes:
            print(f"# analytics sink scraped: ServiceMonitor {sm} -> Service {svc} port {ep['port']} "
                  f"-> container port {cport}, path {ep.get('path')}, every {ep.get('interval')}")
        check(f"analytics sink: scraped by exactly one ServiceMonitor endpoint, on /metrics at the http.listen port {port} "
              f"({len(scrapes)} found)",
              len(scrapes) == 1 and scrapes[0][3] == port and scrapes[0][2].get("path", "/metrics") == "/metrics")
        wlabels = worker[0]["spec"]["template"]["metadata"]["labels"] if worker else {}
        wscrapes = scrape_targets(docs, wlabels, {p["name"]: p["containerPort"]
                                                  for p in worker[0]["spec"]["template"]["spec"]["containers"][0]["ports"]}
                                  ) if worker else []
        check(f"analytics sink: the workers are still scraped once, by another ServiceMonitor "
              f"({', '.join(x[0] for x in wscrapes)})",
              len(wscrapes) == 1 and bool(scrapes) and wscrapes[0][0] != scrapes[0][0])

        # The job label the alerts use: up{job="imgsink"} (ImgsinkDown). The
        # Prometheus Operator names the job after the Service unless an
        # endpoint relabels it.
        def job_of(ep):
            jobs = [r.get("replacement") for r in ep.get("relabelings") or []
                    if r.get("targetLabel") == "job"]
            return jobs[-1] if jobs else None
        rules = [r for d in docs if d["kind"] == "PrometheusRule" for g in d["spec"]["groups"]
                 for r in g["rules"]]
        down = [r["expr"] for r in rules if r.get("alert") == "ImgsinkDown"]
        wjob = job_of(wscrapes[0][2]) if wscrapes else None
        check(f"ServiceMonitor: the workers' job is {wjob!r}, the one ImgsinkDown selects ({down})",
              wjob == "imgsink" and len(down) == 1 and 'job="imgsink"' in down[0])
        check(f"ServiceMonitor: the sink's job is its own ({job_of(scrapes[0][2]) if scrapes else None!r})",
              bool(scrapes) and job_of(scrapes[0][2]) == "imgsink-analytics")
    # --- the rollup
    crons = [d for d in docs if d["kind"] == "CronJob"]
    check("analytics: one rollup CronJob", len(crons) == 1)
    if crons:
        cj = crons[0]["spec"]
        job = cj["jobTemplate"]["spec"]
        pod = job["template"]["spec"]
        c = pod["containers"][0]
        print(f"# rollup CronJob: schedule {cj['schedule']!r} {cj.get('timeZone')}, concurrencyPolicy "
              f"{cj.get('concurrencyPolicy')}, backoffLimit {job.get('backoffLimit')}, activeDeadlineSeconds "
              f"{job.get('activeDeadlineSeconds')}, startingDeadlineSeconds {cj.get('startingDeadlineSeconds')}")
        check("rollup: daily at 03:30 UTC, after the day closed",
              cj["schedule"] == "30 3 * * *" and cj.get("timeZone") == "Etc/UTC")
        check("rollup: runs never overlap (concurrencyPolicy Forbid), a bounded number of retries, pods not restarted in place",
              cj.get("concurrencyPolicy") == "Forbid" and isinstance(job.get("backoffLimit"), int)
              and 0 < job["backoffLimit"] <= 6 and pod.get("restartPolicy") == "Never")
        check("rollup: a run and its retries stay inside the UTC day they started in "
              "(03:30 + startingDeadlineSeconds + activeDeadlineSeconds < 24:00)",
              3.5 * 3600 + cj.get("startingDeadlineSeconds", 86400) + job.get("activeDeadlineSeconds", 86400) < 86400)
        script = c.get("args", [""])[-1]
        for line in script.strip().splitlines():
            print(f"#   rollup script: {line}")
        check("rollup: /bin/sh -c runs `exec /usr/local/bin/imgsink analytics rollup --date \"$day\"`",
              c.get("command") == ["/bin/sh", "-c"]
              and 'exec /usr/local/bin/imgsink analytics rollup --date "$day"' in script)
        with open(f"{outdir}/rollup.sh", "w") as f:
            f.write(script)
        check_hardened("rollup", pod, c)
        uses_config("rollup", pod, c)
        own_identity("rollup", pod, rollup_role)
        labels = job["template"]["metadata"]["labels"]
        nps = policy_of(labels)
        store_ports = {p["port"] for r in (nps[0]["spec"]["egress"] if nps else []) for p in r.get("ports", [])}
        check(f"rollup: a NetworkPolicy selects its pods: no ingress, egress to DNS and the store only (ports {sorted(store_ports)})",
              len(nps) == 1 and nps[0]["spec"].get("ingress") in ([], None)
              and "Ingress" in nps[0]["spec"]["policyTypes"] and len(nps[0]["spec"]["egress"]) == 2
              and 9092 not in store_ports)


def render(path, mode, outdir):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    print(f"# {mode}: {len(docs)} objects: " + ", ".join(f"{k} x{len(v)}" for k, v in sorted(by_kind.items())))
    check(f"{mode}: no Secret object rendered (secrets by reference only)", "Secret" not in by_kind)
    kind = "StatefulSet" if mode == "statefulset" else "Deployment"
    spread = 0 if mode == "laptop" else 2  # one node: values-laptop.yaml turns spreading off
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
    check_hardened(mode, pod, c)
    check(f"{mode}: {spread} topology spread constraints", len(pod.get("topologySpreadConstraints", [])) == spread)
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
        st = conf.get("kafka.session.timeout.ms")
        check(f"statefulset: static members' kafka.session.timeout.ms {st} (worker.staticSessionTimeoutMs)", st is not None)
    else:
        check(
            "deployment: no static membership, librdkafka's session timeout",
            gid is None and "kafka.session.timeout.ms" not in conf,
        )
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
elif sys.argv[1] == "analytics":
    analytics(*sys.argv[2:6])
elif sys.argv[1] == "registry":
    registry(*sys.argv[2:5])
else:
    render(sys.argv[2], sys.argv[3], sys.argv[4])
sys.exit(1 if failed else 0)
