#!/usr/bin/env bash
# Scale-out and scale-in of the consumer group, as KEDA does it on lag: a
# topic of 12 partitions with a backlog of small images (and a trickle of new
# records all along), one worker added per step up to 6, then removed one per
# step with SIGTERM, newest first as a ReplicaSet does, one removal sent
# while the previous worker is still draining (a burst of records comes just
# before it, so that worker has records in flight however fast the machine).
#
# Checked with clients that are not imgsink's, and from the workers' logs:
#   - nothing lost: every record in the topic (kcat) has its objects in the
#     store (mc) and a "record written" line; committed = end on every
#     partition at the end (kafka-consumer-groups); nothing in the DLQ;
#   - a record written twice was overwritten with identical bytes: every
#     version of every key has one ETag (the bucket is versioned);
#   - no double ownership: per partition, a worker's ownership (from its
#     "partitions assigned" line to its revoke, and any write it made after)
#     never overlaps another's, and writes never interleave;
#   - every partition with records waiting is written in every step;
#   - every worker exits 0 on SIGTERM.
# A per-step table (workers, lag, writes, rate, rebalance stall) is printed
# as TAP comments; rates and stalls are informational, never asserted.
. "$(dirname "$0")/lib.sh"

PARTS=12
PER_PART=200  # backlog produced before the first worker starts: lasts into the scale-in
MAX_WORKERS=6 # KEDA's maxReplicaCount (at most the partition count)
STEP_S=10     # each step lasts this long, then the lag is read
LAG_THRESHOLD=100
TRICKLE_N=12 # records produced every TRICKLE_EVERY seconds during the steps
TRICKLE_EVERY=3
BURST_PER_PART=25 # records per partition produced just before the overlapping removals
uploaded=1767225600000
RENDITIONS="medium=320x240/jpeg/82,thumb=128x128/jpeg/80"

topic=$(unique_name scale)
group=$(unique_name g-scale)
prefix=$(out_prefix t39)
vbucket=$(unique_name t39-ver | tr '[:upper:]' '[:lower:]')

now_ms() { date +%s%3N; }

# --- the store: a versioned bucket, so an overwrite keeps the first bytes -----
if ! mc mb "$MC_ALIAS/$vbucket" >/dev/null ||
    ! mc version enable "$MC_ALIAS/$vbucket" >/dev/null ||
    ! mc ilm rule import "$MC_ALIAS/$vbucket" <"$ROOT/deploy/minio/lifecycle.json" >/dev/null; then
    notok "create bucket $vbucket with versioning and the lifecycle rules"
    exit 1
fi
# The workers' identity: the worker's policy, for this bucket.
read -r VAK VSK < <(worker_identity "$vbucket") || { notok "worker identity for $vbucket"; exit 1; }
if ! bash "$ROOT/test/stack/topic.sh" "$topic" $PARTS >/dev/null ||
    ! bash "$ROOT/test/stack/topic.sh" "$topic.dlq" 1 >/dev/null; then
    notok "create topics $topic ($PARTS partitions) and $topic.dlq"
    exit 1
fi

# A 400x300 photo-like JPEG, as in t38_fairness.
mkdir -p "$TMP/img"
if ! { vips gaussnoise "$TMP/noise.v" 400 300 --mean 128 --sigma 40 &&
    vips colourspace "$TMP/noise.v" "$TMP/img/base.jpg[Q=85]" srgb; } >/dev/null 2>&1; then
    notok "cannot make the 400x300 test image with vips"
    exit 1
fi

# produce ID_PREFIX N: N records with distinct ids (the partitioner spreads
# their keys over the partitions). Prints how many were delivered.
produce() {
    "$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --uploaded-at "$uploaded" \
        --id-prefix "$topic-$1-" --repeat "$2" "$TMP/img" 2>>"$TMP/produce.err" |
        sed -n 's/^produced [0-9]* records.*: \([0-9]*\) delivered.*/\1/p'
}
n=$(produce b $((PARTS * PER_PART)))
end_offsets() {
    "$KAFKA_CLASS" get-offsets --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" --time -1 2>/dev/null
}
check "a backlog of ${n:-0} records on all $PARTS partitions before the first worker" \
    test "${n:-0}" -eq $((PARTS * PER_PART)) -a "$(end_offsets | awk -F: '$NF > 0' | wc -l)" -eq $PARTS

