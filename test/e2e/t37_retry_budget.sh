#!/usr/bin/env bash
# The retry budget (retry.budget.*): while the store refuses connections,
# four job threads with a 1-20 ms backoff would retry hundreds of times a
# second; the worker's shared budget holds them to its floor rate, they go
# on retrying (never the DLQ), and once the store is back every record is
# written and committed.
. "$(dirname "$0")/lib.sh"
# shellcheck disable=SC1091 # TOXIPROXY_CLI
. "$ROOT/test/stack/common.sh"

uploaded=1767225600000
rate=2 # retry.budget.min.per.second
if ! read -r toxi_url toxi_port < <(bash "$ROOT/test/stack/toxiproxy.sh" 37); then
    notok "toxiproxy in front of MinIO"
    exit 0
fi
trap 'bash "$ROOT/test/stack/stop.sh" toxiproxy >/dev/null 2>&1; e2e_cleanup' EXIT
toxi() { "$TOXIPROXY_CLI" -h "$toxi_url" "$@" >/dev/null; }
topic=$(unique_name budget)
group=$(unique_name g-budget)
prefix=$(out_prefix t37)
bash "$ROOT/test/stack/topic.sh" "$topic" 4 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$topic.dlq" 1 >/dev/null
mkdir -p "$TMP/img"
for i in 1 2 3 4 5 6 7 8; do
    vips black "$TMP/img/r$i.jpg" $((40 + i * 8)) 24 --bands 3
    echo "r$i"
done >"$TMP/ids"

check "the S3 path refuses connections (toxiproxy proxy disabled)" toxi toggle s3
write_conf "$TMP/w.conf" "$topic" "$topic.dlq" "$group" "$prefix" \
    "s3.endpoint=http://127.0.0.1:$toxi_port" "worker.threads=4" \
    "retry.backoff.initial.ms=1" "retry.backoff.max.ms=20" \
    "retry.budget.percent=0" "retry.budget.min.per.second=$rate"
start_worker w "$TMP/w.conf" >/dev/null
addr=$(http_address w) || notok "the worker logged its HTTP address"
n=$("$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --uploaded-at "$uploaded" "$TMP/img" |
    sed -n 's/^produced \([0-9]*\) records.*/\1/p')
check "produced 8 records" [ "$n" = 8 ]

retries() { metric 'imgsink_retries_total{class="store"}'; }
# The bucket starts with ten seconds of the floor rate; once it is spent,
# retries wait for it.
spent() { scrape_metrics "$addr" && [ "$(metric imgsink_retry_budget_waits_total)" -gt 0 ]; }
check "the budget is spent: imgsink_retry_budget_waits_total > 0" wait_for 60 spent
check "logged: retry budget spent" grep -q '"retry budget spent: retries wait for it' "$TMP/w.log"
# The window: from before the first scrape to after the second.
t0=$(date +%s.%N)
scrape_metrics "$addr"
r0=$(retries)
sleep 12
scrape_metrics "$addr"
r1=$(retries)
t1=$(date +%s.%N)
elapsed=$(python3 -c "print(round($t1 - $t0, 1))")
made=$((r1 - r0))
# An upper bound: a busy machine can only retry less. A retry is counted
# once it has its token; the bucket holds under one token while threads
# wait for it, so two tokens of slack cover the carry at both ends.
bound=$(python3 -c "import math; print(math.floor($rate * $elapsed) + 2)")
note "store retries: $made in ${elapsed} s with the budget at $rate/s (bound $bound); waits $(metric imgsink_retry_budget_waits_total)"
check "retries held to the budget: $made <= $bound in ${elapsed} s" [ "$made" -le "$bound" ]
check "retries go on while the store is down: $made > 0" [ "$made" -gt 0 ]
check "nothing committed, nothing in the DLQ while the store is down" \
    test "$(group_offsets "$group" "$topic" | awk '$2 != "-" && $2 > 0' | grep -c .)" -eq 0 \
    -a "$(dlq_dump "$topic.dlq" | grep -c .)" -eq 0

toxi toggle s3
check "store back: lag 0 on all 4 partitions" wait_for 180 committed_equals_end "$group" "$topic" 4
python3 "$ROOT/test/e2e/verify_store.py" --alias "$MC_ALIAS" --bucket "$S3_BUCKET" \
    --prefix "$prefix" --uploaded-at-ms "$uploaded" --ids "$TMP/ids" \
    --renditions "$("$IMGSINK" config | sed -n 's/^renditions=//p')" --bytes
[ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))
check "no DLQ record: refused connections are transient" [ "$(dlq_dump "$topic.dlq" | grep -c .)" -eq 0 ]
exit 0
