#!/usr/bin/env bash
# The API's producer over mutual TLS (security.protocol=SSL, a client
# certificate whose PKCS#8 key is encrypted: kafka.ssl.key.password), through
# the kafka.* passthrough, against the MTLS listener of
# test/stack/kafka-secure.sh (ssl.client.auth=required; the principal is the
# certificate's CN, User:imgsink-mtls, with only the producer ACLs of
# deploy/kafka/acls.sh while the API posts):
#   - POST /v1/images is answered 202, and kcat over the same listener with
#     the same certificate reads the record: the id as its key, and an
#     ImageRecord (decoded here, not by imgsink) of tenant acme, source api,
#     whose inline payload is the posted image byte for byte;
#   - no client certificate, and one with the same CN from another CA: the
#     log has an error and /readyz answers 503 saying "client certificate
#     required: ..." and "client certificate refused: ...", a POST is
#     refused with 503 and nothing reaches the topic;
#   - the broker's certificate checked against another CA: the same, saying
#     "certificate verify failed: ...";
#   - a wrong key passphrase: `imgsink api` stops at start-up (exit 2) saying
#     "kafka.ssl.key.password does not decrypt this key";
#   - the passphrase (right or wrong) is in no log line (librdkafka's
#     security, broker and conf debugging on), /readyz or /metrics.
. "$(dirname "$0")/lib.sh"

bash "$ROOT/test/stack/kafka-secure.sh" start 2>&1 | sed 's/^/# /'
# shellcheck disable=SC1091
. "$STACK_DIR/kafka-secure/env" || { notok "kafka-secure env"; exit 1; }
ADMIN=$SECURE_ADMIN_BOOTSTRAP
PASS=$SECURE_KEY_PASSPHRASE
ACLS() { KAFKA_ACLS="$KAFKA_CLASS kafka.admin.AclCommand" bash "$ROOT/deploy/kafka/acls.sh" --apply "$@"; }

topic=$(unique_name api-mtls)
prefix=$(unique_name t90)
KAFKA_BOOTSTRAP=$ADMIN bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null || notok "create $topic"
ACLS producer "$SECURE_MTLS_PRINCIPAL" --topic "$topic" -- --bootstrap-server "$ADMIN" | sed 's/^/# /'

KEY="acme-$RANDOM$RANDOM-apikey"
echo "acme $(printf %s "$KEY" | sha256sum | cut -d' ' -f1)" >"$TMP/keys"
# mtls_conf FILE [key=value...]: the API on the mTLS listener, librdkafka's
# security, broker and configuration debugging in its log.
mtls_conf() {
    local f=$1
    shift
    write_conf "$f" "$topic" "$topic.dlq" "$(unique_name g-api-mtls)" "$prefix" \
        "api.keys.file=$TMP/keys" "api.listen=127.0.0.1:0" "api.raw.prefix=raw-$prefix/" \
        "kafka.security.protocol=SSL" "kafka.ssl.ca.location=$SECURE_CA" \
        "kafka.message.timeout.ms=10000" "log.level=debug" "kafka.debug=security,broker,conf" "$@"
    sed -i "s|^kafka.bootstrap.servers=.*|kafka.bootstrap.servers=$SECURE_MTLS_BOOTSTRAP|" "$f"
}
mtls_conf "$TMP/a.conf" "kafka.ssl.certificate.location=$SECURE_CLIENT_CERT" \
    "kafka.ssl.key.location=$SECURE_CLIENT_KEY" "kafka.ssl.key.password=$PASS"
mtls_conf "$TMP/nocert.conf"
mtls_conf "$TMP/othercert.conf" "kafka.ssl.certificate.location=$SECURE_OTHER_CLIENT_CERT" \
    "kafka.ssl.key.location=$SECURE_OTHER_CLIENT_KEY"

# kcat_mtls ARGS...: kcat -C on the topic over the mTLS listener, as the
# API's principal (its certificate and encrypted key).
kcat_mtls() {
    timeout 30 kcat -C -b "$SECURE_MTLS_BOOTSTRAP" -X security.protocol=SSL -X "ssl.ca.location=$SECURE_CA" \
        -X "ssl.certificate.location=$SECURE_CLIENT_CERT" -X "ssl.key.location=$SECURE_CLIENT_KEY" \
        -X "ssl.key.password=$PASS" -t "$topic" -e -q "$@" 2>>"$TMP/kcat.err"
}
# Records on the topic, counted through the admin listener.
n_records() { kcat -C -b "$ADMIN" -t "$topic" -e -q -f '%k\n' 2>/dev/null | grep -c .; }
# decode VALUE IMAGE: "id tenant source content_type retention payload-is-IMAGE
# nothing-after" of an Avro ImageRecord (schemas/image_record.avsc).
decode() {
    python3 - "$1" "$2" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
img = open(sys.argv[2], "rb").read()
pos = 0
def long_():
    global pos
    n = shift = 0
    while True:
        c = b[pos]
        pos += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return (n >> 1) ^ -(n & 1)
def bytes_():
    global pos
    n = long_()
    if n < 0 or pos + n > len(b):
        raise ValueError("bad length %d at %d" % (n, pos))
    pos += n
    return b[pos - n:pos]
rid, tenant = bytes_().decode(), bytes_().decode()
source = ["stream", "api"][long_()]
long_()  # uploaded_at
ctype = bytes_().decode()
bytes_()  # filename
while True:  # attributes: map blocks
    n = long_()
    if n == 0:
        break
    if n < 0:
        n = -n
        long_()
    for _ in range(2 * n):
        bytes_()
retention = long_()
branch = long_()
payload = bytes_() if branch == 0 else b""
print(rid, tenant, source, ctype, retention, "payload=" + ("image" if payload == img else "other"),
      "end" if pos == len(b) else "trailing")
PY
}
vips gaussnoise "$TMP/i.png" 48 32 --mean 128 --sigma 50 || notok "vips gaussnoise"

