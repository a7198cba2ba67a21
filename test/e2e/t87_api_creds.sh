#!/usr/bin/env bash
# `imgsink api` signs with the worker's credentials chain, refreshed. A local
# container-credentials endpoint (test/e2e/creds_server.py) hands out real
# temporary credentials from MinIO's STS with a 20 s declared lifetime; the
# API has no keys of its own. Checked with curl and mc:
#   - without api.id.key, start-up stops naming it (temporary keys change);
#   - a presigned upload URL carries X-Amz-Security-Token and the access key
#     the endpoint handed out; curl PUTs to it and MinIO has the bytes (mc);
#   - after a refresh, a new URL carries the new access key and works too;
#   - GET /v1/images/{id} reads the store with the same credentials;
#   - /metrics has the credential series; no secret handed out is in the
#     log, /metrics or /readyz;
#   - the endpoint dies: /readyz answers 503 naming the reason, /metrics
#     counts the failed refresh and its error.
. "$(dirname "$0")/lib.sh"
# shellcheck disable=SC1091
. "$ROOT/test/stack/common.sh"

topic=$(unique_name apicreds)
dlq="$topic.dlq"
group=$(unique_name g-apicreds)
prefix=$(unique_name t87)
raw="raw-$prefix/"
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
trap 'creds_endpoint_cleanup; e2e_cleanup' EXIT
creds_endpoint_start readwrite

KEY="acme-$RANDOM$RANDOM-apikey"
IDKEY="id-key-$RANDOM$RANDOM$RANDOM"
echo "acme $(printf %s "$KEY" | sha256sum | cut -d' ' -f1)" >"$TMP/keys"
write_conf "$TMP/a.conf" "$topic" "$dlq" "$group" "$prefix" \
    "api.keys.file=$TMP/keys" "api.listen=127.0.0.1:0" "api.raw.prefix=$raw" \
    "s3.credentials.refresh.margin.ms=5000"
run_api=(env -u IMGSINK_API_ID_KEY "${CREDS_ENV[@]}" "$IMGSINK")

"${run_api[@]}" api -c "$TMP/a.conf" >"$TMP/noid.log" 2>&1
rc=$?
check "without api.id.key nor s3.secret.key, imgsink api stops (exit $rc) naming api.id.key" \
    bash -c '[ "$0" -eq 2 ] && grep -q "api.id.key: required by imgsink api" "$1"' $rc "$TMP/noid.log"

"${run_api[@]}" api -c "$TMP/a.conf" -X "api.id.key=$IDKEY" >>"$TMP/api.log" 2>&1 &
WORKER_PIDS+=($!)
api_address() {
    grep -m1 '"component":"api".*"address"' "$TMP/api.log" 2>/dev/null |
        python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("address",""))' 2>/dev/null
}
wait_for 60 bash -c "grep -q '\"component\":\"api\".*\"address\"' '$TMP/api.log'" || notok "the API logged its address"
A=$(api_address)
note "api on $A"
check "the API takes its credentials from the container endpoint" \
    grep -q '"store credentials from container"' "$TMP/api.log"
check "/readyz 200" wait_for 60 test "$(curl -s -o /dev/null -w '%{http_code}' "http://$A/readyz")" = 200

vips gaussnoise "$TMP/i.v" 160 120 --sigma 25 && vips copy "$TMP/i.v" "$TMP/i.jpg[Q=85]" || notok "vips"
size=$(stat -c %s "$TMP/i.jpg")
# presign OUT: POST /v1/uploads; the reply into OUT, prints the status.
presign() {
    curl -sS -o "$1" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' \
        -d "{\"content_type\":\"image/jpeg\",\"size\":$size}" "http://$A/v1/uploads"
}
# url_part FILE WHAT: from the reply's URL: token (X-Amz-Security-Token),
# ak (the access key of X-Amz-Credential), key (the object key), url, id.
url_part() {
    python3 - "$1" "$2" <<'EOF'
import json, sys, urllib.parse
d = json.load(open(sys.argv[1]))
u = urllib.parse.urlsplit(d["upload"]["url"])
q = urllib.parse.parse_qs(u.query)
w = sys.argv[2]
if w == "token": print(q.get("X-Amz-Security-Token", [""])[0])
elif w == "ak": print(q["X-Amz-Credential"][0].split("/")[0])
elif w == "key": print(urllib.parse.unquote(u.path).split("/", 2)[2])
elif w == "url": print(d["upload"]["url"])
elif w == "id": print(d["id"])
EOF
}
last_issued_ak() { grep '^issued ' "$TMP/creds-server.log" | tail -1 | awk '{print $2}'; }
upload() { # upload REPLY: curl PUTs the image to the presigned URL; prints the status
    curl -sS -o "$TMP/put.out" -w '%{http_code}' --max-time 30 -X PUT -H 'Content-Type: image/jpeg' \
        --data-binary @"$TMP/i.jpg" "$(url_part "$1" url)"
}
same_bytes() { mc cat "$MC_ALIAS/$S3_BUCKET/$1" >"$TMP/got" 2>/dev/null && cmp -s "$TMP/got" "$TMP/i.jpg"; }

