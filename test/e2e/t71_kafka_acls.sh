#!/usr/bin/env bash
# Kafka ACLs: the worker runs end to end (objects in MinIO, offsets
# committed, a poison record in the DLQ) as a SCRAM user that has exactly
# the ACLs deploy/kafka/acls.sh gives the worker role and nothing else, on
# the secured broker of test/stack/kafka-secure.sh (StandardAuthorizer,
# allow.everyone.if.no.acl.found=false). Then each missing ACL:
#   - no Write on the DLQ: the poison record is retried, never skipped, the
#     offset stays before it, the log names the missing ACL; once the ACL is
#     added the record reaches the DLQ and the offsets move on;
#   - no Read on the group: the log and /readyz name the missing ACL;
#   - no Read on an input topic: imgsink check says an ACL may hide it.
. "$(dirname "$0")/lib.sh"

bash "$ROOT/test/stack/kafka-secure.sh" start 2>&1 | sed 's/^/# /'
# shellcheck disable=SC1091
. "$STACK_DIR/kafka-secure/env" || { notok "kafka-secure env"; exit 1; }
ADMIN=$SECURE_ADMIN_BOOTSTRAP
ACLCMD=("$KAFKA_CLASS" kafka.admin.AclCommand --bootstrap-server "$ADMIN")
ACLS() { KAFKA_ACLS="$KAFKA_CLASS kafka.admin.AclCommand" bash "$ROOT/deploy/kafka/acls.sh" --apply "$@"; }
export IMGSINK_S3_ACCESS_KEY=$S3_WORKER_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_WORKER_SECRET_KEY

# A SCRAM user of this run only, so its ACLs are exactly the ones added here.
user=t71-$$-$RANDOM
PW=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
"$KAFKA_CLASS" kafka.admin.ConfigCommand --bootstrap-server "$ADMIN" --alter --entity-type users \
    --entity-name "$user" --add-config "SCRAM-SHA-512=[password=$PW]" >/dev/null 2>&1 ||
    notok "create SCRAM user $user"
principal=User:$user

sgroup_offsets() {
    "$KAFKA_CLASS" consumer-groups --bootstrap-server "$ADMIN" --describe --group "$1" 2>/dev/null |
        awk -v t="$2" '$2 == t { print $3, $4, $5 }' | sort -n
}
s_committed_all() { # GROUP TOPIC PARTITIONS TOTAL
    local out
    out=$(sgroup_offsets "$1" "$2")
    [ "$(echo "$out" | grep -c .)" -eq "$3" ] || return 1
    # "-": never committed, fine for a partition that never had a record.
    echo "$out" | awk -v n="$4" '($2 == "-" ? 0 : $2) != $3 { bad = 1 } { s += $3 } END { exit bad || s != n }'
}
dlq_keys() { kcat -C -b "$ADMIN" -t "$1" -e -q -f '%k\n' 2>/dev/null; }
# conf FILE TOPIC DLQ GROUP PREFIX: the worker as $user over SASL_SSL.
conf() {
    write_conf "$@" "kafka.security.protocol=SASL_SSL" "kafka.sasl.mechanisms=SCRAM-SHA-512" \
        "kafka.sasl.username=$user" "kafka.sasl.password=$PW" "kafka.ssl.ca.location=$SECURE_CA"
    sed -i "s|^kafka.bootstrap.servers=.*|kafka.bootstrap.servers=$SECURE_SASL_BOOTSTRAP|" "$1"
}

mkdir -p "$TMP/imgs"
for i in 1 2 3; do
    vips gaussnoise "$TMP/imgs/a$i.png" 48 32 --mean 128 --sigma 50 || notok "vips gaussnoise a$i"
done
python3 "$ROOT/test/e2e/make_records.py" "$TMP/recs" >/dev/null

