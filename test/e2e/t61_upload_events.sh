#!/usr/bin/env bash
# The API path end to end, the store announcing uploads: a MinIO of this
# test's own (test/stack/minio-notify.sh), laid out as production is: uploads
# in the raw bucket under uploads/ (api.raw.bucket, api.raw.prefix), each
# published to a Kafka topic (its Kafka notification target, the AWS S3 event
# JSON), outputs in the bucket imgsink under processed/. The worker reads that
# topic in input.format=auto, beside the records that POST /v1/images
# produces into the same topic. The worker and the API run as the users of
# deploy/minio/policies (worker.json, api.json: their Allow statements, see
# test/stack/identity.sh); mc and `imgsink check`, which reads lifecycle
# rules, as that MinIO's admin, as an operator's would.
# - curl: upload URL -> PUT -> the event -> renditions tagged source=api
#   (mc) -> GET /v1/images/{id} processed, rendition URLs fetched by curl;
# - a non-image uploaded -> failed with the reason; a direct post -> processed;
# - events written with kcat: a key outside the raw prefix, a key outside the
#   layout, another bucket, a wrong ETag and a malformed event go to the DLQ
#   with their reasons; a delete event is counted and skipped; one record
#   with two uploads writes both;
# - the worker's keys read uploads/ of the raw bucket and nothing else there;
# - the raw bucket's uploads/ has its lifecycle rule (mc and imgsink check);
#   offsets reach the end.
. "$(dirname "$0")/lib.sh"

topic=$(unique_name uploads)
dlq="$topic.dlq"
group=$(unique_name g-up)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null
MN="$TMP/minio-notify"
stop_minio() { bash "$ROOT/test/stack/minio-notify.sh" stop "$MN"; }
trap 'stop_minio; e2e_cleanup' EXIT
bash "$ROOT/test/stack/minio-notify.sh" start "$MN" "$topic" 2>&1 | sed 's/^/# /'
# shellcheck disable=SC1091
. "$MN/env"
nmc() { $N_MC "$@"; }

KEY="acme-$RANDOM$RANDOM-secret"
echo "acme $(printf %s "$KEY" | sha256sum | cut -d' ' -f1)" >"$TMP/keys"
RB=$N_RAW_BUCKET RP=$N_RAW_PREFIX
write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "out" \
    "s3.endpoint=$N_ENDPOINT" "s3.bucket=$N_BUCKET" "s3.prefix=processed/" \
    "api.raw.bucket=$RB" "api.raw.prefix=$RP" "claimcheck.allowed=$RB/$RP{tenant}/" \
    "api.keys.file=$TMP/keys" "api.listen=127.0.0.1:0" "input.format=auto"
# The worker and the API with their own users on the notification MinIO
# (deploy/minio/policies/worker.json and api.json), never its admin.
start_worker w1 "$TMP/w.conf" "$N_WORKER_ACCESS_KEY" "$N_WORKER_SECRET_KEY" >/dev/null
IMGSINK_S3_ACCESS_KEY=$N_API_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$N_API_SECRET_KEY \
    "$IMGSINK" api -c "$TMP/w.conf" >>"$TMP/api.log" 2>&1 &
WORKER_PIDS+=($!)
A=""
for _ in $(seq 1 120); do
    A=$(grep -m1 '"component":"api".*"address"' "$TMP/api.log" 2>/dev/null |
        python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("address",""))' 2>/dev/null)
    [ -n "$A" ] && break
    sleep 0.5
