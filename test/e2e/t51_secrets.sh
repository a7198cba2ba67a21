#!/usr/bin/env bash
# Secrets never appear in what imgsink prints: the S3 secret key, the S3
# session token, the Kafka SASL password, the client key's passphrase
# (kafka.ssl.key.password), a web identity token, a container authorization
# token, the API's id key and tenant keys, and the signatures of the URLs
# the API presigns are set to (or taken as) known values, and everything the
# commands, two workers and the API at log.level=debug with kafka.debug=all
# print (librdkafka's own configuration dump included), their /metrics,
# /readyz, and the DLQ records with their headers are searched for them.
#
# Run A works for real: the S3 secret key is the stack's, and the SASL
# password is set with security.protocol=plaintext, where librdkafka accepts
# it and does not use it. Run B adds a session token the store does not
# know: start-up stops on the store's refusal, which its log shows. Run C is
# `imgsink api`: a wrong and a right tenant key, presigned uploads and
# downloads, a direct post. Run D: web identity and container sources whose
# STS / endpoint refuse or do not answer, so their tokens travel and the
# errors are printed. Run E: the client key's passphrase in use: an
# encrypted client key that `imgsink api` decrypts with it (the plain broker
# then refuses TLS, which is logged and on /readyz), and a wrong passphrase,
# which stops the api and check at start-up.
. "$(dirname "$0")/lib.sh"

rand() { python3 -c 'import secrets; print(secrets.token_hex(12))'; }
SASL_PW="sasl-pw-$(rand)"
TOKEN="session-token-$(rand)"
KEY_PW="key-passphrase-$(rand)"
WEB_TOKEN="web-identity-token-$(rand)"
AUTH_TOKEN="container-auth-token-$(rand)"
ID_KEY="api-id-key-$(rand)"
API_KEY="api-tenant-key-$(rand)"
WRONG_KEY="api-wrong-key-$(rand)"
SECRETS=("$S3_WORKER_SECRET_KEY" "$S3_SECRET_KEY" "$SASL_PW" "$TOKEN" "$KEY_PW" "$WEB_TOKEN" "$AUTH_TOKEN"
    "$ID_KEY" "$API_KEY" "$WRONG_KEY")
note "secrets: the stack's S3 secret keys (worker and admin), SASL password sasl-pw-..., session token session-token-..., key-passphrase-..., web-identity-token-..., container-auth-token-..., api-id-key-..., api-tenant-key-..., api-wrong-key-..."

# leaks FILE...: prints the files and secrets that occur together; fails if any.
leaks() {
    local f s found=0
    for f in "$@"; do
        for s in "${SECRETS[@]}"; do
            if grep -qF -- "$s" "$f"; then
                echo "# LEAK: ${s:0:12}... in $(basename "$f")"
                found=1
            fi
        done
    done
    [ $found -eq 0 ]
}

