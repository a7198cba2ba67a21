#!/usr/bin/env bash
# Kafka over TLS: the worker, produce, status, replay and check over SASL_SSL
# with SCRAM-SHA-512 and over mutual TLS, against the secured broker of
# test/stack/kafka-secure.sh (StandardAuthorizer: each principal has exactly
# the ACLs of deploy/kafka/acls.sh). Everything is verified through the
# broker's PLAINTEXT admin listener with Kafka's own tools, kcat and mc.
# Then the refusals: a wrong password, an unknown CA and a certificate for
# another host name, and on the mutual-TLS listener no client certificate
# or one from another CA, each in `imgsink check`, in the worker's log and in
# /readyz. Last, no secret (SASL passwords, the client key's passphrase)
# appears in anything imgsink printed or served.
. "$(dirname "$0")/lib.sh"

bash "$ROOT/test/stack/kafka-secure.sh" start 2>&1 | sed 's/^/# /'
# shellcheck disable=SC1091
. "$STACK_DIR/kafka-secure/env" || { notok "kafka-secure env"; exit 1; }
ADMIN=$SECURE_ADMIN_BOOTSTRAP
SECRETS=("$SECURE_WORKER_PASSWORD" "$SECURE_ADMIN_PASSWORD" "$SECURE_KEY_PASSPHRASE")
ACLS() { KAFKA_ACLS="$KAFKA_CLASS kafka.admin.AclCommand" bash "$ROOT/deploy/kafka/acls.sh" --apply "$@"; }
export IMGSINK_S3_ACCESS_KEY=$S3_WORKER_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_WORKER_SECRET_KEY

# Offsets, the DLQ and topics are read through the admin listener.
sgroup_offsets() {
    "$KAFKA_CLASS" consumer-groups --bootstrap-server "$ADMIN" --describe --group "$1" 2>/dev/null |
        awk -v t="$2" '$2 == t { print $3, $4, $5 }' | sort -n
}
s_committed_all() { # GROUP TOPIC PARTITIONS TOTAL: every partition committed at its end, ends sum to TOTAL
    local out
    out=$(sgroup_offsets "$1" "$2")
    [ "$(echo "$out" | grep -c .)" -eq "$3" ] || return 1
    # "-": never committed, fine for a partition that never had a record.
    echo "$out" | awk -v n="$4" '($2 == "-" ? 0 : $2) != $3 { bad = 1 } { s += $3 } END { exit bad || s != n }'
}
s_dlq_count() { kcat -C -b "$ADMIN" -t "$1" -e -q -f '%k\n' 2>/dev/null | grep -c .; }
leaks() { # FILE...: fails if any secret occurs in any file
    local f s found=0
    for f in "$@"; do
        for s in "${SECRETS[@]}"; do
            if grep -qF -- "$s" "$f"; then
                echo "# LEAK: a secret in $(basename "$f")"
                found=1
            fi
        done
    done
    [ $found -eq 0 ]
}
readyz() { curl -s --max-time 5 "http://$1/readyz"; }

mkdir -p "$TMP/imgs"
for i in 1 2 3; do
    vips gaussnoise "$TMP/imgs/s$i.png" 48 32 --mean 128 --sigma 50 || notok "vips gaussnoise s$i"
done
python3 "$ROOT/test/e2e/make_records.py" "$TMP/recs" >/dev/null

# secure_conf FILE TOPIC DLQ GROUP PREFIX BOOTSTRAP [extra lines...]
secure_conf() {
    local f=$1 topic=$2 dlq=$3 group=$4 prefix=$5 bs=$6
    shift 6
    write_conf "$f" "$topic" "$dlq" "$group" "$prefix" "$@"
    sed -i "s|^kafka.bootstrap.servers=.*|kafka.bootstrap.servers=$bs|" "$f"
}

# ==== SASL_SSL, SCRAM-SHA-512 =================================================
topic=$(unique_name tls-sasl)
dlq=$topic.dlq
group=$(unique_name g-tls-sasl)
prefix=$(out_prefix t70s)
KAFKA_BOOTSTRAP=$ADMIN bash "$ROOT/test/stack/topic.sh" "$topic" 2 >/dev/null || notok "create $topic"
KAFKA_BOOTSTRAP=$ADMIN bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null || notok "create $dlq"
ACLS worker User:imgsink --group "$group" --topic "$topic" --dlq "$dlq" -- --bootstrap-server "$ADMIN" | sed 's/^/# /'
# The operator commands run as the admin user (super user), also over SASL_SSL.
secure_conf "$TMP/sasl.conf" "$topic" "$dlq" "$group" "$prefix" "$SECURE_SASL_BOOTSTRAP" \
    "kafka.security.protocol=SASL_SSL" "kafka.sasl.mechanisms=SCRAM-SHA-512" \
    "kafka.sasl.username=imgsink" "kafka.sasl.password=$SECURE_WORKER_PASSWORD" \
    "kafka.ssl.ca.location=$SECURE_CA" "log.level=debug" "kafka.debug=security,broker,conf"
