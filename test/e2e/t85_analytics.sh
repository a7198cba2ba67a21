#!/usr/bin/env bash
# The events topic and the analytics sink on the real stack. A known mix
# (good images and poison records of tenant acme, good images of tenant
# globex, claim checks good and bad, a hostile event written straight into
# the events topic) goes through a worker with events.topic set; an
# `imgsink analytics` sink turns the events into Avro files in MinIO and is
# killed (SIGKILL) with a file open, then started again. DuckDB (PyPI, its
# avro and httpfs extensions LOADed offline) reads the files from MinIO:
# rows per outcome and tenant are what was produced, the dead letters are
# exactly those in the DLQ (kcat), no row twice, every file readable on its
# own, named and partitioned as documented, tagged for expiry (mc), and a
# file written in a newer schema version (one optional field more, encoded
# by another writer) is read with the old ones in one query.
. "$(dirname "$0")/lib.sh"

duckdb_require
topic=$(unique_name an)
dlq="$topic.dlq"
events="$topic.events"
group=$(unique_name g-an)
agroup=$(unique_name g-analytics)
prefix=$(out_prefix t85)
raw=$S3_RAW_BUCKET rp=$(raw_prefix t85) # where the worker's identity may read claim checks
# The sink runs as its own identity, deploy/minio/policies/analytics.json:
# PUTs (with tags) under analytics/ and nothing else.
read -r AN_AK AN_SK < <(IMGSINK_STACK_DIR=$STACK_DIR bash "$ROOT/test/stack/identity.sh" analytics) ||
    notok "the analytics identity"
aprefix=analytics/$(unique_name t85)/
bash "$ROOT/test/stack/topic.sh" "$topic" 2 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$events" 2 >/dev/null

# --- batch 1: tenant acme, 3 good and the poison records of make_records.py ---------
python3 "$ROOT/test/e2e/make_records.py" "$TMP/recs" || notok "make_records"
n1=0
for f in "$TMP"/recs/*.bin; do
    [ "$(stat -c %s "$f")" -lt 900000 ] || continue # kcat's own 1 MB producer limit
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -k "$(basename "$f" .bin)" "$f" || notok "kcat $f"
    n1=$((n1 + 1))
done
note "batch 1: $n1 records (3 good)"

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" \
    "events.topic=$events" "claimcheck.allowed=$raw/$rp/{tenant}/" \
    "analytics.group.id=$agroup" "analytics.prefix=$aprefix" \
    "analytics.max.delay.ms=3000"
sed 's/^analytics.max.delay.ms=.*/analytics.max.delay.ms=600000/' "$TMP/w.conf" >"$TMP/long.conf"
start_sink() { # start_sink NAME CONF
    IMGSINK_S3_ACCESS_KEY=$AN_AK IMGSINK_S3_SECRET_KEY=$AN_SK \
        "$IMGSINK" analytics -c "$2" >>"$TMP/$1.log" 2>&1 &
    WORKER_PIDS+=($!)
    echo $!
}
# committed offsets of the sink's group on the events topic, summed ("-" is 0)
acommitted() { group_offsets "$agroup" "$events" | awk '$2 != "-" { s += $2 } END { print s + 0 }'; }
all_committed() { [ "$(acommitted)" -eq "$(topic_end_total "$events")" ]; }
lines() { grep -c "\"msg\":\"$2\"" "$TMP/$1.log" 2>/dev/null; }

# Bad configuration stops start-up with the key, the value and what was expected.
bad() { # bad WHAT EXPECT CMD...: exit code 2 and EXPECT on stderr
    local what=$1 expect=$2
    shift 2
    IMGSINK_S3_ACCESS_KEY=$S3_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_SECRET_KEY \
        timeout 60 "$@" >"$TMP/bad.out" 2>&1
    local rc=$?
    check "$what: exit $rc, says '$expect'" eval "[ $rc -ne 0 ] && grep -qF -- \"\$expect\" \"$TMP/bad.out\""
}
bad "analytics without events.topic" "events.topic: required by imgsink analytics" \
    "$IMGSINK" analytics -c "$TMP/w.conf" -X events.topic=
bad "analytics.retention.days outside retention.classes" \
    "analytics.retention.days=30: expected one of retention.classes (7)" \
    "$IMGSINK" analytics -c "$TMP/w.conf" -X analytics.retention.days=30
