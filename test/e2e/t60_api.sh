#!/usr/bin/env bash
# `imgsink api`, driven by curl (not our client) against the real stack:
# - authentication: no key and a wrong key get 401 with a JSON {code, message};
#   another tenant's id is 404;
# - POST /v1/uploads gives a presigned PUT that MinIO accepts for the declared
#   type and size, and refuses for a bigger body, another content type, and
#   once expired; 413/415 for a size or type over the limits;
# - POST /v1/images publishes the record (kcat reads it, source=api); the
#   worker writes the renditions (mc: tag source=api); GET /v1/images/{id}
#   goes pending -> processed with rendition URLs curl can fetch;
# - a non-image posted goes to the DLQ and GET answers failed with the reason;
# - a flood over the tenant's rate gets 429 with Retry-After;
# - the access log holds neither keys nor signatures.
. "$(dirname "$0")/lib.sh"

topic=$(unique_name api)
dlq="$topic.dlq"
group=$(unique_name g-api)
prefix=$(out_prefix t60)
raw="$(raw_prefix t60)/" # uploads/...: where the API's policy lets it presign PUTs
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

KEY_ACME="acme-$RANDOM$RANDOM-secret"
KEY_GLOBEX="globex-$RANDOM$RANDOM-secret"
h() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
{
    echo "# tenant sha256(key)"
    echo "acme $(h "$KEY_ACME")"
    echo "globex $(h "$KEY_GLOBEX")"
} >"$TMP/keys"

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" \
    "limits.max.input.bytes=1MiB" "api.keys.file=$TMP/keys" "api.listen=127.0.0.1:0" \
    "api.raw.bucket=$S3_RAW_BUCKET" "api.raw.prefix=$raw" "api.max.direct.bytes=256KiB"
start_worker w1 "$TMP/w.conf" >/dev/null
# The API's identity, as the stack made it: deploy/minio/policies/api.json
# (PutObject under raw/uploads/, where api.raw.bucket and api.raw.prefix put
# the uploads; GetObject under processed/; nothing else).
API_AK=$S3_API_ACCESS_KEY API_SK=$S3_API_SECRET_KEY
# start_api and api_address: test/e2e/lib.sh (the same identity).
start_api api1 "$TMP/w.conf"
API1_PID=$API_PID
start_api api2 "$TMP/w.conf" api.upload.expires.s=2 api.rate.per.second=1 api.rate.burst=3
A=$(api_address api1) || notok "api1 did not start"
A2=$(api_address api2) || notok "api2 did not start"
note "api1 on $A, api2 on $A2"

# req OUT CURL_ARGS...: the body into OUT, prints the HTTP status.
req() {
    local out=$1
    shift
    curl -sS -o "$out" -w '%{http_code}' --max-time 60 "$@"
}
jfield() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$1" "$2" 2>/dev/null; }

check "/healthz 200" test "$(req "$TMP/o" "http://$A/healthz")" = 200
check "/readyz 200 (keys loaded)" wait_for 60 test "$(req "$TMP/o" "http://$A/readyz")" = 200

# --- bad configuration stops start-up with key, value and what was expected ----
bad_start() { # bad_start WORDS -X key=value...: exit 2 and WORDS on stderr
    local words=$1 rc
    shift
    IMGSINK_S3_ACCESS_KEY=$API_AK IMGSINK_S3_SECRET_KEY=$API_SK \
        timeout 60 "$IMGSINK" api -c "$TMP/w.conf" "$@" >"$TMP/bad.out" 2>&1
    rc=$?
    [ $rc -eq 2 ] && grep -qF -- "$words" "$TMP/bad.out" || { sed 's/^/# /' "$TMP/bad.out"; return 1; }
}
check "no api.keys.file: exit 2" bad_start "api.keys.file: required by imgsink api" -X api.keys.file=
check "api.raw.prefix without '/': exit 2" bad_start "api.raw.prefix=raw: expected a key prefix ending with '/'" -X api.raw.prefix=raw
check "api.raw.prefix inside s3.prefix of the same bucket: exit 2" bad_start "expected a prefix apart from s3.prefix" -X api.raw.bucket= -X "api.raw.prefix=$prefix/raw/"
check "api.raw.bucket with a path in it: exit 2" bad_start "api.raw.bucket=raw/../imgsink: expected an S3 bucket name" -X "api.raw.bucket=raw/../imgsink"
check "api.raw.bucket in capitals: exit 2" bad_start "api.raw.bucket=RAW: expected an S3 bucket name" -X "api.raw.bucket=RAW"
check "api.upload.expires.s over an hour: exit 2" bad_start "api.upload.expires.s" -X api.upload.expires.s=7200
printf 'acme not-a-hash\n' >"$TMP/badkeys"
check "a keys file that does not parse: exit 2" bad_start "api.keys.file=$TMP/badkeys: cannot be loaded" -X "api.keys.file=$TMP/badkeys"

