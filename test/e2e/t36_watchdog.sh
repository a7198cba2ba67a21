#!/usr/bin/env bash
# The job watchdog (worker.stuck.timeout.ms): a job stuck past the deadline
# is a transient failure of its record, logged, never a dead letter.
#
#   A. PUTs into a black hole (toxiproxy, upstream dropped, s3.timeout.ms
#      10 min): the watchdog interrupts each stuck request, the record is
#      retried, and once the hole is gone everything is written and
#      committed. The job threads are never left behind.
#   B. A plugin call that never returns, once: the thread is left behind,
#      the record handed to a new thread and written; SIGTERM still ends
#      the worker, with exit status 0 and everything committed.
#   C. The same call hanging every time, with worker.stuck.max.threads=1:
#      the worker stops and exits non-zero; the offset stays at the stuck
#      record (nothing after it committed, nothing lost), no DLQ record.
. "$(dirname "$0")/lib.sh"
# shellcheck disable=SC1091 # TOXIPROXY_CLI
. "$ROOT/test/stack/common.sh"

HANG=$ROOT/$BUILD/test/plugins/hang.so
uploaded=1767225600000
renditions=$("$IMGSINK" config | sed -n 's/^renditions=//p')
[ -f "$HANG" ] || notok "test plugin $HANG is built (make test-plugins)"

# images DIR NAME:WIDTH...: small JPEGs made with libvips' CLI.
images() {
    local dir=$1
    shift
    mkdir -p "$dir"
    for spec in "$@"; do
        vips black "$dir/${spec%%:*}.jpg" "${spec##*:}" 24 --bands 3 || return 1
    done
}
# produce DIR TOPIC: prints the number of records produced.
produce() {
    "$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$2" --uploaded-at "$uploaded" "$1" |
        sed -n 's/^produced \([0-9]*\) records.*/\1/p'
}
verify() { # verify PREFIX IDSFILE
    python3 "$ROOT/test/e2e/verify_store.py" --alias "$MC_ALIAS" --bucket "$S3_BUCKET" \
        --prefix "$1" --uploaded-at-ms "$uploaded" --ids "$2" --renditions "$renditions" --bytes
    [ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))
}
log_count() { grep -c "$2" "$TMP/$1.log"; } # log_count WORKER PATTERN
# wait_exit PID SECONDS: waits for the worker to exit and reaps it; sets st
# to its exit status, or "timeout" (then it is left to the cleanup).
wait_exit() {
    local deadline=$((SECONDS + $2))
    while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        # A zombie still answers kill -0: a finished child is reaped here.
        [ "$(ps -o stat= -p "$1" 2>/dev/null)" = Z ] && break
        sleep 0.5
    done
    if [ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z ] && kill -0 "$1" 2>/dev/null; then
        st=timeout
        return
    fi
    wait "$1"
    st=$?
    WORKER_PIDS=("${WORKER_PIDS[@]/$1/}") # reaped: never signal that PID again
}

# part NAME PARTITIONS: a topic (and its DLQ), group and prefix of its own.
part() {
    topic=$(unique_name "wd-$1")
    group=$(unique_name "g-wd-$1")
    prefix=$(out_prefix "t36$1")
    bash "$ROOT/test/stack/topic.sh" "$topic" "$2" >/dev/null
    bash "$ROOT/test/stack/topic.sh" "$topic.dlq" 1 >/dev/null
}

# --- A: stuck S3 requests are interrupted and retried --------------------------
note "A: PUTs into a black hole"
if ! read -r toxi_url toxi_port < <(bash "$ROOT/test/stack/toxiproxy.sh" 36); then
    notok "toxiproxy in front of MinIO"
    exit 0
fi
trap 'bash "$ROOT/test/stack/stop.sh" toxiproxy >/dev/null 2>&1; e2e_cleanup' EXIT
toxi() { "$TOXIPROXY_CLI" -h "$toxi_url" "$@" >/dev/null; }
part a 2
images "$TMP/a" a1:64 a2:80 a3:96 a4:112
printf '%s\n' a1 a2 a3 a4 >"$TMP/a.ids"
check "toxiproxy black-holes requests to MinIO (timeout toxic, upstream)" \
    toxi toxic add -u -t timeout -a timeout=0 -n hole s3
write_conf "$TMP/a.conf" "$topic" "$topic.dlq" "$group" "$prefix" \
    "s3.endpoint=http://127.0.0.1:$toxi_port" "s3.timeout.ms=600000" "worker.threads=2" \
    "limits.timeout.ms=2000" "worker.stuck.timeout.ms=3000" "retry.backoff.initial.ms=100" \
    "retry.backoff.max.ms=500"
