#!/usr/bin/env bash
# The chart's autoscaling settings played on the real stack: an autoscaler
# loop does what KEDA and the HPA it drives do with the numbers of
# deploy/helm/imgsink/values.yaml (autoscaling.*): every pollingInterval it
# reads the group's lag (imgsink status), wants ceil(lag / lagThreshold)
# workers within minReplicaCount..maxReplicaCount, adds them at once, and
# removes at most scaleDownPods per scaleDownPeriodSeconds, only what the
# highest wish over the last scaleDownStabilizationSeconds allows; a removal
# is SIGTERM to the newest worker, not waited for (it drains while the loop
# goes on). The topic has autoscaling.partitions partitions, a backlog that
# wants more than maxReplicaCount workers and a trickle of new records.
# Times are the chart's divided by TIME_DIV (default 5) to fit a test run;
# counts and thresholds are the chart's own.
#
# Overlapping drains: the first OVERLAP_STEPS (2) scale-in steps remove two
# workers (if that leaves minReplicaCount), as KEDA's HPA does when it may
# remove more than one pod per period (autoscaling.scaleDownPods > 1): the
# first is SIGTERMed while it has records in flight (its /metrics), the
# second as soon as the first logged "stopping", while it still finishes
# them. The logs then show whether the second's stop came before the first
# had finished its in-flight records; at least one such overlap is
# required. The store is reached through toxiproxy with S3_LATENCY_MS
# (default 200) per response, a slow S3 round trip, so a record stays in
# flight long enough to be caught draining.
#
# STATIC=1 (t84_keda_static.sh) gives each worker kafka.group.instance.id
# (its "pod name"), the chart's StatefulSet mode, and the chart's
# worker.staticSessionTimeoutMs (divided by TIME_DIV, at least the broker's
# 6 s minimum) as kafka.session.timeout.ms: a static member that stops does
# not leave the group, its partitions wait for that timeout.
#
# Checked as in t39_scale (scale_check.py): nothing lost (every record's
# objects in the store, committed = end, DLQ empty), overwrites identical,
# no double ownership, every partition with records waiting written in every
# step, every worker exits 0; plus: the worker count never exceeded
# maxReplicaCount, went up to it and back down to minReplicaCount, and a
# removal overlapped a drain in progress. The per-step table (workers, lag,
# rec/s, rebalance stall p50/max, lost) is printed; rates and stalls are
# informational.
. "$(dirname "$0")/lib.sh"
# shellcheck source=../stack/common.sh
. "$ROOT/test/stack/common.sh"

STATIC=${STATIC:-0}
TIME_DIV=${TIME_DIV:-5}
OVERLAP_STEPS=${OVERLAP_STEPS:-2}
S3_LATENCY_MS=${S3_LATENCY_MS:-200}
VALUES=$ROOT/deploy/helm/imgsink/values.yaml
minReplicaCount='' maxReplicaCount='' partitions='' lagThreshold='' pollingInterval=''
scaleDownStabilizationSeconds='' scaleDownPods='' scaleDownPeriodSeconds='' cooldownPeriod=''
staticSessionTimeoutMs=''
eval "$(python3 - "$VALUES" <<'EOF'
import sys, yaml
v = yaml.safe_load(open(sys.argv[1]))
a = v["autoscaling"]
for k in ("minReplicaCount", "maxReplicaCount", "partitions", "lagThreshold", "pollingInterval",
          "scaleDownStabilizationSeconds", "scaleDownPods", "scaleDownPeriodSeconds", "cooldownPeriod"):
    print(f"{k}={int(a[k])}")
