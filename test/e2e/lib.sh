# Shared helpers for the end-to-end tests. Sourced by test/e2e/t*.sh, which
# run against the real local stack (test/stack/start.sh) and verify with
# clients that are not imgsink's: mc for the store, kcat and Kafka's own
# kafka-consumer-groups for offsets and the DLQ.
#
# Each test prints TAP lines: "ok - what" or "not ok - what".
set -uo pipefail

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${BUILD:-build}
IMGSINK=$ROOT/$BUILD/imgsink
STACK_DIR=${IMGSINK_STACK_DIR:-$ROOT/.stack}
set -a # export: python helpers read MC, S3_BUCKET, ...
# shellcheck disable=SC1091
. "$STACK_DIR/env"
set +a
TMP=$(mktemp -d "/tmp/imgsink-e2e.XXXXXX")
WORKER_PIDS=()
N_FAIL=0

ok() { echo "ok - $*"; }
notok() {
    echo "not ok - $*"
    N_FAIL=$((N_FAIL + 1))
}
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else notok "$what"; fi
}
note() { echo "# $*"; }
# skip WHAT WHY: a check that could not run here. TAP's "# SKIP": test/run.sh
# counts it as skipped, never as passed.
skip() { echo "ok - $1 # SKIP $2"; }

mc() { $MC "$@"; }

# Stops exactly the workers this test started, then removes temp files.
e2e_cleanup() {
    local pid
    for pid in "${WORKER_PIDS[@]}"; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${WORKER_PIDS[@]}"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null
    done
    if [ "$N_FAIL" -gt 0 ] && [ -z "${KEEP_TMP:-}" ]; then for f in "$TMP"/*.log; do [ -f "$f" ] && tail -15 "$f" | sed "s|^|# $(basename "$f"): |"; done; fi
    rm -rf "$TMP"
}
trap e2e_cleanup EXIT

# unique_name BASE: a topic/group/prefix name no other run uses.
unique_name() { echo "$1-$(date +%s)-$$-$RANDOM"; }

# write_conf FILE TOPIC DLQ GROUP PREFIX [extra key=value lines...]
write_conf() {
    local file=$1 topic=$2 dlq=$3 group=$4 prefix=$5
    shift 5
    {
        echo "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP"
        echo "kafka.group.id=$group"
        echo "kafka.session.timeout.ms=10000"
        echo "kafka.heartbeat.interval.ms=1000"
        echo "input.topics=$topic"
        echo "dlq.topic=$dlq"
        echo "s3.endpoint=$S3_ENDPOINT"
        echo "s3.region=$S3_REGION"
        echo "s3.bucket=$S3_BUCKET"
        echo "s3.path.style=true"
        echo "s3.prefix=$prefix/"
        echo "retry.backoff.max.ms=2000"
        # Several workers per host: each gets a free port for /metrics (logged).
        echo "http.listen=127.0.0.1:0"
        for line in "$@"; do echo "$line"; done
    } >"$file"
}

# start_worker NAME CONF: runs `imgsink run` in the background; credentials
# go through the environment, as in production.
start_worker() {
    local name=$1 conf=$2
    IMGSINK_S3_ACCESS_KEY=$S3_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_SECRET_KEY \
        "$IMGSINK" run -c "$conf" >>"$TMP/$name.log" 2>&1 &
    WORKER_PIDS+=($!)
    echo $!
}

# group_offsets GROUP TOPIC: prints "partition committed end" lines using
# Kafka's own kafka-consumer-groups tool. Committed is "-" when none.
group_offsets() {
    "$KAFKA_CLASS" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
        --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --group "$1" 2>/dev/null |
        awk -v t="$2" '$2 == t { print $3, $4, $5 }' | sort -n
}

# topic_end_total TOPIC: sum of the end offsets (Kafka's GetOffsetShell).
topic_end_total() {
    "$KAFKA_CLASS" get-offsets --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$1" --time -1 2>/dev/null |
        awk -F: '{ s += $NF } END { print s + 0 }'
}

# committed_equals_end GROUP TOPIC PARTITIONS: every partition committed at its end offset.
committed_equals_end() {
    local out
    out=$(group_offsets "$1" "$2")
    [ "$(echo "$out" | grep -c .)" -eq "$3" ] || return 1
    echo "$out" | awk '$2 != $3 { bad = 1 } END { exit bad }'
}

# wait_for SECONDS COMMAND...: polls until the command succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    while [ $SECONDS -lt $deadline ]; do
        "$@" && return 0
        sleep 2
    done
    return 1
}

# count_objects PREFIX NAME: objects under PREFIX whose name is NAME (e.g. metadata.json).
count_objects() {
    mc ls --recursive --json "$MC_ALIAS/$S3_BUCKET/$1/" 2>/dev/null |
        python3 -c 'import json,sys
n=sys.argv[1]; print(sum(1 for l in sys.stdin if l.strip() and json.loads(l).get("key","").endswith("/"+n)))' "$2"
}

# dlq_dump TOPIC: one JSON object per DLQ record: key, headers, value size.
dlq_dump() {
    kcat -C -b "$KAFKA_BOOTSTRAP" -t "$1" -e -q -J 2>/dev/null
}

# http_address NAME [SECONDS]: the HOST:PORT worker NAME serves /metrics,
# /healthz and /readyz on, from its log's "http" line (http.listen=...:0
# picks a free port); waits for the line, default 30 s.
http_address() {
    local log=$TMP/$1.log deadline=$((SECONDS + ${2:-30})) addr
    while [ $SECONDS -lt $deadline ]; do
        addr=$(grep -m1 '"component":"http".*"address"' "$log" 2>/dev/null |
            python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("address",""))' 2>/dev/null)
        [ -n "$addr" ] && { echo "$addr"; return 0; }
        sleep 0.2
    done
    return 1
}

# scrape_metrics ADDR: the worker's /metrics into $TMP/metrics.txt.
scrape_metrics() { curl -fsS --max-time 5 "http://$1/metrics" >"$TMP/metrics.txt"; }
# metric NAME{LABELS}: one sample's value from the last scrape (empty if absent).
metric() { awk -v k="$1" '$1 == k { print $2 }' "$TMP/metrics.txt"; }
