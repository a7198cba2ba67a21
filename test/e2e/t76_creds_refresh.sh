#!/usr/bin/env bash
# Credentials that refresh, on the real stack. A local container-credentials
# endpoint (the ECS / EKS Pod Identity protocol, test/e2e/creds_server.py)
# hands out real temporary credentials from MinIO's STS (AssumeRole as a
# MinIO user, each with its own session token) declaring a 20 s lifetime, and
# checks the authorization token from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.
# The worker has no keys of its own. While records arrive over several
# credential lifetimes:
#   - it refreshes before every expiry (its log, the endpoint's log);
#   - once, the endpoint hands out a damaged session token: MinIO refuses it
#     (InvalidTokenId), the worker fetches new credentials at once and the
#     record is written, not sent to the DLQ;
#   - every good record becomes objects (mc), the committed offset reaches
#     the end (Kafka's group tool), only the junk record is in the DLQ (kcat);
#   - no secret handed out appears in the log, the config dump, /metrics or
#     the DLQ;
#   - /metrics counts the refreshes by source and result (as many as the
#     log) and shows the seconds until the credentials expire.
# Then the endpoint dies: /readyz turns 503 naming the reason, /metrics
# counts the failed refreshes and shows the last error, and /healthz
# follows after s3.credentials.unhealthy.restart.ms.
. "$(dirname "$0")/lib.sh"
# shellcheck disable=SC1091
. "$ROOT/test/stack/common.sh"
PY="$IMGSINK_VENV/bin/python"

topic=$(unique_name creds)
dlq="$topic.dlq"
group=$(unique_name g-creds)
prefix=$(out_prefix t76)
bash "$ROOT/test/stack/topic.sh" "$topic" 2 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

# --- the endpoint ---------------------------------------------------------------
trap 'creds_endpoint_cleanup; e2e_cleanup' EXIT
creds_endpoint_start imgsink-worker
mode() { curl -fsS -X POST "http://127.0.0.1:$CREDS_PORT/_mode?m=$1" >/dev/null; }

# --- records: a few at a time, over several credential lifetimes --------------
vips gaussnoise "$TMP/i.v" 320 240 --sigma 25 && vips copy "$TMP/i.v" "$TMP/i.jpg[Q=85]" || notok "vips"
n=0
produce_batch() { # produce_batch COUNT
    local i id
    for ((i = 0; i < $1; i++)); do
        id="r$n"
        "$PY" "$ROOT/test/e2e/make_records.py" inline "$TMP/$id.bin" --id "$id" --image "$TMP/i.jpg" ||
            notok "make_records $id"
        kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -k "$id" "$TMP/$id.bin" || notok "kcat $id"
        n=$((n + 1))
    done
}

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" \
    "s3.credentials.refresh.margin.ms=5000" "s3.credentials.unhealthy.restart.ms=8000"
# An array, not a function: env execs imgsink, so $! is the worker's PID.
run_worker=(env "${CREDS_ENV[@]}" "$IMGSINK")
"${run_worker[@]}" run -c "$TMP/w.conf" >>"$TMP/w1.log" 2>&1 &
WORKER_PIDS+=($!)
addr=$(http_address w1 120) || notok "worker http address"
check "the worker takes its credentials from the container endpoint" \
    wait_for 60 grep -q '"store credentials from container"' "$TMP/w1.log"
check "the worker is ready" wait_for 120 curl -fs -o /dev/null "http://$addr/readyz"

produce_batch 4
kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -k junk <<<"not an image record" || notok "kcat junk"
# Through three lifetimes; the second refresh gets a damaged token.
for round in 1 2 3 4 5; do
    [ "$round" = 2 ] && mode corrupt1
    sleep 12
    produce_batch 3
done
note "produced $n good records and 1 junk record"
refreshes() { grep -c '"msg":"credentials refreshed"' "$TMP/w1.log"; }
all_written() { [ "$(count_objects "$prefix" metadata.json)" -eq "$n" ]; }
check "every good record has its metadata object (mc)" wait_for 300 all_written
check "committed offset = end offset on both partitions (kafka-consumer-groups)" \
    wait_for 120 committed_equals_end "$group" "$topic" 2