print(f"staticSessionTimeoutMs={int(v['worker']['staticSessionTimeoutMs'])}")
EOF
)"
poll_s=$(((pollingInterval + TIME_DIV - 1) / TIME_DIV))
stab_s=$((scaleDownStabilizationSeconds / TIME_DIV))
period_s=$((scaleDownPeriodSeconds / TIME_DIV))
PARTS=$partitions
note "chart: lagThreshold $lagThreshold, $minReplicaCount..$maxReplicaCount workers, $PARTS partitions," \
    "polling ${pollingInterval}s, scale-down $scaleDownPods per ${scaleDownPeriodSeconds}s after" \
    "${scaleDownStabilizationSeconds}s (cooldown ${cooldownPeriod}s applies only to scaling to 0)"
session_ms=$((staticSessionTimeoutMs / TIME_DIV))
[ "$session_ms" -lt 6000 ] && session_ms=6000
note "played with times / $TIME_DIV: polling ${poll_s}s, stabilisation ${stab_s}s, period ${period_s}s;" \
    "static membership: $STATIC$([ "$STATIC" = 1 ] && echo " (session timeout $session_ms ms; chart $staticSessionTimeoutMs)")"

PER_PART=$(((lagThreshold * (maxReplicaCount + 2)) / PARTS + 1)) # a backlog wanting > max workers
TRICKLE_N=6
TRICKLE_EVERY=3
uploaded=1767225600000
RENDITIONS="medium=320x240/jpeg/82,thumb=128x128/jpeg/80"
DEADLINE_S=900

topic=$(unique_name keda)
group=$(unique_name g-keda)
prefix=$(out_prefix t82)
vbucket=$(unique_name t82-ver | tr '[:upper:]' '[:lower:]')
now_ms() { date +%s%3N; }

if ! mc mb "$MC_ALIAS/$vbucket" >/dev/null ||
    ! mc version enable "$MC_ALIAS/$vbucket" >/dev/null ||
    ! mc ilm rule import "$MC_ALIAS/$vbucket" <"$ROOT/deploy/minio/lifecycle.json" >/dev/null; then
    notok "create bucket $vbucket with versioning and the lifecycle rules"
    exit 1
fi
# The workers' identity: the worker's policy, for this bucket.
read -r VAK VSK < <(worker_identity "$vbucket") || { notok "worker identity for $vbucket"; exit 1; }
if ! bash "$ROOT/test/stack/topic.sh" "$topic" "$PARTS" >/dev/null ||
    ! bash "$ROOT/test/stack/topic.sh" "$topic.dlq" 1 >/dev/null; then
    notok "create topics $topic ($PARTS partitions) and $topic.dlq"
    exit 1
fi
mkdir -p "$TMP/img"
if ! { vips gaussnoise "$TMP/noise.v" 400 300 --mean 128 --sigma 40 &&
    vips colourspace "$TMP/noise.v" "$TMP/img/base.jpg[Q=85]" srgb; } >/dev/null 2>&1; then
    notok "cannot make the 400x300 test image with vips"
    exit 1
fi
produce() {
    "$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --uploaded-at "$uploaded" \
        --id-prefix "$topic-$1-" --repeat "$2" "$TMP/img" 2>>"$TMP/produce.err" |
        sed -n 's/^produced [0-9]* records.*: \([0-9]*\) delivered.*/\1/p'
}
n=$(produce b $((PARTS * PER_PART)))
check "a backlog of ${n:-0} records (wants ceil(${n:-0} / $lagThreshold) workers, more than $maxReplicaCount)" \
    test "${n:-0}" -eq $((PARTS * PER_PART))

# The workers reach the store through toxiproxy, S3_LATENCY_MS per response.
if ! read -r TOXI_URL TOXI_PORT < <(bash "$ROOT/test/stack/toxiproxy.sh" 2>"$TMP/toxiproxy.err") ||
    ! curl -fsS -o /dev/null -X POST "$TOXI_URL/proxies/s3/toxics" -H 'Content-Type: application/json' \
        -d "{\"name\":\"s3-rtt\",\"type\":\"latency\",\"stream\":\"downstream\",\"attributes\":{\"latency\":$S3_LATENCY_MS}}"; then
    sed 's/^/# /' "$TMP/toxiproxy.err"
    notok "toxiproxy in front of MinIO with $S3_LATENCY_MS ms latency"
    exit 1