# ==== exactly the worker's ACLs ==============================================
topic=$(unique_name acl)
dlq=$topic.dlq
group=$(unique_name g-acl)
prefix=$(out_prefix t71)
KAFKA_BOOTSTRAP=$ADMIN bash "$ROOT/test/stack/topic.sh" "$topic" 2 >/dev/null || notok "create $topic"
KAFKA_BOOTSTRAP=$ADMIN bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null || notok "create $dlq"
ACLS worker "$principal" --group "$group" --topic "$topic" --dlq "$dlq" -- --bootstrap-server "$ADMIN" | sed 's/^/# /'
"${ACLCMD[@]}" --list --principal "$principal" >"$TMP/acls.out" 2>/dev/null
grep -o '(principal=[^)]*)' "$TMP/acls.out" | sed "s/^/# $principal: /" | sort
n=$(grep -c "principal=$principal," "$TMP/acls.out")
check "kafka-acls --list: $principal has exactly 3 ACLs (got $n): Read group, Read topic, Write DLQ" \
    bash -c '[ "$1" -eq 3 ] && grep -A3 "name=$2," "$5" | grep -q "operation=READ" &&
             grep -A3 "name=$3," "$5" | grep -q "operation=READ" &&
             grep -A3 "name=$4," "$5" | grep -q "operation=WRITE"' _ "$n" "$group" "$topic" "$dlq" "$TMP/acls.out"

"$IMGSINK" produce -b "$ADMIN" --topic "$topic" --tenant acme --uploaded-at 1767225600000 \
    "$TMP/imgs" >"$TMP/produce.out" 2>&1
check "3 records produced (admin listener)" grep -q 'produced 3 records.* 3 delivered, 0 failed' "$TMP/produce.out"
kcat -P -b "$ADMIN" -t "$topic" -k junk "$TMP/recs/01-junk.bin" || notok "kcat produce poison"
conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix"
as_operator "$IMGSINK" check -c "$TMP/w.conf" >"$TMP/check.out" 2>&1
rc=$?
check "imgsink check passes with only the worker's ACLs (exit $rc)" test $rc -eq 0
start_worker w "$TMP/w.conf" >/dev/null
addr=$(http_address w 60) || notok "worker logged its HTTP address"
check "the worker commits all 4 records (kafka-consumer-groups)" wait_for 240 s_committed_all "$group" "$topic" 2 4
check "3 metadata.json objects in MinIO (mc)" test "$(count_objects "$prefix" metadata.json)" -eq 3
check "the poison record is in the DLQ (kcat)" wait_for 60 bash -c "[ \"\$(kcat -C -b '$ADMIN' -t '$dlq' -e -q -f '%k\n' | grep -c '^junk$')\" -eq 1 ]"
check "/readyz: ready" bash -c "curl -s --max-time 5 http://$addr/readyz | grep -q '^ready'"
check "no authorization error in the worker's log" bash -c "! grep -q 'AUTHORIZATION' '$TMP/w.log'"
kill -TERM "${WORKER_PIDS[0]}" && wait "${WORKER_PIDS[0]}"
WORKER_PIDS=()

# ==== no Write on the DLQ ======================================================
topic2=$(unique_name acl-nodlq)
dlq2=$topic2.dlq
group2=$(unique_name g-acl-nodlq)
KAFKA_BOOTSTRAP=$ADMIN bash "$ROOT/test/stack/topic.sh" "$topic2" 1 >/dev/null || notok "create $topic2"
KAFKA_BOOTSTRAP=$ADMIN bash "$ROOT/test/stack/topic.sh" "$dlq2" 1 >/dev/null || notok "create $dlq2"
ACLS worker "$principal" --group "$group2" --topic "$topic2" --dlq "$dlq2" -- --bootstrap-server "$ADMIN" >/dev/null
"${ACLCMD[@]}" --remove --force --allow-principal "$principal" --operation Write --topic "$dlq2" >/dev/null 2>&1 ||
    notok "remove Write on $dlq2"
kcat -P -b "$ADMIN" -t "$topic2" -k junk "$TMP/recs/01-junk.bin" || notok "kcat produce poison"
"$IMGSINK" produce -b "$ADMIN" --topic "$topic2" --tenant acme --uploaded-at 1767225600000 \
    "$TMP/imgs/a1.png" >>"$TMP/produce.out" 2>&1 || notok "produce a1"
