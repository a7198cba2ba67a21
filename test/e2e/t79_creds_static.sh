#!/usr/bin/env bash
# The static sources of the chain with real temporary credentials (MinIO STS
# AssumeRole, each with a session token): a shared credentials file with a
# profile (AWS_SHARED_CREDENTIALS_FILE + AWS_PROFILE), the config file's
# "[profile name]" section (AWS_CONFIG_FILE), and AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN. A worker on each writes its
# records (mc), and no secret appears in its log or `imgsink config`. A
# profile that does not exist and a damaged session token stop start-up
# with a message naming the source, without the token.
. "$(dirname "$0")/lib.sh"
# shellcheck disable=SC1091
. "$ROOT/test/stack/common.sh"
PY="$IMGSINK_VENV/bin/python"

user=$(unique_name sts | tr -dc 'a-z0-9-' | cut -c1-30)
usersecret=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | cut -c1-30)
mc admin user add "$MC_ALIAS" "$user" "$usersecret" >/dev/null || notok "mc admin user add"
mc admin policy attach "$MC_ALIAS" imgsink-worker --user "$user" >/dev/null || notok "mc admin policy attach"
sts() { # sts: "AK SK TOKEN" from MinIO's STS AssumeRole
    "$PY" - "$S3_ENDPOINT" "$user" "$usersecret" <<'EOF'
import sys, boto3
c = boto3.client("sts", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3]).assume_role(
    RoleArn="arn:aws:iam::123456789012:role/imgsink", RoleSessionName="imgsink-t79",
    DurationSeconds=900)["Credentials"]
print(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
EOF
}
read -r ak1 sk1 tk1 <<<"$(sts)"
read -r ak2 sk2 tk2 <<<"$(sts)"
read -r ak3 sk3 tk3 <<<"$(sts)"
check "MinIO STS gave three sets of temporary credentials" test -n "$tk1" -a -n "$tk2" -a -n "$tk3"
printf '[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n[imgsink]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n' \
    "$ak1" "$sk1" "$tk1" >"$TMP/credentials"
printf '[profile imgsink-conf]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n' \
    "$ak2" "$sk2" "$tk2" >"$TMP/config"

vips gaussnoise "$TMP/i.v" 320 240 --sigma 25 && vips copy "$TMP/i.v" "$TMP/i.jpg[Q=85]" || notok "vips"
base=(env -u IMGSINK_S3_ACCESS_KEY -u IMGSINK_S3_SECRET_KEY -u AWS_ACCESS_KEY_ID
    -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE AWS_EC2_METADATA_DISABLED=true
    AWS_SHARED_CREDENTIALS_FILE="$TMP/credentials" AWS_CONFIG_FILE="$TMP/config")
run_case() { # run_case NAME SOURCE ENV...: a worker writes 3 records with that source
    local name=$1 want=$2 topic group prefix i pid
    shift 2
    topic=$(unique_name "$name") group=$(unique_name "g-$name") prefix=$(out_prefix "t79-$name")
    bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
    bash "$ROOT/test/stack/topic.sh" "$topic.dlq" 1 >/dev/null
    write_conf "$TMP/$name.conf" "$topic" "$topic.dlq" "$group" "$prefix"
    "${base[@]}" "$@" "$IMGSINK" run -c "$TMP/$name.conf" >>"$TMP/$name.log" 2>&1 &
    pid=$!
    WORKER_PIDS+=("$pid")
    "${base[@]}" "$@" "$IMGSINK" config -c "$TMP/$name.conf" >>"$TMP/$name.log" 2>&1
    for i in 0 1 2; do
        "$PY" "$ROOT/test/e2e/make_records.py" inline "$TMP/r.bin" --id "r$i" --image "$TMP/i.jpg"
        kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -k "r$i" "$TMP/r.bin" || notok "kcat r$i"
    done
    check "$name: the worker takes its credentials from $want" \
        wait_for 60 grep -q "\"store credentials from $want\"" "$TMP/$name.log"
    written() { [ "$(count_objects "$prefix" metadata.json)" -eq 3 ]; }
    check "$name: 3 records written with the STS session credentials (mc)" wait_for 300 written
    check "$name: committed offset = end offset" wait_for 120 committed_equals_end "$group" "$topic" 1
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
run_case profile profile AWS_PROFILE=imgsink
run_case config profile AWS_PROFILE=imgsink-conf
run_case env environment AWS_ACCESS_KEY_ID="$ak3" AWS_SECRET_ACCESS_KEY="$sk3" AWS_SESSION_TOKEN="$tk3"
leak=0
for s in "$sk1" "$tk1" "$sk2" "$tk2" "$sk3" "$tk3"; do
    grep -qF -- "$s" "$TMP"/profile.log "$TMP"/config.log "$TMP"/env.log && leak=1
done
check "no secret key or session token in the logs or config dumps" test $leak -eq 0

fails() { # fails EXPECTED ENV...: start-up stops with EXPECTED, no token quoted
    local want=$1 out rc
    shift
    out=$("${base[@]}" "$@" timeout 120 "$IMGSINK" run -c "$TMP/env.conf" 2>&1)
    rc=$?
    note "$(grep -o '"msg":"[^"]*"' <<<"$out" | tail -1)"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qF -- "$want" <<<"$out" && ! grep -qF -- "${tk3:0:40}" <<<"$out"
}
check "a profile that does not exist stops start-up naming it" \
    fails "AWS_PROFILE=nope: no such profile" AWS_PROFILE=nope
check "a damaged session token stops start-up: the store refuses it (InvalidTokenId)" \
    fails "the store rejects the credentials from environment (credentials chain): HTTP 403 InvalidTokenId" \
    AWS_ACCESS_KEY_ID="$ak3" AWS_SECRET_ACCESS_KEY="$sk3" AWS_SESSION_TOKEN="${tk3%????}AAAA"
mc admin user remove "$MC_ALIAS" "$user" >/dev/null 2>&1
[ "$N_FAIL" -eq 0 ]