fi
stop_toxiproxy() {
    bash "$ROOT/test/stack/stop.sh" toxiproxy >/dev/null 2>&1
    e2e_cleanup
}
trap stop_toxiproxy EXIT
note "store through toxiproxy 127.0.0.1:$TOXI_PORT, $S3_LATENCY_MS ms per response"
STATIC_CONF=()
[ "$STATIC" = 1 ] && STATIC_CONF=("kafka.session.timeout.ms=$session_ms")
S3_BUCKET=$vbucket S3_ENDPOINT=http://127.0.0.1:$TOXI_PORT write_conf "$TMP/w.conf" "$topic" "$topic.dlq" \
    "$group" "$prefix" "renditions=$RENDITIONS" "worker.threads=2" "log.level=debug" \
    "rebalance.drain.timeout.ms=20000" "shutdown.timeout.ms=30000" "${STATIC_CONF[@]}"

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

forget() {
    local i
    for i in "${!WORKER_PIDS[@]}"; do
        [ "${WORKER_PIDS[$i]}" = "$1" ] && unset 'WORKER_PIDS[i]'
    done
}
# shellcheck disable=SC2317 # called through wait_until
has_line() { grep -q "$2" "$TMP/$1.log" 2>/dev/null; }
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    while [ $SECONDS -lt $deadline ]; do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
running() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
# total_lag: what KEDA's Kafka scaler computes with offsetResetPolicy
# earliest: end offsets minus committed ones, a partition without a
# committed offset counting from 0 (Kafka's own tools).
# kafka-consumer-groups sometimes lists no partition at all while the group
# rebalances (seen with static members): then the previous reading stands,
# as KEDA keeps its last metric when a poll fails.
LAST_LAG=0
total_lag() {
    local end offs committed
    end=$(topic_end_total "$topic")
    offs=$(group_offsets "$group" "$topic")
    if [ -n "$offs" ] && [ "$(echo "$offs" | grep -c .)" -lt "$PARTS" ]; then
        echo "$LAST_LAG"
        return
    fi
    committed=$(echo "$offs" | awk '$2 ~ /^[0-9]+$/ { s += $2 } END { print s + 0 }')
    if [ -z "$offs" ] && [ -e "$TMP/committed.seen" ]; then
        echo "$LAST_LAG"
        return
    fi
    [ -n "$offs" ] && touch "$TMP/committed.seen"
    # The two reads are not atomic: a commit in between reads as below 0.
    LAST_LAG=$((end - committed))
    [ "$LAST_LAG" -lt 0 ] && LAST_LAG=0
    echo "$LAST_LAG"
}

