#!/usr/bin/env bash
# One worker with a backlog on all 12 partitions of its topic serves every
# partition while it drains: in every 120 consecutive records it writes, each
# partition that still has records to write appears (counted from the
# worker's "record written" log lines, never timed). At the end the group is
# committed at the end offsets and no record was written twice.
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

# written LOG: "partition offset" of every "record written" line, in order.
written() {
    python3 -c 'import json,sys
for l in open(sys.argv[1], errors="replace"):
    try: o = json.loads(l)
    except ValueError: continue
    if o.get("msg") == "record written": print(o["partition"], o["offset"])' "$1"
}

# ---------------------------------------------------------------- one worker
topic=$(unique_name fair)
group=$(unique_name g-fair)
prefix=$(unique_name t38)
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
    "renditions=$RENDITIONS" "worker.threads=2" "log.level=debug"
t0=$SECONDS
start_worker w1 "$TMP/w.conf" >/dev/null
check "the worker drains the backlog: committed = end on all $PARTS partitions" \
    wait_for 600 committed_equals_end "$group" "$topic" $PARTS
note "drained $end records in about $((SECONDS - t0)) s (informational, not asserted)"

written "$TMP/w1.log" >"$TMP/w1.written"
python3 - "$TMP/w1.written" "$WINDOW" "$PARTS" <<'EOF'
import collections, sys
recs = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
window, parts = int(sys.argv[2]), int(sys.argv[3])
first = collections.Counter(p for p, _ in recs[:window])
print("# first %d records written, per partition: %s" % (
    window, " ".join("p%d=%d" % (p, first[p]) for p in range(parts))))
EOF
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

exit 0