start_worker a "$TMP/a.conf" >/dev/null
pid=${WORKER_PIDS[-1]}
addr=$(http_address a 60) || notok "worker a logged its HTTP address"
check "produced 4 records" [ "$(produce "$TMP/a" "$topic")" = 4 ]
interrupted_twice() { [ "$(log_count a '"job stuck: no progress')" -ge 2 ]; }
check "the watchdog logs stuck jobs (no progress for 3 s) and interrupts them" \
    wait_for 90 interrupted_twice
grep -m1 '"job stuck: no progress' "$TMP/a.log" | sed 's/^/#   /'
check "the stuck jobs were in a PUT, with topic, partition and offset logged" \
    grep -q '"component":"watchdog".*"topic":"'"$topic"'".*"offset":[0-9].*"phase":"PUT"' "$TMP/a.log"
check "an interrupted PUT is a transient failure, retried" wait_for 30 \
    grep -q 'transient PUT failure, retrying: request interrupted: no progress for worker.stuck.timeout.ms' "$TMP/a.log"
check "nothing reached the store while the hole was open" [ "$(count_objects "$prefix" metadata.json)" -eq 0 ]
scrape_metrics "$addr"
check "no job thread was left behind: interrupting the request was enough" \
    test "$(metric imgsink_stuck_job_threads)" = 0 -a "$(metric 'imgsink_stuck_jobs_total{action="handed_over"}')" = 0
toxi toxic remove -n hole s3
check "after the hole closes: lag 0 on both partitions" wait_for 120 committed_equals_end "$group" "$topic" 2
verify "$prefix" "$TMP/a.ids"
scrape_metrics "$addr"
n_int=$(metric 'imgsink_stuck_jobs_total{action="interrupted"}')
note "stuck jobs interrupted: $n_int; store retries: $(metric 'imgsink_retries_total{class="store"}')"
check "imgsink_stuck_jobs_total{action=\"interrupted\"} counts them ($n_int >= 2), handed_over stays 0" \
    test "${n_int:-0}" -ge 2 -a "$(metric 'imgsink_stuck_jobs_total{action="handed_over"}')" = 0
check "no DLQ record: a stuck job is a transient failure" [ "$(dlq_dump "$topic.dlq" | grep -c .)" -eq 0 ]
kill -TERM "$pid"
wait_exit "$pid" 60
check "worker a exits 0 on SIGTERM (got $st)" [ "$st" = 0 ]
bash "$ROOT/test/stack/stop.sh" toxiproxy >/dev/null 2>&1

# --- B: a thread that never comes back is left behind, its record handed over --
note "B: a plugin call that never returns, once"
part b 1
images "$TMP/b" b1-ok:64 b2-hang:13 b3-ok:96
printf '%s\n' b1-ok b2-hang b3-ok >"$TMP/b.ids"
hang_conf=("processors=hang@base" "processor.hang.type=plugin" "processor.hang.path=$HANG"
    "processor.hang.width=13" "worker.threads=1" "limits.timeout.ms=2000"
    "worker.stuck.timeout.ms=3000" "shutdown.timeout.ms=5000")
write_conf "$TMP/b.conf" "$topic" "$topic.dlq" "$group" "$prefix" "${hang_conf[@]}" \
    "processor.hang.times=1"
start_worker b "$TMP/b.conf" >/dev/null
pid=${WORKER_PIDS[-1]}
addr=$(http_address b) || notok "worker b logged its HTTP address"
check "produced 3 records" [ "$(produce "$TMP/b" "$topic")" = 3 ]
check "all 3 written and committed, the hung one by a new job thread" \
    wait_for 120 committed_equals_end "$group" "$topic" 1
verify "$prefix" "$TMP/b.ids"
check "the watchdog interrupted the job in the pipeline first" \
    grep -q '"job stuck: no progress.*"phase":"pipeline"' "$TMP/b.log"
check "then left the thread behind and handed the record over, logged with its offset" \
    grep -q 'leaving it behind and handing its record to a new job thread.*"offset":1,' "$TMP/b.log"
scrape_metrics "$addr"
check "metrics: 1 handed over, 1 stuck thread" \
    test "$(metric 'imgsink_stuck_jobs_total{action="handed_over"}')" = 1 -a "$(metric imgsink_stuck_job_threads)" = 1
check "no DLQ record" [ "$(dlq_dump "$topic.dlq" | grep -c .)" -eq 0 ]
kill -TERM "$pid"
wait_exit "$pid" 60
check "SIGTERM: the worker ends despite the stuck thread, exit status 0 (got $st)" [ "$st" = 0 ]
check "its log says it ended without the stuck thread" \
    grep -q 'job threads still stuck; ending the process without them' "$TMP/b.log"
check "committed offset is still the end offset (3) after the exit" \
    committed_equals_end "$group" "$topic" 1

# --- C: every attempt hangs: the worker stops, nothing after it committed -----
note "C: a plugin call that hangs every time, worker.stuck.max.threads=1"
part c 1
images "$TMP/c" c1-ok:64 c2-hang:13 c3-ok:96
echo c1-ok >"$TMP/c.ids"
write_conf "$TMP/c.conf" "$topic" "$topic.dlq" "$group" "$prefix" "${hang_conf[@]}" \
    "processor.hang.times=0" "worker.stuck.max.threads=1"
check "produced 3 records" [ "$(produce "$TMP/c" "$topic")" = 3 ]
start_worker c "$TMP/c.conf" >/dev/null
pid=${WORKER_PIDS[-1]}
wait_exit "$pid" 120
check "the worker stops by itself with a non-zero status (got $st)" test "$st" != timeout -a "$st" != 0
check "and says why: worker.stuck.max.threads reached, records left uncommitted" \
    grep -q 'worker.stuck.max.threads (1) were left behind already.*stuck records stay uncommitted' "$TMP/c.log"
check "the record was handed over once, then the worker gave up" \
    test "$(log_count c 'handing its record to a new job thread')" = 1 -a "$(log_count c 'stopping the worker; the record stays')" = 1
committed=$(group_offsets "$group" "$topic" | awk '{ print $2 }')
check "committed offset is 1: the good record before it, not the stuck one (got $committed)" [ "$committed" = 1 ]
verify "$prefix" "$TMP/c.ids"
check "no DLQ record for the stuck one" [ "$(dlq_dump "$topic.dlq" | grep -c .)" -eq 0 ]
exit 0
