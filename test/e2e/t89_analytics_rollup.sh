#!/usr/bin/env bash
# `imgsink analytics rollup --date` on MinIO. A day of hourly files in the
# sink's layout (24 hours x 4 partitions, encoded by hourly_events.py, not
# by imgsink) is compacted into events_daily/dt=DATE/DATE.avro:
#   - rows, tenants, outcomes and source records are the same before and
#     after (DuckDB from MinIO, through the views of scripts/analytics.py);
#   - the hourly files are gone, the daily file is tagged like them (mc);
#   - a rerun changes nothing; an hourly file the daily file already holds
#     (a rollup stopped before its deletes) is deleted, not merged again; a
#     late hourly file is hidden from the views (no row twice) until the
#     next rollup merges it;
#   - a day with a file in another schema version is refused with nothing
#     changed; a bad --date is refused;
#   - the numbers: files, bytes and DuckDB query time, hourly vs daily.
. "$(dirname "$0")/lib.sh"

PY=$(. "$ROOT/test/stack/common.sh" && echo "$IMGSINK_VENV/bin/python")
"$PY" -c 'import duckdb' 2>/dev/null || notok "DuckDB in the test venv $PY (make deps)"
# A bucket of this test's own with the layout of deploy/'s policies
# (analytics.prefix=analytics/), so that the rollup runs as the identity of
# deploy/minio/policies/analytics-rollup.json: list and read the day's files,
# write the daily file with its tags, delete merged hourly files; nothing
# else. mc (setup, verification) stays on the admin alias.
B=$(unique_name t89 | tr 'A-Z' 'a-z')
mc mb "$MC_ALIAS/$B" >/dev/null || notok "mc mb $B"
read -r ROLLUP_AK ROLLUP_SK < <(IMGSINK_STACK_DIR=$STACK_DIR bash "$ROOT/test/stack/identity.sh" analytics-rollup "$B") ||
    notok "the rollup's store identity"
prefix=analytics/
date=2026-01-02
events=images.events
write_conf "$TMP/r.conf" unused "unused.dlq" unused processed \
    "s3.bucket=$B" "events.topic=$events" "analytics.prefix=$prefix"
rollup() { # rollup DATE: the exit code in $TMP/rc, output in $TMP/rollup.out
    IMGSINK_S3_ACCESS_KEY=$ROLLUP_AK IMGSINK_S3_SECRET_KEY=$ROLLUP_SK \
        timeout 300 "$IMGSINK" analytics rollup --date "$1" -c "$TMP/r.conf" >"$TMP/rollup.out" 2>&1
    echo $? >"$TMP/rc"
    note "rollup $1: exit $(cat "$TMP/rc"): $(grep -v '^{' "$TMP/rollup.out" | head -3)"
}
keys() { # keys SUBPATH: "key size" of the objects under the prefix
    mc ls --recursive --json "$MC_ALIAS/$B/$prefix$1" 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    if l.strip():
        d = json.loads(l); print(d["key"], d["size"])'
}

n=$(python3 "$ROOT/test/e2e/hourly_events.py" "$ROOT/schemas/image_event.avsc" "$TMP/day" \
    --date "$date" --partitions 4 --rows 200 --topic "$events") || notok "hourly_events.py"
mc cp --recursive -q "$TMP/day/events/" "$MC_ALIAS/$B/${prefix}events/" >/dev/null ||
    notok "mc cp the hourly files"
keys events/ >"$TMP/before.txt"
hfiles=$(grep -c . "$TMP/before.txt")
hbytes=$(awk '{ s += $2 } END { print s + 0 }' "$TMP/before.txt")
note "hourly: $hfiles files, $hbytes bytes, $n rows"
check "96 hourly files uploaded" test "$hfiles" -eq 96

query() { # query NAME: rows, per tenant/outcome and timings into $TMP/NAME.json
    S3_BUCKET=$B ANALYTICS_PREFIX=$prefix DATE=$date ROOT=$ROOT "$PY" - "$TMP/$1.json" <<'PY'
import json, os, sys, time
sys.path.insert(0, os.path.join(os.environ["ROOT"], "scripts"))
import analytics
con = analytics.connect(os.environ["DATE"])
q = lambda sql: con.execute(sql).fetchall()
out = {
    "rows": q("SELECT count(*) FROM events_raw")[0][0],
    "distinct": q("SELECT count(DISTINCT (kafka_topic, kafka_partition, kafka_offset)) FROM events_raw")[0][0],
    "groups": [list(map(str, r)) for r in q("SELECT tenant, outcome::VARCHAR, hour, count(*) FROM events_raw GROUP BY ALL ORDER BY ALL")],
}
best = {}
for name, sql in (("count", "SELECT count(*) FROM events_raw"),
                  ("per_tenant_hour", "SELECT * FROM images_per_tenant_hour"),
                  ("latency", "SELECT * FROM latency_percentiles")):
    t = []
    for _ in range(3):
        c = analytics.connect(os.environ["DATE"])
        t0 = time.perf_counter()
        c.execute(sql).fetchall()
        t.append(time.perf_counter() - t0)
    best[name] = round(min(t), 3)
out["seconds"] = best
json.dump(out, open(sys.argv[1], "w"))
print(f"# {out['rows']} rows, {out['distinct']} distinct records; best of 3 (s): {best}")
PY
}
same() { # same A B: equal rows, distinct records and groups
    python3 -c 'import json,sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
sys.exit(0 if (a["rows"], a["distinct"], a["groups"]) == (b["rows"], b["distinct"], b["groups"]) else 1)' "$TMP/$1.json" "$TMP/$2.json"
}
query hourly || notok "DuckDB over the hourly files"
check "DuckDB reads the $n rows from the hourly files" \
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d["rows"] != int(sys.argv[2]) or d["distinct"] != d["rows"])' "$TMP/hourly.json" "$n"

