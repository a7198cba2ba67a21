#!/usr/bin/env bash
# /metrics on a real run: good and poison records through one worker, then
# the scrape is validated by Prometheus' own promtool and its counters are
# compared with what the store, the DLQ topic and the group's offsets say.
# The Grafana dashboard and the alerting rules are checked against the same
# scrape.
. "$(dirname "$0")/lib.sh"

topic=$(unique_name metrics)
dlq="$topic.dlq"
group=$(unique_name g-metrics)
prefix=$(out_prefix t50)
bash "$ROOT/test/stack/topic.sh" "$topic" 2 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

python3 "$ROOT/test/e2e/make_records.py" "$TMP/recs" >/dev/null
n=0 in_bytes=0
for f in "$TMP"/recs/*.bin; do
    key=$(basename "$f" .bin)
    kcat -P -b "$KAFKA_BOOTSTRAP" -X message.max.bytes=16777216 -t "$topic" -k "${key#*-}" "$f" ||
        notok "kcat produce $key"
    n=$((n + 1))
    in_bytes=$((in_bytes + $(stat -c %s "$f")))
done
n_poison=$(grep -c . "$TMP/recs/poison.ids")
n_good=$(grep -c . "$TMP/recs/good.ids")
n_rend=$("$IMGSINK" config | sed -n 's/^renditions=//p' | tr ',' '\n' | grep -c .)
note "produced $n records ($in_bytes bytes): $n_good good, $n_poison poison; $n_rend renditions"

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" \
    "kafka.statistics.interval.ms=1000" "worker.threads=2"
start_worker w1 "$TMP/w.conf" >/dev/null
addr=$(http_address w1) || notok "the worker logged its HTTP address"
note "worker serves http://$addr"

check "lag 0: committed offset = end offset on both partitions" \
    wait_for 120 committed_equals_end "$group" "$topic" 2

scrape() { scrape_metrics "$addr"; }
value() { metric "$1"; }
# librdkafka's statistics lag behind the commit by up to an interval.
lag_zero() {
    scrape || return 1
    [ "$(grep -c '^imgsink_consumer_lag{' "$TMP/metrics.txt")" -eq 2 ] &&
        awk '/^imgsink_consumer_lag\{/ { s += $2 } END { exit s != 0 }' "$TMP/metrics.txt"
}
check "imgsink_consumer_lag: both partitions reported, at 0" wait_for 60 lag_zero
scrape
note "excerpt:"
grep -E '^imgsink_(records|dlq|puts|put_bytes|consumed|rebalances|inflight|paused|assigned|consumer_lag|kafka|live|ready)|duration_seconds_(count|sum)' \
    "$TMP/metrics.txt" | sed 's/^/#   /'

out=$(promtool check metrics <"$TMP/metrics.txt" 2>&1)
rc=$?
check "promtool check metrics: the scrape is valid Prometheus text, no lint problems${out:+ ($out)}" \
    test "$rc" -eq 0 -a -z "$out"

check "records_total{outcome=written} = $n_good good records" \
    test "$(value 'imgsink_records_total{outcome="written"}')" = "$n_good"
check "records_total{outcome=dlq} = $n_poison poison records" \
    test "$(value 'imgsink_records_total{outcome="dlq"}')" = "$n_poison"
check "records_total{outcome=abandoned} = 0" \
    test "$(value 'imgsink_records_total{outcome="abandoned"}')" = 0
check "records_consumed_total = $n records, consumed_bytes_total = $in_bytes" \
    test "$(value imgsink_records_consumed_total) $(value imgsink_consumed_bytes_total)" = "$n $in_bytes"
# The classes t20 checks record by record: 5 broken envelopes, 5 bad images.
check "dlq_records_total by class: envelope 5, image 5, others 0" \
    test "$(value 'imgsink_dlq_records_total{class="envelope"}') $(value 'imgsink_dlq_records_total{class="image"}') $(awk '/^imgsink_dlq_records_total\{/ { s += $2 } END { print s }' "$TMP/metrics.txt")" = "5 5 $n_poison"
n_dlq_topic=$(kcat -C -b "$KAFKA_BOOTSTRAP" -t "$dlq" -e -q -f '%o\n' | grep -c .)
check "the DLQ topic holds as many records as dlq_records_total ($n_dlq_topic)" \
    test "$n_dlq_topic" = "$n_poison"

# Objects, counted and sized by mc, not by imgsink.
mc ls --recursive --json "$MC_ALIAS/$S3_BUCKET/$prefix/" >"$TMP/objects.json"
read -r n_obj obj_bytes < <(python3 -c 'import json,sys
o=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(len(o), sum(x.get("size",0) for x in o))' "$TMP/objects.json")
check "puts_total{result=ok} = $n_obj objects in the store = good x (renditions + metadata.json)" \
    test "$(value 'imgsink_puts_total{result="ok"}') $n_obj" = "$n_obj $((n_good * (n_rend + 1)))"
check "put_bytes_total = $obj_bytes bytes in the store" \
    test "$(value imgsink_put_bytes_total)" = "$obj_bytes"
puts_all=$(awk '/^imgsink_puts_total\{/ { s += $2 } END { print s }' "$TMP/metrics.txt")
check "put_duration_seconds_count = every PUT attempt ($puts_all)" \
    test "$(value imgsink_put_duration_seconds_count)" = "$puts_all"
check "put_duration_seconds: +Inf bucket = count" \
    test "$(value 'imgsink_put_duration_seconds_bucket{le="+Inf"}')" = "$puts_all"
check "processing_duration_seconds_count = written + dlq ($n)" \
    test "$(value imgsink_processing_duration_seconds_count)" = "$n"
# Where each written record's time went: one observation per record written
# in every stage; the pipeline and PUT stages are parts of the job's time.
for st in queue decode resize_encode put; do
    check "stage_duration_seconds{stage=$st}: count = written ($n_good), +Inf bucket = count" \
        test "$(value "imgsink_stage_duration_seconds_count{stage=\"$st\"}") $(value "imgsink_stage_duration_seconds_bucket{stage=\"$st\",le=\"+Inf\"}")" = "$n_good $n_good"
done
stage_sum() { value "imgsink_stage_duration_seconds_sum{stage=\"$1\"}"; }
check "stage sums: decode, resize_encode and put > 0; together <= processing_duration_seconds_sum" \
    awk -v d="$(stage_sum decode)" -v e="$(stage_sum resize_encode)" -v p="$(stage_sum put)" \
    -v all="$(value imgsink_processing_duration_seconds_sum)" \
    'BEGIN { exit !(d > 0 && e > 0 && p > 0 && d + e + p <= all) }'
check "retries_total = 0 on a healthy stack" \
    test "$(awk '/^imgsink_retries_total\{/ { s += $2 } END { print s }' "$TMP/metrics.txt")" = 0
check "assigned_partitions 2, rebalances assigned >= 1, brokers up >= 1" \
    test "$(value imgsink_assigned_partitions)" = 2 -a \
    "$(value 'imgsink_rebalances_total{event="assigned"}')" -ge 1 -a "$(value imgsink_kafka_brokers_up)" -ge 1
check "nothing in flight, nothing paused once idle" \
    test "$(value imgsink_inflight_records) $(value imgsink_inflight_pixels) $(value imgsink_paused_partitions)" = "0 0 0"
check "imgsink_live 1 and imgsink_ready 1" test "$(value imgsink_live) $(value imgsink_ready)" = "1 1"
check "/healthz and /readyz answer 200 during a normal run" \
    bash -c 'curl -fsS --max-time 5 "http://$0/healthz" >/dev/null && curl -fsS --max-time 5 "http://$0/readyz" >/dev/null' "$addr"

# The dashboard and the alerts name only series that exist; their PromQL parses.
python3 "$ROOT/test/e2e/check_dashboard.py" "$ROOT/deploy/grafana/imgsink.json" "$TMP/metrics.txt" \
    --rules "$TMP/dashboard-rules.yml" --alerts "$ROOT/deploy/prometheus/imgsink-alerts.yml" |
    tee "$TMP/dash.tap"
grep -q '^not ok' "$TMP/dash.tap" && N_FAIL=$((N_FAIL + 1))
check "promtool parses every dashboard query" bash -c 'promtool check rules "$0" >/dev/null' "$TMP/dashboard-rules.yml"
check "promtool check rules deploy/prometheus/imgsink-alerts.yml" \
    bash -c 'promtool check rules "$0" >/dev/null' "$ROOT/deploy/prometheus/imgsink-alerts.yml"
exit 0
