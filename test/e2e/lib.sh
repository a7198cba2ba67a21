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
# Workers started by start_worker are also in $TMP/worker.pids, so one
# started inside $(...) (a subshell: WORKER_PIDS there is lost) is stopped
# too; such a PID is signalled only while its command line is still the
# imgsink binary run on a config under $TMP, and waited for by polling
# (it is not a child of this shell).
e2e_cleanup() {
    local pid orphans=() i
    for pid in "${WORKER_PIDS[@]}"; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    if [ -f "$TMP/worker.pids" ]; then
        while read -r pid; do
            [[ " ${WORKER_PIDS[*]} " == *" $pid "* ]] && continue
            tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$IMGSINK run -c $TMP/" || continue
            kill -TERM "$pid" 2>/dev/null && orphans+=("$pid")
        done <"$TMP/worker.pids"
    fi
    for pid in "${WORKER_PIDS[@]}"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null
    done
    for pid in "${orphans[@]}"; do
        for ((i = 0; i < 300; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    done
    if [ "$N_FAIL" -gt 0 ] && [ -z "${KEEP_TMP:-}" ]; then for f in "$TMP"/*.log; do [ -f "$f" ] && tail -15 "$f" | sed "s|^|# $(basename "$f"): |"; done; fi
    rm -rf "$TMP"
}
trap e2e_cleanup EXIT

# unique_name BASE: a topic/group/prefix name no other run uses.
unique_name() { echo "$1-$(date +%s)-$$-$RANDOM"; }
# out_prefix BASE: a unique s3.prefix (without the trailing '/') under the
# output prefix the worker's store identity may write (processed/, as in
# deploy/minio/policies/worker.json).
out_prefix() { echo "$S3_OUT_PREFIX/$(unique_name "$1")"; }
# raw_prefix BASE: a unique key prefix (no trailing '/') in $S3_RAW_BUCKET
# under the claim-check prefix the worker's identity may read (uploads/).
raw_prefix() { echo "$S3_RAW_PREFIX/$(unique_name "$1")"; }

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

# Store identities: workers, checks, replays and the API run with the
# least-privilege users test/stack/start.sh created from the production
# policies (test/stack/identity.sh), through the environment as in
# production; the root user ($S3_ACCESS_KEY) is mc's alone, for setup and
# verification. A test that needs root for imgsink says why.
#
# as_worker CMD...: CMD with the worker's keys in IMGSINK_S3_*. Not for a
# background worker: `as_worker ... &` forks a subshell and $! is its PID,
# not imgsink's (a kill would leave imgsink running); use start_worker.
as_worker() { IMGSINK_S3_ACCESS_KEY=$S3_WORKER_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_WORKER_SECRET_KEY "$@"; }
# as_api CMD...: CMD with the API's keys (deploy/minio/policies/api.json).
as_api() { IMGSINK_S3_ACCESS_KEY=$S3_API_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_API_SECRET_KEY "$@"; }
# as_operator CMD...: CMD with the store's admin keys, for `imgsink check`
# as an operator runs it: check reads the bucket's lifecycle rules
# (s3:GetLifecycleConfiguration), which neither production policy grants
# (with the worker's keys it says so and fails, see t74_least_privilege).
as_operator() { IMGSINK_S3_ACCESS_KEY=$S3_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_SECRET_KEY "$@"; }
# worker_identity BUCKET: "ACCESS SECRET" of a user with the worker's policy
# for output bucket BUCKET instead of $S3_BUCKET (tests with a bucket of
# their own: other lifecycle rules, versioning).
worker_identity() { IMGSINK_STACK_DIR=$STACK_DIR bash "$ROOT/test/stack/identity.sh" worker "$1"; }

# start_worker NAME CONF [ACCESS SECRET]: runs `imgsink run` in the
# background with the worker's identity (or the keys given); prints the PID.
# Call it as a command, not in $(...): a subshell's WORKER_PIDS is lost and
# the worker could not be waited for (cleanup still stops it, through
# $TMP/worker.pids).
start_worker() {
    local name=$1 conf=$2 ak=${3:-$S3_WORKER_ACCESS_KEY} sk=${4:-$S3_WORKER_SECRET_KEY}
    IMGSINK_S3_ACCESS_KEY=$ak IMGSINK_S3_SECRET_KEY=$sk \
        "$IMGSINK" run -c "$conf" >>"$TMP/$name.log" 2>&1 &
    WORKER_PIDS+=($!)
    echo $! >>"$TMP/worker.pids"
    echo $!
}

# start_api NAME CONF [key=value...]: runs `imgsink api -c CONF` in the
# background with the API's store identity (deploy/minio/policies/api.json),
# each key=value given as -X; logs to $TMP/NAME.log. Its PID is in API_PID
# and WORKER_PIDS (cleanup stops it). Call it as a command, not in $(...).
start_api() {
    local name=$1 conf=$2 kv xs=()
    shift 2
    for kv in "$@"; do xs+=(-X "$kv"); done
    IMGSINK_S3_ACCESS_KEY=$S3_API_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_API_SECRET_KEY \
        "$IMGSINK" api -c "$conf" "${xs[@]}" >>"$TMP/$name.log" 2>&1 &
    API_PID=$!
    WORKER_PIDS+=($!)
}

# api_address NAME [SECONDS]: the HOST:PORT `imgsink api` NAME listens on,
# from its log's "api" line (api.listen=...:0 picks a free port); waits for
# the line, default 60 s.
api_address() { log_address api "$1" "${2:-60}"; }

# log_address COMPONENT NAME SECONDS: the "address" of the first log line of
# COMPONENT in $TMP/NAME.log, waiting up to SECONDS for it.
log_address() {
    local log=$TMP/$2.log deadline=$((SECONDS + $3)) addr
    while [ $SECONDS -lt $deadline ]; do
        addr=$(grep -m1 "\"component\":\"$1\".*\"address\"" "$log" 2>/dev/null |
            python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("address",""))' 2>/dev/null)
        [ -n "$addr" ] && { echo "$addr"; return 0; }
        sleep 0.2
    done
    return 1
}

# api_post_image ADDR KEY IMAGE OUT: POSTs the PNG IMAGE to /v1/images of
# the API at ADDR with the tenant KEY; prints the HTTP status, the answer in OUT.
api_post_image() {
    curl -sS -o "$4" -w '%{http_code}' --max-time 60 -H "Authorization: Bearer $2" \
        -H 'Content-Type: image/png' --data-binary @"$3" "http://$1/v1/images"
}

# api_ready_post NAME CONF KEY IMAGE WHAT: starts `imgsink api` NAME on CONF
# (start_api), checks that /readyz answers 200 ("... with WHAT") and POSTs
# IMAGE with KEY. Sets API_ADDR, POST_STATUS and POST_ID (the answer's id,
# empty when none) for the test's own checks of the record.
api_ready_post() {
    local name=$1 conf=$2 key=$3 image=$4 what=$5
    start_api "$name" "$conf"
    API_ADDR=$(api_address "$name") || notok "$name: the API logged its address"
    check "/readyz 200 with $what" \
        wait_for 60 test "$(curl -s -o "$TMP/$name-readyz.out" -w '%{http_code}' "http://$API_ADDR/readyz")" = 200
    # shellcheck disable=SC2034 # read by the test that sources this
    POST_STATUS=$(api_post_image "$API_ADDR" "$key" "$image" "$TMP/$name-post.json")
    # shellcheck disable=SC2034
    POST_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/$name-post.json" 2>/dev/null)
}

# stop_api: stops the API start_api started last (TERM, waits for it) and
# takes it out of WORKER_PIDS.
stop_api() {
    local pid=${API_PID:-} p keep=()
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null && wait "$pid"
    for p in "${WORKER_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    WORKER_PIDS=("${keep[@]}")
    API_PID=
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

# object_tags KEY: "RETENTION SOURCE", the retention and source tags of
# object KEY in $S3_BUCKET (mc).
object_tags() {
    mc tag list --json "$MC_ALIAS/$S3_BUCKET/$1" |
        python3 -c 'import json,sys; d=json.load(sys.stdin).get("tagset") or {}; print(d.get("retention"), d.get("source"))'
}

# duckdb_checks [NAME=VALUE...] <<'PY' ... PY: what an analyst sees of the
# analytics files in the store. The python script on stdin runs in the
# test venv with NAME=VALUE... in its environment, through
# test/e2e/duckdb_checks.py: check(cond, what) prints a TAP line, con is
# DuckDB with the views of deploy/analytics/duckdb.sql over
# $ANALYTICS_PREFIX (scripts/analytics.py), one(sql, *args) its rows. A
# script that stops with an error is one more "not ok".
duckdb_checks() {
    env ROOT="$ROOT" "$@" "$(venv_python)" "$ROOT/test/e2e/duckdb_checks.py" || notok "DuckDB checks"
}
# duckdb_require: one "not ok" when the test venv has no DuckDB.
duckdb_require() {
    local py
    py=$(venv_python)
    "$py" -c 'import duckdb' 2>/dev/null || notok "DuckDB in the test venv $py (make deps)"
}
# venv_python: the python of the tests' venv (make deps).
venv_python() { (. "$ROOT/test/stack/common.sh" && echo "$IMGSINK_VENV/bin/python"); }

# Temporary credentials from a local endpoint, as the ECS and EKS Pod
# Identity container-credentials protocol hands them out: a MinIO user,
# and test/e2e/creds_server.py on a free port answering with that user's
# temporary credentials from MinIO's STS (AssumeRole, a new session token
# each time) declaring a 20 s lifetime, and checking the authorization
# token. The test sources test/stack/common.sh (spawn, pid_of, free_ports)
# and calls creds_endpoint_cleanup from its EXIT trap.
#
# creds_endpoint_start POLICY: the user gets MinIO policy POLICY. Sets
# CREDS_PORT, CREDS_USER, CREDS_AUTH_TOKEN (the token's file), CREDS_ISSUED
# (a file of every secret handed out, one a line) and CREDS_ENV (arguments
# of env(1) for an imgsink whose only store credentials are the
# endpoint's); the endpoint logs to $TMP/creds-server.log.
creds_endpoint_start() {
    local secret
    CREDS_USER=$(unique_name sts | tr -dc 'a-z0-9-' | cut -c1-30)
    secret=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | cut -c1-30)
    mc admin user add "$MC_ALIAS" "$CREDS_USER" "$secret" >/dev/null || notok "mc admin user add"
    mc admin policy attach "$MC_ALIAS" "$1" --user "$CREDS_USER" >/dev/null ||
        notok "mc admin policy attach"
    CREDS_PORT=$(free_ports 1)
    CREDS_AUTH_TOKEN=$TMP/auth-token
    head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$CREDS_AUTH_TOKEN"
    CREDS_ISSUED=$TMP/issued.txt
    # shellcheck disable=SC2034 # the tests' env command
    CREDS_ENV=(-u IMGSINK_S3_ACCESS_KEY -u IMGSINK_S3_SECRET_KEY -u AWS_ACCESS_KEY_ID
        -u AWS_SECRET_ACCESS_KEY -u AWS_PROFILE -u AWS_ROLE_ARN
        AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent
        AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:$CREDS_PORT/creds"
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$CREDS_AUTH_TOKEN")
    spawn "$TMP/creds-server.pid" "$TMP/creds-server.log" "$IMGSINK_VENV/bin/python" \
        "$ROOT/test/e2e/creds_server.py" container --port "$CREDS_PORT" --sts "$S3_ENDPOINT" \
        --user "$CREDS_USER" --secret "$secret" --lifetime 20 \
        --auth-token-file "$CREDS_AUTH_TOKEN" --issued "$CREDS_ISSUED"
    check "the container endpoint listens" \
        wait_for 60 grep -q "credentials endpoint on" "$TMP/creds-server.log"
}
# creds_endpoint_stop: the endpoint stops (the user stays).
creds_endpoint_stop() {
    local pid
    pid=$(pid_of "$TMP/creds-server.pid" "$ROOT/test/e2e/creds_server.py") && kill "$pid" 2>/dev/null
    return 0
}
# creds_endpoint_dies ADDR SECONDS [PREFIX]: the endpoint stops; /readyz
# of ADDR must answer 503 within SECONDS naming the failed refresh (after
# PREFIX); its answer is in $TMP/readyz2.txt.
creds_endpoint_dies() {
    creds_endpoint_stop
    check "/readyz answers 503 naming the reason once a refresh fails" \
        wait_for "$2" bash -c '[ "$(curl -s -o "$1" -w "%{http_code}" "http://$0/readyz")" = 503 ] &&
            grep -q "$2credentials cannot be refreshed (container): container endpoint http://127.0.0.1:.*/creds" "$1"' \
        "$1" "$TMP/readyz2.txt" "${3:-}"
    note "readyz: $(cat "$TMP/readyz2.txt")"
}
# creds_endpoint_cleanup: the endpoint stops and the user goes.
creds_endpoint_cleanup() {
    creds_endpoint_stop
    [ -n "${CREDS_USER:-}" ] && mc admin user remove "$MC_ALIAS" "$CREDS_USER" >/dev/null 2>&1
    return 0
}
# creds_leaks FILE...: 0 (and which file) when a line of $CREDS_ISSUED of 8
# characters or more is in one of the files; 1 when none is.
creds_leaks() {
    local f s
    for f in "$@"; do
        while IFS= read -r s; do
            [ ${#s} -ge 8 ] && grep -qF -- "$s" "$f" && { echo "# leak in $(basename "$f")"; return 0; }
        done <"$CREDS_ISSUED"
    done
    return 1
}

# dlq_dump TOPIC: one JSON object per DLQ record: key, headers, value size.
dlq_dump() {
    kcat -C -b "$KAFKA_BOOTSTRAP" -t "$1" -e -q -J 2>/dev/null
}

# http_address NAME [SECONDS]: the HOST:PORT worker NAME serves /metrics,
# /healthz and /readyz on, from its log's "http" line (http.listen=...:0
# picks a free port); waits for the line, default 30 s.
http_address() { log_address http "$1" "${2:-30}"; }

# scrape_metrics ADDR: the worker's /metrics into $TMP/metrics.txt.
scrape_metrics() { curl -fsS --max-time 5 "http://$1/metrics" >"$TMP/metrics.txt"; }
# metric NAME{LABELS}: one sample's value from the last scrape (empty if absent).
metric() { awk -v k="$1" '$1 == k { print $2 }' "$TMP/metrics.txt"; }
