#!/usr/bin/env bash
# The CloudFormation template deploy/aws/imgsink.yaml: cfn-lint and checkov
# clean (checkov's skips carry their reason in the template's Metadata), then
# deployed to a local moto server with IAM enforcement on. boto3 as the
# worker's role writes a tagged object under its prefix and is refused
# everything else (other prefixes, the raw and log buckets, deletes, reads of
# its own output, policy and lifecycle changes, IAM); the API role stores
# uploads only; the analytics sink's and the rollup's roles grant what
# deploy/aws/policies/analytics.json and analytics-rollup.json grant (read
# back from IAM) and, as themselves, may write (sink) and read, write the
# daily file and delete hourly files (rollup) under analytics/ only. moto ignores LifecycleConfiguration inside a template, so the
# template's rules are applied and read back through the S3 API, and
# `imgsink check` as the worker role accepts them for every retention class
# (and refuses a bucket whose rules are missing one).
. "$(dirname "$0")/lib.sh"
# shellcheck source=../stack/common.sh
. "$ROOT/test/stack/common.sh"

TEMPLATE=$ROOT/deploy/aws/imgsink.yaml
VBIN=$IMGSINK_VENV/bin
for t in cfn-lint checkov moto_server python; do
    if [ ! -x "$VBIN/$t" ]; then
        notok "$VBIN/$t missing: run make deps"
        exit 1
    fi
done

# --- offline checks ---------------------------------------------------------
if "$VBIN/cfn-lint" "$TEMPLATE" >"$TMP/cfn-lint.log" 2>&1; then
    ok "cfn-lint: no error, warning or informational finding"
else
    sed 's/^/# /' "$TMP/cfn-lint.log" | head -40
    notok "cfn-lint deploy/aws/imgsink.yaml"
fi
BC_SKIP_MAPPING=TRUE "$VBIN/checkov" -f "$TEMPLATE" --framework cloudformation --skip-download --compact \
    -o json >"$TMP/checkov.json" 2>"$TMP/checkov.err"
summary=$("$VBIN/python" -c '
import json, sys
d = json.load(open(sys.argv[1]))
d = d[0] if isinstance(d, list) else d
s = d["summary"]
print(s["passed"], s["failed"], s["skipped"])
for c in d["results"]["failed_checks"]:
    print("# FAILED", c["check_id"], c["resource"], c["check_name"])
for c in d["results"]["skipped_checks"]:
    print("# skipped", c["check_id"], c["resource"], "-", (c.get("check_result", {}).get("suppress_comment") or c.get("suppress_comment") or "").strip())
' "$TMP/checkov.json" 2>>"$TMP/checkov.err")
read -r passed failed skipped <<<"$(echo "$summary" | head -1)"
echo "$summary" | tail -n +2
note "checkov: passed $passed, failed $failed, skipped $skipped"
check "checkov: no failed check (${passed:-?} passed, ${skipped:-?} skipped with reasons)" \
    test "${failed:-1}" = 0 -a "${passed:-0}" -gt 0
noreason=$(echo "$summary" | grep -c '^# skipped .* - $')
check "every checkov skip states its reason" test "$noreason" = 0

# --- moto, with IAM enforcement ---------------------------------------------
port=$(free_ports 1)
state=$TMP/moto
mkdir -p "$state"
# The first 3 requests (an admin user, its key, its policy) go unchecked.
INITIAL_NO_AUTH_ACTION_COUNT=3 spawn "$state/moto.pid" "$state/moto.log" \
    "$VBIN/moto_server" -H 127.0.0.1 -p "$port"
moto_pid=$(pid_of "$state/moto.pid" moto_server) || true
stop_moto() {
    local pid
    pid=$(pid_of "$state/moto.pid" moto_server) && kill -TERM "$pid" 2>/dev/null
    e2e_cleanup
}
trap stop_moto EXIT
note "moto_server pid ${moto_pid:-?} on 127.0.0.1:$port"
if ! wait_for 120 curl -fs -o /dev/null "http://127.0.0.1:$port/moto-api/"; then
    notok "moto_server answers on 127.0.0.1:$port"
    tail -20 "$state/moto.log" | sed 's/^/# /'
    exit 1
fi
AWS_EC2_METADATA_DISABLED=true "$VBIN/python" "$ROOT/test/e2e/cfn_moto.py" \
    "http://127.0.0.1:$port" "$TEMPLATE" "$TMP" 2>"$TMP/cfn_moto.err" | tee "$TMP/cfn_moto.tap" | grep -vE '^(not )?ok ' 
grep -E '^(not )?ok ' "$TMP/cfn_moto.tap"
n_fail=$(grep -c '^not ok' "$TMP/cfn_moto.tap")
N_FAIL=$((N_FAIL + n_fail))
if [ ! -s "$TMP/worker.env" ]; then
    sed 's/^/# /' "$TMP/cfn_moto.err" | tail -20
    grep -E 'Error|error|Traceback|File ' "$state/moto.log" | tail -15 | sed 's/^/# moto: /'
    notok "the moto deployment ran to the end"
    exit 1
fi
# shellcheck disable=SC1091
. "$TMP/worker.env"

# --- imgsink check, as the worker role, against moto ------------------------
topic=$(unique_name cfn)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$topic.dlq" 1 >/dev/null
cat >"$TMP/check.conf" <<EOF
kafka.bootstrap.servers=$KAFKA_BOOTSTRAP
input.topics=$topic
dlq.topic=$topic.dlq
s3.endpoint=http://127.0.0.1:$port
s3.region=us-east-1
s3.path.style=true
s3.bucket=$PROCESSED
s3.prefix=$PREFIX
s3.sse=aws:kms
retention.classes=7,30,90,365
EOF
check_as_worker() {
    IMGSINK_S3_ACCESS_KEY=$IMGSINK_S3_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$IMGSINK_S3_SECRET_KEY \
        IMGSINK_S3_SESSION_TOKEN=$IMGSINK_S3_SESSION_TOKEN "$IMGSINK" check -c "$@"
}
check_as_worker "$TMP/check.conf" >"$TMP/check.out" 2>"$TMP/check.err"
rc=$?
sed 's/^/# imgsink check: /' "$TMP/check.out"
check "imgsink check as the worker role passes against the deployed buckets (exit $rc)" test "$rc" = 0
n=$(grep -cE '^ok +lifecycle +retention=(7|30|90|365)d:' "$TMP/check.out")
check "imgsink check accepted a rule for each of the 4 retention classes ($n)" test "$n" = 4
# A class the template has no rule for: check must refuse it.
sed 's/^retention.classes=.*/retention.classes=7,14/' "$TMP/check.conf" >"$TMP/check14.conf"
check_as_worker "$TMP/check14.conf" >"$TMP/check14.out" 2>&1
rc=$?
grep -i fail "$TMP/check14.out" | head -3 | sed 's/^/# imgsink check (classes 7,14): /'
check "imgsink check refuses retention class 14, which has no rule (exit $rc)" test "$rc" = 1

[ "$N_FAIL" -eq 0 ]