done
check "imgsink api is up ($A)" test -n "$A"
AUTH=(-H "Authorization: Bearer $KEY")
req() {
    local out=$1
    shift
    curl -sS -o "$out" -w '%{http_code}' --max-time 60 "$@"
}
jfield() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$1" "$2" 2>/dev/null; }
status_of() { req "$TMP/s.json" "${AUTH[@]}" "http://$A/v1/images/$1" >/dev/null && jfield "$TMP/s.json" status; }
is_status() { [ "$(status_of "$1")" = "$2" ]; }
upload() { # upload FILE CONTENT_TYPE: prints the id; curl PUTs to the presigned URL
    local sz st
    sz=$(stat -c %s "$1")
    st=$(req "$TMP/up.json" "${AUTH[@]}" -X POST "http://$A/v1/uploads" \
        -d "{\"content_type\":\"$2\",\"size\":$sz}")
    [ "$st" = 201 ] || { notok "POST /v1/uploads $1: $st"; return 1; }
    jfield "$TMP/up.json" upload.url >>"$TMP/upload-urls"
    st=$(req "$TMP/put.out" -X PUT -H "Content-Type: $2" --data-binary @"$1" "$(jfield "$TMP/up.json" upload.url)")
    [ "$st" = 200 ] || { notok "PUT $1: $st"; return 1; }
    jfield "$TMP/up.json" id
}

vips gaussnoise "$TMP/a.v" 800 600 && vips copy "$TMP/a.v" "$TMP/a.jpg[Q=90]" || notok "vips a.jpg"
vips gaussnoise "$TMP/b.v" 300 300 && vips copy "$TMP/b.v" "$TMP/b.png" || notok "vips b.png"
printf 'these bytes are no image' >"$TMP/junk.png"

id1=$(upload "$TMP/a.jpg" image/jpeg)
id2=$(upload "$TMP/b.png" image/png)
idbad=$(upload "$TMP/junk.png" image/png)
note "uploads: $id1 $id2 $idbad"
nurls=$(grep -c "^$N_ENDPOINT/$RB/${RP}acme/[0-9]\{4\}/[0-9][0-9]/[0-9][0-9]/[^/?]*?" "$TMP/upload-urls")
check "the presigned URLs are for $RB/${RP}acme/YYYY/MM/DD/ID ($nurls of 3)" test "$nurls" = 3
st=$(req "$TMP/d.json" "${AUTH[@]}" -H "Content-Type: image/jpeg" --data-binary @"$TMP/a.jpg" "http://$A/v1/images")
check "POST /v1/images into the same topic: 202 ($st)" test "$st" = 202
idd=$(jfield "$TMP/d.json" id)

for id in "$id1" "$id2" "$idd"; do
    check "GET /v1/images/$id: processed" wait_for 240 is_status "$id" processed
done
check "GET /v1/images/$idbad: failed" wait_for 240 is_status "$idbad" failed
note "failed: $(cat "$TMP/s.json")"
check "the failure names the reason" grep -q 'not an image' "$TMP/s.json"

