#!/usr/bin/env bash
# The Helm chart deploy/helm/imgsink, validated offline: helm lint --strict;
# helm template in both worker modes with everything enabled; the rendered
# manifests through kubeconform -strict against the Kubernetes schemas of
# PyPI's kubernetes-validate, KEDA's ScaledObject CRD and the Prometheus
# Operator's CRDs (made by scripts/deps.sh), which also refuses a misspelt
# field; checkov on the rendered manifests with no failed check (skips carry
# their reason); the rendered ConfigMap accepted by `imgsink config`; the
# PrometheusRule by promtool; facts on the pods (probes, securityContext,
# grace period, static membership, Secret references); the analytics sink's
# Deployment and the rollup's CronJob (probes, hardening, own IRSA
# ServiceAccounts, NetworkPolicies, schedule, and the CronJob's script run
# to see which day it rolls up); the sink's ServiceMonitor reaching its
# pods; with schema.registry.url, the registry egress of the workers' and
# the sink's NetworkPolicies; and values the chart must refuse at render
# time, each naming the key.
. "$(dirname "$0")/lib.sh"
# shellcheck source=../stack/common.sh
. "$ROOT/test/stack/common.sh"

CHART=$ROOT/deploy/helm/imgsink
HELM=$IMGSINK_BIN/helm
KUBECONFORM=$IMGSINK_BIN/kubeconform
VPY=$IMGSINK_VENV/bin/python
for t in "$HELM" "$KUBECONFORM" "$IMGSINK_VENV/bin/checkov" "$K8S_SCHEMA_DIR/.stamp"; do
    if [ ! -e "$t" ]; then
        notok "$t missing: run make deps"
        exit 1
    fi
done
# The helm built from its module reports Kubernetes 1.20 as its default.
KV=(--kube-version "$K8S_SCHEMA_VERSION")
DIGEST=sha256:$(printf '%s' imgsink | sha256sum | cut -d' ' -f1)
# The analytics sink and its daily rollup, each with its own IRSA role.
SINK_ROLE=arn:aws:iam::123456789012:role/imgsink-analytics
ROLLUP_ROLE=arn:aws:iam::123456789012:role/imgsink-analytics-rollup
API_ROLE=arn:aws:iam::123456789012:role/imgsink-api
ANALYTICS=(--set analytics.enabled=true --set analytics.rollup.enabled=true
    --set "analytics.serviceAccount.roleArn=$SINK_ROLE" --set "analytics.rollup.serviceAccount.roleArn=$ROLLUP_ROLE"
    --set-string 'config.events\.topic=images.events')
FULL=(--set api.enabled=true --set api.hpa.enabled=true --set api.keysSecret=imgsink-api-keys
    --set "api.serviceAccount.roleArn=$API_ROLE"
    --set monitoring.serviceMonitor.enabled=true --set monitoring.prometheusRule.enabled=true
    --set serviceAccount.roleArn=arn:aws:iam::123456789012:role/imgsink-worker
    --set secrets.env.IMGSINK_S3_ACCESS_KEY.secret=imgsink-s3 --set secrets.env.IMGSINK_S3_ACCESS_KEY.key=access-key
    --set secrets.env.IMGSINK_S3_SECRET_KEY.secret=imgsink-s3 --set secrets.env.IMGSINK_S3_SECRET_KEY.key=secret-key
    --set image.digest="$DIGEST"
    "${ANALYTICS[@]}")

check "the chart's alert rules are deploy/prometheus/imgsink-alerts.yml" \
    cmp -s "$CHART/files/imgsink-alerts.yml" "$ROOT/deploy/prometheus/imgsink-alerts.yml"
"$VPY" "$ROOT/test/e2e/chart_facts.py" values "$CHART/values.yaml" || N_FAIL=$((N_FAIL + 1))

