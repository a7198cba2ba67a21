#!/usr/bin/env bash
# One worker with a backlog on all 12 partitions of its topic serves every
# partition while it drains: in every 120 consecutive records it writes, each
# partition that still has records to write appears (counted from the
# worker's "record written" log lines, never timed). At the end the group is
# committed at the end offsets and no record was written twice.
#
# Then two workers: a second one joins while the first drains a backlog, and
# the first is stopped with SIGTERM: nothing is lost, the group ends at the
# end offsets, and no partition is written by both workers at the same time.
. "$(dirname "$0")/lib.sh"

PARTS=12
PER_PART=60
WINDOW=120
uploaded=1767225600000
# Two renditions of a 400x300 source, as the operators measured.
RENDITIONS="medium=320x240/jpeg/82,thumb=128x128/jpeg/80"

# A 400x300 photo-like JPEG (noise compresses like a photo, not like a flat
# colour), and one file per record: ids differ, so keys spread over the
# partitions by the producer's partitioner.
mkdir -p "$TMP/img"
if ! { vips gaussnoise "$TMP/noise.v" 400 300 --mean 128 --sigma 40 &&
    vips colourspace "$TMP/noise.v" "$TMP/img/base.jpg[Q=85]" srgb; } >/dev/null 2>&1; then
    notok "cannot make the 400x300 test image with vips"
    exit 1
fi

# backlog TOPIC: PARTS x PER_PART records (distinct ids, so the keys spread
# over every partition by the producer's partitioner). Prints the count.
backlog() {
    "$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$1" --uploaded-at "$uploaded" \
        --id-prefix "$1-" --repeat $((PARTS * PER_PART)) "$TMP/img" |
        sed -n 's/^produced \([0-9]*\) records.*/\1/p'
}

# written LOG [TAG]: "partition offset" of every "record written" line, in
# order; with TAG, "partition offset time TAG".
written() {
    python3 -c 'import json,sys
for l in open(sys.argv[1], errors="replace"):
    try: o = json.loads(l)
    except ValueError: continue
    if o.get("msg") == "record written":
        print(o["partition"], o["offset"], *((o["time"], sys.argv[2]) if len(sys.argv) > 2 else ()))' "$@"
}
n_written() { grep -c '"msg":"record written"' "$1" 2>/dev/null; }
# at_least LOG N: LOG has N "record written" lines or more (for wait_for).
# shellcheck disable=SC2317 # called through wait_for
at_least() { [ "$(n_written "$1")" -ge "$2" ]; }

# ---------------------------------------------------------------- one worker
topic=$(unique_name fair)
group=$(unique_name g-fair)
prefix=$(out_prefix t38)
bash "$ROOT/test/stack/topic.sh" "$topic" $PARTS >/dev/null
bash "$ROOT/test/stack/topic.sh" "$topic.dlq" 1 >/dev/null
n=$(backlog "$topic")
end=$(topic_end_total "$topic")
# end_offsets TOPIC: "topic:partition:end" lines (Kafka's GetOffsetShell).
end_offsets() {
    "$KAFKA_CLASS" get-offsets --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$1" --time -1 2>/dev/null
}
note "end offsets: $(end_offsets "$topic" | tr '\n' ' ')"
check "a backlog of $end records on all $PARTS partitions before the worker starts" \
    test "${n:-0}" -eq $((PARTS * PER_PART)) -a "$end" -eq "${n:-0}" \
    -a "$(end_offsets "$topic" | awk -F: '$NF > 0' | wc -l)" -eq $PARTS

write_conf "$TMP/w.conf" "$topic" "$topic.dlq" "$group" "$prefix" \
    "renditions=$RENDITIONS" "worker.threads=2" "log.level=debug" "kafka.debug=fetch"
t0=$SECONDS
start_worker w1 "$TMP/w.conf" >/dev/null
check "the worker drains the backlog: committed = end on all $PARTS partitions" \
    wait_for 600 committed_equals_end "$group" "$topic" $PARTS
note "drained $end records in about $((SECONDS - t0)) s (informational, not asserted)"

written "$TMP/w1.log" >"$TMP/w1.written"
first_share() {
    python3 - "$TMP/w1.written" "$WINDOW" "$PARTS" <<'EOF'
import collections, sys
recs = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
window, parts = int(sys.argv[2]), int(sys.argv[3])
first = collections.Counter(p for p, _ in recs[:window])
print("# first %d records written, per partition: %s" % (
    window, " ".join("p%d=%d" % (p, first[p]) for p in range(parts))))
fair = window / parts
sys.exit(0 if all(abs(first[p] - fair) <= fair / 2 for p in range(parts)) else 1)
EOF
}
# From the very first record: no partition runs ahead while the others'
# first fetches are still on their way (the warm-up in dispatch_round).
check "the first $WINDOW records written: every partition's share within 50 % of fair" first_share
# fair FILE: for every window of WINDOW consecutive writes, a partition
# that has writes after the window has one inside it (it had records
# waiting, and was served).
# shellcheck disable=SC2317 # called through check
fair() {
    python3 - "$1" "$WINDOW" <<'EOF'
import sys
recs = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
w = int(sys.argv[2])
last = {}
for i, (p, _) in enumerate(recs):
    last[p] = i
bad = 0
for s in range(0, max(1, len(recs) - w + 1)):
    inside = {p for p, _ in recs[s:s + w]}
    for p, l in last.items():
        if l >= s + w and p not in inside:
            if bad < 5:
                print("# window of writes %d..%d: partition %d waited and was not served"
                      % (s, s + w - 1, p))
            bad += 1
sys.exit(1 if bad else 0)
EOF
}
check "every $WINDOW consecutive writes serve every partition with records waiting" \
    fair "$TMP/w1.written"
