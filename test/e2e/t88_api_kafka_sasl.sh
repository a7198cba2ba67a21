#!/usr/bin/env bash
# The API's producer over SASL_SSL with SCRAM-SHA-512, through the kafka.*
# passthrough, against the secured broker of test/stack/kafka-secure.sh
# (StandardAuthorizer: User:imgsink has only the producer ACLs of
# deploy/kafka/acls.sh on the topic):
#   - POST /v1/images is answered 202 and the record is on the topic: kcat
#     reads it over SASL_SSL (as the admin user) with the id as its key;
#   - a wrong password: /readyz answers 503 with "SASL authentication error
#     ... invalid credentials", the log has the same error, a POST is refused
#     with 503 and nothing reaches the topic;
#   - neither password is in the log, /readyz or /metrics.
. "$(dirname "$0")/lib.sh"

bash "$ROOT/test/stack/kafka-secure.sh" start 2>&1 | sed 's/^/# /'
# shellcheck disable=SC1091
. "$STACK_DIR/kafka-secure/env" || { notok "kafka-secure env"; exit 1; }
ADMIN=$SECURE_ADMIN_BOOTSTRAP
SECRETS=("$SECURE_WORKER_PASSWORD" "$SECURE_ADMIN_PASSWORD")
ACLS() { KAFKA_ACLS="$KAFKA_CLASS kafka.admin.AclCommand" bash "$ROOT/deploy/kafka/acls.sh" --apply "$@"; }

topic=$(unique_name api-sasl)
prefix=$(unique_name t88)
KAFKA_BOOTSTRAP=$ADMIN bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null || notok "create $topic"
ACLS producer User:imgsink --topic "$topic" -- --bootstrap-server "$ADMIN" | sed 's/^/# /'

KEY="acme-$RANDOM$RANDOM-apikey"
echo "acme $(printf %s "$KEY" | sha256sum | cut -d' ' -f1)" >"$TMP/keys"
write_conf "$TMP/a.conf" "$topic" "$topic.dlq" "$(unique_name g-api-sasl)" "$prefix" \
    "api.keys.file=$TMP/keys" "api.listen=127.0.0.1:0" "api.raw.prefix=raw-$prefix/" \
    "kafka.security.protocol=SASL_SSL" "kafka.sasl.mechanisms=SCRAM-SHA-512" \
    "kafka.sasl.username=imgsink" "kafka.sasl.password=$SECURE_WORKER_PASSWORD" \
    "kafka.ssl.ca.location=$SECURE_CA" "kafka.message.timeout.ms=10000"
sed -i "s|^kafka.bootstrap.servers=.*|kafka.bootstrap.servers=$SECURE_SASL_BOOTSTRAP|" "$TMP/a.conf"

kcat_sasl() { # records of the topic as "key" lines, read over SASL_SSL as admin
    kcat -C -b "$SECURE_SASL_BOOTSTRAP" -X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-512 \
        -X sasl.username=admin -X "sasl.password=$SECURE_ADMIN_PASSWORD" -X "ssl.ca.location=$SECURE_CA" \
        -t "$topic" -e -q -f '%k\n' 2>"$TMP/kcat.err"
}
vips gaussnoise "$TMP/i.png" 48 32 --mean 128 --sigma 50 || notok "vips gaussnoise"

# --- the right password -----------------------------------------------------------
api_ready_post good "$TMP/a.conf" "$KEY" "$TMP/i.png" "the producer on SASL_SSL"
A=$API_ADDR st=$POST_STATUS id=$POST_ID
check "POST /v1/images over SASL_SSL: 202 (got $st)" test "$st" = 202
has_record() { [ -n "$id" ] && [ "$(kcat_sasl | grep -cx -- "$id")" -eq 1 ]; }
check "kcat over SASL_SSL reads the record with the id as its key ($id)" wait_for 60 has_record
curl -fsS --max-time 5 "http://$A/metrics" >"$TMP/good-metrics.out" || notok "scrape /metrics"
check "/metrics counts the record as acknowledged" grep -qx 'imgsink_api_records_total 1' "$TMP/good-metrics.out"
stop_api

# --- a wrong password ---------------------------------------------------------------
want="SASL authentication error: Authentication failed during authentication due to invalid credentials"
start_api wrongpw "$TMP/a.conf" "kafka.sasl.password=not-$SECURE_WORKER_PASSWORD"
B=$(api_address wrongpw) || notok "the API logged its address"
logged() { grep '"level":"error","component":"kafka"' "$TMP/wrongpw.log" | grep -qF -- "$want"; }
check "wrong password: the log has an error saying '$want'" wait_for 120 logged
unready() {
    [ "$(curl -s -o "$TMP/wrongpw-readyz.out" -w '%{http_code}' --max-time 5 "http://$B/readyz")" = 503 ] &&
        grep -qF -- "$want" "$TMP/wrongpw-readyz.out"
}
check "wrong password: /readyz answers 503 saying so" wait_for 120 unready
note "/readyz: $(cut -c1-300 "$TMP/wrongpw-readyz.out")"
n_before=$(kcat_sasl | grep -c .)
st=$(api_post_image "$B" "$KEY" "$TMP/i.png" "$TMP/post-bad.json")
check "wrong password: POST /v1/images is refused with 503 (got $st)" test "$st" = 503
check "wrong password: nothing more reached the topic (kcat: $n_before records)" \
    test "$(kcat_sasl | grep -c .)" -eq "$n_before"
curl -fsS --max-time 5 "http://$B/metrics" >"$TMP/wrongpw-metrics.out" || notok "scrape /metrics"
stop_api

leaks() {
    local f s found=0
    for f in "$@"; do
        for s in "${SECRETS[@]}"; do
            grep -qF -- "$s" "$f" && { echo "# LEAK: a password in $(basename "$f")"; found=1; }
        done
    done
    [ $found -eq 0 ]
}
check "no SASL password in the logs, /readyz or /metrics" leaks "$TMP"/*.log "$TMP"/*.out
[ "$N_FAIL" -eq 0 ]
