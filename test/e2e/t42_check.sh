#!/usr/bin/env bash
# `imgsink check`: passes on the stack as provisioned, and fails with a
# clear line for each thing an operator can get wrong: a missing bucket, a
# bucket without (or with the wrong) lifecycle rule, a retention class or
# noncurrent versions or delete markers no rule covers, an unreachable broker,
# a missing topic, a bad configuration value. mc and kcat confirm the facts
# the check reports, and that the check itself changed nothing.
. "$(dirname "$0")/lib.sh"

topic=$(unique_name check)
dlq="$topic.dlq"
bash "$ROOT/test/stack/topic.sh" "$topic" 2 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null
write_conf "$TMP/c.conf" "$topic" "$dlq" "$(unique_name g-check)" "$(out_prefix t42)"

n=0
# run_check NAME [ARGS...]: runs the check with credentials from the
# environment; output in $TMP/NAME.out, exit code in $rc. With the admin
# identity, as an operator runs it: this test is about the lifecycle rules
# and buckets check reads (s3:GetLifecycleConfiguration, s3:ListBucket on
# buckets of its own), which the worker's production policy does not grant.
# What check says with the worker's identity is t74_least_privilege's.
run_check() {
    local name=$1
    shift
    as_operator "$IMGSINK" check -c "$TMP/c.conf" "$@" >"$TMP/$name.out" 2>&1
    rc=$?
    n=$((n + 1))
    sed "s/^/# $name: /" "$TMP/$name.out"
}
has() { grep -qE -- "$2" "$TMP/$1.out"; } # has NAME REGEX

# --- as provisioned by test/stack/start.sh ------------------------------------
run_check good
check "passes on the stack: exit 0 (got $rc)" test $rc -eq 0
check "one ok line per check: config, kafka, topic, dlq, bucket, lifecycle (7d, delete markers)" \
    test "$(grep -cE '^ok +(config|kafka|topic|dlq|bucket|lifecycle) ' "$TMP/good.out")" -eq 7
parts=$(kcat -L -b "$KAFKA_BOOTSTRAP" -t "$topic" 2>/dev/null | grep -c '^    partition ')
check "topic line says $parts partitions, as kcat -L does" has good "^ok +topic +$topic: $parts partitions, all led"
# rule_id TAG: the ID of the rule mc reports for tag retention=TAG ("" = no tag filter).
rule_id() {
    mc ilm rule export "$MC_ALIAS/${2:-$S3_BUCKET}" | python3 -c '
import json, sys
want = sys.argv[1]
for r in json.load(sys.stdin)["Rules"]:
    f = r.get("Filter") or {}
    tag = f.get("Tag") or {}
    if (tag.get("Value") or "") == want and not (f.get("And") or {}).get("Tags"):
        print(r["ID"]); break' "$1"
}
check "lifecycle line for retention=7d names the rule mc reports, current and noncurrent versions" \
    has good "^ok +lifecycle +retention=7d: rule \"$(rule_id 7d)\": tag retention=7d, objects expire after 7 days; rule \"$(rule_id 7d)\" expires noncurrent versions 1 day after"
check "lifecycle line for delete markers names the rule without a tag filter mc reports" \
    has good "^ok +lifecycle +delete markers: rule \"$(rule_id "")\" removes expired object delete markers"

# --- a bucket that does not exist --------------------------------------------
nob=$(unique_name nob | tr 'A-Z' 'a-z')
run_check nobucket -X "s3.bucket=$nob"
check "missing bucket: exit 1 (got $rc)" test $rc -eq 1
check "missing bucket: FAIL bucket ... does not exist" has nobucket "^FAIL +bucket +$nob does not exist at $S3_ENDPOINT"
check "mc agrees the bucket does not exist, and check did not create it" bash -c "! $MC ls '$MC_ALIAS/$nob' >/dev/null 2>&1"

# --- a bucket without a lifecycle rule, then with a wrong one, then fixed -----
bare=$(unique_name bare | tr 'A-Z' 'a-z')
mc mb "$MC_ALIAS/$bare" >/dev/null || notok "mc mb $bare"
run_check nolc -X "s3.bucket=$bare"
check "no lifecycle rule: exit 1 (got $rc)" test $rc -eq 1
check "no lifecycle rule: bucket ok, FAIL lifecycle: has no lifecycle configuration" \
    bash -c "grep -qE '^ok +bucket +$bare' '$TMP/nolc.out' && grep -qE '^FAIL +lifecycle +bucket $bare has no lifecycle configuration' '$TMP/nolc.out'"
mc ilm rule add --expire-days 30 --tags "retention=7d" "$MC_ALIAS/$bare" >/dev/null || notok "mc ilm rule add"
run_check wronglc -X "s3.bucket=$bare"
check "rule expiring after 30 days: exit 1, says so" \
    bash -c "[ $rc -eq 1 ] && grep -qE '^FAIL +lifecycle .*expires after 30 days, the tag says 7' '$TMP/wronglc.out'"
mc ilm rule import "$MC_ALIAS/$bare" <"$ROOT/deploy/minio/lifecycle.json" >/dev/null || notok "mc ilm rule import"
run_check fixedlc -X "s3.bucket=$bare"
check "after importing deploy/minio/lifecycle.json: exit 0 (got $rc)" test $rc -eq 0