# --- refusals: a bad date, a day with a file of another schema version ---------
rollup 2026-13-01
check "--date 2026-13-01: exit 2, expected YYYY-MM-DD" \
    eval "[ \"\$(cat $TMP/rc)\" = 2 ] && grep -q 'expected YYYY-MM-DD' $TMP/rollup.out"
rollup "../$date"
check "--date ../$date: exit 2" test "$(cat "$TMP/rc")" = 2
python3 "$ROOT/test/e2e/event_v2.py" "$ROOT/schemas/image_event.avsc" "$TMP/v2.avro" --rows 3 \
    --topic "$events" --processed-at 1767398400000 || notok "event_v2.py"
v2key="${prefix}events/dt=2026-01-03/hour=00/$events+0+0.avro"
mc cp -q "$TMP/v2.avro" "$MC_ALIAS/$B/$v2key" >/dev/null || notok "mc cp v2"
rollup 2026-01-03
check "a day with a newer schema version: refused (exit 1), the file named" \
    eval "[ \"\$(cat $TMP/rc)\" = 1 ] && grep -q 'another schema' $TMP/rollup.out"
check "... nothing changed: the hourly file is there, no daily file (mc)" \
    eval "mc stat '$MC_ALIAS/$B/$v2key' >/dev/null && [ -z \"\$(keys events_daily/dt=2026-01-03/)\" ]"

# The rollup identity may touch analytics/ only: another prefix is refused by
# the store, and the error says so.
IMGSINK_S3_ACCESS_KEY=$ROLLUP_AK IMGSINK_S3_SECRET_KEY=$ROLLUP_SK timeout 120 "$IMGSINK" analytics rollup \
    --date "$date" -c "$TMP/r.conf" -X analytics.prefix=elsewhere/ >"$TMP/denied.out" 2>&1
rc=$?
note "analytics.prefix=elsewhere/: exit $rc: $(grep -v '^{' "$TMP/denied.out" | head -2)"
check "the rollup identity outside analytics/: refused with AccessDenied, not a success (exit $rc)" \
    eval "[ $rc -ne 0 ] && grep -q 'AccessDenied' $TMP/denied.out"

# --- the rollup ---------------------------------------------------------------
rollup "$date"
check "rollup $date: exit 0" test "$(cat "$TMP/rc")" = 0
dkey="events_daily/dt=$date/$date.avro"
keys "events/dt=$date/" >"$TMP/left.txt"
keys "events_daily/" >"$TMP/daily.txt"
dbytes=$(awk '{ s += $2 } END { print s + 0 }' "$TMP/daily.txt")
note "daily: $(grep -c . "$TMP/daily.txt") file, $dbytes bytes; hourly left: $(grep -c . "$TMP/left.txt")"
check "one daily file $dkey (mc)" test "$(cut -d' ' -f1 "$TMP/daily.txt")" = "dt=$date/$date.avro"
check "the hourly files of $date are deleted (mc)" test ! -s "$TMP/left.txt"
t=$(mc tag list --json "$MC_ALIAS/$B/$prefix$dkey" |
    python3 -c 'import json,sys; d=json.load(sys.stdin).get("tagset") or {}; print(d.get("retention"), d.get("source"))')
check "the daily file is tagged like the hourly ones: $t" test "$t" = "7d analytics"
query daily || notok "DuckDB over the daily file"
check "same rows, records, tenants, outcomes and hours from the daily file" same hourly daily

# --- reruns: idempotent, a leftover hourly file, a late one ----------------------
rollup "$date"
check "rerun: exit 0, nothing merged" eval "[ \"\$(cat $TMP/rc)\" = 0 ] && grep -q ': 0 hourly files merged' $TMP/rollup.out"
query rerun && check "rerun: the same rows" same hourly rerun
first=$(head -1 "$TMP/before.txt" | cut -d' ' -f1)
mc cp -q "$TMP/day/events/$first" "$MC_ALIAS/$B/${prefix}events/$first" >/dev/null || notok "mc cp leftover"
query leftover && check "an hourly file the daily file holds is not read twice" same hourly leftover
rollup "$date"
check "rerun deletes it without merging it again" \
    eval "grep -q ': 0 hourly files merged.*1 hourly files deleted' $TMP/rollup.out && ! mc stat '$MC_ALIAS/$B/${prefix}events/$first' >/dev/null 2>&1"
python3 "$ROOT/test/e2e/hourly_events.py" "$ROOT/schemas/image_event.avsc" "$TMP/late" \
    --date "$date" --partitions 1 --rows 7 --topic late.events --hours 23 >/dev/null || notok "late file"
mc cp --recursive -q "$TMP/late/events/" "$MC_ALIAS/$B/${prefix}events/" >/dev/null || notok "mc cp late"
query late && check "a late hourly file of a rolled-up day is not counted with it (no row twice)" same hourly late
rollup "$date"
check "the next rollup merges the late file: 1 merged" grep -q ': 1 hourly files merged' "$TMP/rollup.out"
query merged
check "... 7 rows more, none twice" python3 -c 'import json,sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
sys.exit(0 if b["rows"] == a["rows"] + 7 and b["distinct"] == b["rows"] else 1)' "$TMP/hourly.json" "$TMP/merged.json"

python3 - "$TMP/hourly.json" "$TMP/daily.json" "$hfiles" "$hbytes" "$dbytes" <<'PY'
import json, sys
h, d = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(f"# measured: {sys.argv[3]} hourly files, {sys.argv[4]} bytes -> 1 daily file, {sys.argv[5]} bytes; "
      f"DuckDB seconds hourly {h['seconds']} daily {d['seconds']}")
PY
[ "$N_FAIL" -eq 0 ]