grep -v '^kafka.debug\|^log.level' "$TMP/sasl.conf" >"$TMP/sasl-quiet.conf"
ADMIN_X=(-X kafka.sasl.username=admin -X "kafka.sasl.password=$SECURE_ADMIN_PASSWORD")

as_operator "$IMGSINK" check -c "$TMP/sasl-quiet.conf" >"$TMP/sasl-check.out" 2>&1
rc=$?
check "SASL_SSL: imgsink check passes (exit $rc) as User:imgsink with only the worker's ACLs" \
    bash -c '[ "$1" -eq 0 ] && grep -qE "^ok +topic +$2: 2 partitions" "$4" && grep -qE "^ok +dlq +$3: 1 partition" "$4"' \
    _ $rc "$topic" "$dlq" "$TMP/sasl-check.out"

"$IMGSINK" produce -c "$TMP/sasl-quiet.conf" "${ADMIN_X[@]}" --topic "$topic" --tenant acme \
    --uploaded-at 1767225600000 "$TMP/imgs" >"$TMP/sasl-produce.out" 2>&1
check "SASL_SSL: imgsink produce delivers 3 records" grep -q 'produced 3 records.* 3 delivered, 0 failed' "$TMP/sasl-produce.out"
kcat -P -b "$ADMIN" -t "$topic" -k junk "$TMP/recs/01-junk.bin" || notok "kcat produce poison"

start_worker sasl "$TMP/sasl.conf" >/dev/null
addr=$(http_address sasl 60) || notok "SASL_SSL worker logged its HTTP address"
check "SASL_SSL: the worker commits all 4 records (kafka-consumer-groups on the admin listener)" \
    wait_for 240 s_committed_all "$group" "$topic" 2 4
check "SASL_SSL: 3 metadata.json objects in MinIO (mc)" test "$(count_objects "$prefix" metadata.json)" -eq 3
check "SASL_SSL: the poison record is in the DLQ (kcat)" wait_for 60 bash -c "[ \$(kcat -C -b '$ADMIN' -t '$dlq' -e -q -f '%k\n' | grep -c '^junk$') -eq 1 ]"
check "SASL_SSL: /readyz says ready" bash -c "readyz() { curl -s --max-time 5 http://$addr/readyz; }; readyz | grep -q '^ready'"
note "readyz: $(readyz "$addr")"
curl -fsS --max-time 5 "http://$addr/metrics" >"$TMP/sasl-metrics.out" || notok "scrape /metrics"
"$IMGSINK" status -c "$TMP/sasl-quiet.conf" --topic "$topic" >"$TMP/sasl-status.out" 2>&1
rc=$?
check "SASL_SSL: imgsink status as User:imgsink shows both partitions at lag 0 (exit $rc)" \
    bash -c '[ "$1" -eq 0 ] && [ "$(grep -cE "^ *$2 +[01] +[0-9]+ +[0-9]+ +0( |\$)" "$3")" -eq 2 ]' \
    _ $rc "$topic" "$TMP/sasl-status.out"
sed 's/^/# status: /' "$TMP/sasl-status.out" | head -6
kill -TERM "${WORKER_PIDS[0]}" && wait "${WORKER_PIDS[0]}"
WORKER_PIDS=()
"$IMGSINK" replay -c "$TMP/sasl-quiet.conf" --group "$group" --topic "$topic" --to-earliest \
    >"$TMP/sasl-replay.out" 2>&1
rc=$?
after=$(sgroup_offsets "$group" "$topic" | awk '{ s += $2 } END { print s }')
check "SASL_SSL: imgsink replay --to-earliest as User:imgsink (exit $rc); kafka-consumer-groups shows ${after:-?} committed, want 0" \
    test "$rc:$after" = 0:0
sed 's/^/# replay: /' "$TMP/sasl-replay.out" | head -5
check "SASL_SSL: librdkafka's config dump in the debug log hides the password" \
    grep -q 'sasl.password = \[redacted\]' "$TMP/sasl.log"

