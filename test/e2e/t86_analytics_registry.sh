#!/usr/bin/env bash
# Events in the Schema Registry wire format, and the analytics sink as an
# operator runs it, with a real registry (Apicurio Registry,
# test/stack/registry.sh, its Confluent-compatible API):
#   - a worker with schema.registry.url registers schemas/image_event.avsc
#     under {events.topic}-value (curl reads it back) and frames every event
#     with the id (kcat reads the first 5 bytes);
#   - the sink reads registry-framed and plain events (a framed event copied
#     without its header) into the same files (DuckDB reads them from MinIO);
#   - events with a schema id the registry does not know, or whose schema is
#     not an ImageEvent, are skipped with a reason naming the id, and the
#     events after them are written and committed (Kafka's group tool);
#   - the sink signs with the credentials chain: only AWS_ACCESS_KEY_ID and
#     AWS_SECRET_ACCESS_KEY in its environment (its log names the source);
#   - it serves /healthz, /readyz and /metrics: files, rows, bytes, skipped
#     events, flush latency and consumer lag agree with the store and Kafka;
#   - analytics.aggregate=hourly: next to every events file (tagged
#     retention=7d) an aggregate file under events_hourly/ tagged
#     retention=keep (mc), without ids, phash or camera, whose counts,
#     bytes and latencies match the events files' rows (DuckDB).
. "$(dirname "$0")/lib.sh"

registry_cleanup() {
    bash "$ROOT/test/stack/registry.sh" stop >/dev/null 2>&1
    e2e_cleanup
}
trap registry_cleanup EXIT

duckdb_require
topic=$(unique_name anr)
dlq="$topic.dlq"
events="$topic.events"
group=$(unique_name g-anr)
agroup=$(unique_name g-anr-sink)
prefix=$(out_prefix t86)
# The sink runs as its own identity, deploy/minio/policies/analytics.json:
# PUTs (with tags) under analytics/ and nothing else.
read -r AN_AK AN_SK < <(IMGSINK_STACK_DIR=$STACK_DIR bash "$ROOT/test/stack/identity.sh" analytics) ||
    notok "the analytics identity"
aprefix=analytics/$(unique_name t86)/
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$events" 1 >/dev/null

url=$(bash "$ROOT/test/stack/registry.sh" start) || { notok "start Apicurio Registry"; exit 1; }
ok "Apicurio Registry answers at $url"
subject="$events-value"
ctype='Content-Type: application/vnd.schemaregistry.v1+json'

# --- the worker: 3 good images and 1 poison record, events registry-framed -------
mkdir -p "$TMP/img"
for i in 1 2 3; do
    vips gaussnoise "$TMP/n$i.v" $((240 + 30 * i)) 200 --sigma $((10 + i)) &&
        vips copy "$TMP/n$i.v" "$TMP/img/r$i.jpg[Q=90]" || notok "vips r$i"
done
"$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --tenant acme "$TMP/img" >"$TMP/produce.out" 2>&1 ||
    notok "imgsink produce: $(cat "$TMP/produce.out")"
printf 'not a record' | kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -k poison || notok "kcat poison"

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" \
    "events.topic=$events" "schema.registry.url=$url" \
    "analytics.group.id=$agroup" "analytics.prefix=$aprefix" \
    "analytics.max.delay.ms=2000" "analytics.aggregate=hourly"
start_worker w1 "$TMP/w.conf" >/dev/null
check "worker: 4 records committed" wait_for 240 committed_equals_end "$group" "$topic" 1
check "events topic: one event per record (4)" wait_for 60 test "$(topic_end_total "$events")" -eq 4

