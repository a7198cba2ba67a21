#!/usr/bin/env bash
# Start-up, as an operator meets it on the real stack:
#   - a Kubernetes Service named imgsink: the kubelet's IMGSINK_SERVICE_HOST,
#     IMGSINK_PORT_9464_TCP_ADDR, ... in the environment do not stop the
#     worker; one warning names them (not their values), and it writes;
#   - a session token the store does not accept (MinIO answers 403
#     InvalidTokenId; AWS InvalidToken or ExpiredToken): start-up stops with
#     a message naming s3.session.token, before the worker joins the group,
#     and the token is not printed;
#   - `imgsink produce` on an empty directory: "no image files in DIR", exit 1.
. "$(dirname "$0")/lib.sh"

topic=$(unique_name startup)
dlq="$topic.dlq"
group=$(unique_name g-startup)
prefix=$(out_prefix t53)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null
write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix"

# --- the kubelet's Service variables ----------------------------------------------
KUBELET_VARS=(
    IMGSINK_SERVICE_HOST=10.96.12.34
    IMGSINK_SERVICE_PORT=9464
    IMGSINK_SERVICE_PORT_METRICS=9464
    IMGSINK_PORT=tcp://10.96.12.34:9464
    IMGSINK_PORT_9464_TCP=tcp://10.96.12.34:9464
    IMGSINK_PORT_9464_TCP_ADDR=10.96.12.34
    IMGSINK_PORT_9464_TCP_PORT=9464
    IMGSINK_PORT_9464_TCP_PROTO=tcp
)
env "${KUBELET_VARS[@]}" IMGSINK_S3_ACCESS_KEY="$S3_WORKER_ACCESS_KEY" IMGSINK_S3_SECRET_KEY="$S3_WORKER_SECRET_KEY" \
    "$IMGSINK" run -c "$TMP/w.conf" >>"$TMP/k8s.log" 2>&1 &
pid=$!
WORKER_PIDS+=("$pid")
mkdir -p "$TMP/img"
vips gaussnoise "$TMP/img/one.png" 40 30 || notok "vips one.png"
"$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --tenant acme "$TMP/img" \
    >"$TMP/produce.out" 2>&1 || notok "produce one record: $(cat "$TMP/produce.out")"
written() { [ "$(count_objects "$prefix" metadata.json)" = 1 ]; }
check "kubelet Service variables set: the worker runs and writes the record (mc sees metadata.json)" \
    wait_for 60 written
check "kubelet Service variables set: the worker is still running (no exit 2)" kill -0 "$pid"
warn=$(grep '"level":"warn","component":"config"' "$TMP/k8s.log")
note "warning: $(echo "$warn" | cut -c1-260)"
check "one warning names the 8 variables" bash -c '[ "$(echo "$0" | grep -c .)" = 1 ] &&
    for v in IMGSINK_SERVICE_HOST IMGSINK_SERVICE_PORT_METRICS IMGSINK_PORT_9464_TCP_ADDR IMGSINK_PORT_9464_TCP_PROTO; do
        echo "$0" | grep -q "$v" || exit 1; done' "$warn"
check "the warning shows no value (10.96.12.34, tcp://)" \
    bash -c '! grep -q "10\.96\.12\.34\|tcp://" "$0"' "$TMP/k8s.log"
kill -TERM "$pid"
wait "$pid"
rc=$?
check "the worker stops cleanly on SIGTERM (exit $rc)" test "$rc" -eq 0

# --- a session token the store does not accept -------------------------------------
TOKEN="session-token-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
write_conf "$TMP/b.conf" "$topic" "$dlq" "$(unique_name g-startup-b)" "$prefix-b"
IMGSINK_S3_ACCESS_KEY=$S3_WORKER_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_WORKER_SECRET_KEY \
    IMGSINK_S3_SESSION_TOKEN=$TOKEN timeout 60 "$IMGSINK" run -c "$TMP/b.conf" >"$TMP/token.log" 2>&1
rc=$?
msg=$(grep -o '"msg":"s3 start-up check[^"]*"' "$TMP/token.log" | head -1)
note "exit $rc, $msg"
check "bad session token: start-up stops with exit 1 (not 124: it did not run on)" test "$rc" -eq 1
check "bad session token: the message names s3.session.token and the store's answer" \
    bash -c 'echo "$0" | grep -q "s3.session.token is invalid" && echo "$0" | grep -q "HTTP 403 InvalidTokenId"' "$msg"
check "bad session token: the worker never joined the group" \
    bash -c '! grep -q "partitions assigned\|imgsink .* started" "$0"' "$TMP/token.log"
check "bad session token: the token is not in the log" bash -c '! grep -qF -- "$0" "$1"' "$TOKEN" "$TMP/token.log"
check "bad session token: nothing written under its prefix" test "$(count_objects "$prefix-b" metadata.json)" = 0

# --- produce on an empty directory ---------------------------------------------------
mkdir -p "$TMP/empty/sub" && : >"$TMP/empty/.hidden"
"$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" "$TMP/empty" >"$TMP/empty.out" 2>&1
rc=$?
note "produce $TMP/empty: exit $rc: $(head -c 200 "$TMP/empty.out")"
check "produce on a directory without files: exit 1, 'no image files in DIR'" \
    bash -c '[ "$0" -eq 1 ] && grep -q "no image files in $1" "$2"' "$rc" "$TMP/empty" "$TMP/empty.out"
exit 0