check "every record written exactly once ($end partition/offset pairs, no duplicate)" \
    test "$(sort -u "$TMP/w1.written" | wc -l)" -eq "$end" -a "$(wc -l <"$TMP/w1.written")" -eq "$end"
check "metadata.json for every record in the store" \
    [ "$(count_objects "$prefix" metadata.json)" -eq "$end" ]
# fetched LOG TOPIC: records librdkafka put in its local queues for TOPIC,
# from its fetch debug lines ("Enqueue N message(s) ... on TOPIC [P]").
fetched() {
    python3 - "$1" "$2" <<'EOF2'
import json, re, sys
n = 0
pat = re.compile(r"Enqueue (\d+) message\(s\) .*? on (\S+) \[\d+\] fetch queue")
for l in open(sys.argv[1], errors="replace"):
    m = pat.search(l)
    if m and m.group(2) == sys.argv[2]:
        n += int(m.group(1))
print(n)
EOF2
}
# Steady: nothing librdkafka prefetched is dropped and fetched again (a
# pause drops it): the records fetched are the records there are, give or
# take what was in the queues at the end.
f=$(fetched "$TMP/w1.log" "$topic")
note "librdkafka fetched $f records of $topic for $end records"
check "each record fetched from Kafka once: no pause/refetch cycle ($f fetched, $end records)" \
    test "$f" -ge "$end" -a "$f" -le $((end + end / 10))

# --------------------------------------------------------------- two workers
topic=$(unique_name fair2)
group=$(unique_name g-fair2)
prefix=$(out_prefix t38b)
bash "$ROOT/test/stack/topic.sh" "$topic" $PARTS >/dev/null
bash "$ROOT/test/stack/topic.sh" "$topic.dlq" 1 >/dev/null
n=$(backlog "$topic")
end=$(topic_end_total "$topic")
check "two workers: a backlog of $end records on $PARTS partitions" \
    test "${n:-0}" -eq $((PARTS * PER_PART)) -a "$end" -eq "${n:-0}"
write_conf "$TMP/a.conf" "$topic" "$topic.dlq" "$group" "$prefix" \
    "renditions=$RENDITIONS" "worker.threads=2" "log.level=debug"
start_worker a "$TMP/a.conf" >/dev/null # not in $(...): wait needs it a child of this shell
pid_a=${WORKER_PIDS[-1]}
wait_for 300 at_least "$TMP/a.log" $WINDOW
note "worker a wrote $(n_written "$TMP/a.log") records; worker b joins"
start_worker b "$TMP/a.conf" >/dev/null
wait_for 300 at_least "$TMP/b.log" 30
a_at_stop=$(n_written "$TMP/a.log")
note "worker b wrote $(n_written "$TMP/b.log") records; worker a ($a_at_stop written) gets SIGTERM"
check "worker a still had records to drain when stopped" test "$a_at_stop" -lt "$end"
kill -TERM "$pid_a"
wait "$pid_a"
rc_a=$?
WORKER_PIDS=("${WORKER_PIDS[@]/$pid_a/}") # reaped: never signal that PID again
check "worker a stopped cleanly on SIGTERM (exit $rc_a)" test "$rc_a" -eq 0
check "worker b drains the rest: committed = end on all $PARTS partitions" \
    wait_for 600 committed_equals_end "$group" "$topic" $PARTS
{
    written "$TMP/a.log" a
    written "$TMP/b.log" b
} >"$TMP/ab.written"
note "writes: a $(grep -c ' a$' "$TMP/ab.written"), b $(grep -c ' b$' "$TMP/ab.written"), \
distinct $(cut -d' ' -f1,2 "$TMP/ab.written" | sort -u | wc -l) of $end"
check "nothing lost: every partition/offset written by a worker" \
    test "$(cut -d' ' -f1,2 "$TMP/ab.written" | sort -u | wc -l)" -eq "$end"
check "metadata.json for every record in the store" \
    test "$(count_objects "$prefix" metadata.json)" -eq "$end"
# exclusive FILE: per partition, the writes ordered by time change hands at
# most once (a, then b): never both workers writing one partition at once.
# shellcheck disable=SC2317 # called through check
exclusive() {
    python3 - "$1" <<'EOF2'
import collections, sys
by = collections.defaultdict(list)
for l in open(sys.argv[1]):
    p, o, t, w = l.split()
    by[int(p)].append((t, w))
bad = 0
for p, ws in sorted(by.items()):
    ws.sort()
    order = [w for i, (_, w) in enumerate(ws) if i == 0 or ws[i - 1][1] != w]
    if len(order) > 2 or order[0] != "a" and len(order) > 1:
        print("# partition %d written in turns %s" % (p, "".join(order)))
        bad += 1
moved = sum(1 for ws in by.values() if {w for _, w in ws} == {"a", "b"})
print("# partitions written by a then b: %d" % moved)
sys.exit(1 if bad else 0)
EOF2
}
check "no partition written by both workers at the same time" exclusive "$TMP/ab.written"

exit 0