S3_BUCKET=$vbucket write_conf "$TMP/w.conf" "$topic" "$topic.dlq" "$group" "$prefix" \
    "renditions=$RENDITIONS" "worker.threads=2" "log.level=debug"

# The trickle: new records all along the steps, so partitions moved by a
# rebalance have records to write. Stopped through a file, then reaped.
(
    i=0
    while [ ! -e "$TMP/trickle.stop" ]; do
        i=$((i + 1))
        produce "t$i" $TRICKLE_N >>"$TMP/trickle.out"
        sleep $TRICKLE_EVERY
    done
) &
trickle_pid=$!
WORKER_PIDS+=("$trickle_pid")

# forget PID: a reaped child is never signalled again (its PID may be reused).
forget() {
    local i
    for i in "${!WORKER_PIDS[@]}"; do
        [ "${WORKER_PIDS[$i]}" = "$1" ] && unset 'WORKER_PIDS[i]'
    done
}
# has_line NAME TEXT: worker NAME's log has a line with TEXT.
# shellcheck disable=SC2317 # called through wait_until
has_line() { grep -q "$2" "$TMP/$1.log" 2>/dev/null; }
# wait_until SECONDS COMMAND...: as wait_for, polling every 0.1 s.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    while [ $SECONDS -lt $deadline ]; do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
# running PID: the process exists and is not a zombie.
running() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
# shellcheck disable=SC2317 # called through wait_until
not_running() { ! running "$1"; }
# total_lag: the group's lag on the topic (imgsink status; informational).
total_lag() {
    "$IMGSINK" status -b "$KAFKA_BOOTSTRAP" --group "$group" --topic "$topic" 2>/dev/null |
        sed -n 's/^total lag: \([0-9]*\) records.*/\1/p'
}

# inflight_at_least ADDR N: the worker serving /metrics at ADDR has N
# records in flight or more.
# shellcheck disable=SC2317 # called through wait_until
inflight_at_least() {
    scrape_metrics "$1" 2>/dev/null && [ "$(metric imgsink_inflight_records | cut -d. -f1)" -ge "$2" ] 2>/dev/null
}

declare -A PID RC
live=()
add_worker() {
    start_worker "$1" "$TMP/w.conf" "$VAK" "$VSK" >/dev/null # not in $(...): wait needs it a child of this shell
    PID[$1]=${WORKER_PIDS[-1]}
    live+=("$1")
    wait_until 60 has_line "$1" '"msg":"imgsink .* started"' ||
        notok "worker $1 did not start within 60 s"
}
stop_worker() { # SIGTERM, not waited for: it drains while the steps go on
    kill -TERM "${PID[$1]}"
    local rest=() w
    for w in "${live[@]}"; do [ "$w" != "$1" ] && rest+=("$w"); done
    live=("${rest[@]}")
}
reap() { # reap NAME: waits (bounded) for a stopped worker's exit status
    local pid=${PID[$1]}
    [ -n "${RC[$1]:-}" ] && return
    if wait_until 90 not_running "$pid"; then
        wait "$pid"
        RC[$1]=$?
    else
        RC[$1]="still running 90 s after SIGTERM"
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    forget "$pid"
}
# step LABEL BEGIN_MS: lets the step run STEP_S from BEGIN_MS, then records
# "label workers begin end lag" for the table.
step() {
    local left lag
    left=$(($2 + STEP_S * 1000 - $(now_ms)))
    [ "$left" -gt 0 ] && sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
    lag=$(total_lag)
    echo "$1 ${#live[@]} $2 $(now_ms) ${lag:--1}" >>"$TMP/steps"
    note "step $1: ${#live[@]} workers, lag ${lag:-?}"
    LAG=${lag:-0}
}