# --- authentication -------------------------------------------------------------
st=$(req "$TMP/nokey.json" -X POST "http://$A/v1/uploads" -d '{"content_type":"image/jpeg","size":10}')
check "no key: 401 ($st)" test "$st" = 401
check "no key: JSON code unauthorized" test "$(jfield "$TMP/nokey.json" code)" = unauthorized
st=$(req "$TMP/badkey.json" -H "Authorization: Bearer $KEY_ACME-x" -X POST "http://$A/v1/uploads" \
    -d '{"content_type":"image/jpeg","size":10}')
check "wrong key: 401 ($st)" test "$st" = 401
st=$(req "$TMP/basic.json" -u "acme:$KEY_ACME" "http://$A/v1/images/x")
check "basic auth instead of a bearer key: 401 ($st)" test "$st" = 401

AUTH=(-H "Authorization: Bearer $KEY_ACME")
AUTHG=(-H "Authorization: Bearer $KEY_GLOBEX")

# --- presigned uploads ------------------------------------------------------------
vips gaussnoise "$TMP/a.v" 640 480 && vips copy "$TMP/a.v" "$TMP/a.jpg[Q=90]" || notok "vips a.jpg"
sz=$(stat -c %s "$TMP/a.jpg")
st=$(req "$TMP/up.json" "${AUTH[@]}" -X POST "http://$A/v1/uploads" \
    -d "{\"content_type\":\"image/jpeg\",\"size\":$sz,\"filename\":\"a.jpg\"}")
check "POST /v1/uploads: 201 ($st)" test "$st" = 201
uid=$(jfield "$TMP/up.json" id)
url=$(jfield "$TMP/up.json" upload.url)
note "upload id $uid, expires_at $(jfield "$TMP/up.json" expires_at)"
check "the URL is for the raw prefix, the tenant and the id" \
    grep -q "/$S3_RAW_BUCKET/${raw}acme/[0-9]\{4\}/[0-9][0-9]/[0-9][0-9]/$uid?" <<<"$url"
head -c $((sz + 1)) /dev/urandom >"$TMP/big.bin"
st=$(req "$TMP/put-big.xml" -X PUT -H "Content-Type: image/jpeg" --data-binary @"$TMP/big.bin" "$url")
check "PUT of a bigger body: refused by MinIO ($st, $(grep -o '<Code>[^<]*' "$TMP/put-big.xml"))" test "$st" = 403
st=$(req "$TMP/put-ct.xml" -X PUT -H "Content-Type: image/png" --data-binary @"$TMP/a.jpg" "$url")
check "PUT with another content type: refused by MinIO ($st, $(grep -o '<Code>[^<]*' "$TMP/put-ct.xml"))" test "$st" = 403
st=$(req "$TMP/put.xml" -X PUT -H "Content-Type: image/jpeg" --data-binary @"$TMP/a.jpg" "$url")
check "PUT of the declared image: 200 ($st)" test "$st" = 200
rawkey=$(sed -n "s|.*/$S3_RAW_BUCKET/\([^?]*\)?.*|\1|p" <<<"$url")
got=$(mc stat --json "$MC_ALIAS/$S3_RAW_BUCKET/$rawkey" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["size"], d.get("metadata",{}).get("Content-Type",""))')
check "mc stat: the raw object is $sz bytes, image/jpeg ($got)" test "$got" = "$sz image/jpeg"

st=$(req "$TMP/up2.json" "${AUTH[@]}" -X POST "http://$A2/v1/uploads" \
    -d "{\"content_type\":\"image/jpeg\",\"size\":$sz}")
url2=$(jfield "$TMP/up2.json" upload.url)
sleep 4
st=$(req "$TMP/put-exp.xml" -X PUT -H "Content-Type: image/jpeg" --data-binary @"$TMP/a.jpg" "$url2")
check "PUT after expiry: refused ($st, $(grep -o '<Message>[^<]*' "$TMP/put-exp.xml"))" test "$st" = 403

st=$(req "$TMP/o.json" "${AUTH[@]}" -X POST "http://$A/v1/uploads" -d '{"content_type":"text/plain","size":10}')
check "content type outside limits.formats: 415 ($st)" test "$st" = 415
st=$(req "$TMP/o.json" "${AUTH[@]}" -X POST "http://$A/v1/uploads" \
    -d "{\"content_type\":\"image/png\",\"size\":$((1024 * 1024 + 1))}")