st=$(presign "$TMP/u1.json")
check "POST /v1/uploads: 201" test "$st" = 201
ak1=$(url_part "$TMP/u1.json" ak)
check "the URL carries X-Amz-Security-Token (temporary credentials)" test -n "$(url_part "$TMP/u1.json" token)"
check "the URL is signed with an access key the endpoint handed out ($ak1)" \
    grep -q "^issued $ak1 " "$TMP/creds-server.log"
st=$(upload "$TMP/u1.json")
check "curl PUT to the presigned URL: 200 (got $st)" test "$st" = 200
k1=$(url_part "$TMP/u1.json" key)
check "MinIO has the uploaded bytes (mc cat | cmp)" same_bytes "$k1"

refreshed() { [ "$(grep -c '"msg":"credentials refreshed"' "$TMP/api.log")" -ge 1 ]; }
check "the API refreshed its credentials before expiry" wait_for 60 refreshed
check "the endpoint handed out new keys" test "$(last_issued_ak)" != "$ak1"
st=$(presign "$TMP/u2.json")
ak2=$(url_part "$TMP/u2.json" ak)
note "first URL signed by $ak1, after the refresh by $ak2"
check "after the refresh, a new URL uses the new access key" \
    bash -c '[ "$0" = 201 ] && [ "$1" != "$2" ] && grep -q "^issued $1 " "$3"' "$st" "$ak2" "$ak1" "$TMP/creds-server.log"
check "...and its session token is a new one" \
    test "$(url_part "$TMP/u2.json" token)" != "$(url_part "$TMP/u1.json" token)"
st=$(upload "$TMP/u2.json")
k2=$(url_part "$TMP/u2.json" key)
check "curl PUT to the new URL: 200 (got $st)" test "$st" = 200
check "MinIO has those bytes too (mc cat | cmp)" same_bytes "$k2"

id2=$(url_part "$TMP/u2.json" id)
st=$(curl -sS -o "$TMP/status.json" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $KEY" \
    "http://$A/v1/images/$id2")
check "GET /v1/images/{id} reads the store with the chain's credentials: 200 pending (got $st)" \
    bash -c '[ "$0" = 200 ] && grep -q "\"status\": *\"pending\"" "$1"' "$st" "$TMP/status.json"

curl -fsS --max-time 5 "http://$A/metrics" >"$TMP/metrics.txt" || notok "scrape /metrics"
grep '^imgsink_credentials' "$TMP/metrics.txt" | sed 's/^/# /'
ok_refreshes=$(metric 'imgsink_credentials_refreshes_total{source="container",result="ok"}')
expiry=$(metric 'imgsink_credentials_expiry_seconds{source="container"}')
check "/metrics: refreshes by source and result (ok=$ok_refreshes >= 1)" test "${ok_refreshes:-0}" -ge 1
check "/metrics: seconds until expiry within the 20 s lifetime (got $expiry)" \
    bash -c '[ -n "$0" ] && [ "$0" -le 20 ] && [ "$0" -ge -5 ]' "$expiry"
check "/metrics: healthy 1" test "$(metric 'imgsink_credentials_healthy{source="container"}')" = 1
curl -s --max-time 5 "http://$A/readyz" >"$TMP/readyz1.txt"

# --- the endpoint dies ----------------------------------------------------------
creds_endpoint_dies "$A" 90 "store credentials: "
curl -fsS --max-time 5 "http://$A/metrics" >"$TMP/metrics2.txt" || notok "scrape /metrics"
cp "$TMP/metrics2.txt" "$TMP/metrics.txt"
grep '^imgsink_credentials' "$TMP/metrics.txt" | cut -c1-200 | sed 's/^/# /'
check "/metrics: the failed refresh is counted and its error shown" \
    bash -c '[ "${0:-0}" -ge 1 ] && grep -q "^imgsink_credentials_last_refresh_error{source=\"container\",error=\"credentials cannot be refreshed (container): container endpoint http://127.0.0.1" "$1" &&
             grep -q "^imgsink_credentials_healthy{source=\"container\"} 0" "$1"' \
    "$(metric 'imgsink_credentials_refreshes_total{source="container",result="error"}')" "$TMP/metrics.txt"

# --- secrets ----------------------------------------------------------------------
cat "$CREDS_AUTH_TOKEN" >>"$CREDS_ISSUED"
echo >>"$CREDS_ISSUED"
echo "$IDKEY" >>"$CREDS_ISSUED"
echo "$KEY" >>"$CREDS_ISSUED"
note "$(grep -c . "$CREDS_ISSUED") secrets handed out or set"
if creds_leaks "$TMP/api.log" "$TMP/noid.log" "$TMP/metrics.txt" "$TMP/readyz1.txt" \
    "$TMP/readyz2.txt"; then notok "no secret in the API's log, /metrics or /readyz"; else
    ok "no session token, secret key, authorization token, id key or API key in the API's log, /metrics or /readyz"; fi
[ "$N_FAIL" -eq 0 ]