# ==== mutual TLS ==============================================================
mtopic=$(unique_name tls-mtls)
mdlq=$mtopic.dlq
mgroup=$(unique_name g-tls-mtls)
mprefix=$(out_prefix t70m)
KAFKA_BOOTSTRAP=$ADMIN bash "$ROOT/test/stack/topic.sh" "$mtopic" 2 >/dev/null || notok "create $mtopic"
KAFKA_BOOTSTRAP=$ADMIN bash "$ROOT/test/stack/topic.sh" "$mdlq" 1 >/dev/null || notok "create $mdlq"
ACLS worker "$SECURE_MTLS_PRINCIPAL" --group "$mgroup" --topic "$mtopic" --dlq "$mdlq" -- --bootstrap-server "$ADMIN" | sed 's/^/# /'
ACLS producer "$SECURE_MTLS_PRINCIPAL" --topic "$mtopic" -- --bootstrap-server "$ADMIN" | sed 's/^/# /'
secure_conf "$TMP/mtls.conf" "$mtopic" "$mdlq" "$mgroup" "$mprefix" "$SECURE_MTLS_BOOTSTRAP" \
    "kafka.security.protocol=SSL" "kafka.ssl.ca.location=$SECURE_CA" \
    "kafka.ssl.certificate.location=$SECURE_CLIENT_CERT" "kafka.ssl.key.location=$SECURE_CLIENT_KEY" \
    "kafka.ssl.key.password=$SECURE_KEY_PASSPHRASE" "log.level=debug" "kafka.debug=security,broker,conf"
grep -v '^kafka.debug\|^log.level' "$TMP/mtls.conf" >"$TMP/mtls-quiet.conf"
as_operator "$IMGSINK" check -c "$TMP/mtls-quiet.conf" >"$TMP/mtls-check.out" 2>&1
rc=$?
check "mTLS: imgsink check passes (exit $rc)" test $rc -eq 0
"$IMGSINK" produce -c "$TMP/mtls-quiet.conf" --topic "$mtopic" --tenant acme \
    --uploaded-at 1767225600000 "$TMP/imgs" >"$TMP/mtls-produce.out" 2>&1
check "mTLS: imgsink produce as $SECURE_MTLS_PRINCIPAL delivers 3 records" \
    grep -q 'produced 3 records.* 3 delivered, 0 failed' "$TMP/mtls-produce.out"
kcat -P -b "$ADMIN" -t "$mtopic" -k junk "$TMP/recs/01-junk.bin" || notok "kcat produce poison"
start_worker mtls "$TMP/mtls.conf" >/dev/null
maddr=$(http_address mtls 60) || notok "mTLS worker logged its HTTP address"
check "mTLS: the worker commits all 4 records" wait_for 240 s_committed_all "$mgroup" "$mtopic" 2 4
check "mTLS: 3 metadata.json objects in MinIO (mc)" test "$(count_objects "$mprefix" metadata.json)" -eq 3
check "mTLS: the poison record is in the DLQ (kcat)" wait_for 60 bash -c "[ \$(kcat -C -b '$ADMIN' -t '$mdlq' -e -q -f '%k\n' | grep -c '^junk$') -eq 1 ]"
"$IMGSINK" status -c "$TMP/mtls-quiet.conf" --topic "$mtopic" >"$TMP/mtls-status.out" 2>&1
check "mTLS: imgsink status shows the live member" grep -q "$mtopic" "$TMP/mtls-status.out"
curl -fsS --max-time 5 "http://$maddr/metrics" >"$TMP/mtls-metrics.out" || notok "scrape /metrics"
check "mTLS: librdkafka's config dump hides the key passphrase" \
    grep -q 'ssl.key.password = \[redacted\]' "$TMP/mtls.log"
kill -TERM "${WORKER_PIDS[0]}" && wait "${WORKER_PIDS[0]}"
WORKER_PIDS=()
"$IMGSINK" replay -c "$TMP/mtls-quiet.conf" --group "$mgroup" --topic "$mtopic" --to-earliest \
    >"$TMP/mtls-replay.out" 2>&1
rc=$?
after=$(sgroup_offsets "$mgroup" "$mtopic" | awk '{ s += $2 } END { print s }')
check "mTLS: imgsink replay --to-earliest as $SECURE_MTLS_PRINCIPAL (exit $rc); kafka-consumer-groups shows ${after:-?} committed, want 0" \
    test "$rc:$after" = 0:0
sed 's/^/# replay: /' "$TMP/mtls-replay.out" | head -5