check "size over limits.max.input.bytes: 413 ($st, $(jfield "$TMP/o.json" message))" test "$st" = 413
for body in '' '[]' '{"content_type":"image/jpeg"}' '{"content_type":7,"size":1}' \
    '{"content_type":"image/jpeg","size":-1}' '{"content_type":"image/jpeg","size":1,"size":2}' \
    "$(head -c 3000 /dev/urandom | base64 -w0)"; do
    st=$(req "$TMP/o.json" "${AUTH[@]}" -X POST "http://$A/v1/uploads" --data-binary "$body")
    [ "$st" = 400 ] || notok "malformed body ${body:0:40}: $st, expected 400"
done
ok "malformed JSON bodies: 400 each"
head -c 20000 /dev/zero | tr '\0' ' ' >"$TMP/pad.json"
st=$(req "$TMP/o.json" "${AUTH[@]}" -X POST "http://$A/v1/uploads" --data-binary @"$TMP/pad.json")
check "JSON body over api.max.body.bytes: 413 ($st)" test "$st" = 413

# --- direct posts, processed by the worker ----------------------------------------
st=$(req "$TMP/d.json" "${AUTH[@]}" -H "Content-Type: image/jpeg" --data-binary @"$TMP/a.jpg" "http://$A/v1/images")
check "POST /v1/images: 202 ($st)" test "$st" = 202
did=$(jfield "$TMP/d.json" id)
printf 'not an image at all' >"$TMP/bad.jpg"
st=$(req "$TMP/dbad.json" "${AUTH[@]}" -H "Content-Type: image/jpeg" --data-binary @"$TMP/bad.jpg" "http://$A/v1/images")
check "POST /v1/images of a non-image: 202 ($st)" test "$st" = 202
badid=$(jfield "$TMP/dbad.json" id)
head -c $((300 * 1024)) /dev/urandom >"$TMP/huge.jpg"
st=$(req "$TMP/o.json" "${AUTH[@]}" -H "Content-Type: image/jpeg" --data-binary @"$TMP/huge.jpg" "http://$A/v1/images")
check "POST /v1/images over api.max.direct.bytes: 413 ($st)" test "$st" = 413
st=$(req "$TMP/o.json" "${AUTH[@]}" -H "Content-Type: application/pdf" --data-binary @"$TMP/a.jpg" "http://$A/v1/images")
check "POST /v1/images of application/pdf: 415 ($st)" test "$st" = 415

kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -e -q -f '%k\n' >"$TMP/keys.txt" 2>/dev/null
check "kcat: the topic holds exactly the two posted records" \
    test "$(sort "$TMP/keys.txt" | tr '\n' ' ')" = "$(printf '%s\n' "$did" "$badid" | sort | tr '\n' ' ')"

status_of() { req "$TMP/s.json" "${AUTH[@]}" "http://$A/v1/images/$1" >/dev/null && jfield "$TMP/s.json" status; }
is_status() { [ "$(status_of "$1")" = "$2" ]; }
check "GET /v1/images/$did: processed" wait_for 180 is_status "$did" processed
cp "$TMP/s.json" "$TMP/processed.json"
python3 - "$TMP/processed.json" <<'PY' >"$TMP/urls"
import json, sys
d = json.load(open(sys.argv[1]))
for name, r in sorted(d.get("renditions", {}).items()):
    print(name, r["url"])