if "$HELM" lint --strict "$CHART" "${KV[@]}" >"$TMP/lint.log" 2>&1 &&
    "$HELM" lint --strict "$CHART" "${KV[@]}" --set worker.kind=statefulset "${FULL[@]}" >>"$TMP/lint.log" 2>&1; then
    ok "helm lint --strict (defaults; statefulset with everything enabled): $(grep -c 'chart(s) linted, 0 chart(s) failed' "$TMP/lint.log") of 2 clean"
else
    sed 's/^/# /' "$TMP/lint.log" | tail -20
    notok "helm lint --strict"
fi

# --- renders --------------------------------------------------------------------
render() { # render NAME ARGS...: helm template into $TMP/NAME.yaml
    local name=$1
    shift
    "$HELM" template imgsink "$CHART" --namespace imgsink "${KV[@]}" "$@" >"$TMP/$name.yaml" 2>"$TMP/$name.err"
}
LAPTOP=$ROOT/deploy/helm/values-laptop.yaml
# The workers and the sink with a Schema Registry, and the egress to it.
SR_CIDR=10.20.0.0/16
SR_PORT=8081
REGISTRY=(--set-string 'config.schema\.registry\.url=http://registry.imgsink:8081'
    --set "networkPolicy.schemaRegistry.cidrs={$SR_CIDR}" --set "networkPolicy.schemaRegistry.ports={$SR_PORT}")
for m in default deployment statefulset fixed laptop registry; do
    case $m in
    default) args=() ;;
    deployment) args=("${FULL[@]}") ;;
    statefulset) args=(--set worker.kind=statefulset "${FULL[@]}") ;;
    fixed) args=(--set autoscaling.enabled=false --set worker.replicas=3) ;;
    laptop) args=(-f "$LAPTOP") ;; # README "Kubernetes on a laptop"
    registry) args=("${FULL[@]}" "${REGISTRY[@]}") ;;
    esac
    if render "$m" "${args[@]}"; then
        ok "helm template ($m): $(grep -c '^kind:' "$TMP/$m.yaml") objects"
    else
        sed 's/^/# /' "$TMP/$m.err" | head -5
        notok "helm template ($m)"
    fi
done
note "excerpt of the statefulset render (the ScaledObject):"
awk '/^kind: ScaledObject/,/^---/' "$TMP/statefulset.yaml" | sed -n '1,40p' | sed 's/^/#   /'

kc() {
    "$KUBECONFORM" -strict -summary -output text \
        -schema-location "$K8S_SCHEMA_DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$@"
}
if kc "$TMP/default.yaml" "$TMP/deployment.yaml" "$TMP/statefulset.yaml" "$TMP/fixed.yaml" "$TMP/laptop.yaml" \
    "$TMP/registry.yaml" >"$TMP/kc.log" 2>&1; then
    ok "kubeconform -strict: $(tail -1 "$TMP/kc.log")"
else
    sed 's/^/# /' "$TMP/kc.log" | tail -20
    notok "kubeconform -strict"
fi
# The schemas are strict enough to catch a misspelt field and a wrong type.
sed 's/readOnlyRootFilesystem: true/readOnlyRootFilesytem: true/' "$TMP/default.yaml" >"$TMP/typo.yaml"
sed 's/maxReplicaCount: 6/maxReplicaCount: "six"/' "$TMP/default.yaml" >"$TMP/type.yaml"
for bad in typo type; do
    if kc "$TMP/$bad.yaml" >"$TMP/kc-$bad.log" 2>&1; then
        notok "kubeconform refuses the $bad render"
    else
        ok "kubeconform refuses the $bad render: $(grep -m1 -oE "(Deployment|ScaledObject) [^ ]+ is invalid|at '[^']+': [^-]{0,80}" "$TMP/kc-$bad.log" | tr '\n' ' ')"
    fi
done

# --- checkov --------------------------------------------------------------------
mkdir -p "$TMP/ck"
# The full renders (Deployment, StatefulSet, with a Schema Registry); not
# the laptop render: its image is imported by tag (k3d image import),
# which has no registry digest (CKV_K8S_43).
cp "$TMP/deployment.yaml" "$TMP/statefulset.yaml" "$TMP/registry.yaml" "$TMP/ck/"
BC_SKIP_MAPPING=TRUE "$IMGSINK_VENV/bin/checkov" -d "$TMP/ck" --framework kubernetes --skip-download \
    --compact -o json >"$TMP/checkov.json" 2>"$TMP/checkov.err"