bad "analytics.prefix with '..'" "analytics.prefix=a/../b/: expected" \
    "$IMGSINK" analytics -c "$TMP/w.conf" -X analytics.prefix=a/../b/
bad "events.topic with a slash" "events.topic=x/y: expected a Kafka topic name" \
    "$IMGSINK" analytics -c "$TMP/w.conf" -X events.topic=x/y
bad "worker with events.topic = its input topic" \
    "events.topic=$topic: expected a topic other than the input.topics" \
    "$IMGSINK" run -c "$TMP/w.conf" -X "events.topic=$topic"

start_worker w1 "$TMP/w.conf" >/dev/null
s1=$(start_sink s1 "$TMP/w.conf")
check "worker: batch 1 committed to the end" wait_for 240 committed_equals_end "$group" "$topic" 2
check "events topic holds one event per batch-1 record ($n1)" \
    wait_for 60 test "$(topic_end_total "$events")" -eq "$n1"
check "sink: batch 1 written and committed (max delay 3 s)" wait_for 240 all_committed
stop_sink() { # stop_sink PID NAME: SIGTERM, then its closing log line
    kill -TERM "$1"
    wait_for 60 eval "! kill -0 $1 2>/dev/null"
    check "sink $2 stopped cleanly: $(grep -o '"msg":"analytics sink stopped".*' "$TMP/$2.log")" \
        test "$(lines "$2" 'analytics sink stopped')" -eq 1
}
stop_sink "$s1" s1

# --- batch 2: tenant globex inline images, claim checks of both tenants ------------
for i in 1 2 3 4; do
    vips black "$TMP/b$i.v" $((200 + 20 * i)) $((150 + 10 * i)) --bands 3 &&
        vips linear "$TMP/b$i.v" "$TMP/g$i.jpg[Q=90]" 1 $((40 * i)) || notok "vips g$i"
done
vips gaussnoise "$TMP/n.v" 500 400 --sigma 30 && vips copy "$TMP/n.v" "$TMP/cc.jpg[Q=90]" || notok "vips cc"
mc cp "$TMP/cc.jpg" "$MC_ALIAS/$raw/$rp/acme/cc.jpg" >/dev/null || notok "mc cp acme"
mc cp "$TMP/cc.jpg" "$MC_ALIAS/$raw/$rp/globex/cc.jpg" >/dev/null || notok "mc cp globex"
size=$(stat -c %s "$TMP/cc.jpg") sha=$(sha256sum "$TMP/cc.jpg" | cut -d' ' -f1)
n2=0
put() { # put ID: the record in $TMP/ID.bin
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -k "$1" "$TMP/$1.bin" || notok "kcat $1"
    n2=$((n2 + 1))
}
for i in 1 2 3 4; do
    python3 "$ROOT/test/e2e/make_records.py" inline "$TMP/glob-$i.bin" --id "glob-$i" \
        --tenant globex --image "$TMP/g$i.jpg" && put "glob-$i"
done
python3 "$ROOT/test/e2e/make_records.py" ref "$TMP/cc-acme.bin" --id cc-acme --tenant acme \
    --bucket "$raw" --key "$rp"/acme/cc.jpg --size "$size" --sha256 "$sha" && put cc-acme
python3 "$ROOT/test/e2e/make_records.py" ref "$TMP/cc-globex.bin" --id cc-globex --tenant globex \
    --bucket "$raw" --key "$rp"/globex/cc.jpg --size "$size" --sha256 "$sha" && put cc-globex
python3 "$ROOT/test/e2e/make_records.py" ref "$TMP/cc-steal.bin" --id cc-steal --tenant acme \
    --bucket "$raw" --key "$rp"/globex/cc.jpg --size "$size" && put cc-steal
note "batch 2: $n2 records (6 good, 1 claim check of another tenant's object)"

# The sink now keeps its files open for 10 minutes: it is killed with
# batch 2 read and nothing of it written.
s2=$(start_sink s2 "$TMP/long.conf")
check "worker: batch 2 committed to the end" wait_for 240 committed_equals_end "$group" "$topic" 2
check "events topic holds one event per record ($((n1 + n2)))" \
    wait_for 60 test "$(topic_end_total "$events")" -eq $((n1 + n2))
