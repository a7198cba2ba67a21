#!/usr/bin/env bash
# imgsink produce --partitioner: round-robin spreads the records evenly over
# the topic's partitions (what the benchmark's worker ratio needs); the
# default key hash keeps every record of one id on one partition. Counted
# and read back with kcat, not with imgsink.
. "$(dirname "$0")/lib.sh"

CORPUS=$(bash "$ROOT/test/corpus.sh" | tail -1 | sed "s/^[0-9]* images in //")
[ -d "$CORPUS" ] || { notok "corpus available"; exit 1; }
files=("$CORPUS"/*.jpg)
files=("${files[@]:0:5}")
uploaded=1767225600000

# 5 files x 3 = 15 records over 4 partitions: 4, 4, 4, 3 in partition order.
rr=$(unique_name rr)
bash "$ROOT/test/stack/topic.sh" "$rr" 4 >/dev/null
out=$("$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$rr" --uploaded-at "$uploaded" \
    --partitioner round-robin --repeat 3 "${files[@]}")
check "round-robin: produce delivered 15 records" grep -q "produced 15 records .* 15 delivered, 0 failed" <<<"$out"
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$rr" -e -q -f '%p %o %k\n' >"$TMP/rr.txt"
counts=$(for p in 0 1 2 3; do awk -v p="$p" '$1 == p' "$TMP/rr.txt" | wc -l; done | tr '\n' ' ')
check "round-robin: records per partition 0..3 are 4 4 4 3 (got $counts)" test "$counts" = "4 4 4 3 "
# Record i (in produce order: file by file, pass by pass) on partition i mod 4.
ids=()
for r in 1 2 3; do for f in "${files[@]}"; do ids+=("$(basename "$f" .jpg | tr -c 'A-Za-z0-9._\n-' '-')-r$r"); done; done
bad=0
for i in "${!ids[@]}"; do
    p=$((i % 4)) o=$((i / 4))
    got=$(awk -v p="$p" -v o="$o" '$1 == p && $2 == o { print $3 }' "$TMP/rr.txt")
    [ "$got" = "${ids[$i]}" ] || { note "record $i: partition $p offset $o holds '$got', expected ${ids[$i]}"; bad=1; }
done
check "round-robin: record i is at partition i mod 4, offset i div 4, keyed by its id" test "$bad" = 0

# Default (key hash): the same ids produced twice land on the same partitions.
kh=$(unique_name kh)
bash "$ROOT/test/stack/topic.sh" "$kh" 4 >/dev/null
"$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$kh" --uploaded-at "$uploaded" "${files[@]}" >/dev/null &&
    "$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$kh" --uploaded-at "$uploaded" --partitioner key \
        "${files[@]}" >/dev/null || notok "produce by key"
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$kh" -e -q -f '%k %p\n' | sort -u >"$TMP/kh.txt"
check "key hash: 5 ids, each on exactly one partition" \
    test "$(wc -l <"$TMP/kh.txt") $(cut -d' ' -f1 "$TMP/kh.txt" | sort -u | wc -l)" = "5 5"

# Hostile or mistaken values: refused before anything is produced.
for v in "" RoundRobin random "round-robin;x" "$(printf 'key\nround-robin')"; do
    "$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$kh" --partitioner "$v" "${files[0]}" >/dev/null 2>"$TMP/err"
    rc=$?
    check "--partitioner '$(printf %q "$v")' exits 2 with a message" \
        bash -c '[ "$0" = 2 ] && grep -q "expected key or round-robin" "$1"' "$rc" "$TMP/err"
done
check "nothing more reached the key-hash topic (10 records)" test "$(topic_end_total "$kh")" = 10
exit 0
