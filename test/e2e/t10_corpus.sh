#!/usr/bin/env bash
# The wallpaper corpus end to end: produce every photograph, two workers in
# one group, and check with mc and Kafka's own tools that every rendition and
# metadata.json exists with its tags and bytes, and that the group committed
# exactly the end offsets.
. "$(dirname "$0")/lib.sh"

CORPUS=$(bash "$ROOT/test/corpus.sh" | tail -1 | sed "s/^[0-9]* images in //")
[ -d "$CORPUS" ] || { notok "corpus available"; exit 1; }
n_files=$(find "$CORPUS" -maxdepth 1 -name '*.jpg' | wc -l)
check "corpus has at least 19 photographs ($n_files)" [ "$n_files" -ge 19 ]

topic=$(unique_name corpus)
group=$(unique_name g-corpus)
prefix=$(out_prefix t10)
uploaded=1767225600000 # 2026-01-01T00:00:00Z
bash "$ROOT/test/stack/topic.sh" "$topic" 6 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$topic.dlq" 1 >/dev/null

out=$("$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --uploaded-at "$uploaded" \
    --tenant acme "$CORPUS")
note "$out"
check "produce delivered $n_files records" grep -q "produced $n_files records .* $n_files delivered, 0 failed" <<<"$out"
for f in "$CORPUS"/*.jpg; do basename "$f" .jpg; done | tr -c 'A-Za-z0-9._\n-' '-' >"$TMP/ids"

write_conf "$TMP/w.conf" "$topic" "$topic.dlq" "$group" "$prefix"
start_worker w1 "$TMP/w.conf" >/dev/null
start_worker w2 "$TMP/w.conf" >/dev/null
t0=$SECONDS
check "group reaches lag 0 (committed = end on all 6 partitions)" \
    wait_for 600 committed_equals_end "$group" "$topic" 6
note "drained $n_files records in $((SECONDS - t0))s with 2 workers"
group_offsets "$group" "$topic" | sed 's/^/# partition committed end: /'

ends=$(topic_end_total "$topic")
check "end offsets (kcat) sum to the records produced ($ends)" [ "$ends" -eq "$n_files" ]
check "both workers took part (each logged an assignment)" \
    bash -c "grep -q 'partitions assigned' '$TMP/w1.log' && grep -q 'partitions assigned' '$TMP/w2.log'"

python3 "$ROOT/test/e2e/verify_store.py" --alias "$MC_ALIAS" --bucket "$S3_BUCKET" \
    --prefix "$prefix" --tenant acme --uploaded-at-ms "$uploaded" --ids "$TMP/ids" \
    --renditions "$("$IMGSINK" config | sed -n 's/^renditions=//p')" --bytes
[ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))

dlq=$(dlq_dump "$topic.dlq" | grep -c .)
check "no record went to the DLQ ($dlq)" [ "$dlq" -eq 0 ]

# A clean stop: SIGTERM, exit 0, totals logged.
for pid in "${WORKER_PIDS[@]}"; do kill -TERM "$pid"; done
rcs=0
for pid in "${WORKER_PIDS[@]}"; do wait "$pid" || rcs=1; done
WORKER_PIDS=()
check "workers exit 0 on SIGTERM" [ "$rcs" -eq 0 ]
written=$(cat "$TMP"/w1.log "$TMP"/w2.log | python3 -c 'import json,sys
print(sum(json.loads(l).get("records_written",0) for l in sys.stdin if l.startswith("{") and "worker totals" in l))')
note "records written by the workers: $written"
check "workers report $n_files records written in total" [ "$written" -ge "$n_files" ]
if [ "$N_FAIL" -gt 0 ]; then tail -20 "$TMP"/w1.log | sed 's/^/# w1: /'; fi
exit 0