# --- a client certificate the broker trusts ---------------------------------------
api_ready_post good "$TMP/a.conf" "$KEY" "$TMP/i.png" "the producer on mutual TLS"
A=$API_ADDR st=$POST_STATUS id=$POST_ID
check "POST /v1/images over mutual TLS as $SECURE_MTLS_PRINCIPAL (Write only): 202 (got $st)" test "$st" = 202
# Now the principal may read too, for kcat (the API never needed it).
ACLS operator "$SECURE_MTLS_PRINCIPAL" --group "$(unique_name g-kcat)" --topic "$topic" \
    -- --bootstrap-server "$ADMIN" | sed 's/^/# /'
has_record() { [ -n "$id" ] && [ "$(kcat_mtls -f '%k\n' | grep -cx -- "$id")" -eq 1 ]; }
check "kcat over mutual TLS reads the record with the id as its key ($id)" wait_for 60 has_record
kcat_mtls -c 1 -f '%s' >"$TMP/value.bin"
got=$(decode "$TMP/value.bin" "$TMP/i.png" 2>&1 | tail -1)
check "the record is the posted image: $got" \
    test "$got" = "$id acme api image/png 7 payload=image end"
curl -fsS --max-time 5 "http://$A/metrics" >"$TMP/good-metrics.out" || notok "scrape /metrics"
check "/metrics counts the record as acknowledged" grep -qx 'imgsink_api_records_total 1' "$TMP/good-metrics.out"
check "librdkafka's config dump in the debug log hides the key passphrase" \
    grep -q 'ssl.key.password = \[redacted\]' "$TMP/good.log"
stop_api

# --- refusals -------------------------------------------------------------------------
# refused NAME CONF WANT [key=value...]: an API on CONF logs an error saying
# WANT, /readyz answers 503 saying it, a POST gets 503, the topic nothing.
refused() {
    local name=$1 conf=$2 want=$3 a st n
    shift 3
    start_api "$name" "$conf" "$@"
    a=$(api_address "$name") || notok "$name: the API logged its address"
    logged() { grep '"level":"error","component":"kafka"' "$TMP/$name.log" | grep -qF -- "$want"; }
    check "$name: the log has an error saying '$want'" wait_for 120 logged
    unready() {
        [ "$(curl -s -o "$TMP/$name-readyz.out" -w '%{http_code}' --max-time 5 "http://$a/readyz")" = 503 ] &&
            grep -qF -- "$want" "$TMP/$name-readyz.out"
    }
    check "$name: /readyz answers 503 saying so" wait_for 120 unready
    note "$name /readyz: $(cut -c1-400 "$TMP/$name-readyz.out")"
    n=$(n_records)
    st=$(api_post_image "$a" "$KEY" "$TMP/i.png" "$TMP/$name-post.out")
    check "$name: POST /v1/images is refused with 503 (got $st: $(cut -c1-200 "$TMP/$name-post.out"))" \
        test "$st" = 503
    check "$name: nothing more reached the topic (kcat on the admin listener: $n records)" \
        test "$(n_records)" -eq "$n"
    curl -fsS --max-time 5 "http://$a/metrics" >"$TMP/$name-metrics.out" || notok "$name: scrape /metrics"
    check "$name: /metrics counts the record as not written" \
        grep -qx 'imgsink_api_records_failed_total 1' "$TMP/$name-metrics.out"
    stop_api
}
refused nocert "$TMP/nocert.conf" \
    "client certificate required: the broker asks for one and none is configured (kafka.ssl.certificate.location, kafka.ssl.key.location)"
refused othercert "$TMP/othercert.conf" \
    "client certificate refused: the broker does not accept the certificate of kafka.ssl.certificate.location"
refused wrongca "$TMP/a.conf" \
    "certificate verify failed: $SECURE_MTLS_BOOTSTRAP: the broker's certificate is not signed by a CA in kafka.ssl.ca.location" \
    "kafka.ssl.ca.location=$SECURE_OTHER_CA"

# A passphrase that does not decrypt the key: the producer cannot be made.
as_api timeout 60 "$IMGSINK" api -c "$TMP/a.conf" -X "kafka.ssl.key.password=not-$PASS" >"$TMP/badpass.log" 2>&1
rc=$?
want="kafka.ssl.key.location=$SECURE_CLIENT_KEY: kafka.ssl.key.password does not decrypt this key"
check "a wrong kafka.ssl.key.password: imgsink api stops at start-up (exit $rc, want 2) saying '$want'" \
    bash -c '[ "$1" -eq 2 ] && grep -qF -- "$3" "$2"' _ $rc "$TMP/badpass.log" "$want"
grep -m1 'configuration error' "$TMP/badpass.log" | cut -c1-400 | sed 's/^/# /'

leaks() { # FILE...: fails if the passphrase is in any
    local f found=0
    for f in "$@"; do
        grep -qF -- "$PASS" "$f" && { echo "# LEAK: the key passphrase in $(basename "$f")"; found=1; }
    done
    [ $found -eq 0 ]
}
note "searched $(cat "$TMP"/*.log "$TMP"/*.out | wc -l) lines of logs (debug: librdkafka security, broker, conf), /readyz and /metrics"
check "no key passphrase in any log, /readyz or /metrics" leaks "$TMP"/*.log "$TMP"/*.out
[ "$N_FAIL" -eq 0 ]