latest=$(curl -fsS "$url/subjects/$subject/versions/latest") || notok "curl $subject latest"
eid=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["id"])' "$latest")
ename=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(json.loads(d["schema"])["name"])' "$latest")
check "the worker registered the ImageEvent schema under $subject (id ${eid:-none}, name $ename)" \
    test -n "$eid" -a "$ename" = ImageEvent
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$events" -e -q -f '%o %S\n' >"$TMP/sizes.txt" 2>/dev/null
: >"$TMP/hdrs.txt"
for off in $(cut -d' ' -f1 "$TMP/sizes.txt"); do
    kcat -C -b "$KAFKA_BOOTSTRAP" -t "$events" -p 0 -o "$off" -c 1 -e -q -f '%s' 2>/dev/null >"$TMP/ev-$off.bin"
    python3 -c 'import struct,sys; b=open(sys.argv[1],"rb").read(); print(b[0], struct.unpack(">I", b[1:5])[0])' \
        "$TMP/ev-$off.bin" >>"$TMP/hdrs.txt"
done
note "event headers (magic, schema id): $(sort -u "$TMP/hdrs.txt" | tr '\n' ';')"
check "every event is framed: magic byte 0 and schema id $eid (kcat)" \
    test "$(sort -u "$TMP/hdrs.txt")" = "0 $eid"

