#!/usr/bin/env bash
# `make demo`: the whole pipeline on this machine. Starts a real Kafka (KRaft)
# and MinIO on loopback, publishes the sample photographs, runs two imgsink
# workers in one consumer group until the group's lag is 0, prints what was
# written (key, bytes, tags, read back with mc), then stops everything it
# started. An upload through `imgsink api` (curl) goes into the same topic.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
IMGSINK=$ROOT/build/imgsink
export IMGSINK_STACK_DIR=${IMGSINK_STACK_DIR:-$ROOT/.stack}
OUT=$ROOT/demo-out
mkdir -p "$OUT"
WORKERS=()

cleanup() {
    local pid
    for pid in "${WORKERS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${WORKERS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -z "${DEMO_KEEP_STACK:-}" ]; then bash test/stack/stop.sh >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }

step "starting Kafka and MinIO on loopback"
bash test/stack/start.sh
set -a
# shellcheck disable=SC1091
. "$IMGSINK_STACK_DIR/env"
set +a

step "sample images (wallpaper photographs from Debian's plasma-workspace-wallpapers)"
CORPUS=$(bash test/corpus.sh | tail -1 | sed 's/^[0-9]* images in //')
ls -1 "$CORPUS" | head -3
echo "... $(find "$CORPUS" -maxdepth 1 -name '*.jpg' | wc -l) photographs"

run=demo-$(date +%Y%m%d-%H%M%S)
topic=$run
group=$run
step "topic $topic (6 partitions), DLQ $topic.dlq"
bash test/stack/topic.sh "$topic" 6
bash test/stack/topic.sh "$topic.dlq" 1
bash test/stack/topic.sh "$topic.events" 6

cat >"$OUT/imgsink.conf" <<CONF
# Written by make demo. Credentials come from IMGSINK_S3_ACCESS_KEY and
# IMGSINK_S3_SECRET_KEY in the environment, never from this file.
kafka.bootstrap.servers=$KAFKA_BOOTSTRAP
kafka.group.id=$group
input.topics=$topic
dlq.topic=$topic.dlq
s3.endpoint=$S3_ENDPOINT
s3.region=$S3_REGION
s3.bucket=$S3_BUCKET
s3.path.style=true
s3.prefix=$run/
# Two workers on one host: each takes a free port for /metrics, /healthz and
# /readyz (its log says which: the "http" line).
http.listen=127.0.0.1:0
# One ImageEvent per finished record; imgsink analytics makes them Avro files.
events.topic=$topic.events
analytics.group.id=$run-analytics
analytics.prefix=$run/analytics/
analytics.max.delay.ms=2000
CONF
echo "config: $OUT/imgsink.conf"

step "publishing the photographs with imgsink produce"
"$IMGSINK" produce -c "$OUT/imgsink.conf" --topic "$topic" --tenant demo "$CORPUS"

step "the API path: imgsink api, and one photograph posted with curl into the same topic"
API_KEY="demo-$RANDOM$RANDOM"
echo "demo $(printf %s "$API_KEY" | sha256sum | cut -d' ' -f1)" >"$OUT/api-keys"
IMGSINK_S3_ACCESS_KEY=$S3_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_SECRET_KEY \
    "$IMGSINK" api -c "$OUT/imgsink.conf" -X api.keys.file="$OUT/api-keys" \
    -X api.listen=127.0.0.1:0 2>"$OUT/api.log" &
WORKERS+=($!)
api=""
for _ in $(seq 1 100); do
    api=$(sed -n 's/.*"component":"api".*"address":"\([^"]*\)".*/\1/p' "$OUT/api.log" | head -1)
    [ -n "$api" ] && break
    sleep 0.3
done
photo=$(find "$CORPUS" -maxdepth 1 -name '*.jpg' | sort | head -1)
echo "\$ curl -H 'Authorization: Bearer …' -H 'Content-Type: image/jpeg' --data-binary @$(basename "$photo") http://$api/v1/images"
posted=$(curl -sS -H "Authorization: Bearer $API_KEY" -H 'Content-Type: image/jpeg' \
    --data-binary @"$photo" "http://$api/v1/images")
echo "$posted"
api_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$posted")
echo "\$ curl -H 'Authorization: Bearer …' -d '{\"content_type\":\"image/jpeg\",\"size\":1000}' http://$api/v1/uploads"
curl -sS -H "Authorization: Bearer $API_KEY" -d '{"content_type":"image/jpeg","size":1000}' \
    "http://$api/v1/uploads" | sed 's/X-Amz-Signature=[0-9a-f]*/X-Amz-Signature=…/; s/X-Amz-Credential=[^&]*/X-Amz-Credential=…/'
echo "(a presigned PUT; with a store that publishes its uploads to Kafka, the upload"
echo " reaches the workers as an S3 event: see README, The API path)"
total=$("$KAFKA_CLASS" get-offsets --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" --time -1 |
    awk -F: '{ s += $NF } END { print s + 0 }')

step "two workers in group $group"
for i in 1 2; do
    IMGSINK_S3_ACCESS_KEY=$S3_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_SECRET_KEY \
        "$IMGSINK" run -c "$OUT/imgsink.conf" 2>"$OUT/worker$i.log" &
    WORKERS+=($!)
    echo "worker $i: pid $! (log: $OUT/worker$i.log)"
done

step "waiting for lag 0 (committed offsets = end offsets)"
t0=$SECONDS
while :; do
    desc=$("$KAFKA_CLASS" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
        --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --group "$group" 2>/dev/null || true)
    committed=$(awk -v t="$topic" '$2 == t && $4 ~ /^[0-9]+$/ { s += $4 } END { print s + 0 }' <<<"$desc")
    parts=$(awk -v t="$topic" '$2 == t && $4 == $5 { n++ } END { print n + 0 }' <<<"$desc")
    el=$((SECONDS - t0))
    rate=$(awk -v c="$committed" -v e="$el" 'BEGIN { printf "%.1f", (e > 0 ? c / e : 0) }')
    printf '\r  %d/%d records committed, %s records/s, %ds   ' "$committed" "$total" "$rate" "$el"
    if [ "$parts" -eq 6 ] && [ "$committed" -eq "$total" ]; then break; fi
    if [ "$el" -gt 900 ]; then
        echo
        echo "demo: lag did not reach 0 in 15 minutes; worker logs are in $OUT" >&2
        exit 1
    fi
    sleep 2
done
echo
echo "$desc" | awk -v t="$topic" 'NR == 1 || $2 == t' | sed -n '1,8p' | cut -c1-110

step "the posted photograph through the API: GET /v1/images/$api_id"
curl -sS -H "Authorization: Bearer $API_KEY" "http://$api/v1/images/$api_id" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("status:", d["status"], "renditions:", ", ".join(sorted(d.get("renditions", {}))))'

step "what was written (read back with mc, not imgsink)"
python3 scripts/show_objects.py "$run/"
dlq=$(kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic.dlq" -e -q -f 'x\n' 2>/dev/null | grep -c . || true)
echo "DLQ records: $dlq"
echo "lifecycle rule on the bucket:"
$MC ilm rule ls "$MC_ALIAS/$S3_BUCKET" 2>/dev/null | sed 's/^/  /'

step "stopping the workers (SIGTERM: finish, commit, leave the group)"
for pid in "${WORKERS[@]}"; do kill -TERM "$pid"; done
for pid in "${WORKERS[@]}"; do wait "$pid" || true; done
WORKERS=()
grep -h '"worker totals"' "$OUT"/worker*.log || true
step "imgsink analytics: the events topic as Avro files under $run/analytics/"
IMGSINK_S3_ACCESS_KEY=$S3_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_SECRET_KEY \
    "$IMGSINK" analytics -c "$OUT/imgsink.conf" 2>"$OUT/analytics.log" &
WORKERS+=($!)
events=$("$KAFKA_CLASS" get-offsets --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic.events" --time -1 |
    awk -F: '{ s += $NF } END { print s + 0 }')
for _ in $(seq 120); do
    # (grep finds nothing until the first file is written: not an error)
    rows=$({ grep -o '"msg":"file written".*"rows":[0-9]*' "$OUT/analytics.log" 2>/dev/null || true; } |
        sed 's/.*"rows"://' | awk '{ s += $1 } END { print s + 0 }')
    [ "$rows" -ge "$events" ] && break
    sleep 2
done
kill -TERM "${WORKERS[-1]}"
wait "${WORKERS[-1]}" || true
WORKERS=()
echo "$events events, $rows rows written:"
$MC ls --recursive "$MC_ALIAS/$S3_BUCKET/$run/analytics/" | sed 's/^/  /'
step "analyst queries (DuckDB from MinIO, deploy/analytics/duckdb.sql)"
. test/stack/common.sh
for q in "SELECT * FROM images_per_tenant_hour" "SELECT * FROM failure_rate_by_class" \
    "SELECT * FROM latency_percentiles" "SELECT * FROM bytes_per_rendition" \
    "SELECT * FROM top_cameras LIMIT 5" "SELECT * FROM near_duplicates LIMIT 5"; do
    echo "$q"
    ANALYTICS_PREFIX=$run/analytics/ "$IMGSINK_VENV/bin/python" scripts/analytics.py query "$q"
done
echo "report: $(ANALYTICS_PREFIX=$run/analytics/ REPORT_DIR=$OUT bash scripts/report.sh)"

step "done; stopping Kafka and MinIO (set DEMO_KEEP_STACK=1 to keep them)"
