#!/usr/bin/env bash
# A worker killed with SIGKILL mid-run, twice, and restarted leaves nothing
# missing: every record's objects exist and the group ends at the end offsets.
# What was in flight at the kill is simply processed again (same keys).
. "$(dirname "$0")/lib.sh"

CORPUS=$(bash "$ROOT/test/corpus.sh" | tail -1 | sed "s/^[0-9]* images in //")
topic=$(unique_name kill)
group=$(unique_name g-kill)
prefix=$(out_prefix t30)
uploaded=1767225600000
bash "$ROOT/test/stack/topic.sh" "$topic" 6 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$topic.dlq" 1 >/dev/null

out=$("$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --uploaded-at "$uploaded" \
    --repeat 2 "$CORPUS")
note "$out"
n=$(sed -n 's/^produced \([0-9]*\) records.*/\1/p' <<<"$out")
for r in 1 2; do
    for f in "$CORPUS"/*.jpg; do echo "$(basename "$f" .jpg)-r$r"; done
done | tr -c 'A-Za-z0-9._\n-' '-' >"$TMP/ids"
check "produced $n records" [ "$n" -eq "$(grep -c . "$TMP/ids")" ]

write_conf "$TMP/w.conf" "$topic" "$topic.dlq" "$group" "$prefix"
kills=0
for round in 1 2; do
    pid=$(start_worker "w$round" "$TMP/w.conf")
    target=$((round * 6))
    deadline=$((SECONDS + 300))
    while [ $SECONDS -lt $deadline ] && [ "$(count_objects "$prefix" metadata.json)" -lt "$target" ]; do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    done_now=$(count_objects "$prefix" metadata.json)
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    WORKER_PIDS=("${WORKER_PIDS[@]/$pid/}") # reaped: never signal that PID again
    kills=$((kills + 1))
    note "round $round: SIGKILL after $done_now records had metadata.json"
done
check "killed $kills workers mid-run, before all $n records were done" \
    [ "$(count_objects "$prefix" metadata.json)" -lt "$n" ]

since_ms=$(date +%s%3N)
start_worker w3 "$TMP/w.conf" >/dev/null
check "restarted worker reaches lag 0 on all 6 partitions" \
    wait_for 600 committed_equals_end "$group" "$topic" 6

# A SIGKILL repeats what finished since the last commit: while it works, the
# worker commits its stored offsets every second (kafka.auto.commit.interval.ms
# 1000 unless set; librdkafka's own default is 5 s). Read from the broker's
# __consumer_offsets: the commits of the restarted worker, a second or two
# apart (an image can take longer than a second), never every 5 s.
cadence=$(python3 "$ROOT/test/e2e/commit_cadence.py" --bootstrap "$KAFKA_BOOTSTRAP" \
    --group "$group" --topic "$topic" --since-ms "$since_ms")
note "commits of the restarted worker: $cadence"
check "the restarted worker committed at least every 2.5 s while it worked (median gap)" \
    python3 -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(not (c["commits"] >= 2 and c["median_gap_ms"] <= 2500))' "$cadence"

python3 "$ROOT/test/e2e/verify_store.py" --alias "$MC_ALIAS" --bucket "$S3_BUCKET" \
    --prefix "$prefix" --uploaded-at-ms "$uploaded" --ids "$TMP/ids" \
    --renditions "$("$IMGSINK" config | sed -n 's/^renditions=//p')" --bytes
[ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))
exit 0
