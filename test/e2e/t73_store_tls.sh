#!/usr/bin/env bash
# HTTPS to the store and server-side encryption, against a second MinIO that
# speaks only TLS and has a KMS key (test/stack/minio_tls.sh).
#
# - The CA of s3.tls.ca.file is trusted; another CA, the system CAs and a
#   valid certificate for another host name are refused with a clear error
#   by `imgsink check` and by the worker's start-up (which exits); with
#   s3.tls.verify=false the worker and check say INSECURE.
# - Workers with s3.sse=AES256, aws:kms with a key id and aws:kms with the
#   default key write renditions, metadata and dead-letter value objects;
#   mc stat shows every object encrypted as configured, offsets reach the end.
# - An unknown KMS key id is named by `imgsink check` (404 kms:KeyNotFound)
#   and stops the worker at start-up, without retrying or committing.
# - No log line (one worker at log.level=debug) or check output holds the
#   secret key, the KMS key material or the TLS private key.
. "$(dirname "$0")/lib.sh"

MT=$TMP/mtls
WRONG_PID='' FAKE_PID=''
t73_cleanup() {
    [ -n "$WRONG_PID" ] && kill "$WRONG_PID" 2>/dev/null
    [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null
    bash "$ROOT/test/stack/minio_tls.sh" stop "$MT" >/dev/null 2>&1
    e2e_cleanup
}
trap t73_cleanup EXIT

bash "$ROOT/test/stack/minio_tls.sh" start "$MT" 2>"$TMP/mtls-start.log" ||
    { notok "start the HTTPS MinIO: $(tail -3 "$TMP/mtls-start.log")"; exit 1; }
# shellcheck disable=SC1091
. "$MT/env"
TMC="${MC%% *} --config-dir $MTLS_MC_DIR --quiet --no-color"
tmc() { $TMC "$@"; }
note "HTTPS MinIO at $MTLS_ENDPOINT, KMS key $MTLS_KMS_KEY"

topic=$(unique_name tls)
dlq="$topic.dlq"
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
# Dead letters over 1 MiB carry their value by reference to the store.
"$KAFKA_CLASS" topics --bootstrap-server "$KAFKA_BOOTSTRAP" --create --topic "$dlq" \
    --partitions 1 --replication-factor 1 --config max.message.bytes=1048576 >/dev/null ||
    notok "create $dlq"
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

# tls_conf FILE GROUP PREFIX [key=value...]: a worker on the HTTPS MinIO.
tls_conf() {
    local file=$1 group=$2 prefix=$3
    shift 3
    {
        echo "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP"
        echo "kafka.group.id=$group"
        echo "kafka.session.timeout.ms=10000"
        echo "kafka.heartbeat.interval.ms=1000"
        echo "input.topics=$topic"
        echo "dlq.topic=$dlq"
        echo "s3.endpoint=$MTLS_ENDPOINT"
        echo "s3.bucket=$MTLS_BUCKET"
        echo "s3.path.style=true"
        echo "s3.prefix=$prefix/"
        echo "retry.backoff.max.ms=2000"
        echo "http.listen=127.0.0.1:0"
        for line in "$@"; do echo "$line"; done
    } >"$file"
}
tls_check() { # tls_check NAME CONF [-X ...]: imgsink check, output in $TMP/NAME.out
    local name=$1 conf=$2
    shift 2
    IMGSINK_S3_ACCESS_KEY=$MTLS_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$MTLS_SECRET_KEY \
        "$IMGSINK" check -c "$conf" "$@" >"$TMP/$name.out" 2>&1
    echo $? >"$TMP/$name.rc"
    sed "s/^/# $name: /" "$TMP/$name.out" | grep -E 'FAIL|write|tls|bucket|check:'
}
tls_worker() { # tls_worker NAME CONF: imgsink run in the background
    IMGSINK_S3_ACCESS_KEY=$MTLS_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$MTLS_SECRET_KEY \
        "$IMGSINK" run -c "$2" >>"$TMP/$1.log" 2>&1 &
    WORKER_PIDS+=($!)
    LAST_PID=$!
}
exited() { ! kill -0 "$1" 2>/dev/null; }
out_has() { grep -qF -- "$2" "$TMP/$1.out"; }
log_has() { grep -qF -- "$2" "$TMP/$1.log"; }

# --- TLS: the right CA, another CA, the system CAs, another host name -------------
tls_conf "$TMP/ca.conf" "$(unique_name g-tls)" "$(unique_name t73)" \
    "s3.tls.ca.file=$MTLS_CERTS/ca.crt"
tls_check good "$TMP/ca.conf"
check "check with s3.tls.ca.file: all checks pass (exit 0)" test "$(cat "$TMP/good.rc")" = 0
check "check: a PUT probe is allowed and writes nothing" \
    out_has good "(probe refused by its wrong checksum: nothing written)"
check "mc: the probe left no object" \
    test -z "$(tmc ls --recursive "tls/$MTLS_BUCKET/" 2>/dev/null)"

tls_check otherca "$TMP/ca.conf" -X "s3.tls.ca.file=$MTLS_CERTS/other-ca.crt"
check "another CA: check fails (exit 1)" test "$(cat "$TMP/otherca.rc")" = 1
check "another CA: 'not signed by a CA of s3.tls.ca.file'" \
    out_has otherca "TLS: the store's certificate is not signed by a CA of s3.tls.ca.file"

tls_check sysca "$TMP/ca.conf" -X "s3.tls.ca.file="
check "system CAs: 'not signed by a system CA (set s3.tls.ca.file)'" \
    out_has sysca "not signed by a system CA (set s3.tls.ca.file)"

tls_check noca "$TMP/ca.conf" -X "s3.tls.ca.file=$TMP/missing.pem"
check "missing CA file: invalid configuration (exit 2) naming the key" \
    test "$(cat "$TMP/noca.rc")" = 2 -a -n "$(grep -F "s3.tls.ca.file=$TMP/missing.pem: expected a readable PEM file" "$TMP/noca.out")"

# A server with a certificate of the right CA for wrong.example only.
read -r wport < <(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$MTLS_CERTS" "$wport" >"$TMP/wrong-host.log" 2>&1 <<'PY' &
import http.server, ssl, sys
d, port = sys.argv[1], int(sys.argv[2])
srv = http.server.HTTPServer(("127.0.0.1", port), http.server.BaseHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/wrong.crt", d + "/wrong.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
WRONG_PID=$!
wait_for 60 bash -c "exec 3<>/dev/tcp/127.0.0.1/$wport" 2>/dev/null || notok "wrong-host server up"
tls_check wronghost "$TMP/ca.conf" -X "s3.endpoint=https://127.0.0.1:$wport"
check "another host name: 'not for the host name of s3.endpoint'" \
    out_has wronghost "TLS: the store's certificate is not for the host name of s3.endpoint"

# A store that does not verify x-amz-checksum-sha256 keeps the probe: check
# must say so, naming the object, rather than claim nothing was written. Its
# lifecycle answer is a hostile document (control characters, a huge code).
read -r fport < <(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$fport" >"$TMP/fake-store.log" 2>&1 <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reply(200)
    def do_GET(self):
        if "lifecycle" in self.path:
            self.reply(404, b"<Error><Code>NoSuchLifecycleConfiguration\x1b[31m" + b"A" * 5000 +
                       b"</Code><Message>\x07\r\nfake</Message></Error>")
        else:
            self.reply(404, b"<Error><Code>NoSuchKey</Code><Message>none</Message></Error>")
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
FAKE_PID=$!
wait_for 60 bash -c "exec 3<>/dev/tcp/127.0.0.1/$fport" 2>/dev/null || notok "fake store up"
tls_check fake "$TMP/ca.conf" -X "s3.endpoint=http://127.0.0.1:$fport" -X "s3.tls.ca.file="
check "a store that ignores checksums: check names the probe object it kept" \
    out_has fake "the store does not verify x-amz-checksum-sha256: the probe object"
check "... and its hostile error document prints no control character" \
    bash -c "! grep -qP '[\\x00-\\x08\\x0b-\\x1f\\x7f]' '$TMP/fake.out'"
kill "$FAKE_PID" 2>/dev/null

# The worker refuses to start with a CA that does not sign the store's certificate.
tls_conf "$TMP/badca.conf" "$(unique_name g-tls)" "$(unique_name t73)" \
    "s3.tls.ca.file=$MTLS_CERTS/other-ca.crt"
tls_worker badca "$TMP/badca.conf"
check "worker with another CA exits at start-up" wait_for 120 exited "$LAST_PID"
kill -TERM "$LAST_PID" 2>/dev/null # only if it did not exit: the test must not hang
wait "$LAST_PID"
rc=$?
check "... non-zero ($rc), the log says why" \
    test "$rc" -ne 0 -a -n "$(grep -F "the store's TLS certificate is refused" "$TMP/badca.log" | grep -F "not signed by a CA of s3.tls.ca.file")"

# --- the records -----------------------------------------------------------------------
mkdir -p "$TMP/recs"
python3 - "$ROOT/test/e2e" "$TMP/recs" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
import make_records as m
out = sys.argv[2]
for i in range(2):
    img = m.vips_image(os.path.join(out, f"g{i}.jpg"), 500 + 40 * i, 400, i)
    open(os.path.join(out, f"good-{i}.bin"), "wb").write(m.record(f"good-{i}", img))
open(os.path.join(out, "junk.bin"), "wb").write(b"not avro\n")
open(os.path.join(out, "bigjunk.bin"), "wb").write(os.urandom(1536 * 1024))
PY
for k in good-0 junk bigjunk good-1; do
    kcat -P -b "$KAFKA_BOOTSTRAP" -X message.max.bytes=16777216 -t "$topic" -p 0 -k "$k" \
        "$TMP/recs/$k.bin" || notok "kcat produce $k"
done
note "produced 4 records: 2 images, 1 junk, 1 junk of 1.5 MiB (its dead letter's value goes to the store)"

# --- SSE: every object the worker writes ------------------------------------------------
# sse_run NAME SSE KEYID [key=value...]
sse_run() {
    local name=$1 sse=$2 kid=$3 group prefix
    shift 3
    group=$(unique_name "g-$name")
    prefix=$(unique_name "t73-$name")
    tls_conf "$TMP/$name.conf" "$group" "$prefix" "s3.sse=$sse" \
        ${kid:+"s3.sse.kms.key.id=$kid"} "$@"
    tls_worker "$name" "$TMP/$name.conf"
    check "$name: committed offset = end offset (4)" \
        wait_for 240 committed_equals_end "$group" "$topic" 1
    kill -TERM "$LAST_PID" 2>/dev/null
    wait "$LAST_PID"
    python3 "$ROOT/test/e2e/verify_sse.py" --mc "$TMC" --target "tls/$MTLS_BUCKET/$prefix" \
        --sse "$sse" ${kid:+--key-id "$kid"} --min-objects 5 --min-dlq 1 | sed "s/ - / - $name: /"
    [ "${PIPESTATUS[0]}" -eq 0 ] || N_FAIL=$((N_FAIL + 1))
}
sse_run sse-s3 AES256 "" "s3.tls.ca.file=$MTLS_CERTS/ca.crt"
sse_run sse-kms aws:kms "$MTLS_KMS_KEY" "s3.tls.ca.file=$MTLS_CERTS/ca.crt" log.level=debug
# The store's default key; and no verification at all, which must be loud.
sse_run sse-kms-default aws:kms "" "s3.tls.verify=false"
check "s3.tls.verify=false: the worker warns INSECURE at start-up" \
    log_has sse-kms-default "INSECURE: s3.tls.verify=false"
tls_check insecure "$TMP/ca.conf" -X "s3.tls.ca.file=" -X s3.tls.verify=false
check "s3.tls.verify=false: check says INSECURE" out_has insecure "INSECURE: s3.tls.verify=false"
dlq_dump "$dlq" >"$TMP/dlq.json"
check "DLQ: 6 dead letters (2 per run), 3 of them by reference to the store" \
    test "$(grep -c . "$TMP/dlq.json")" -eq 6 -a "$(grep -c 'imgsink.dlq.value.ref' "$TMP/dlq.json")" -eq 3

# --- an unknown KMS key id ----------------------------------------------------------------
tls_check nokey "$TMP/ca.conf" -X s3.sse=aws:kms -X s3.sse.kms.key.id=no-such-key
check "unknown key id: check fails naming s3.sse.kms.key.id and kms:KeyNotFound" \
    test "$(cat "$TMP/nokey.rc")" = 1 -a -n "$(grep 'FAIL  write' "$TMP/nokey.out" | grep -F "s3.sse.kms.key.id names a key the store's KMS does not have" | grep -F 'kms:KeyNotFound')"
group=$(unique_name g-nokey)
tls_conf "$TMP/nokey.conf" "$group" "$(unique_name t73-nokey)" \
    "s3.tls.ca.file=$MTLS_CERTS/ca.crt" s3.sse=aws:kms s3.sse.kms.key.id=no-such-key
tls_worker nokey "$TMP/nokey.conf"
check "worker with an unknown key id exits at start-up" wait_for 120 exited "$LAST_PID"
kill -TERM "$LAST_PID" 2>/dev/null # only if it did not exit: the test must not hang
wait "$LAST_PID"
rc=$?
check "... non-zero ($rc), naming the key, tried once (no retry loop)" \
    test "$rc" -ne 0 -a "$(grep -c 'kms:KeyNotFound' "$TMP/nokey.log")" -ge 1 -a "$(grep -c 'kms:KeyNotFound' "$TMP/nokey.log")" -le 2
check "... and committed nothing" test -z "$(group_offsets "$group" "$topic" | awk '$2 != "-"')"

# --- secrets ---------------------------------------------------------------------------------
secret_lines=$(grep -h -v '^-----' "$MT/certs/server.key" | head -3)
leaks=0
for f in "$TMP"/*.log "$TMP"/*.out; do
    for s in "$MTLS_SECRET_KEY" "$MTLS_KMS_SECRET" $secret_lines; do
        grep -qF -- "$s" "$f" && { note "secret found in $(basename "$f")"; leaks=$((leaks + 1)); }
    done
done
check "no secret key, KMS key material or TLS private key in any log or check output" test "$leaks" -eq 0

[ "$N_FAIL" -eq 0 ]