# --- what the sink must read besides: plain, unknown id, a foreign schema --------
first=$(head -1 "$TMP/sizes.txt" | cut -d' ' -f1)
tail -c +6 "$TMP/ev-$first.bin" >"$TMP/plain.bin"
python3 - "$TMP" <<'PY'
import struct, sys
tmp = sys.argv[1]
body = open(tmp + "/plain.bin", "rb").read()
open(tmp + "/unknown.bin", "wb").write(b"\0" + struct.pack(">I", 999999) + body)
PY
other=$(curl -fsS -X POST -H "$ctype" \
    -d '{"schema":"{\"type\":\"record\",\"name\":\"Other\",\"fields\":[{\"name\":\"x\",\"type\":\"int\"}]}"}' \
    "$url/subjects/$topic-other-value/versions" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
check "a schema of another record registered (id ${other:-none})" test -n "$other"
python3 - "$TMP" "${other:-0}" <<'PY'
import struct, sys
tmp, other = sys.argv[1], int(sys.argv[2])
open(tmp + "/foreign.bin", "wb").write(b"\0" + struct.pack(">I", other) + b"\x54")  # x = 42
PY
for f in plain unknown foreign; do
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$events" -p 0 -k "$f" "$TMP/$f.bin" || notok "kcat $f"
done
# One more framed event after the hostile ones: a sink that stalled on them
# would never commit it.
kcat -P -b "$KAFKA_BOOTSTRAP" -t "$events" -p 0 -k again "$TMP/ev-$first.bin" || notok "kcat again"
total=$(topic_end_total "$events")
note "events topic: $total events (4 from the worker, 1 plain, 2 hostile, 1 framed copy)"

# --- the sink: credentials from the environment, as the AWS SDKs read them --------
env -u IMGSINK_S3_ACCESS_KEY -u IMGSINK_S3_SECRET_KEY \
    AWS_ACCESS_KEY_ID=$AN_AK AWS_SECRET_ACCESS_KEY=$AN_SK \
    "$IMGSINK" analytics -c "$TMP/w.conf" >>"$TMP/s1.log" 2>&1 &
s1=$!
WORKER_PIDS+=("$s1")
addr=$(http_address s1 60) || notok "the sink logs its /metrics address"
check "sink: credentials from the environment chain (log)" \
    grep -q '"msg":"store credentials from environment"' "$TMP/s1.log"
check "sink: /healthz answers 200" curl -fsS -o /dev/null --max-time 5 "http://$addr/healthz"
ready() { curl -fsS -o /dev/null --max-time 5 "http://$addr/readyz"; }
check "sink: /readyz answers 200 once assigned" wait_for 120 ready
acommitted() { group_offsets "$agroup" "$events" | awk '$2 != "-" { s += $2 } END { print s + 0 }'; }
all_committed() { [ "$(acommitted)" -eq "$total" ]; }
check "sink: every event committed ($total), the hostile ones did not stall it" wait_for 240 all_committed
check "sink: unknown schema id skipped with its reason" \
    grep -q '"msg":"skipped an event: not an ImageEvent: schema id 999999:.*not found' "$TMP/s1.log"
check "sink: a schema of another record skipped with its reason" \
    grep -q "\"msg\":\"skipped an event: not an ImageEvent: schema id $other: its schema cannot be resolved against ImageEvent" "$TMP/s1.log"
note "$(grep -o '"msg":"skipped an event[^"]*"' "$TMP/s1.log" | head -2 | tr '\n' ' ')"

lag0() {
    scrape_metrics "$addr" &&
        [ "$(metric "imgsink_consumer_lag{topic=\"$events\",partition=\"0\"}")" = 0 ]
}
check "sink: imgsink_consumer_lag of $events/0 reaches 0" wait_for 60 lag0
files=$(metric imgsink_analytics_files_total)
rows=$(metric imgsink_analytics_rows_total)
bytes=$(metric imgsink_analytics_bytes_total)
skipped=$(metric imgsink_analytics_skipped_events_total)
flushes=$(metric imgsink_analytics_flush_duration_seconds_count)
note "metrics: files=$files rows=$rows bytes=$bytes skipped=$skipped flushes=$flushes"
mc ls --recursive --json "$MC_ALIAS/$S3_BUCKET/${aprefix}events/" |
    python3 -c 'import json,sys
for l in sys.stdin:
    if l.strip():
        d = json.loads(l); print(d["key"], d["size"])' >"$TMP/files.txt"
nfiles=$(grep -c . "$TMP/files.txt")
mc ls --recursive --json "$MC_ALIAS/$S3_BUCKET/${aprefix}events_hourly/" |
    python3 -c 'import json,sys
for l in sys.stdin:
    if l.strip(): print(json.loads(l)["key"])' >"$TMP/agg.txt"
nagg=$(grep -c . "$TMP/agg.txt")
check "one aggregate file per events file, same name ($nagg = $nfiles)" \
    test "$(cut -d' ' -f1 "$TMP/files.txt" | sort)" = "$(sort "$TMP/agg.txt")" -a "$nagg" -gt 0
bad=0
while read -r key _; do
    t=$(object_tags "${aprefix}events/$key")
    [ "$t" = "7d analytics" ] || { note "events/$key: tags $t"; bad=$((bad + 1)); }
done <"$TMP/files.txt"
check "every events file is tagged retention=7d, source=analytics (mc)" test "$bad" -eq 0
bad=0
while read -r key; do
    t=$(object_tags "${aprefix}events_hourly/$key")
    [ "$t" = "keep analytics-aggregate" ] || { note "events_hourly/$key: tags $t"; bad=$((bad + 1)); }
done <"$TMP/agg.txt"
check "every aggregate file is tagged retention=keep, source=analytics-aggregate (mc)" test "$bad" -eq 0
sbytes=$(awk '{ s += $2 } END { print s + 0 }' "$TMP/files.txt")
note "store: $nfiles files, $sbytes bytes (mc)"
check "imgsink_analytics_files_total = files in the store ($files = $nfiles)" test "${files:-x}" = "$nfiles"
check "imgsink_analytics_bytes_total = their bytes ($bytes = $sbytes)" test "${bytes:-x}" = "$sbytes"
check "imgsink_analytics_rows_total = events read less the 2 hostile ($rows = $((total - 2)))" \
    test "${rows:-x}" = $((total - 2))
check "imgsink_analytics_skipped_events_total = 2 ($skipped)" test "${skipped:-x}" = 2
check "imgsink_analytics_flush_duration_seconds counts every file ($flushes)" test "${flushes:-x}" = "$nfiles"

duckdb_checks ANALYTICS_PREFIX="$aprefix" FIRST="$first" TOPIC="$topic" ROWS=$((total - 2)) <<'PY'
import os
n = int(os.environ["ROWS"])
r = one("SELECT count(*) FROM events_raw")[0][0]
check(r == n, f"DuckDB: {r} rows in the files = {n} events that are ImageEvents")
got = one("SELECT outcome::VARCHAR, coalesce(id, '-'), count(*) FROM events_raw GROUP BY ALL ORDER BY ALL")
print("# outcome, id, rows:", got)
written = sorted(i for o, i, c in got if o == "written" for _ in range(c))
check(len([o for o, i, c in got if o == "dead_lettered"]) == 1, "the poison record's event is a row (dead_lettered)")
# The copied event (the first on the events topic's partition 0) describes
# whichever input record finished first, not always input offset 0: exactly
# one input record has 3 rows (framed, plain and framed again), the others 1.
per = one("SELECT kafka_partition, kafka_offset, count(*) FROM events_raw WHERE kafka_topic = ? "
          "GROUP BY ALL ORDER BY ALL", os.environ["TOPIC"])
counts = sorted(c for _, _, c in per)
check(counts[-1:] == [3] and all(c == 1 for c in counts[:-1]),
      f"the copied event: framed, plain and framed again, 3 rows for one input record, 1 for the others ({per})")
# The aggregates against the rows they aggregate.
base = f"s3://{os.environ['S3_BUCKET']}/{os.environ['ANALYTICS_PREFIX']}"
con.execute(f"CREATE VIEW agg AS SELECT * FROM read_avro('{base}events_hourly/*/*/*.avro', filename = true)")
cols = [r[0] for r in one("DESCRIBE agg")]
check(not set(cols) & {"id", "phash", "camera_make", "camera_model", "mean_color"},
      f"aggregate columns carry no image id, phash or camera: {cols}")
a = one("""SELECT coalesce(tenant, '-'), outcome, coalesce(error_class, '-'), coalesce(source_format, '-'),
                  sum(events), sum(source_bytes), sum(output_bytes), round(sum(processing_ms_sum), 3),
                  max(processing_ms_max)
           FROM agg GROUP BY ALL ORDER BY ALL""")
r = one("""SELECT coalesce(tenant, '-'), outcome::VARCHAR, coalesce(error_class, '-'), coalesce(source_format, '-'),
                  count(*), coalesce(sum(source_bytes), 0),
                  coalesce(sum(list_sum(list_transform(renditions, x -> x.bytes))), 0),
                  round(sum(processing_ms), 3), max(processing_ms)
           FROM events_raw GROUP BY ALL ORDER BY ALL""")
print("# aggregates:", a)
print("# from rows: ", r)
check([tuple(map(str, x)) for x in a] == [tuple(map(str, x)) for x in r],
      "aggregates = the rows grouped by tenant, outcome, class, format (events, bytes in/out, latency sum, max)")
q = one("SELECT count(*) FILTER (WHERE NOT (processing_ms_p50 <= processing_ms_p95 AND processing_ms_p95 <= processing_ms_p99 AND processing_ms_p99 <= processing_ms_max)), count(*) FROM agg")[0]
check(q[0] == 0 and q[1] > 0, f"latency quantiles ordered p50 <= p95 <= p99 <= max in all {q[1]} aggregate rows")
per_file = one("""SELECT count(*) FROM (
    SELECT events_first_offset, sum(events) AS n FROM agg GROUP BY ALL) a
    FULL JOIN (SELECT regexp_extract(filename, '\\+(\\d+)\\.avro$', 1)::BIGINT AS f, count(*) AS n
               FROM read_avro('""" + base + """events/*/*/*.avro', filename = true) GROUP BY ALL) e
    ON a.events_first_offset = e.f WHERE a.n IS DISTINCT FROM e.n""")[0][0]
check(per_file == 0, f"each aggregate file counts its events file's rows ({per_file} differ)")
PY

kill -TERM "$s1"
wait_for 60 eval "! kill -0 $s1 2>/dev/null"
check "sink stopped cleanly" grep -q '"msg":"analytics sink stopped"' "$TMP/s1.log"
[ "$N_FAIL" -eq 0 ]