# ==== refusals ================================================================
# bad_case NAME WHAT-IN-CHECK -X...: check fails with WHAT; a worker logs it
# as an error and /readyz answers 503 with it. The configuration is the
# SASL_SSL one, or $BAD_BASE.
bad_case() {
    local name=$1 want=$2 rc code base=${BAD_BASE:-$TMP/sasl-quiet.conf}
    shift 2
    timeout 120 "$IMGSINK" check -c "$base" "$@" >"$TMP/$name-check.out" 2>&1
    rc=$?
    check "$name: imgsink check fails (exit $rc) saying '$want'" \
        bash -c '[ "$1" -eq 1 ] && grep -E "^FAIL +kafka " "$2" | grep -qF -- "$3"' _ $rc "$TMP/$name-check.out" "$want"
    grep -E '^FAIL' "$TMP/$name-check.out" | cut -c1-400 | sed 's/^/# /'
    IMGSINK_S3_ACCESS_KEY=$S3_WORKER_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_WORKER_SECRET_KEY \
        "$IMGSINK" run -c "$base" "$@" >>"$TMP/$name.log" 2>&1 &
    WORKER_PIDS+=($!)
    local a
    a=$(http_address "$name" 60) || notok "$name: worker logged its HTTP address"
    logged() { grep '"level":"error","component":"kafka"' "$TMP/$name.log" | grep -qF -- "$want"; }
    check "$name: the worker logs an error saying '$want'" wait_for 120 logged
    unready() {
        code=$(curl -s -o "$TMP/$name-readyz.out" -w '%{http_code}' --max-time 5 "http://$a/readyz")
        [ "$code" = 503 ] && grep -qF -- "$want" "$TMP/$name-readyz.out"
    }
    check "$name: /readyz answers 503 saying '$want'" wait_for 120 unready
    note "$name /readyz: $(cut -c1-300 "$TMP/$name-readyz.out")"
    kill -TERM "${WORKER_PIDS[0]}" && wait "${WORKER_PIDS[0]}"
    WORKER_PIDS=()
}
bad_case wrongpw "SASL authentication error: Authentication failed during authentication due to invalid credentials" \
    -X "kafka.sasl.password=not-$SECURE_WORKER_PASSWORD"
bad_case unknownca "certificate verify failed: $SECURE_SASL_BOOTSTRAP: the broker's certificate is not signed by a CA in kafka.ssl.ca.location" \
    -X "kafka.ssl.ca.location=$SECURE_OTHER_CA"
bad_case badname "certificate verify failed: $SECURE_BADNAME_BOOTSTRAP: the broker's certificate does not name the host connected to" \
    -X "kafka.bootstrap.servers=$SECURE_BADNAME_BOOTSTRAP"
# The mTLS listener: no client certificate, and one from another CA (same
# CN). The broker's TLS alert is the same for both; the configuration tells
# them apart.
grep -v '^kafka.ssl.certificate.location\|^kafka.ssl.key' "$TMP/mtls-quiet.conf" >"$TMP/nocert.conf"
grep -v '^kafka.ssl.key.password' "$TMP/mtls-quiet.conf" >"$TMP/othercert.conf"
BAD_BASE=$TMP/nocert.conf bad_case nocert "client certificate required: the broker asks for one and none is configured"
BAD_BASE=$TMP/othercert.conf bad_case othercert \
    "client certificate refused: the broker does not accept the certificate of kafka.ssl.certificate.location" \
    -X "kafka.ssl.certificate.location=$SECURE_OTHER_CLIENT_CERT" -X "kafka.ssl.key.location=$SECURE_OTHER_CLIENT_KEY"

# ==== secrets ===================================================================
"$IMGSINK" config -c "$TMP/mtls.conf" >"$TMP/config-mtls.out" 2>&1
"$IMGSINK" config -c "$TMP/sasl.conf" >"$TMP/config-sasl.out" 2>&1
check "imgsink config shows the SASL password and the key passphrase as [hidden]" \
    bash -c 'grep -qx "kafka.sasl.password=\[hidden\]" "$0" && grep -qx "kafka.ssl.key.password=\[hidden\]" "$1"' \
    "$TMP/config-sasl.out" "$TMP/config-mtls.out"
note "searched $(cat "$TMP"/*.log "$TMP"/*.out | wc -l) lines of logs (debug, librdkafka security/broker/conf), outputs, /readyz and /metrics"
check "no SASL password or key passphrase in any log, output, /readyz or /metrics" leaks "$TMP"/*.log "$TMP"/*.out
exit 0