summary=$("$VPY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
d = d[0] if isinstance(d, list) else d
s = d["summary"]
print(s["passed"], s["failed"], s["skipped"])
for c in d["results"]["failed_checks"]:
    print("# FAILED", c["check_id"], c["resource"], c["check_name"])
seen = set()
for c in d["results"]["skipped_checks"]:
    k = (c["check_id"], c.get("suppress_comment"))
    if k not in seen:
        seen.add(k)
        print("# skipped", c["check_id"], "-", (c.get("check_result", {}).get("suppress_comment") or c.get("suppress_comment") or "").strip())
' "$TMP/checkov.json" 2>>"$TMP/checkov.err")
read -r passed failed skipped <<<"$(echo "$summary" | head -1)"
echo "$summary" | tail -n +2
check "checkov on the rendered chart: ${passed:-?} passed, ${failed:-?} failed, ${skipped:-?} skipped" \
    test "${failed:-1}" = 0 -a "${passed:-0}" -gt 0
check "every checkov skip states its reason" test "$(echo "$summary" | grep -c '^# skipped .* - $')" = 0

# --- what the renders say ------------------------------------------------------
for m in deployment statefulset laptop; do
    mkdir -p "$TMP/$m"
    "$VPY" "$ROOT/test/e2e/chart_facts.py" render "$TMP/$m.yaml" "$m" "$TMP/$m" || N_FAIL=$((N_FAIL + 1))
done
# --- the analytics sink and the rollup CronJob (in the deployment and
# statefulset renders: FULL enables them) ---------------------------------------
"$VPY" "$ROOT/test/e2e/chart_facts.py" analytics "$TMP/deployment.yaml" "$TMP/deployment" "$SINK_ROLE" "$ROLLUP_ROLE" ||
    N_FAIL=$((N_FAIL + 1))
# With schema.registry.url the workers' and the sink's NetworkPolicies let
# them reach the registry (networkPolicy.schemaRegistry), the rollup's not.
"$VPY" "$ROOT/test/e2e/chart_facts.py" registry "$TMP/registry.yaml" "$SR_CIDR" "$SR_PORT" || N_FAIL=$((N_FAIL + 1))
# The API pods run as their own ServiceAccount with the API's IAM role
# (presign uploads into the raw bucket), never as the worker's.
check "the API Deployment's ServiceAccount carries the API's role, not the worker's" "$VPY" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
sa = {d["metadata"]["name"]: (d["metadata"].get("annotations") or {}).get("eks.amazonaws.com/role-arn")
      for d in docs if d["kind"] == "ServiceAccount"}
pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["serviceAccountName"]
        for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
api = [n for n in pods if n.endswith("-api")]
worker = [n for n in pods if n.endswith("-worker")]
ok = len(api) == 1 and len(worker) == 1 and sa.get(pods[api[0]]) == sys.argv[2] \
    and pods[api[0]] != pods[worker[0]] and sa.get(pods[worker[0]]) != sys.argv[2]
print("# api pods:", pods.get(api[0]) if api else None, sa.get(pods[api[0]]) if api else None)
sys.exit(0 if ok else 1)' "$TMP/deployment.yaml" "$API_ROLE"
check "default render: no analytics sink, CronJob or their ServiceAccounts (analytics.enabled=false)" \
    test "$(grep -cE '^kind: CronJob|name: imgsink-analytics' "$TMP/default.yaml")" = 0
# The CronJob's script, run by this machine's sh and date with imgsink
# replaced by a stub printing its arguments: it must roll up yesterday in
# UTC whatever the local time zone (two zones 26 hours apart).
printf '#!/bin/sh\necho "$*"\n' >"$TMP/stub-imgsink"
chmod +x "$TMP/stub-imgsink"
sed "s#/usr/local/bin/imgsink#$TMP/stub-imgsink#" "$TMP/deployment/rollup.sh" >"$TMP/rollup-stub.sh"
for tz in Etc/GMT+12 Etc/GMT-14; do
    before=$(date -u -d "@$(($(date -u +%s) - 86400))" +%F)
    got=$(TZ=$tz sh "$TMP/rollup-stub.sh" 2>&1)
    after=$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc) - d.timedelta(days=1)).date())')
    check "rollup script (TZ=$tz) runs: imgsink $got (yesterday in UTC: $after)" \
        test "$got" = "analytics rollup --date $after" -o "$got" = "analytics rollup --date $before"