# --- retention classes: every class needs its rule --------------------------------
# rules FILE [EXTRA_RULE_JSON...]: deploy/minio/lifecycle.json plus rules,
# imported with mc (the import replaces the bucket's whole configuration).
rules_plus() {
    python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
doc["Rules"] += [json.loads(r) for r in sys.argv[2:]]
print(json.dumps(doc))' "$ROOT/deploy/minio/lifecycle.json" "$@" | mc ilm rule import "$MC_ALIAS/$bare" >/dev/null ||
        notok "mc ilm rule import"
}
run_check classes -X "s3.bucket=$bare" -X retention.classes=7,30
check "retention.classes=7,30 with only the 7d rule: exit 1 (got $rc)" test $rc -eq 1
check "FAIL lifecycle names the missing class: tag retention=30d after 30 days" \
    has classes "^FAIL +lifecycle +retention=30d: no enabled rule expires objects tagged retention=30d after 30 days"
check "... and the 7d line is still ok" has classes "^ok +lifecycle +retention=7d: "
rules_plus '{"ID": "r30", "Status": "Enabled", "Filter": {"Tag": {"Key": "retention", "Value": "30d"}},
             "Expiration": {"Days": 30}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}'
run_check classes30 -X "s3.bucket=$bare" -X retention.classes=7,30
check "after adding a 30d rule with mc: exit 0 (got $rc)" test $rc -eq 0
check "... its line names the rule" has classes30 '^ok +lifecycle +retention=30d: rule "r30"'

# --- noncurrent versions and delete markers -----------------------------------------
python3 -c '
import json, sys
print(json.dumps({"Rules": [{"ID": "current-only", "Status": "Enabled",
    "Filter": {"Tag": {"Key": "retention", "Value": "7d"}}, "Expiration": {"Days": 7}}]}))' |
    mc ilm rule import "$MC_ALIAS/$bare" >/dev/null || notok "mc ilm rule import current-only"
run_check noncurrent -X "s3.bucket=$bare"
check "a 7d rule for current versions only: exit 1 (got $rc)" test $rc -eq 1
check "FAIL lifecycle: noncurrent versions of retention=7d are not covered" \
    has noncurrent '^FAIL +lifecycle +retention=7d: no enabled rule expires noncurrent versions of objects tagged retention=7d within 7 days \(rule "current-only": no NoncurrentVersionExpiration\)'
check "FAIL lifecycle: expired delete markers are not removed" \
    has noncurrent "^FAIL +lifecycle +delete markers: no enabled rule without a tag filter removes expired object delete markers"
mc rb --force "$MC_ALIAS/$bare" >/dev/null 2>&1

# --- an unreachable broker ------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_check nobroker -X "kafka.bootstrap.servers=127.0.0.1:$port"
check "unreachable broker: exit 1 (got $rc)" test $rc -eq 1
check "unreachable broker: FAIL kafka names the address and the reason" \
    has nobroker "^FAIL +kafka +.*127\.0\.0\.1:$port.*Connection refused"
check "unreachable broker: the store checks still run and pass" \
    bash -c "grep -qE '^ok +bucket ' '$TMP/nobroker.out' && grep -qE '^ok +lifecycle ' '$TMP/nobroker.out'"

# --- a topic that does not exist is reported, not created ----------------------
missing=$(unique_name missing)
run_check notopic -X "input.topics=$topic,$missing"
check "missing input topic: exit 1, FAIL topic names it, the other topic ok" \
    bash -c "[ $rc -eq 1 ] && grep -qE '^FAIL +topic +$missing does not exist' '$TMP/notopic.out' && grep -qE '^ok +topic +$topic:' '$TMP/notopic.out'"
check "the check did not create the missing topic (kcat -L)" \
    bash -c "! kcat -L -b '$KAFKA_BOOTSTRAP' 2>/dev/null | grep -qF 'topic \"$missing\"'"
run_check nodlq -X "dlq.topic=$missing.dlq"
check "missing DLQ topic: exit 1, FAIL dlq" \
    bash -c "[ $rc -eq 1 ] && grep -qE '^FAIL +dlq +$missing.dlq does not exist' '$TMP/nodlq.out'"

# --- bad configuration ----------------------------------------------------------
run_check badvalue -X s3.timeout.ms=soon
check "bad value: exit 2, names key, value and what was expected" \
    bash -c "[ $rc -eq 2 ] && grep -qF 's3.timeout.ms=soon: expected an integer' '$TMP/badvalue.out'"
run_check nobucketkey -X s3.bucket=
check "required key unset: exit 2, FAIL config names it, the Kafka checks still run" \
    bash -c "[ $rc -eq 2 ] && grep -qE '^FAIL +config +s3.bucket: required' '$TMP/nobucketkey.out' && grep -qE '^ok +kafka ' '$TMP/nobucketkey.out'"

# --- never a secret ---------------------------------------------------------------
check "no output of the $n runs contains the secret key" \
    bash -c "! cat '$TMP'/*.out | grep -qF '$S3_SECRET_KEY'"
"$IMGSINK" check --help >"$TMP/help.txt"
check "check --help exits 0 and explains the exit status" grep -q "Exit status" "$TMP/help.txt"
exit 0
