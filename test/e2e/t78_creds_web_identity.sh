#!/usr/bin/env bash
# Web identity (the EKS service-account path): AWS_ROLE_ARN +
# AWS_WEB_IDENTITY_TOKEN_FILE, exchanged at STS AssumeRoleWithWebIdentity.
# moto's server (PyPI moto[server], a PID file, a free loopback port) plays
# STS, IAM (the role, with a trust policy for the OIDC provider) and S3 (the
# bucket with its lifecycle rules). A worker with nothing but those variables
# writes every record (boto3 lists the objects in moto), its STS call is in
# moto's request log, and the web identity token appears nowhere in the log.
# A missing token file and an STS that does not answer stop start-up with a
# message naming them.
# Then moto enforces IAM (its /moto-api/reset-auth: every request after the
# worker's STS call is authenticated and authorized): the role's policy
# allows s3:PutObject and s3:PutObjectTagging under one prefix only. A
# worker writes every record there with the STS credentials (boto3 lists
# them once enforcement is off again), and a worker whose prefix is outside
# it is refused by moto (AccessDenied) and stops naming the missing
# permission.
. "$(dirname "$0")/lib.sh"
# shellcheck disable=SC1091
. "$ROOT/test/stack/common.sh"
PY="$IMGSINK_VENV/bin/python"

topic=$(unique_name webid)
dlq="$topic.dlq"
group=$(unique_name g-webid)
prefix=$(unique_name t78)
bucket=$(unique_name webid | tr -dc 'a-z0-9-')
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

port=$(free_ports 1)
moto="http://127.0.0.1:$port"
stop_moto() {
    local pid
    pid=$(pid_of "$TMP/moto.pid" "moto_server") && kill "$pid" 2>/dev/null
    return 0
}
trap 'stop_moto; e2e_cleanup' EXIT
spawn "$TMP/moto.pid" "$TMP/moto.log" "$IMGSINK_VENV/bin/moto_server" -H 127.0.0.1 -p "$port"
check "moto server answers" wait_for 120 curl -fs -o /dev/null "$moto/moto-api/"

export MOTO="$moto" BUCKET="$bucket" LIFECYCLE="$ROOT/deploy/aws/lifecycle.json"
role_arn=$("$PY" - <<'EOF'
import json, os, boto3
kw = dict(endpoint_url=os.environ["MOTO"], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
iam = boto3.client("iam", **kw)
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
         "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.example"},
         "Action": "sts:AssumeRoleWithWebIdentity"}]}
r = iam.create_role(RoleName="imgsink-worker", AssumeRolePolicyDocument=json.dumps(trust))
s3 = boto3.client("s3", **kw)
s3.create_bucket(Bucket=os.environ["BUCKET"])
with open(os.environ["LIFECYCLE"]) as f:
    s3.put_bucket_lifecycle_configuration(Bucket=os.environ["BUCKET"], LifecycleConfiguration=json.load(f))
print(r["Role"]["Arn"])
EOF
)
check "moto IAM role $role_arn and bucket $bucket with lifecycle rules" test -n "$role_arn"

token="$TMP/token"
# A service-account token as the kubelet writes it: a JWT, rotated in place.
printf 'eyJhbGciOiJSUzI1NiJ9.%s.%s' "$(head -c 48 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d =)" \
    "$(head -c 48 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d =)" >"$token"
write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix"
sed -i "s|^s3.endpoint=.*|s3.endpoint=$moto|; s|^s3.bucket=.*|s3.bucket=$bucket|" "$TMP/w.conf"
# webid_env TOKENFILE STSURL: sets WEBID_ENV to an env command with only web
# identity (an array: env execs imgsink, so $! is its PID).
webid_env() {
    local tf=$1 sts=$2
    WEBID_ENV=(env -u IMGSINK_S3_ACCESS_KEY -u IMGSINK_S3_SECRET_KEY -u AWS_ACCESS_KEY_ID \
        -u AWS_SECRET_ACCESS_KEY -u AWS_PROFILE -u AWS_CONTAINER_CREDENTIALS_FULL_URI \
        AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent \
        AWS_ROLE_ARN="$role_arn" AWS_WEB_IDENTITY_TOKEN_FILE="$tf" AWS_ROLE_SESSION_NAME=imgsink-t78 \
        AWS_ENDPOINT_URL_STS="$sts")
}
webid_env "$token" "$moto"
"${WEBID_ENV[@]}" "$IMGSINK" run -c "$TMP/w.conf" >>"$TMP/w1.log" 2>&1 &
WORKER_PIDS+=($!)
check "the worker takes its credentials from web identity" \
    wait_for 60 grep -q '"store credentials from web-identity"' "$TMP/w1.log"