done
render days2 "${ANALYTICS[@]}" --set analytics.rollup.daysAgo=2
"$VPY" -c 'import sys, yaml
cj = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "CronJob")
print(cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][-1])' "$TMP/days2.yaml" >"$TMP/days2.sh"
want=$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc) - d.timedelta(days=2)).date())')
got=$(sed "s#/usr/local/bin/imgsink#$TMP/stub-imgsink#" "$TMP/days2.sh" | sh 2>&1)
check "analytics.rollup.daysAgo=2 rolls up the day before yesterday: imgsink $got" test "$got" = "analytics rollup --date $want"

# The laptop values: a configuration imgsink accepts, pointing at the
# compose stack's published ports (t83 checks compose publishes them).
if env -i PATH="$PATH" IMGSINK_S3_ACCESS_KEY=minioadmin IMGSINK_S3_SECRET_KEY=minioadmin \
    "$IMGSINK" config -c "$TMP/laptop/imgsink.conf" >"$TMP/laptop.out" 2>"$TMP/laptop.err"; then
    ok "imgsink config accepts the laptop render's ConfigMap: $(grep -E '^(kafka.bootstrap.servers|s3.endpoint)=' "$TMP/laptop/imgsink.conf" | tr '\n' ' ')"
else
    sed 's/^/# /' "$TMP/laptop.err" | head -5
    notok "imgsink config accepts the laptop render's ConfigMap"
fi
check "laptop render: the image imgsink:local, never pulled, MinIO keys from the Secret imgsink-minio" \
    "$VPY" - "$TMP/laptop.yaml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
w = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-worker"))
c = w["spec"]["template"]["spec"]["containers"][0]
refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})}
sys.exit(0 if c["image"] == "imgsink:local" and c["imagePullPolicy"] == "Never"
         and refs == {"IMGSINK_S3_ACCESS_KEY": "imgsink-minio", "IMGSINK_S3_SECRET_KEY": "imgsink-minio"} else 1)
EOF
# The ConfigMap's file is a configuration imgsink accepts (unknown keys and
# bad values stop start-up), with the Secret-referenced keys set.
if env -i PATH="$PATH" IMGSINK_S3_ACCESS_KEY=a IMGSINK_S3_SECRET_KEY=b \
    "$IMGSINK" config -c "$TMP/deployment/imgsink.conf" >"$TMP/conf.out" 2>"$TMP/conf.err"; then
    ok "imgsink config accepts the rendered ConfigMap ($(grep -c = "$TMP/deployment/imgsink.conf") keys)"
else
    sed 's/^/# /' "$TMP/conf.err" | head -5
    notok "imgsink config accepts the rendered ConfigMap"
fi
mem=$(grep -A4 'resources:' "$TMP/default.yaml" | grep -m1 -oE 'memory: [0-9]+Mi')
# baseMiB 256 + 100e6 pixels x 8 bytes / 1 MiB (762) + 2 x 64 MiB = 1146 MiB
check "memory from the pixel budget: $mem (256 + 100000000 x 8 / 1048576 + 2 x 64 = 1146)" test "$mem" = "memory: 1146Mi"
render bigger --set worker.maxInflightPixels=400000000 --set worker.threads=4
mem=$(grep -A4 'resources:' "$TMP/bigger.yaml" | grep -m1 -oE 'memory: [0-9]+Mi')
cpu=$(grep -A4 'resources:' "$TMP/bigger.yaml" | grep -m1 -oE 'cpu: [0-9]+m')
check "a 400 Mpixel budget and 4 threads give $mem (3435) and $cpu (2000m)" \
    test "$mem" = "memory: 3435Mi" -a "$cpu" = "cpu: 2000m"