opened() { [ "$(lines s2 'file opened')" -ge 1 ]; }
check "sink: a file of batch 2 is open" wait_for 120 opened
sleep 3 # let it read the rest of batch 2
kill -KILL "$s2"
wait_for 60 eval "! kill -0 $s2 2>/dev/null"
before=$(acommitted)
note "killed the sink with $(( $(topic_end_total "$events") - before )) events read but not committed; open: $(grep -o '"key":"[^"]*"' "$TMP/s2.log" | tr '\n' ' ')"
check "SIGKILL left batch 2 uncommitted (committed $before = batch 1)" test "$before" -eq "$n1"
check "nothing of batch 2 was written before the kill" test "$(lines s2 'file written')" -eq 0

# A hostile event: not an ImageEvent. Skipped, counted, committed past.
printf 'not an avro event' | kcat -P -b "$KAFKA_BOOTSTRAP" -t "$events" -p 0 -k hostile ||
    notok "kcat hostile event"
total=$(topic_end_total "$events")

s3=$(start_sink s3 "$TMP/w.conf")
check "restarted sink: every event committed" wait_for 240 all_committed
check "restarted sink: the hostile event was skipped" \
    grep -q '"msg":"skipped an event: not an ImageEvent' "$TMP/s3.log"
reopened=$(grep '"msg":"file opened"' "$TMP/s2.log" | grep -o '"key":"[^"]*"' | sort)
rewritten=$(grep '"msg":"file written"' "$TMP/s3.log" | grep -o '"key":"[^"]*"' | sort)
check "the restarted sink wrote the files the killed one had open, under the same names" \
    test -z "$(comm -23 <(echo "$reopened") <(echo "$rewritten"))"
stop_sink "$s3" s3

# --- what an analyst sees: DuckDB from MinIO ---------------------------------------
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$dlq" -e -q -f '%h\n' 2>/dev/null |
    tr ',' '\n' | sed -n 's/^imgsink.source.\(partition\|offset\)=//p' | paste - - >"$TMP/dlq.txt"
mc ls --recursive --json "$MC_ALIAS/$S3_BUCKET/$aprefix" |
    python3 -c 'import json,sys; [print(json.loads(l)["key"]) for l in sys.stdin if l.strip()]' \
        >"$TMP/files.txt"
note "files: $(wc -l <"$TMP/files.txt")"
bad_tags=0
while read -r key; do
    t=$(object_tags "$aprefix$key")
    [ "$t" = "7d analytics" ] || { note "$key: tags $t"; bad_tags=$((bad_tags + 1)); }
done <"$TMP/files.txt"
check "every file is tagged retention=7d, source=analytics (mc)" test "$bad_tags" -eq 0

now_ms=$(($(date +%s) * 1000))
python3 "$ROOT/test/e2e/event_v2.py" "$ROOT/schemas/image_event.avsc" "$TMP/v2.avro" --rows 3 \
    --tenant newco --topic "$topic" --processed-at "$now_ms" || notok "event_v2.py"
v2key=$(python3 -c 'import sys,time; t=time.gmtime(int(sys.argv[1])/1000); print(time.strftime("events/dt=%Y-%m-%d/hour=%H", t))' "$now_ms")/$events+9+1000000.avro
duckdb_checks ANALYTICS_PREFIX="$aprefix" EVENTS="$events" TOPIC="$topic" \
    N_ROWS=$((total - 1)) DLQ_FILE="$TMP/dlq.txt" FILES="$TMP/files.txt" V2="$TMP/v2.avro" \
    V2KEY="$v2key" <<'PY'
import os, re, subprocess
n = int(os.environ["N_ROWS"])
rows = one("SELECT count(*), count(DISTINCT (kafka_topic, kafka_partition, kafka_offset)) FROM events_raw")[0]
print(f"# DuckDB: {rows[0]} rows, {rows[1]} distinct source records; {n} events produced by the worker")
check(rows[0] == n, f"one row per event produced by the worker ({rows[0]} = {n}): nothing lost")
check(rows[1] == rows[0], "no row twice (distinct source topic/partition/offset)")
got = one("SELECT outcome::VARCHAR, coalesce(tenant, '-'), count(*) FROM events_raw GROUP BY ALL ORDER BY ALL")
print("# outcome, tenant, rows:", got)
written = {t: c for o, t, c in got if o == "written"}
check(written == {"acme": 4, "globex": 5}, f"written per tenant: acme 4, globex 5 ({written})")
ids = sorted(r[0] for r in one("SELECT id FROM events_raw WHERE outcome = 'written'"))
check(ids == sorted(["good-a", "good-b", "good-c", "glob-1", "glob-2", "glob-3", "glob-4",
                     "cc-acme", "cc-globex"]), f"written ids are the good records: {ids}")
dlq = sorted(tuple(map(int, l.split())) for l in open(os.environ["DLQ_FILE"]) if l.strip())
dead = sorted(one("SELECT kafka_partition, kafka_offset FROM events_raw WHERE outcome = 'dead_lettered'"))
check(dead == dlq and len(dead) == n - 9,
      f"dead-lettered rows are exactly the DLQ's records ({len(dead)}, kcat: {len(dlq)})")
cls = dict(one("SELECT error_class, count(*) FROM events_raw WHERE outcome = 'dead_lettered' GROUP BY ALL"))
print("# dead letters by class:", cls)
check(cls.get("claim-check") == 1 and one("SELECT error_class FROM events_raw WHERE id = 'cc-steal'") == [("claim-check",)],
      "the other tenant's claim check is a dead letter of class claim-check")
check(one("SELECT count(*) FROM events_raw WHERE kafka_topic <> ?", os.environ["TOPIC"]) == [(0,)],
      "every row names the source topic")
# Files: named and partitioned as documented, each readable on its own.
files = [l.strip() for l in open(os.environ["FILES"]) if l.strip()]
pat = re.compile(r"^events/dt=(\d{4}-\d\d-\d\d)/hour=(\d\d)/" + re.escape(os.environ["EVENTS"]) + r"\+([01])\+(\d+)\.avro$")
base = f"s3://{os.environ['S3_BUCKET']}/{os.environ['ANALYTICS_PREFIX']}"
bad, total = [], 0
for f in files:
    m = pat.match(f)
    if not m:
        bad.append(f)
        continue
    c, wrong = one(f"SELECT count(*), count(*) FILTER (WHERE strftime(processed_at, '%Y-%m-%d/%H') <> ?) FROM read_avro(?)",
                   f"{m.group(1)}/{m.group(2)}", base + f)[0]
    total += c
    if wrong:
        bad.append(f + f": {wrong} rows of another hour")
check(files and not bad, f"{len(files)} files named events/dt=YYYY-MM-DD/hour=HH/{{topic}}+{{partition}}+{{offset}}.avro, rows in their hour: {bad}")
check(total == n, f"every file readable on its own: {total} rows in all")
cov = one("SELECT count(*) FROM events_raw WHERE dt IS NULL OR hour IS NULL")
check(cov == [(0,)], "DuckDB reads dt and hour as Hive partitions")
# A newer schema version: one optional field more.
subprocess.run([os.environ["MC"].split()[0], *os.environ["MC"].split()[1:], "cp", "-q", os.environ["V2"],
                f"{os.environ['MC_ALIAS']}/{os.environ['S3_BUCKET']}/{os.environ['ANALYTICS_PREFIX']}{os.environ['V2KEY']}"],
               check=True, stdout=subprocess.DEVNULL)
con = analytics.connect()
r = one("SELECT count(*), count(*) FILTER (WHERE tenant = 'newco') FROM events")
check(r == [(n + 3, 3)], f"old and new files in one query: {r[0][0]} rows, 3 of the new version")
r = one("SELECT count(labels), count(*) FILTER (WHERE labels IS NULL) FROM events")
check(r == [(3, n)], f"the added field reads with the old rows, NULL there: {r}")
for v in ("images_per_tenant_hour", "images_per_tenant_day", "failure_rate_by_class",
          "latency_percentiles", "bytes_per_rendition", "top_cameras", "near_duplicates"):
    rs = one(f"SELECT * FROM {v}")
    print(f"# {v}: {rs[:6]}")
    check(v == "near_duplicates" or rs, f"view {v} answers")
PY
[ "$N_FAIL" -eq 0 ]