# --- scale out: one worker per step while the lag is above the threshold ----
t_start=$SECONDS
for k in $(seq 1 $MAX_WORKERS); do
    if [ "$k" -gt 1 ] && [ "$LAG" -le $LAG_THRESHOLD ]; then
        note "lag $LAG <= $LAG_THRESHOLD: KEDA would wait here; adding w$k anyway to reach $MAX_WORKERS"
    fi
    b=$(now_ms)
    add_worker "w$k"
    step "+w$k" "$b"
done

# --- scale in: newest first; w4 gets SIGTERM while w5 still drains a burst --
b=$(now_ms)
stop_worker w6
step "-w6" "$b"
reap w6

# A burst first, so w5 has records in flight to drain however fast the
# machine went through the backlog (with none, it exits in milliseconds).
b=$(now_ms)
nb=$(produce s $((PARTS * BURST_PER_PART)))
addr5=$(http_address w5)
wait_until 30 inflight_at_least "$addr5" 8 ||
    note "w5 did not reach 8 records in flight within 30 s after a burst of ${nb:-0}"
# w4 is stopped right behind w5, before w5 can have finished its running
# records, committed and left the group (it drops the ones not started).
stop_worker w5
stop_worker w4
w5_draining=no
running "${PID[w5]}" && w5_draining=yes
check "w4 got SIGTERM while w5 was still draining (w5 running: $w5_draining)" test $w5_draining = yes
step "-w5-w4" "$b"
reap w5
reap w4

for k in 3 2; do
    b=$(now_ms)
    stop_worker "w$k"
    step "-w$k" "$b"
    reap "w$k"
done

# --- the last worker drains what is left, then stops too --------------------
touch "$TMP/trickle.stop"
wait "$trickle_pid"
forget "$trickle_pid"
b=$(now_ms)
check "w1 alone drains the rest: committed = end on all $PARTS partitions" \
    wait_for 180 committed_equals_end "$group" "$topic" $PARTS
step "drain" "$b"
stop_worker w1
reap w1
note "scale-out and scale-in took $((SECONDS - t_start)) s"

rcs=""
all_zero=yes
for k in $(seq 1 $MAX_WORKERS); do
    rcs="$rcs w$k=${RC[w$k]:-?}"
    [ "${RC[w$k]:-x}" = 0 ] || all_zero=no
done
check "every worker exited 0 on SIGTERM:$rcs" test $all_zero = yes

end=$(topic_end_total "$topic")
note "end offsets: $(end_offsets | cut -d: -f2- | tr '\n' ' ')"
check "after every worker left: committed = end ($end records) on all $PARTS partitions" \
    committed_equals_end "$group" "$topic" $PARTS
ndlq=$(dlq_dump "$topic.dlq" | grep -c .)
check "nothing sent to the DLQ ($ndlq records)" test "$ndlq" -eq 0

# --- what Kafka holds, what the store holds, what the workers logged ---------
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -e -q -f '%p %o %T %k\n' >"$TMP/produced" 2>/dev/null
check "kcat reads every record of the topic ($(grep -c . "$TMP/produced") of $end)" \
    test "$(grep -c . "$TMP/produced")" -eq "$end"
mc ls --recursive --versions --json "$MC_ALIAS/$vbucket/$prefix/" >"$TMP/versions.json" 2>/dev/null ||
    notok "mc ls --versions of $vbucket/$prefix"

python3 "$ROOT/test/e2e/scale_check.py" "$TMP" "$topic" $PARTS "$RENDITIONS"
bad=$?
N_FAIL=$((N_FAIL + bad))
# The workers' logs and what the checks read, kept next to the test's log.
logs=$ROOT/$BUILD/test-logs/t39_scale
rm -rf "$logs" && mkdir -p "$logs" && cp "$TMP"/w*.log "$TMP"/steps "$TMP"/produced "$TMP"/versions.json "$logs/"
note "workers' logs kept in $logs"

[ "$N_FAIL" -eq 0 ] && mc rb --force "$MC_ALIAS/$vbucket" >/dev/null 2>&1
exit 0