vips gaussnoise "$TMP/i.v" 320 240 --sigma 25 && vips copy "$TMP/i.v" "$TMP/i.jpg[Q=85]" || notok "vips"
for i in 0 1 2 3; do
    "$PY" "$ROOT/test/e2e/make_records.py" inline "$TMP/r$i.bin" --id "r$i" --image "$TMP/i.jpg"
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -k "r$i" "$TMP/r$i.bin" || notok "kcat r$i"
done
moto_count() {
    "$PY" - "$moto" "$bucket" "$prefix" <<'EOF'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=sys.argv[2], Prefix=sys.argv[3] + "/").get("Contents", [])]
print(sum(k.endswith("/metadata.json") for k in keys))
EOF
}
all_written() { [ "$(moto_count)" = 4 ]; }
check "4 records written to moto's S3 with web identity credentials (boto3)" wait_for 300 all_written
check "committed offset = end offset (kafka-consumer-groups)" \
    wait_for 120 committed_equals_end "$group" "$topic" 1
check "moto's log shows the worker's STS call" grep -q "POST / HTTP" "$TMP/moto.log"
check "the web identity token is not in the worker's log" bash -c '! grep -qF "$(cat "$0")" "$1"' "$token" "$TMP/w1.log"
kill -TERM "${WORKER_PIDS[0]}" 2>/dev/null
wait "${WORKER_PIDS[0]}" 2>/dev/null
WORKER_PIDS=()

startup_fails() { # startup_fails TOKENFILE STSURL EXPECTED
    local out rc
    webid_env "$1" "$2"
    out=$("${WEBID_ENV[@]}" timeout 120 "$IMGSINK" run -c "$TMP/w.conf" 2>&1)
    rc=$?
    note "$(grep -o '"msg":"[^"]*"' <<<"$out" | tail -1)"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qF -- "$3" <<<"$out" && ! grep -qF -- "$(cat "$token")" <<<"$out"
}
check "a missing token file stops start-up naming it" \
    startup_fails "$TMP/no-such-token" "$moto" "AWS_WEB_IDENTITY_TOKEN_FILE: cannot read $TMP/no-such-token"
dead=$(free_ports 1)
check "an STS that does not answer stops start-up naming it" \
    startup_fails "$token" "http://127.0.0.1:$dead" "web identity (STS AssumeRoleWithWebIdentity) http://127.0.0.1:$dead"

# --- moto enforcing IAM: the role may only write under its prefix ---------------
allowed="$prefix-iam"
outside="$prefix-outside"
topic2=$(unique_name webid-iam)
group2=$(unique_name g-webid-iam)
dlq2="$topic2.dlq"
bash "$ROOT/test/stack/topic.sh" "$topic2" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq2" 1 >/dev/null
export ALLOWED="$allowed"
"$PY" - <<'EOF' || notok "moto: the role's policy"
import json, os, boto3
kw = dict(endpoint_url=os.environ["MOTO"], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
b = os.environ["BUCKET"]
boto3.client("iam", **kw).put_role_policy(
    RoleName="imgsink-worker", PolicyName="put-under-prefix", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:PutObjectTagging"],
             "Resource": f"arn:aws:s3:::{b}/{os.environ['ALLOWED']}/*"},
            {"Effect": "Allow", "Action": "s3:GetLifecycleConfiguration", "Resource": f"arn:aws:s3:::{b}"}]}))