status_of "$id1" >/dev/null
python3 -c 'import json,sys
for n, r in sorted(json.load(open(sys.argv[1]))["renditions"].items()): print(n, r["url"])' "$TMP/s.json" >"$TMP/urls"
nok=0
while read -r name u; do
    st=$(req "$TMP/r-$name" "$u")
    [ "$st" = 200 ] && [[ "$(file -b --mime-type "$TMP/r-$name")" == image/* ]] && nok=$((nok + 1))
done <"$TMP/urls"
check "curl fetched every rendition URL of an upload ($nok of $(grep -c . "$TMP/urls"))" \
    test "$nok" -gt 0 -a "$nok" = "$(grep -c . "$TMP/urls")"
day=$(echo "$id1" | sed 's/^\(....\)\(..\)\(..\).*/\1\/\2\/\3/')
tag=$(nmc tag list --json "$N_ALIAS/$N_BUCKET/processed/acme/$day/$id1/metadata.json" |
    python3 -c 'import json,sys; t=json.load(sys.stdin).get("tagset",{}); print(t.get("source",""), t.get("retention",""))')
check "mc: the outputs of the upload are tagged source=api retention=7d ($tag)" test "$tag" = "api 7d"

# --- events written by hand (kcat): refused ones and a skipped one -------------------
sz=$(stat -c %s "$TMP/a.jpg")
etag=$(md5sum "$TMP/a.jpg" | cut -d' ' -f1)
nmc cp "$TMP/a.jpg" "$N_ALIAS/$RB/${RP}acme/2026/11/30/m1" >/dev/null
nmc cp "$TMP/a.jpg" "$N_ALIAS/$RB/${RP}acme/2026/11/30/m2" >/dev/null
nmc cp "$TMP/a.jpg" "$N_ALIAS/$RB/${RP}acme/bad-layout" >/dev/null
# Beside the uploads in the raw bucket: not the worker's to read.
nmc cp "$TMP/a.jpg" "$N_ALIAS/$RB/private/acme/2026/11/30/m1" >/dev/null
nmc mb "$N_ALIAS/elsewhere" >/dev/null
nmc cp "$TMP/a.jpg" "$N_ALIAS/elsewhere/${RP}acme/2026/11/30/e1" >/dev/null
ev() { # ev KEY NAME BUCKET ETAG: one record of an S3 event
    printf '{"eventName":"%s","s3":{"bucket":{"name":"%s"},"object":{"key":"%s","size":%s,"eTag":"%s","contentType":"image/jpeg"}}}' \
        "$2" "$3" "$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")" "$sz" "$4"
}
put_event() { # put_event KAFKAKEY JSON
    printf '%s' "$2" >"$TMP/ev.json"
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -p 0 -k "$1" "$TMP/ev.json" || notok "kcat $1"
}
put_event outside "{\"Records\":[$(ev private/acme/2026/11/30/m1 s3:ObjectCreated:Put "$RB" "$etag")]}"
put_event traversal "{\"Records\":[$(ev "${RP}../private/acme/2026/11/30/m1" s3:ObjectCreated:Put "$RB" "$etag")]}"
put_event layout "{\"Records\":[$(ev "${RP}acme/bad-layout" s3:ObjectCreated:Put "$RB" "$etag")]}"
put_event bucket "{\"Records\":[$(ev "${RP}acme/2026/11/30/e1" s3:ObjectCreated:Put elsewhere "$etag")]}"
put_event outbucket "{\"Records\":[$(ev "${RP}acme/2026/11/30/m1" s3:ObjectCreated:Put "$N_BUCKET" "$etag")]}"
put_event etag "{\"Records\":[$(ev "${RP}acme/2026/11/30/m1" s3:ObjectCreated:Put "$RB" 0123456789abcdef0123456789abcdef)]}"
put_event malformed '{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"x"}}}'
put_event deleted "{\"Records\":[$(ev "${RP}acme/2026/11/30/m1" s3:ObjectRemoved:Delete "$RB" "$etag")]}"
put_event two "{\"Records\":[$(ev "${RP}acme/2026/11/30/m1" ObjectCreated:Put "$RB" "$etag"),$(ev "${RP}acme/2026/11/30/m2" ObjectCreated:Put "$RB" "\\\"$etag\\\"")]}"
check "offsets committed to the end of the topic" wait_for 240 committed_equals_end "$group" "$topic" 1
dlq_dump "$dlq" >"$TMP/dlq.json"
python3 - "$TMP/dlq.json" "$RP" "$N_BUCKET" <<'PY'
import json, sys
rp, out = sys.argv[2], sys.argv[3]
want = {
    "outside": f"is not under the raw prefix {rp}",
    "traversal": f"does not follow the layout {rp}TENANT/YYYY/MM/DD/ID",
    "layout": f"does not follow the layout {rp}TENANT/YYYY/MM/DD/ID",
    "bucket": "elsewhere/" + rp + "acme/2026/11/30/e1 is not under an allowed prefix for tenant acme",
    "outbucket": out + "/" + rp + "acme/2026/11/30/m1 is not under an allowed prefix for tenant acme",
    "etag": "ETag mismatch: event says 0123456789abcdef0123456789abcdef",
    "malformed": "S3 event: not JSON",
}
got = {}
for line in open(sys.argv[1], errors="replace"):
    m = json.loads(line)
    h = m.get("headers") or []
    got[m.get("key")] = dict(zip(h[0::2], h[1::2]))