declare -A PID RC
live=()
next=1
draining=() # workers sent SIGTERM and not yet exited
overlaps=0
add_worker() {
    local name=w$next conf=$TMP/w.conf
    next=$((next + 1))
    if [ "$STATIC" = 1 ]; then
        conf=$TMP/$name.conf
        { cat "$TMP/w.conf"; echo "kafka.group.instance.id=imgsink-worker-${name#w}"; } >"$conf"
    fi
    start_worker "$name" "$conf" "$VAK" "$VSK" >/dev/null
    PID[$name]=${WORKER_PIDS[-1]}
    live+=("$name")
    LABEL="$LABEL+$name"
}
remove_worker() { # SIGTERM the newest, not waited for
    local name=${live[-1]} d still=()
    for d in "${draining[@]}"; do running "${PID[$d]}" && still+=("$d"); done
    [ ${#still[@]} -gt 0 ] && overlaps=$((overlaps + 1)) && note "SIGTERM to $name while ${still[*]} still drains"
    kill -TERM "${PID[$name]}"
    unset 'live[-1]'
    draining=("${still[@]}" "$name")
    LABEL="$LABEL-$name"
}
# inflight NAME: records worker NAME has in flight (its /metrics).
inflight() {
    local addr
    addr=$(http_address "$1" 5) || return 1
    curl -fsS --max-time 2 "http://$addr/metrics" 2>/dev/null |
        awk '$1 == "imgsink_inflight_records" { print int($2) }'
}
# shellcheck disable=SC2317 # called through wait_until
busy() { [ "$(inflight "$1")" -gt 0 ] 2>/dev/null; }
# remove_overlapping: SIGTERM the newest worker once it has records in
# flight, then the next newest as soon as the first logged "stopping" (it
# then finishes those records). Whether the second stop really fell inside
# the first's drain is read from their logs afterwards (scale_check.py).
remove_overlapping() {
    local first=${live[-1]} second n
    wait_until 20 busy "$first" || note "$first had no record in flight for 20 s"
    remove_worker
    # A tight loop: the drain lasts a few hundred milliseconds.
    for _ in $(seq 1 3000); do
        has_line "$first" '"msg":"stopping: finishing' && break
        sleep 0.01
    done
    second=${live[-1]}
    remove_worker
    echo "$first $second" >>"$TMP/overlaps"
    n=$(grep -m1 '"msg":"stopping: finishing' "$TMP/$first.log" | grep -oE '"inflight":[0-9]+' | cut -d: -f2)
    note "SIGTERM to $second right after $first's stopping line ($first had ${n:-?} records in flight)"
}
reap() {
    local pid=${PID[$1]}
    [ -n "${RC[$1]:-}" ] && return
    if wait_until 120 bash -c "! kill -0 $pid 2>/dev/null || grep -qs '^State:.*Z' /proc/$pid/status"; then
        wait "$pid"
        RC[$1]=$?
    else
        RC[$1]="still running 120 s after SIGTERM"
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    forget "$pid"
}

# --- the autoscaler loop ------------------------------------------------------
: >"$TMP/steps"
: >"$TMP/overlaps"
overlap_left=$OVERLAP_STEPS
LABEL=""
step_begin=$(now_ms)
wishes=() # "time desired" of the polls inside the stabilisation window
last_down=-100000
max_seen=0
reached_max=no
t0=$SECONDS
while [ $((SECONDS - t0)) -lt $DEADLINE_S ]; do
    total_lag >"$TMP/lag"
    lag=$(<"$TMP/lag")
    LAST_LAG=${lag:-0}
    lag=$LAST_LAG
    desired=$(((lag + lagThreshold - 1) / lagThreshold))
    [ "$desired" -lt "$minReplicaCount" ] && desired=$minReplicaCount
    [ "$desired" -gt "$maxReplicaCount" ] && desired=$maxReplicaCount
    wishes+=("$SECONDS $desired")
    keep=()
    stable=0
    for w in "${wishes[@]}"; do
        read -r t d <<<"$w"
        if [ $((SECONDS - t)) -le "$stab_s" ]; then
            keep+=("$w")
            [ "$d" -gt "$stable" ] && stable=$d
        fi
    done
    wishes=("${keep[@]}")
    LABEL=""
    if [ "$desired" -gt ${#live[@]} ]; then
        while [ ${#live[@]} -lt "$desired" ]; do add_worker; done
    elif [ "$stable" -lt ${#live[@]} ] && [ $((SECONDS - last_down)) -ge "$period_s" ]; then
        if [ "$overlap_left" -gt 0 ] && [ $((${#live[@]} - 2)) -ge "$minReplicaCount" ]; then
            overlap_left=$((overlap_left - 1))
            remove_overlapping
        else
            for _ in $(seq 1 "$scaleDownPods"); do
                [ ${#live[@]} -gt "$stable" ] && remove_worker
            done
        fi
        last_down=$SECONDS
    fi
    [ ${#live[@]} -gt "$max_seen" ] && max_seen=${#live[@]}
    [ ${#live[@]} -eq "$maxReplicaCount" ] && reached_max=yes
    if [ -n "$LABEL" ]; then
        # A scaling action closes the running step and opens one.
        now=$(now_ms)
        [ -s "$TMP/steps.open" ] && echo "$(cat "$TMP/steps.open") $step_begin $now $lag" >>"$TMP/steps"
        echo "$LABEL ${#live[@]}" >"$TMP/steps.open"
        step_begin=$now
        note "t=$((SECONDS - t0))s lag $lag: wants $desired (stable $stable) -> ${#live[@]} workers ($LABEL)"
    fi
    # The trickle goes on through the scale-in (records to move at each
    # removal) and stops at the minimum; the loop ends with nothing left.
    if [ "$reached_max" = yes ] && [ ${#live[@]} -eq "$minReplicaCount" ] && [ ! -e "$TMP/trickle.stop" ]; then
        touch "$TMP/trickle.stop"
    fi
    if [ -e "$TMP/trickle.stop" ] && [ ${#live[@]} -eq "$minReplicaCount" ] && [ "$lag" -eq 0 ]; then
        break
    fi
    sleep "$poll_s"
done
touch "$TMP/trickle.stop"
wait "$trickle_pid"
forget "$trickle_pid"
now=$(now_ms)
echo "$(cat "$TMP/steps.open") $step_begin $now $(total_lag)" >>"$TMP/steps"
note "autoscaler loop ran $((SECONDS - t0)) s; removals while another worker was still running its shutdown: $overlaps"
check "the worker count never exceeded maxReplicaCount $maxReplicaCount (max $max_seen) and reached it" \
    test "$max_seen" -le "$maxReplicaCount" -a "$reached_max" = yes
check "scaled back in to minReplicaCount $minReplicaCount (${#live[@]} left)" test ${#live[@]} -eq "$minReplicaCount"
check "the last worker drains the rest: committed = end on all $PARTS partitions" \
    wait_for 300 committed_equals_end "$group" "$topic" "$PARTS"
for w in "${live[@]}"; do kill -TERM "${PID[$w]}"; done
for k in $(seq 1 $((next - 1))); do reap "w$k"; done
rcs=""
all_zero=yes
for k in $(seq 1 $((next - 1))); do
    rcs="$rcs w$k=${RC[w$k]:-?}"
    [ "${RC[w$k]:-x}" = 0 ] || all_zero=no
done
check "every worker exited 0 on SIGTERM:$rcs" test $all_zero = yes

end=$(topic_end_total "$topic")
check "after every worker left: committed = end ($end records) on all $PARTS partitions" \
    committed_equals_end "$group" "$topic" "$PARTS"
ndlq=$(dlq_dump "$topic.dlq" | grep -c .)
check "nothing sent to the DLQ ($ndlq records)" test "$ndlq" -eq 0
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -e -q -f '%p %o %T %k\n' >"$TMP/produced" 2>/dev/null
check "kcat reads every record of the topic ($(grep -c . "$TMP/produced") of $end)" \
    test "$(grep -c . "$TMP/produced")" -eq "$end"
mc ls --recursive --versions --json "$MC_ALIAS/$vbucket/$prefix/" >"$TMP/versions.json" 2>/dev/null ||
    notok "mc ls --versions of $vbucket/$prefix"
python3 "$ROOT/test/e2e/scale_check.py" "$TMP" "$topic" "$PARTS" "$RENDITIONS"
bad=$?
N_FAIL=$((N_FAIL + bad))
logs=$ROOT/$BUILD/test-logs/$([ "$STATIC" = 1 ] && echo t84_keda_static || echo t82_keda_scale)
rm -rf "$logs" && mkdir -p "$logs" && cp "$TMP"/w*.log "$TMP"/steps "$TMP"/overlaps "$TMP"/produced "$TMP"/versions.json "$logs/"
note "workers' logs kept in $logs"
[ "$N_FAIL" -eq 0 ] && mc rb --force "$MC_ALIAS/$vbucket" >/dev/null 2>&1
[ "$N_FAIL" -eq 0 ]