topic=$(unique_name secrets)
dlq="$topic.dlq"
group=$(unique_name g-secrets)
prefix=$(out_prefix t51)
bash "$ROOT/test/stack/topic.sh" "$topic" 2 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null
python3 "$ROOT/test/e2e/make_records.py" "$TMP/recs" >/dev/null
for f in "$TMP"/recs/*.bin; do
    key=$(basename "$f" .bin)
    kcat -P -b "$KAFKA_BOOTSTRAP" -X message.max.bytes=16777216 -t "$topic" -k "${key#*-}" "$f" ||
        notok "kcat produce $key"
done

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" \
    "log.level=debug" "kafka.debug=all" "kafka.security.protocol=plaintext" \
    "kafka.sasl.password=$SASL_PW" "kafka.ssl.key.password=$KEY_PW" \
    "kafka.statistics.interval.ms=1000"
# `imgsink api` gets its keys with -X (in the file, `imgsink check` would also
# ask for a lifecycle rule of the raw prefix).
echo "acme $(printf %s "$API_KEY" | sha256sum | cut -d' ' -f1)" >"$TMP/keys"
API_X=(-X "api.keys.file=$TMP/keys" -X api.listen=127.0.0.1:0 -X "api.raw.prefix=raw-$prefix/"
    -X "api.id.key=$ID_KEY")

# --- commands that print configuration or help ---------------------------------
cp "$TMP/w.conf" "$TMP/all.conf"
{
    echo "s3.access.key=$S3_WORKER_ACCESS_KEY"
    echo "s3.secret.key=$S3_WORKER_SECRET_KEY"
    echo "s3.session.token=$TOKEN"
    echo "api.id.key=$ID_KEY"
} >>"$TMP/all.conf"
"$IMGSINK" config -c "$TMP/all.conf" >"$TMP/config.out" 2>&1
check "imgsink config shows s3.secret.key, s3.session.token, kafka.sasl.password, kafka.ssl.key.password, api.id.key as [hidden]" \
    bash -c 'grep -qx "s3.secret.key=\[hidden\]" "$0" && grep -qx "s3.session.token=\[hidden\]" "$0" &&
             grep -qx "kafka.sasl.password=\[hidden\]" "$0" && grep -qx "kafka.ssl.key.password=\[hidden\]" "$0" &&
             grep -qx "api.id.key=\[hidden\]" "$0"' "$TMP/config.out"
IMGSINK_S3_SECRET_KEY=$S3_WORKER_SECRET_KEY IMGSINK_S3_SESSION_TOKEN=$TOKEN \
    "$IMGSINK" config -c "$TMP/w.conf" -X "kafka.ssl.key.password=$SASL_PW" >"$TMP/config-env.out" 2>&1
{
    "$IMGSINK" --help
    "$IMGSINK" run --help -c "$TMP/all.conf"
    "$IMGSINK" help config
    "$IMGSINK" help config --markdown
    "$IMGSINK" version
} >"$TMP/help.out" 2>&1
as_operator "$IMGSINK" check -c "$TMP/w.conf" >"$TMP/check.out" 2>&1
check "imgsink check passes with the SASL password set" grep -q 'checks passed' "$TMP/check.out"
check "config (file, environment, -X), help, version and check print no secret" \
    leaks "$TMP/config.out" "$TMP/config-env.out" "$TMP/help.out" "$TMP/check.out"

# A configuration error that echoes a value: the log line hides it.
IMGSINK_S3_ACCESS_KEY=$S3_WORKER_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_WORKER_SECRET_KEY timeout 30 \
    "$IMGSINK" run -c "$TMP/w.conf" -X "kafka.no.such.password=$SASL_PW" >"$TMP/badprop.log" 2>&1
check "a rejected kafka.*password property: the error names it, the value is [hidden]" \
    grep -q 'kafka.no.such.password=\[hidden\]' "$TMP/badprop.log"

# The operator commands print the same error as plain text: status, check,
# replay and produce, with the S3 secret key given by -X and the SASL
# password in the file.
for cmd in status check replay produce; do
    case $cmd in
    replay) args=(--group "$group" --topic "$topic" --to-latest --dry-run) ;;
    produce) args=(--topic "$topic" "$TMP/recs") ;;
    *) args=() ;;
    esac
    IMGSINK_S3_ACCESS_KEY=$S3_WORKER_ACCESS_KEY timeout 60 "$IMGSINK" "$cmd" -c "$TMP/w.conf" \
        -X "s3.secret.key=$S3_WORKER_SECRET_KEY" -X "kafka.no.such.password=$SASL_PW" "${args[@]}" \
        >"$TMP/badprop-$cmd.out" 2>&1
    rc=$?
    check "$cmd with a rejected kafka.*password property: fails (exit $rc), names it, the value is [hidden]" \
        bash -c '[ "$1" -ne 0 ] && grep -q "kafka.no.such.password=\[hidden\]" "$2"' _ $rc \
        "$TMP/badprop-$cmd.out"
done
check "status, check, replay and produce print no secret in that error" \
    leaks "$TMP"/badprop-*.out

# --- run A: a working worker at debug level, librdkafka debugging everything ----
start_worker a "$TMP/w.conf" >/dev/null
addr=$(http_address a) || notok "worker a logged its HTTP address"
check "run A: librdkafka accepts sasl.password with plaintext; lag 0 reached" \
    wait_for 120 committed_equals_end "$group" "$topic" 2
curl -fsS --max-time 5 "http://$addr/metrics" >"$TMP/metrics.out" || notok "scrape /metrics"
curl -sS --max-time 5 "http://$addr/readyz" >"$TMP/readyz.out"
kill -TERM "${WORKER_PIDS[0]}" && wait "${WORKER_PIDS[0]}"
WORKER_PIDS=()
note "run A log: $(wc -l <"$TMP/a.log") lines"
dlq_dump "$dlq" >"$TMP/dlq.out"
check "run A: the DLQ has records with headers (kcat)" grep -q '"headers"' "$TMP/dlq.out"
check "run A: no secret in /readyz or in the DLQ records and their headers" \
    leaks "$TMP/readyz.out" "$TMP/dlq.out"
check "run A: the log has librdkafka's debug lines (its configuration dump included)" \
    bash -c 'grep -q "\"level\":\"debug\",\"component\":\"rdkafka\"" "$0" &&
             grep -q "sasl.password = \[redacted\]" "$0"' "$TMP/a.log"
check "run A: imgsink's own debug lines too (record written)" grep -q '"msg":"record written"' "$TMP/a.log"
check "run A: every line is one JSON object" python3 -c 'import json,sys
for l in open(sys.argv[1], errors="replace"): json.loads(l)' "$TMP/a.log"
check "run A: no secret in the log or in /metrics" leaks "$TMP/a.log" "$TMP/metrics.out"

# --- run B: an unknown session token: start-up stops ----------------------------
write_conf "$TMP/b.conf" "$topic" "$dlq" "$(unique_name g-secrets-b)" "$prefix-b" \
    "log.level=debug" "kafka.debug=all" "kafka.security.protocol=plaintext" \
    "kafka.sasl.password=$SASL_PW" "shutdown.timeout.ms=3000"
IMGSINK_S3_ACCESS_KEY=$S3_WORKER_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_WORKER_SECRET_KEY \
    IMGSINK_S3_SESSION_TOKEN=$TOKEN "$IMGSINK" run -c "$TMP/b.conf" >"$TMP/b.log" 2>&1 &
pid=$!
WORKER_PIDS+=("$pid")
s3_errors() { grep -q '"component":"\(s3\|job\|main\)".*HTTP 403' "$TMP/b.log"; }
check "run B: the store refuses the session token, and the log says so" wait_for 60 s3_errors
kill -TERM "$pid" 2>/dev/null # the start-up check stops it (t53)
wait "$pid"
grep -m1 '"component":"\(s3\|job\|main\)".*HTTP 403' "$TMP/b.log" | cut -c1-300 | sed 's/^/# run B: /'
check "run B: no secret in the log" leaks "$TMP/b.log"

# --- run C: imgsink api at debug level ----------------------------------------------
IMGSINK_S3_ACCESS_KEY=$S3_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_SECRET_KEY \
    "$IMGSINK" api -c "$TMP/w.conf" "${API_X[@]}" >"$TMP/c.log" 2>&1 &
WORKER_PIDS=($!)
api_addr() {
    grep -m1 '"component":"api".*"address"' "$TMP/c.log" 2>/dev/null |
        python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("address",""))' 2>/dev/null
}
wait_for 60 bash -c "grep -q '\"component\":\"api\".*\"address\"' '$TMP/c.log'" || notok "run C: the API logged its address"
A=$(api_addr)
check "run C: /readyz 200" wait_for 60 test "$(curl -s -o "$TMP/c-readyz.out" -w '%{http_code}' "http://$A/readyz")" = 200
st=$(curl -sS -o "$TMP/c-wrong.json" -w '%{http_code}' -H "Authorization: Bearer $WRONG_KEY" \
    -H 'Content-Type: application/json' -d '{"content_type":"image/jpeg","size":100}' "http://$A/v1/uploads")
check "run C: a wrong tenant key gets 401 (got $st)" test "$st" = 401
vips gaussnoise "$TMP/c.png" 48 32 --mean 128 --sigma 50 || notok "vips gaussnoise"
st=$(curl -sS -o "$TMP/c-upload.json" -w '%{http_code}' -H "Authorization: Bearer $API_KEY" \
    -H 'Content-Type: application/json' -d '{"content_type":"image/jpeg","size":100}' "http://$A/v1/uploads")
check "run C: a presigned upload (201, got $st)" test "$st" = 201
st=$(curl -sS -o "$TMP/c-post.json" -w '%{http_code}' -H "Authorization: Bearer $API_KEY" \
    -H 'Content-Type: image/png' --data-binary @"$TMP/c.png" "http://$A/v1/images")
check "run C: a direct post (202, got $st)" test "$st" = 202
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/c-post.json" 2>/dev/null)
curl -sS -o "$TMP/c-status.json" -H "Authorization: Bearer $API_KEY" "http://$A/v1/images/$id"
curl -sS --max-time 5 "http://$A/metrics" >"$TMP/c-metrics.out"
# The signature and session-less credential of the presigned URL are secrets too.
sig=$(python3 -c 'import json,sys,urllib.parse
u=json.load(open(sys.argv[1]))["upload"]["url"]
print(urllib.parse.parse_qs(urllib.parse.urlsplit(u).query)["X-Amz-Signature"][0])' "$TMP/c-upload.json")
check "run C: the presigned URL has a signature (${#sig} hex digits)" test ${#sig} -eq 64
SECRETS+=("$sig")
kill -TERM "${WORKER_PIDS[0]}" && wait "${WORKER_PIDS[0]}"
WORKER_PIDS=()
check "run C: the API's debug log has the access lines" grep -q '"component":"access"' "$TMP/c.log"
check "run C: no secret (keys, id key, SASL password, passphrase, URL signature) in the API's log, /metrics or /readyz" \
    leaks "$TMP/c.log" "$TMP/c-metrics.out" "$TMP/c-readyz.out"

# --- run D: web identity and container tokens, refused ------------------------------
echo "$WEB_TOKEN" >"$TMP/web-token"
chain_env=(env -u IMGSINK_S3_ACCESS_KEY -u IMGSINK_S3_SECRET_KEY -u AWS_ACCESS_KEY_ID
    -u AWS_SECRET_ACCESS_KEY -u AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE=/nonexistent
    AWS_CONFIG_FILE=/nonexistent)
for cmd in run api check; do
    xs=()
    [ "$cmd" = api ] && xs=("${API_X[@]}")
    "${chain_env[@]}" AWS_ROLE_ARN=arn:aws:iam::123456789012:role/imgsink \
        AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/web-token" AWS_ENDPOINT_URL_STS="$S3_ENDPOINT" \
        timeout 60 "$IMGSINK" "$cmd" -c "$TMP/w.conf" "${xs[@]}" >"$TMP/d-web-$cmd.out" 2>&1
    rc=$?
    check "run D: $cmd with a web identity token the STS refuses stops (exit $rc), naming STS" \
        bash -c '[ "$0" -ne 0 ] && [ "$0" -ne 124 ] && grep -q "web-identity: STS" "$1"' $rc "$TMP/d-web-$cmd.out"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "${chain_env[@]}" AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:$port/creds" \
        AWS_CONTAINER_AUTHORIZATION_TOKEN="$AUTH_TOKEN" \
        timeout 60 "$IMGSINK" "$cmd" -c "$TMP/w.conf" "${xs[@]}" >"$TMP/d-container-$cmd.out" 2>&1
    rc=$?
    check "run D: $cmd with a container endpoint that does not answer stops (exit $rc), naming it" \
        bash -c '[ "$0" -ne 0 ] && [ "$0" -ne 124 ] && grep -q "container endpoint http://127.0.0.1:$2/creds" "$1"' \
        $rc "$TMP/d-container-$cmd.out" "$port"
done
grep -h -m1 'web-identity' "$TMP/d-web-run.out" | cut -c1-300 | sed 's/^/# run D: /'
check "run D: no web identity or authorization token in those errors" leaks "$TMP"/d-*.out

# --- run E: the client key's passphrase in use ------------------------------------
# A client certificate whose PKCS#8 key is encrypted with the passphrase.
printf %s "$KEY_PW" >"$TMP/client.pass"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -aes-256-cbc -pass "file:$TMP/client.pass" \
    -out "$TMP/client.key" 2>/dev/null &&
    openssl req -x509 -new -key "$TMP/client.key" -passin "file:$TMP/client.pass" -subj "/CN=imgsink-t51" \
        -days 2 -out "$TMP/client.pem" 2>/dev/null || notok "run E: openssl client certificate"
rm -f "$TMP/client.pass"
E_API=("api.keys.file=$TMP/keys" api.listen=127.0.0.1:0 "api.raw.prefix=raw-$prefix/" "api.id.key=$ID_KEY")
E_TLS=(kafka.security.protocol=ssl "kafka.ssl.key.location=$TMP/client.key"
    "kafka.ssl.certificate.location=$TMP/client.pem")
start_api e "$TMP/w.conf" "${E_API[@]}" "${E_TLS[@]}" # w.conf: kafka.ssl.key.password=$KEY_PW
E=$(api_address e) || notok "run E: the API logged its address"
check "run E: librdkafka decrypts the client key with the passphrase (its debug log says it asked)" \
    wait_for 60 grep -q 'Private key requires password' "$TMP/e.log"
e_unready() {
    [ "$(curl -s -o "$TMP/e-readyz.out" -w '%{http_code}' --max-time 5 "http://$E/readyz")" = 503 ] &&
        grep -q '^kafka producer: ' "$TMP/e-readyz.out"
}
check "run E: the plain broker refuses TLS: /readyz 503 with the producer's error" wait_for 120 e_unready
note "run E /readyz: $(cut -c1-300 "$TMP/e-readyz.out")"
curl -sS --max-time 5 "http://$E/metrics" >"$TMP/e-metrics.out"
stop_api
for cmd in api check; do
    E_X=()
    for kv in "${E_TLS[@]}" "kafka.ssl.key.password=wrong-$KEY_PW"; do E_X+=(-X "$kv"); done
    if [ "$cmd" = api ]; then
        for kv in "${E_API[@]}"; do E_X+=(-X "$kv"); done
        as_api timeout 60 "$IMGSINK" api -c "$TMP/w.conf" "${E_X[@]}" >"$TMP/e-wrong-api.out" 2>&1
    else
        as_operator timeout 60 "$IMGSINK" check -c "$TMP/w.conf" "${E_X[@]}" >"$TMP/e-wrong-check.out" 2>&1
    fi
    rc=$?
    check "run E: $cmd with a wrong key passphrase stops (exit $rc) saying it does not decrypt the key" \
        bash -c '[ "$0" -ne 0 ] && [ "$0" -ne 124 ] &&
                 grep -q "kafka.ssl.key.location=.*: kafka.ssl.key.password does not decrypt this key" "$1"' \
        $rc "$TMP/e-wrong-$cmd.out"
done
grep -h -m1 'ssl.key.location' "$TMP"/e-wrong-*.out | cut -c1-300 | sed 's/^/# run E: /'
check "run E: no passphrase (right or wrong) or other secret in the logs, /readyz, /metrics or the errors" \
    leaks "$TMP/e.log" "$TMP/e-readyz.out" "$TMP/e-metrics.out" "$TMP"/e-wrong-*.out
exit 0