r=$(refreshes)
note "refreshes: $r; endpoint answered $(grep -c '^issued' "$TMP/creds-server.log") times"
check "the worker refreshed before expiry at least 3 times" test "$r" -ge 3
check "MinIO refused the damaged token (InvalidTokenId) and the worker refreshed at once" \
    bash -c 'grep -q "\"code\":\"InvalidTokenId\"" "$0" && grep -q "\"forced\":true" "$0"' "$TMP/w1.log"
dlq_dump "$dlq" >"$TMP/dlq.json"
check "the DLQ holds only the junk record (kcat)" \
    bash -c '[ "$(grep -c . "$0")" -eq 1 ] && grep -q "\"key\": *\"junk\"" "$0"' "$TMP/dlq.json"

# --- secrets ---------------------------------------------------------------------
"${run_worker[@]}" config -c "$TMP/w.conf" >"$TMP/config.txt" 2>&1
r_before=$(refreshes)
scrape_metrics "$addr" || notok "scrape /metrics"
r_after=$(refreshes)
curl -sS "http://$addr/readyz" >"$TMP/readyz.txt"
grep '^imgsink_credentials' "$TMP/metrics.txt" | sed 's/^/# /'
m_ok=$(metric 'imgsink_credentials_refreshes_total{source="container",result="ok"}')
m_exp=$(metric 'imgsink_credentials_expiry_seconds{source="container"}')
# The counter moves just before the log line: one ahead at most.
check "/metrics: refreshes{source=container,result=ok} = $m_ok, the log's count ($r_before..$r_after)" \
    bash -c '[ -n "$0" ] && [ "$0" -ge "$1" ] && [ "$0" -le $(($2 + 1)) ]' "$m_ok" "$r_before" "$r_after"
check "/metrics: seconds until expiry within the declared 20 s lifetime (got $m_exp)" \
    bash -c '[ -n "$0" ] && [ "$0" -le 20 ] && [ "$0" -ge -5 ]' "$m_exp"
echo >>"$CREDS_ISSUED"
cat "$CREDS_AUTH_TOKEN" >>"$CREDS_ISSUED"
note "$(grep -c . "$CREDS_ISSUED") secrets handed out"
if creds_leaks "$TMP/w1.log" "$TMP/config.txt" "$TMP/metrics.txt" "$TMP/dlq.json" \
    "$TMP/readyz.txt"; then notok "no secret in log, config, metrics, readyz or DLQ"; else
    ok "no session token, secret key or authorization token in log, config, metrics, readyz or DLQ"; fi

# --- the endpoint dies --------------------------------------------------------
creds_endpoint_dies "$addr" 120
scrape_metrics "$addr" || notok "scrape /metrics"
m_err=$(metric 'imgsink_credentials_refreshes_total{source="container",result="error"}')
check "/metrics: failed refreshes counted ($m_err), the last error named, healthy 0" \
    bash -c '[ "${0:-0}" -ge 1 ] && grep -q "^imgsink_credentials_last_refresh_error{source=\"container\",error=\"credentials cannot be refreshed (container): container endpoint http://127.0.0.1:" "$1" &&
             grep -q "^imgsink_credentials_last_refresh_error_timestamp_seconds{source=\"container\"} [0-9]" "$1" &&
             grep -q "^imgsink_credentials_healthy{source=\"container\"} 0" "$1"' "$m_err" "$TMP/metrics.txt"
check "/healthz answers 503 after s3.credentials.unhealthy.restart.ms" \
    wait_for 120 bash -c '[ "$(curl -s -o "$1" -w "%{http_code}" "http://$0/healthz")" = 503 ] &&
        grep -q "credentials unusable for" "$1"' "$addr" "$TMP/healthz.txt"
note "healthz: $(cat "$TMP/healthz.txt")"
[ "$N_FAIL" -eq 0 ]