PY
nurl=0
while read -r name u; do
    st=$(req "$TMP/r-$name" "$u")
    ct=$(file -b --mime-type "$TMP/r-$name")
    if [ "$st" = 200 ] && [[ "$ct" == image/* ]]; then nurl=$((nurl + 1)); else notok "rendition $name: $st $ct"; fi
done <"$TMP/urls"
check "every rendition URL fetched by curl is an image ($nurl of $(grep -c . "$TMP/urls"))" \
    test "$nurl" -gt 0 -a "$nurl" = "$(grep -c . "$TMP/urls")"
day=$(echo "$did" | sed 's/^\(....\)\(..\)\(..\).*/\1\/\2\/\3/')
tags=$(mc tag list --json "$MC_ALIAS/$S3_BUCKET/$prefix/acme/$day/$did/metadata.json" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("tagset",{}).get("source",""))')
check "mc: the outputs are tagged source=api ($tags)" test "$tags" = api

check "GET /v1/images/$badid: failed" wait_for 180 is_status "$badid" failed
note "failed: $(cat "$TMP/s.json")"
check "the failure has a reason" test -n "$(jfield "$TMP/s.json" reason)"
check "the DLQ holds the non-image" wait_for 60 sh -c "kcat -C -b '$KAFKA_BOOTSTRAP' -t '$dlq' -e -q -f '%k\n' 2>/dev/null | grep -qx '$badid'"

st=$(req "$TMP/o.json" "${AUTHG[@]}" "http://$A/v1/images/$did")
check "another tenant's id: 404 ($st)" test "$st" = 404
st=$(req "$TMP/o.json" "${AUTH[@]}" "http://$A/v1/images/${did:0:26}00000000")
check "a forged id: 404 ($st)" test "$st" = 404
st=$(req "$TMP/o.json" "${AUTH[@]}" "http://$A/v1/images/..%2F..%2Fx")
check "a traversal id: 404 ($st)" test "$st" = 404
st=$(req "$TMP/o.json" "${AUTH[@]}" "http://$A/v1/images/$uid")
check "an upload not yet processed: pending ($(jfield "$TMP/o.json" status))" test "$(jfield "$TMP/o.json" status)" = pending

# --- rate limit (api2: 1/s, burst 3) -------------------------------------------------
# One curl process, one kept-alive connection, 30 requests as fast as it
# goes: at most burst (3) + 1 per elapsed second may pass, whatever the load.
urls=()
for i in $(seq 1 30); do urls+=("http://$A2/v1/images/$did"); done
t0=$SECONDS
curl -sS -D "$TMP/hdr" -o /dev/null -w '%{http_code}\n' "${AUTHG[@]}" "${urls[@]}" >"$TMP/codes"
el=$((SECONDS - t0 + 1))
n429=$(grep -c '^429$' "$TMP/codes")
npass=$(grep -c '^404$' "$TMP/codes") # another tenant's id: 404 when let through
ra=$(tr -d '\r' <"$TMP/hdr" | sed -n 's/^Retry-After: //ip' | head -1)
check "a flood of 30 requests: $npass passed, $n429 got 429 (at most 3 + $el may pass)" \
    test "$n429" -gt 0 -a "$npass" -le $((3 + el)) -a $((n429 + npass)) -eq 30
check "429 comes with Retry-After ($ra)" test -n "$ra"
st=$(req "$TMP/o.json" "${AUTH[@]}" "http://$A2/v1/images/$did")
check "another tenant is not limited by it ($st)" test "$st" = 200

# --- keys reload ---------------------------------------------------------------
KEY_NEW="initech-$RANDOM$RANDOM-secret"
echo "initech $(h "$KEY_NEW")" >>"$TMP/keys"
kill -HUP "$API1_PID"
ok_new() { [ "$(req "$TMP/o.json" -H "Authorization: Bearer $KEY_NEW" "http://$A/v1/images/$did")" = 404 ]; }
check "a key added to the file works without a restart" wait_for 30 ok_new

# --- what the logs and metrics say ------------------------------------------------
if grep -q -e "$KEY_ACME" -e "$KEY_GLOBEX" -e "X-Amz-Signature" -e "Bearer" "$TMP"/api*.log "$TMP"/w1.log; then
    notok "a key or a signature is in a log"
else
    ok "no key, no Authorization, no signature in the logs"
fi
check "access log lines name method, path, status and tenant" \
    grep -q '"component":"access".*"method":"POST","path":"/v1/images","status":202,"tenant":"acme"' "$TMP/api1.log"
curl -fsS "http://$A/metrics" >"$TMP/metrics.txt"
check "metrics: imgsink_api_records_total 2" test "$(metric imgsink_api_records_total)" = 2
check "metrics on api2: 429s counted" test "$(curl -fsS "http://$A2/metrics" | awk '$1=="imgsink_api_rate_limited_total"{print $2}')" -ge 5
check "the worker committed both records" wait_for 120 committed_equals_end "$group" "$topic" 1
# The stack's raw bucket has no lifecycle rules. With the admin identity:
# check reads the lifecycle rules, which neither the worker's nor the API's
# policy may.
as_operator "$IMGSINK" check -c "$TMP/w.conf" >"$TMP/check.out" 2>&1
check "imgsink check: FAIL for uploads in api.raw.bucket $S3_RAW_BUCKET without a lifecycle rule" \
    grep -q "^FAIL .*api.raw.bucket $S3_RAW_BUCKET has no lifecycle configuration: uploads under $raw" "$TMP/check.out"
# With api.raw.bucket empty, the uploads share s3.bucket, which has the
# retention rules only (deploy/minio/lifecycle.json).
as_operator "$IMGSINK" check -c "$TMP/w.conf" -X api.raw.bucket= -X "api.raw.prefix=raw-$RANDOM/" >"$TMP/check2.out" 2>&1
check "imgsink check: FAIL for uploads under s3.bucket's raw prefix without a lifecycle rule" \
    grep -q "^FAIL .*no enabled rule without a tag filter expires the uploads under api.raw.prefix raw-" "$TMP/check2.out"
exit $((N_FAIL > 0))