conf "$TMP/nodlq.conf" "$topic2" "$dlq2" "$group2" "$prefix-nodlq"
start_worker nodlq "$TMP/nodlq.conf" >/dev/null
want="Topic authorization failed (a Kafka ACL is missing: the worker's principal needs Write on the DLQ topic"
dlq_refused() { grep '"level":"\(warn\|error\)"' "$TMP/nodlq.log" | grep -qF "$want"; }
check "no Write on the DLQ: the log says '$want'" wait_for 180 dlq_refused
grep -m1 -F "$want" "$TMP/nodlq.log" | cut -c1-400 | sed 's/^/# /'
sleep 5
committed=$(sgroup_offsets "$group2" "$topic2" | awk '{ print $2 }')
check "no Write on the DLQ: the poison record is not skipped (committed '${committed:--}', not past offset 0)" \
    bash -c '[ -z "$1" ] || [ "$1" = - ] || [ "$1" = 0 ]' _ "$committed"
check "no Write on the DLQ: nothing in the DLQ" test "$(dlq_keys "$dlq2" | grep -c .)" -eq 0
ACLS worker "$principal" --group "$group2" --topic "$topic2" --dlq "$dlq2" -- --bootstrap-server "$ADMIN" >/dev/null
check "Write on the DLQ added: the poison record reaches the DLQ and both records are committed" \
    wait_for 240 bash -c "[ \"\$(kcat -C -b '$ADMIN' -t '$dlq2' -e -q -f '%k\n' | grep -c '^junk$')\" -eq 1 ]"
check "... committed offset 2" wait_for 120 s_committed_all "$group2" "$topic2" 1 2
kill -TERM "${WORKER_PIDS[0]}" && wait "${WORKER_PIDS[0]}"
WORKER_PIDS=()

# ==== no Read on the group =====================================================
group3=$(unique_name g-acl-nogroup)
ACLS worker "$principal" --group "$group3" --topic "$topic" --dlq "$dlq" -- --bootstrap-server "$ADMIN" >/dev/null
"${ACLCMD[@]}" --remove --force --allow-principal "$principal" --operation Read --group "$group3" >/dev/null 2>&1 ||
    notok "remove Read on group $group3"
conf "$TMP/nogroup.conf" "$topic" "$dlq" "$group3" "$prefix-nogroup"
start_worker nogroup "$TMP/nogroup.conf" >/dev/null
gaddr=$(http_address nogroup 60) || notok "worker logged its HTTP address"
want="Group authorization failed"
hint="the worker's principal needs Read on its group"
group_refused() { grep '"level":"error","component":"kafka"' "$TMP/nogroup.log" | grep -F "$want" | grep -qF "$hint"; }
check "no Read on the group: the log says '$want ... $hint'" wait_for 180 group_refused
grep -m1 -F "$want" "$TMP/nogroup.log" | cut -c1-400 | sed 's/^/# /'
unready() {
    [ "$(curl -s -o "$TMP/nogroup-readyz.out" -w '%{http_code}' --max-time 5 "http://$gaddr/readyz")" = 503 ] &&
        grep -qF "$hint" "$TMP/nogroup-readyz.out"
}
check "no Read on the group: /readyz answers 503 naming the missing ACL" wait_for 120 unready
note "readyz: $(cut -c1-300 "$TMP/nogroup-readyz.out")"
kill -TERM "${WORKER_PIDS[0]}" && wait "${WORKER_PIDS[0]}"
WORKER_PIDS=()

# ==== no Read on an input topic: imgsink check =================================
topic4=$(unique_name acl-notopic)
KAFKA_BOOTSTRAP=$ADMIN bash "$ROOT/test/stack/topic.sh" "$topic4" 1 >/dev/null || notok "create $topic4"
conf "$TMP/notopic.conf" "$topic4" "$dlq" "$group" "$prefix"
as_operator "$IMGSINK" check -c "$TMP/notopic.conf" >"$TMP/notopic.out" 2>&1
rc=$?
check "no Read on an input topic: imgsink check fails (exit $rc) saying an ACL may hide it" \
    bash -c '[ "$1" -eq 1 ] && grep -qE "^FAIL +topic +$2 does not exist \(input.topics\), or an ACL hides it" "$3"' \
    _ $rc "$topic4" "$TMP/notopic.out"
grep '^FAIL' "$TMP/notopic.out" | sed 's/^/# /'

check "the SCRAM password appears in no log or output" bash -c '! grep -rqF -- "$1" "$2"/*.log "$2"/*.out' _ "$PW" "$TMP"
exit 0