EOF
# enforce_after_sts: from now on moto authenticates and authorizes every
# request but the next one (the worker's unsigned AssumeRoleWithWebIdentity,
# which moto cannot authenticate). unenforce: none, for the test's own
# listing (moto's signature check of ListObjectsV2 disagrees with boto3's).
reset_auth() { curl -fsS -X POST -H 'Content-Type: text/plain' --data "$1" "$moto/moto-api/reset-auth" >/dev/null; }
enforce_after_sts() { reset_auth 1; }
unenforce() { reset_auth inf; }
count_under() { # count_under PREFIX: metadata.json objects under PREFIX (boto3)
    "$PY" - "$moto" "$bucket" "$1" <<'EOF'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=sys.argv[2], Prefix=sys.argv[3] + "/").get("Contents", [])]
print(sum(k.endswith("/metadata.json") for k in keys))
EOF
}
enforced() { # keys moto's IAM does not know are refused now
    "$PY" - "$moto" <<'EOF'
import sys, boto3, botocore.exceptions
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
try:
    s3.list_buckets()
except botocore.exceptions.ClientError as e:
    print("# refused:", e.response["Error"]["Code"])
    sys.exit(e.response["Error"]["Code"] != "InvalidAccessKeyId")
sys.exit(1)
EOF
}
write_conf "$TMP/iam.conf" "$topic2" "$dlq2" "$group2" "$allowed"
sed -i "s|^s3.endpoint=.*|s3.endpoint=$moto|; s|^s3.bucket=.*|s3.bucket=$bucket|" "$TMP/iam.conf"
for i in 0 1 2; do
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic2" -k "r$i" "$TMP/r$i.bin" || notok "kcat r$i"
done
enforce_after_sts || notok "moto reset-auth"
webid_env "$token" "$moto"
"${WEBID_ENV[@]}" "$IMGSINK" run -c "$TMP/iam.conf" >>"$TMP/w-iam.log" 2>&1 &
WORKER_PIDS+=($!)
check "IAM enforced: the worker takes its credentials from web identity" \
    wait_for 60 grep -q '"store credentials from web-identity"' "$TMP/w-iam.log"
check "IAM enforced: committed offset = end offset (kafka-consumer-groups)" \
    wait_for 300 committed_equals_end "$group2" "$topic2" 1
check "IAM enforced: moto refuses keys its IAM does not know (InvalidAccessKeyId)" enforced
kill -TERM "${WORKER_PIDS[0]}" 2>/dev/null
wait "${WORKER_PIDS[0]}" 2>/dev/null
WORKER_PIDS=()
unenforce || notok "moto reset-auth"
# Offsets are committed after the writes: every write happened under enforcement.
check "IAM enforced: all 3 records written under the allowed prefix with the STS credentials (boto3)" \
    test "$(count_under "$allowed")" = 3
check "IAM enforced: nothing in the DLQ (kcat)" test "$(dlq_dump "$dlq2" | grep -c .)" = 0

sed "s|^s3.prefix=.*|s3.prefix=$outside/|" "$TMP/iam.conf" >"$TMP/outside.conf"
enforce_after_sts || notok "moto reset-auth"
out=$("${WEBID_ENV[@]}" timeout 120 "$IMGSINK" run -c "$TMP/outside.conf" 2>&1)
rc=$?
unenforce || notok "moto reset-auth"
echo "$out" >"$TMP/outside.log"
note "outside the prefix: $(grep -o '"msg":"[^"]*"' <<<"$out" | tail -1 | cut -c1-400)"
check "IAM enforced: a worker writing outside the prefix stops (exit $rc): moto says AccessDenied, the log names s3:PutObject on $bucket/$outside/" \
    bash -c '[ "$0" -ne 0 ] && [ "$0" -ne 124 ] && grep -q "AccessDenied" "$1" &&
             grep -qF "missing permission s3:PutObject on $2/$3/" "$1"' $rc "$TMP/outside.log" "$bucket" "$outside"
check "IAM enforced: nothing was written outside the prefix (boto3)" test "$(count_under "$outside")" = 0
check "the web identity token is not in those logs" \
    bash -c '! grep -qF "$(cat "$0")" "$1" "$2"' "$token" "$TMP/w-iam.log" "$TMP/outside.log"
[ "$N_FAIL" -eq 0 ]
