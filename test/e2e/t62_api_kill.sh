#!/usr/bin/env bash
# A worker killed (SIGKILL) during a burst of API uploads: every upload ends
# processed or failed, none is lost. A MinIO of the test's own publishes the
# uploads to Kafka (test/stack/minio-notify.sh: uploads in the raw bucket
# under uploads/, outputs in imgsink under processed/); curl uploads through
# presigned PUTs and direct posts; two workers share the group, one is killed
# while the burst is processed and a new one takes its place. The workers and
# the API run as the users of deploy/minio/policies (worker.json, api.json),
# mc as that MinIO's admin.
. "$(dirname "$0")/lib.sh"

topic=$(unique_name apikill)
dlq="$topic.dlq"
group=$(unique_name g-apikill)
bash "$ROOT/test/stack/topic.sh" "$topic" 3 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null
MN="$TMP/minio-notify"
trap 'bash "$ROOT/test/stack/minio-notify.sh" stop "$MN"; e2e_cleanup' EXIT
bash "$ROOT/test/stack/minio-notify.sh" start "$MN" "$topic" 2>&1 | sed 's/^/# /'
# shellcheck disable=SC1091
. "$MN/env"

KEY="acme-$RANDOM$RANDOM-secret"
echo "acme $(printf %s "$KEY" | sha256sum | cut -d' ' -f1)" >"$TMP/keys"
write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "out" \
    "s3.endpoint=$N_ENDPOINT" "s3.bucket=$N_BUCKET" "s3.prefix=processed/" \
    "api.raw.bucket=$N_RAW_BUCKET" "api.raw.prefix=$N_RAW_PREFIX" \
    "claimcheck.allowed=$N_RAW_BUCKET/$N_RAW_PREFIX{tenant}/" \
    "api.keys.file=$TMP/keys" "api.listen=127.0.0.1:0" "api.rate.per.second=1000" \
    "api.rate.burst=1000" "worker.threads=2"
# The workers and the API with their own users on the notification MinIO,
# never its admin.
WK=("$N_WORKER_ACCESS_KEY" "$N_WORKER_SECRET_KEY")
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
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[k]
print(d)' "$1" 2>/dev/null; }

# The burst, before any worker runs so the kill lands in the middle of it:
# 16 presigned uploads and 8 direct posts of distinct images, one of every
# 12 not an image.
: >"$TMP/ids"
vips gaussnoise "$TMP/base.v" 2400 1800 || notok "vips base image"
for i in $(seq 1 24); do
    f="$TMP/img$i.jpg"
    if [ $((i % 12)) -eq 0 ]; then
        head -c 2000 /dev/urandom >"$f"
    else
        vips copy "$TMP/base.v" "$f[Q=$((60 + i))]"
    fi
    if [ $((i % 3)) -eq 0 ]; then
        id=$(curl -sS "${AUTH[@]}" -H "Content-Type: image/jpeg" --data-binary @"$f" "http://$A/v1/images" | jget id)
    else
        sz=$(stat -c %s "$f")
        curl -sS "${AUTH[@]}" -X POST "http://$A/v1/uploads" -d "{\"content_type\":\"image/jpeg\",\"size\":$sz}" >"$TMP/up.json"
        id=$(jget id <"$TMP/up.json")
        url=$(jget upload.url <"$TMP/up.json")
        st=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: image/jpeg" --data-binary @"$f" "$url")
        [ "$st" = 200 ] || notok "PUT $i: $st"
    fi
    [ -n "$id" ] && echo "$id" >>"$TMP/ids" || notok "upload $i gave no id"
done
check "24 uploads accepted" test "$(grep -c . "$TMP/ids")" = 24
nraw=$($N_MC ls -r --json "$N_ALIAS/$N_RAW_BUCKET/${N_RAW_PREFIX}acme/" 2>/dev/null | grep -c '"type":"file"')
check "mc: the 16 presigned uploads are in $N_RAW_BUCKET/${N_RAW_PREFIX}acme/ ($nraw)" test "$nraw" = 16
w1=$(start_worker w1 "$TMP/w.conf" "${WK[@]}")
start_worker w2 "$TMP/w.conf" "${WK[@]}" >/dev/null

done_count() {
    local n=0 s id
    while read -r id; do
        s=$(curl -sS "${AUTH[@]}" "http://$A/v1/images/$id" | jget status)
        case $s in processed | failed) n=$((n + 1)) ;; esac
    done <"$TMP/ids"
    echo "$n"
}
# Kill w1 once the burst is partly done.
deadline=$((SECONDS + 300))
written() { $N_MC ls -r --json "$N_ALIAS/$N_BUCKET/processed/" 2>/dev/null | grep -c 'metadata.json'; }
while [ $SECONDS -lt $deadline ] && [ "$(written)" -lt 4 ]; do
    sleep 0.5
done
before=$(written)
kill -KILL "$w1"
wait "$w1" 2>/dev/null
WORKER_PIDS=("${WORKER_PIDS[@]/$w1/}")
note "SIGKILL worker 1 when $before of 24 uploads had their metadata.json"
start_worker w3 "$TMP/w.conf" "${WK[@]}" >/dev/null
all_done() { [ "$(done_count)" = 24 ]; }
check "every upload ends processed or failed" wait_for 600 all_done
np=0 nf=0
while read -r id; do
    case $(curl -sS "${AUTH[@]}" "http://$A/v1/images/$id" | jget status) in
    processed) np=$((np + 1)) ;;
    failed) nf=$((nf + 1)) ;;
    esac
done <"$TMP/ids"
note "processed $np, failed $nf"
check "22 processed and the 2 non-images failed ($np, $nf)" test "$np" = 22 -a "$nf" = 2
check "offsets committed to the end of the topic" wait_for 240 committed_equals_end "$group" "$topic" 3
exit $((N_FAIL > 0))