def check(c, what): print(("ok - " if c else "not ok - ") + what)
extra = sorted(k for k in got if k not in want)
# MinIO's own event for uploads/acme/bad-layout is refused too (its Kafka key is MinIO's).
check(all(k in got for k in want), f"the refused events are in the DLQ (others: {extra})")
for k, words in want.items():
    reason = got.get(k, {}).get("imgsink.error.message", "")
    print(f"# DLQ {k}: class={got.get(k, {}).get('imgsink.error.class')} reason={reason!r}")
    check(words in reason, f"{k}: reason says '{words}'")
check("deleted" not in got and "two" not in got,
      "the delete event and the two-upload record (AWS names, a quoted ETag) are not dead letters: "
      + got.get("two", {}).get("imgsink.error.message", ""))
PY
[ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))
# The worker's keys, with mc: the uploads of the raw bucket are theirs to
# read (the claim checks above), the rest of that bucket is not.
wmc() { MC_HOST_nworker="http://$N_WORKER_ACCESS_KEY:$N_WORKER_SECRET_KEY@${N_ENDPOINT#http://}" $N_MC "$@"; }
worker_reads() { wmc cat "nworker/$1" 2>"$TMP/wmc.err" | cmp -s - "$2"; }
check "mc with the worker's keys: GET of $RB/${RP}acme/2026/11/30/m1 gives the uploaded bytes" \
    worker_reads "$RB/${RP}acme/2026/11/30/m1" "$TMP/a.jpg"
what="mc with the worker's keys: GET of $RB/private/acme/2026/11/30/m1 (outside $RP) refused"
if wmc cat "nworker/$RB/private/acme/2026/11/30/m1" >"$TMP/wmc.out" 2>&1; then
    notok "$what: allowed"
elif grep -q -e 'Access Denied' -e 'Insufficient permissions' "$TMP/wmc.out"; then
    # mc words the store's AccessDenied "Insufficient permissions ...".
    ok "$what: $(grep -o -e 'Access Denied[^`]*' -e 'Insufficient permissions[^`]*' "$TMP/wmc.out" | head -1)"
else
    notok "$what: $(head -c 300 "$TMP/wmc.out")"
fi
for m in m1 m2; do
    check "the two-upload record wrote $m" nmc stat "$N_ALIAS/$N_BUCKET/processed/acme/2026/11/30/$m/metadata.json" >/dev/null
done
addr=$(http_address w1) && scrape_metrics "$addr"
check "metrics: delete events counted as skipped ($(metric 'imgsink_s3_events_total{kind="skipped"}'))" \
    test "$(metric 'imgsink_s3_events_total{kind="skipped"}')" -ge 1
nmc ilm rule export "$N_ALIAS/$RB" >"$TMP/ilm.json"
check "mc: $RB/$RP has a lifecycle rule" python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))["Rules"]
sys.exit(0 if any(x.get("Filter",{}).get("Prefix")==sys.argv[2] and x.get("Expiration",{}).get("Days") for x in r) else 1)' "$TMP/ilm.json" "$RP"
# check reads the lifecycle rules, which neither the worker's nor the API's
# policy grants: the admin's keys, as an operator runs it.
IMGSINK_S3_ACCESS_KEY=$N_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$N_SECRET_KEY \
    "$IMGSINK" check -c "$TMP/w.conf" >"$TMP/check.out" 2>&1
grep '^\(ok\|FAIL\) .*\(expire\|lifecycle\)' "$TMP/check.out" | sed 's/^/# check: /'
check "imgsink check: ok for the rule of api.raw.bucket $RB" \
    grep -q "^ok .*uploads under $RP expire after 2 days in api.raw.bucket $RB\$" "$TMP/check.out"
check "imgsink check: ok for the retention rule of $N_BUCKET" grep -q '^ok .*tag retention=7d, objects expire after 7 days' "$TMP/check.out"
exit $((N_FAIL > 0))
