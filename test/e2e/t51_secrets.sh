#!/usr/bin/env bash
# Secrets never appear in what imgsink prints: the S3 secret key, the S3
# session token and the Kafka SASL password are set to known values, and
# everything the commands and two workers at log.level=debug with
# kafka.debug=all print (librdkafka's own configuration dump included) is
# searched for them.
#
# Run A works for real: the S3 secret key is the stack's, and the SASL
# password is set with security.protocol=plaintext, where librdkafka accepts
# it and does not use it. Run B adds a session token the store does not
# know: start-up stops on the store's refusal, which its log shows.
. "$(dirname "$0")/lib.sh"

rand() { python3 -c 'import secrets; print(secrets.token_hex(12))'; }
SASL_PW="sasl-pw-$(rand)"
TOKEN="session-token-$(rand)"
SECRETS=("$S3_SECRET_KEY" "$SASL_PW" "$TOKEN")
note "secrets: the stack's S3 secret key, SASL password sasl-pw-..., session token session-token-..."

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
prefix=$(unique_name t51)
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
    "kafka.sasl.password=$SASL_PW" "kafka.statistics.interval.ms=1000"

# --- commands that print configuration or help ---------------------------------
cp "$TMP/w.conf" "$TMP/all.conf"
{
    echo "s3.access.key=$S3_ACCESS_KEY"
    echo "s3.secret.key=$S3_SECRET_KEY"
    echo "s3.session.token=$TOKEN"
} >>"$TMP/all.conf"
"$IMGSINK" config -c "$TMP/all.conf" >"$TMP/config.out" 2>&1
check "imgsink config shows s3.secret.key, s3.session.token, kafka.sasl.password as [hidden]" \
    bash -c 'grep -qx "s3.secret.key=\[hidden\]" "$0" && grep -qx "s3.session.token=\[hidden\]" "$0" &&
             grep -qx "kafka.sasl.password=\[hidden\]" "$0"' "$TMP/config.out"
IMGSINK_S3_SECRET_KEY=$S3_SECRET_KEY IMGSINK_S3_SESSION_TOKEN=$TOKEN \
    "$IMGSINK" config -c "$TMP/w.conf" -X "kafka.ssl.key.password=$SASL_PW" >"$TMP/config-env.out" 2>&1
{
    "$IMGSINK" --help
    "$IMGSINK" run --help -c "$TMP/all.conf"
    "$IMGSINK" help config
    "$IMGSINK" help config --markdown
    "$IMGSINK" version
} >"$TMP/help.out" 2>&1
IMGSINK_S3_ACCESS_KEY=$S3_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_SECRET_KEY \
    "$IMGSINK" check -c "$TMP/w.conf" >"$TMP/check.out" 2>&1
check "imgsink check passes with the SASL password set" grep -q 'checks passed' "$TMP/check.out"
check "config (file, environment, -X), help, version and check print no secret" \
    leaks "$TMP/config.out" "$TMP/config-env.out" "$TMP/help.out" "$TMP/check.out"

# A configuration error that echoes a value: the log line hides it.
IMGSINK_S3_ACCESS_KEY=$S3_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_SECRET_KEY timeout 30 \
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
    IMGSINK_S3_ACCESS_KEY=$S3_ACCESS_KEY timeout 60 "$IMGSINK" "$cmd" -c "$TMP/w.conf" \
        -X "s3.secret.key=$S3_SECRET_KEY" -X "kafka.no.such.password=$SASL_PW" "${args[@]}" \
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
kill -TERM "${WORKER_PIDS[0]}" && wait "${WORKER_PIDS[0]}"
note "run A log: $(wc -l <"$TMP/a.log") lines"
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
IMGSINK_S3_ACCESS_KEY=$S3_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_SECRET_KEY \
    IMGSINK_S3_SESSION_TOKEN=$TOKEN "$IMGSINK" run -c "$TMP/b.conf" >"$TMP/b.log" 2>&1 &
pid=$!
WORKER_PIDS+=("$pid")
s3_errors() { grep -q '"component":"\(s3\|job\|main\)".*HTTP 403' "$TMP/b.log"; }
check "run B: the store refuses the session token, and the log says so" wait_for 60 s3_errors
kill -TERM "$pid" 2>/dev/null # the start-up check stops it (t53)
wait "$pid"
grep -m1 '"component":"\(s3\|job\|main\)".*HTTP 403' "$TMP/b.log" | cut -c1-300 | sed 's/^/# run B: /'
check "run B: no secret in the log" leaks "$TMP/b.log"
exit 0
