#!/usr/bin/env bash
# The Helm chart deploy/helm/imgsink, validated offline: helm lint --strict;
# helm template in both worker modes with everything enabled; the rendered
# manifests through kubeconform -strict against the Kubernetes schemas of
# PyPI's kubernetes-validate, KEDA's ScaledObject CRD and the Prometheus
# Operator's CRDs (made by scripts/deps.sh), which also refuses a misspelt
# field; checkov on the rendered manifests with no failed check (skips carry
# their reason); the rendered ConfigMap accepted by `imgsink config`; the
# PrometheusRule by promtool; facts on the pods (probes, securityContext,
# grace period, static membership, Secret references); and values the chart
# must refuse at render time, each naming the key.
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
FULL=(--set api.enabled=true --set api.hpa.enabled=true --set api.keysSecret=imgsink-api-keys
    --set monitoring.serviceMonitor.enabled=true --set monitoring.prometheusRule.enabled=true
    --set serviceAccount.roleArn=arn:aws:iam::123456789012:role/imgsink-worker
    --set secrets.env.IMGSINK_S3_ACCESS_KEY.secret=imgsink-s3 --set secrets.env.IMGSINK_S3_ACCESS_KEY.key=access-key
    --set secrets.env.IMGSINK_S3_SECRET_KEY.secret=imgsink-s3 --set secrets.env.IMGSINK_S3_SECRET_KEY.key=secret-key
    --set image.digest="$DIGEST")

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
for m in default deployment statefulset fixed; do
    case $m in
    default) args=() ;;
    deployment) args=("${FULL[@]}") ;;
    statefulset) args=(--set worker.kind=statefulset "${FULL[@]}") ;;
    fixed) args=(--set autoscaling.enabled=false --set worker.replicas=3) ;;
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
if kc "$TMP/default.yaml" "$TMP/deployment.yaml" "$TMP/statefulset.yaml" "$TMP/fixed.yaml" >"$TMP/kc.log" 2>&1; then
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
cp "$TMP/deployment.yaml" "$TMP/statefulset.yaml" "$TMP/ck/"
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
for m in deployment statefulset; do
    mkdir -p "$TMP/$m"
    "$VPY" "$ROOT/test/e2e/chart_facts.py" render "$TMP/$m.yaml" "$m" "$TMP/$m" || N_FAIL=$((N_FAIL + 1))
done
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
refuse "an unknown worker.kind" "worker.kind=daemonset: expected deployment or statefulset" --set worker.kind=daemonset
refuse "a malformed image digest" "image.digest=sha256:xyz: expected sha256: and 64 hex digits" --set image.digest=sha256:xyz
refuse "a Secret reference to a non-IMGSINK variable" "secrets.env.LD_PRELOAD: expected a variable name starting with IMGSINK_" \
    --set secrets.env.LD_PRELOAD.secret=x --set secrets.env.LD_PRELOAD.key=y
refuse "a Secret reference without a key" "secrets.env.IMGSINK_S3_SECRET_KEY.key is required" \
    --set secrets.env.IMGSINK_S3_SECRET_KEY.secret=x

[ "$N_FAIL" -eq 0 ]