if command -v promtool >/dev/null && [ -s "$TMP/statefulset/rules.yml" ]; then
    if promtool check rules "$TMP/statefulset/rules.yml" >"$TMP/promtool.log" 2>&1; then
        ok "promtool accepts the PrometheusRule's groups: $(grep -oE '[0-9]+ rules found' "$TMP/promtool.log")"
    else
        sed 's/^/# /' "$TMP/promtool.log" | head -10
        notok "promtool accepts the PrometheusRule's groups"
    fi
else
    notok "promtool and the PrometheusRule's groups"
fi

# --- values the chart refuses, naming the key ------------------------------------
refuse() { # refuse WHAT EXPECTED-TEXT ARGS...
    local what=$1 want=$2
    shift 2
    if render refused "$@"; then
        notok "the chart refuses $what (rendered)"
    elif grep -qF -- "$want" "$TMP/refused.err"; then
        ok "the chart refuses $what: $(grep -m1 -oF -- "$want" "$TMP/refused.err")"
    else
        sed 's/^/# /' "$TMP/refused.err" | head -3
        notok "the chart refuses $what, naming $want"
    fi
}
refuse "maxReplicaCount above the partition count" "autoscaling.maxReplicaCount=12: expected at most autoscaling.partitions (6)" \
    --set autoscaling.maxReplicaCount=12
refuse "a grace period not above shutdown.timeout.ms" "worker.terminationGracePeriodSeconds=30: expected more than" \
    --set worker.terminationGracePeriodSeconds=30
refuse "a secret in the ConfigMap" "config.s3.secret.key: secrets go in secrets.env" \
    --set-string 'config.s3\.secret\.key=hunter2'
refuse "a SASL password in the ConfigMap" "config.kafka.sasl.password: secrets go in secrets.env" \
    --set-string 'config.kafka\.sasl\.password=hunter2'
refuse "http.listen in config (the chart sets it)" "config.http.listen: set by the chart" \
    --set-string 'config.http\.listen=:1234'
refuse "a static session timeout below the broker's minimum" "worker.staticSessionTimeoutMs=3000: expected 6000..1800000" \
    --set worker.kind=statefulset --set worker.staticSessionTimeoutMs=3000
refuse "kafka.session.timeout.ms in config in statefulset mode" "config.kafka.session.timeout.ms: set by the chart" \
    --set worker.kind=statefulset --set-string 'config.kafka\.session\.timeout\.ms=10000'
refuse "an unknown worker.kind" "worker.kind=daemonset: expected deployment or statefulset" --set worker.kind=daemonset
refuse "a malformed image digest" "image.digest=sha256:xyz: expected sha256: and 64 hex digits" --set image.digest=sha256:xyz
refuse "a Secret reference to a non-IMGSINK variable" "secrets.env.LD_PRELOAD: expected a variable name starting with IMGSINK_" \
    --set secrets.env.LD_PRELOAD.secret=x --set secrets.env.LD_PRELOAD.key=y
refuse "a Secret reference without a key" "secrets.env.IMGSINK_S3_SECRET_KEY.key is required" \
    --set secrets.env.IMGSINK_S3_SECRET_KEY.secret=x
refuse "the API on chain credentials without an id key" "api.idKeySecret: required when the API is enabled" \
    --set api.enabled=true --set api.keysSecret=imgsink-api-keys
refuse "the analytics sink without config.events.topic" "config.events.topic is required" \
    --set analytics.enabled=true
refuse "the rollup CronJob without config.events.topic" "config.events.topic is required" \
    --set analytics.rollup.enabled=true
refuse "a rollup of today (daysAgo 0)" "analytics.rollup.daysAgo=0: expected 1 or more" \
    --set analytics.rollup.enabled=true --set-string 'config.events\.topic=e' --set analytics.rollup.daysAgo=0
refuse "schema.registry.url with NetworkPolicies and no egress to the registry" \
    "config.schema.registry.url is set, but networkPolicy.schemaRegistry.cidrs and .ports are not both given" \
    --set-string 'config.schema\.registry\.url=http://registry.imgsink:8081'
refuse "registry egress with CIDRs but no ports" "networkPolicy.schemaRegistry: config.schema.registry.url is set" \
    --set-string 'config.schema\.registry\.url=http://registry.imgsink:8081' --set "networkPolicy.schemaRegistry.cidrs={$SR_CIDR}"
refuse "registry egress on ports without the URL's" \
    "networkPolicy.schemaRegistry.ports=[8080]: expected the port of config.schema.registry.url (http://registry.imgsink:8081: port 8081)" \
    --set-string 'config.schema\.registry\.url=http://registry.imgsink:8081' \
    --set "networkPolicy.schemaRegistry.cidrs={$SR_CIDR}" --set "networkPolicy.schemaRegistry.ports={8080}"
refuse "registry egress without 443 for an https URL with no port" \
    "networkPolicy.schemaRegistry.ports=[8081]: expected the port of config.schema.registry.url (https://sr.imgsink/apis/ccompat/v7: port 443)" \
    --set-string 'config.schema\.registry\.url=https://sr.imgsink/apis/ccompat/v7' \
    --set "networkPolicy.schemaRegistry.cidrs={$SR_CIDR}" --set "networkPolicy.schemaRegistry.ports={8081}"
render srtls --set-string 'config.schema\.registry\.url=https://sr.imgsink/apis/ccompat/v7' \
    --set "networkPolicy.schemaRegistry.cidrs={$SR_CIDR}" --set "networkPolicy.schemaRegistry.ports={443}"
check "an https registry URL without a port renders with egress to the registry on 443" \
    python3 -c 'import sys, yaml
rules = [e for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "NetworkPolicy"
         for e in d["spec"].get("egress", []) if any(t.get("ipBlock", {}).get("cidr") == sys.argv[2] for t in e.get("to", []))]
sys.exit(0 if rules and all([p["port"] for p in e["ports"]] == [443] for e in rules) else 1)' "$TMP/srtls.yaml" "$SR_CIDR"
render srsvc --set-string 'config.schema\.registry\.url=http://registry.imgsink' \
    --set "networkPolicy.schemaRegistry.cidrs={$SR_CIDR}" --set "networkPolicy.schemaRegistry.ports={8080}" \
    --set networkPolicy.schemaRegistry.viaService=true
check "viaService: a Service URL on port 80 renders with egress on the container port 8080" \
    grep -q "cidr: $SR_CIDR" "$TMP/srsvc.yaml"
render nonp --set-string 'config.schema\.registry\.url=http://registry.imgsink:8081' --set networkPolicy.enabled=false
check "schema.registry.url renders without registry egress when networkPolicy.enabled=false (no NetworkPolicy)" \
    test -s "$TMP/nonp.yaml" -a "$(grep -c '^kind: NetworkPolicy' "$TMP/nonp.yaml")" = 0
render idkey --set api.enabled=true --set api.keysSecret=imgsink-api-keys --set api.idKeySecret=imgsink-api-id
check "api.idKeySecret reaches the API as IMGSINK_API_ID_KEY from the Secret's id-key" \
    python3 -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-api")]
env = {e["name"]: e for e in docs[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
ref = env["IMGSINK_API_ID_KEY"]["valueFrom"]["secretKeyRef"]
sys.exit(0 if ref == {"name": "imgsink-api-id", "key": "id-key"} else 1)' "$TMP/idkey.yaml"

[ "$N_FAIL" -eq 0 ]
