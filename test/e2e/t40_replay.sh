#!/usr/bin/env bash
# `imgsink replay`: process N records over 3 partitions, stop the worker,
# move one partition back to offset k, restart, and show that exactly that
# partition's records from k on were written again and nothing else was.
# Evidence that is not ours: Kafka's kafka-consumer-groups for offsets, kcat
# for record timestamps, mc for the objects' LastModified and their
# metadata.json (which names each record's partition and offset).
. "$(dirname "$0")/lib.sh"

topic=$(unique_name replay)
dlq="$topic.dlq"
group=$(unique_name g-replay)
prefix=$(out_prefix t40)
bash "$ROOT/test/stack/topic.sh" "$topic" 3 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

# Two batches a second apart, so --to-time has a boundary to find.
N=36
mkdir -p "$TMP/imgs/a" "$TMP/imgs/b"
for i in $(seq -w 1 $N); do
    d=a
    [ "$i" -gt $((N / 2)) ] && d=b
    vips gaussnoise "$TMP/imgs/$d/r$i.png" 48 32 --mean 128 --sigma 50 || notok "vips gaussnoise r$i"
done
for d in a b; do
    "$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --tenant acme \
        --uploaded-at 1767225600000 "$TMP/imgs/$d" >>"$TMP/produce.out" 2>&1
    sleep 1.5
done
check "produced $N records" \
    test "$(grep -c "produced $((N / 2)) records.* $((N / 2)) delivered, 0 failed" "$TMP/produce.out")" -eq 2

# log.level=debug: the worker logs "record written" with partition and offset.
# Renditions in every output format and fit, for the byte-identity check at
# the end.
write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" "log.level=debug" \
    "renditions=large=2048x2048/webp/80,medium=40x40/jpeg/82/cover,thumb=24x24/png/90/attention,small=32x32/avif/50"
start_worker w1 "$TMP/w.conf" >/dev/null
wpid=${WORKER_PIDS[-1]}
check "first run: lag 0 on all 3 partitions" wait_for 180 committed_equals_end "$group" "$topic" 3
check "first run: $N metadata.json written" test "$(count_objects "$prefix" metadata.json)" -eq $N

# --- refuse while a worker is live -------------------------------------------
# same_offsets FILE: the group's committed offsets (kafka-consumer-groups) are
# still those saved in FILE.
same_offsets() { group_offsets "$group" "$topic" | diff -q "$1" - >/dev/null; }
group_offsets "$group" "$topic" >"$TMP/offsets.before"
members=$("$KAFKA_CLASS" consumer-groups --bootstrap-server "$KAFKA_BOOTSTRAP" --describe \
    --group "$group" --members 2>/dev/null | awk -v g="$group" '$1 == g { print $2, $3, $4 }')
note "live member (kafka-consumer-groups): $members"
read -r member_id member_host member_client <<<"$members"
"$IMGSINK" replay -c "$TMP/w.conf" --group "$group" --topic "$topic:0" --to-earliest \
    >"$TMP/live.out" 2>"$TMP/live.err"
rc=$?
sed 's/^/# /' "$TMP/live.err"
check "replay refuses while a worker is live (exit 1, got $rc)" test $rc -eq 1
check "the refusal names the live member: id, client id, host" \
    grep -qF "member $member_id (client id $member_client, host $member_host)" "$TMP/live.err"
check "nothing moved by the refused replay" \
    same_offsets "$TMP/offsets.before"

kill -TERM "$wpid"
wait "$wpid"
check "worker stopped cleanly on SIGTERM" test $? -eq 0

# --- the plan -----------------------------------------------------------------
# The partition with the most records is replayed from the middle.
read -r P endP < <(group_offsets "$group" "$topic" | sort -k3 -n | tail -1 | awk '{ print $1, $3 }')
k=$((endP / 2))
note "replaying partition $P from offset $k (end $endP): $((endP - k)) records"
check "partition $P has records before and after k=$k" test "$k" -ge 1 -a "$endP" -gt "$k"

"$IMGSINK" replay -c "$TMP/w.conf" --group "$group" --topic "$topic:$P" --to-offset "$k" \
    --dry-run >"$TMP/dry.out" 2>&1
rc=$?
sed 's/^/# /' "$TMP/dry.out"
check "dry run exits 0" test $rc -eq 0
# TOPIC PARTITION COMMITTED NEW END REPROCESS SKIP TO-READ
row=$(awk -v t="$topic" -v p="$P" '$1 == t && $2 == p { print $3, $4, $5, $6, $7, $8 }' "$TMP/dry.out")
check "plan for $topic:$P: committed $endP -> new $k, end $endP, $((endP - k)) to reprocess (got '$row')" \
    test "$row" = "$endP $k $endP $((endP - k)) 0 $((endP - k))"
check "plan lists only partition $P" test "$(grep -c "^  $topic " "$TMP/dry.out")" -eq 1
check "dry run says nothing changed" grep -q "dry run: no offsets changed" "$TMP/dry.out"

"$IMGSINK" replay -c "$TMP/w.conf" --group "$group" --topic "$topic" --to-earliest --dry-run \
    >"$TMP/dry-all.out" 2>&1
check "whole-topic plan: 3 partitions, all to offset 0, $N records to reprocess" \
    python3 - "$TMP/dry-all.out" "$topic" "$N" <<'PY'
import sys
path, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [l.split() for l in open(path) if l.startswith("  " + topic + " ")]
ok = len(rows) == 3 and all(r[3] == "0" for r in rows) and sum(int(r[5]) for r in rows) == n
sys.exit(0 if ok else f"rows: {rows}")
PY

# --to-time: Kafka's offsets-for-times lookup must land, in every partition,
# on the first record whose timestamp is >= the time asked: here the time
# between the two batches. kcat reads the records' timestamps.
for p in 0 1 2; do
    kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -p "$p" -o beginning -e -q -f "$p %o %T\n"
done >"$TMP/ts.txt"
python3 - "$TMP/ts.txt" >"$TMP/ts.want" <<'PY'
import sys, datetime
recs = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
ts = sorted(t for _, _, t in recs)
gap = max(range(1, len(ts)), key=lambda i: ts[i] - ts[i - 1])  # between the batches
when = (ts[gap - 1] + ts[gap]) // 2
iso = datetime.datetime.fromtimestamp(when / 1000, datetime.timezone.utc)
print(iso.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
for p in (0, 1, 2):
    mine = [(o, t) for q, o, t in recs if q == p]
    after = [o for o, t in mine if t >= when]
    print(p, min(after) if after else max([o + 1 for o, _ in mine], default=0))
PY
when=$(head -1 "$TMP/ts.want")
"$IMGSINK" replay -c "$TMP/w.conf" --group "$group" --topic "$topic" --to-time "$when" \
    --dry-run >"$TMP/dry-time.out" 2>&1
sed 's/^/# /' "$TMP/dry-time.out"
awk -v t="$topic" '$1 == t { print $2, $4 }' "$TMP/dry-time.out" >"$TMP/ts.got"
check "--to-time $when plans, per partition, the first offset at or after that time, as kcat's timestamps say ($(tail -n +2 "$TMP/ts.want" | tr '\n' ' '))" \
    diff -q <(tail -n +2 "$TMP/ts.want") "$TMP/ts.got"
check "--to-time found the batch boundary (some new offset is neither 0 nor the end)" \
    awk -v t="$topic" '$1 == t && $4 > 0 && $4 < $5 { f = 1 } END { exit !f }' "$TMP/dry-time.out"
check "dry runs changed no committed offset" \
    same_offsets "$TMP/offsets.before"

# --- clear errors -------------------------------------------------------------
expect_fail() { # expect_fail RC WORDS ARGS...: exit code RC and WORDS on stderr
    local want=$1 words=$2 rc
    shift 2
    "$IMGSINK" replay -c "$TMP/w.conf" "$@" >"$TMP/err.out" 2>"$TMP/err.txt"
    rc=$?
    note "replay $*: exit $rc: $(head -c 300 "$TMP/err.txt")"
    [ "$rc" -eq "$want" ] && grep -qF -- "$words" "$TMP/err.txt"
}
check "unknown partition is refused" \
    expect_fail 1 "unknown partition $topic:7: topic $topic has 3 partitions" \
    --group "$group" --topic "$topic:7" --to-earliest
check "unknown topic is refused" \
    expect_fail 1 "unknown topic 'no-such-$topic'" --group "$group" --topic "no-such-$topic" --to-earliest
check "an offset past the end is refused, naming the range" \
    expect_fail 1 "offset 1000000 is out of range for $topic:$P" \
    --group "$group" --topic "$topic:$P" --to-offset 1000000
check "an unknown group is refused" \
    expect_fail 1 "group 'no-such-$group' not found" --group "no-such-$group" --topic "$topic" --to-earliest
check "no target is a usage error" expect_fail 2 "exactly one of" --group "$group" --topic "$topic"
check "a time without a zone is a usage error" \
    expect_fail 2 "needs a zone" --group "$group" --topic "$topic" --to-time 2026-01-01T10:00
check "the errors moved nothing" \
    same_offsets "$TMP/offsets.before"

# --- the replay ---------------------------------------------------------------
"$IMGSINK" replay -c "$TMP/w.conf" --group "$group" --topic "$topic:$P" --to-offset "$k" \
    >"$TMP/replay.out" 2>&1
rc=$?
sed 's/^/# /' "$TMP/replay.out"
check "replay exits 0" test $rc -eq 0
group_offsets "$group" "$topic" >"$TMP/offsets.moved"
sed 's/^/# after replay (kafka-consumer-groups): /' "$TMP/offsets.moved"
check "kafka-consumer-groups: partition $P committed at $k, the others unchanged" \
    python3 - "$TMP/offsets.before" "$TMP/offsets.moved" "$P" "$k" <<'PY'
import sys
before = {l.split()[0]: l.split() for l in open(sys.argv[1]) if l.strip()}
after = {l.split()[0]: l.split() for l in open(sys.argv[2]) if l.strip()}
p, k = sys.argv[3], sys.argv[4]
want = {q: ([q, k, r[2]] if q == p else r) for q, r in before.items()}
sys.exit(0 if want == after else f"want {want}, got {after}")
PY

# Objects as they are before the restart: key -> LastModified.
mc ls --recursive --json "$MC_ALIAS/$S3_BUCKET/$prefix/" >"$TMP/ls.before" 2>/dev/null
sleep 1.2 # LastModified has millisecond resolution; keep the runs apart anyway

start_worker w2 "$TMP/w.conf" >/dev/null
wpid=${WORKER_PIDS[-1]}
check "second run: lag 0 again" wait_for 180 committed_equals_end "$group" "$topic" 3
kill -TERM "$wpid"
wait "$wpid"
mc ls --recursive --json "$MC_ALIAS/$S3_BUCKET/$prefix/" >"$TMP/ls.after" 2>/dev/null

# Which record each id came from, as the store says (metadata.json).
for f in "$TMP"/imgs/*/*.png; do
    id=$(basename "$f" .png)
    mc cat "$MC_ALIAS/$S3_BUCKET/$prefix/acme/2026/01/01/$id/metadata.json" 2>/dev/null |
        python3 -c 'import json,sys; d=json.load(sys.stdin)["kafka"]; print(sys.argv[1], d["partition"], d["offset"])' "$id"
done >"$TMP/meta.txt"

python3 - "$TMP/ls.before" "$TMP/ls.after" "$TMP/meta.txt" "$TMP/w2.log" "$P" "$k" "$endP" "$N" <<'PY'
import json, sys
before_p, after_p, meta_p, log_p = sys.argv[1:5]
P, k, endP, n = map(int, sys.argv[5:9])
fails = 0
def check(cond, what):
    global fails
    print(("ok - " if cond else "not ok - ") + what)
    fails += 0 if cond else 1
def listing(path):
    out = {}
    for l in open(path):
        if l.strip():
            d = json.loads(l)
            out[d["key"]] = d["lastModified"]
    return out
before, after = listing(before_p), listing(after_p)
meta = {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in open(meta_p) if l.strip()}
check(len(meta) == n, f"metadata.json of all {n} records names its partition and offset ({len(meta)})")
want = {i for i, (p, o) in meta.items() if p == P and o >= k}
check(len(want) == endP - k, f"{endP - k} records of partition {P} from offset {k} on ({len(want)})")
check(set(before) == set(after), f"same {len(after)} objects before and after: none added, none lost")
changed = {key for key in after if before.get(key) != after[key]}
changed_ids = {key.split("/")[-2] for key in changed}
print(f"# rewritten ids: {sorted(changed_ids)}")
print(f"# expected ids:  {sorted(want)}")
check(changed_ids == want, "exactly the replayed records were written again (LastModified)")
per_id = {}
for key in after:
    per_id.setdefault(key.split("/")[-2], []).append(key)
check(all(key in changed for i in want for key in per_id.get(i, [])),
      "every object of a replayed record (renditions and metadata.json) was rewritten")
written = set()
for l in open(log_p):
    try:
        d = json.loads(l)
    except ValueError:
        continue
    if d.get("msg") == "record written":
        written.add((d["partition"], d["offset"]))
want_log = {(P, o) for o in range(k, endP)}
print(f"# worker log, second run: {sorted(written)}")
check(written == want_log, f"the worker's log: second run wrote exactly {P}:{k}..{endP - 1}")
sys.exit(1 if fails else 0)
PY
[ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))

# --- a replay rewrites identical bytes -----------------------------------------
# The whole group back to the earliest offset: every object is written
# again (LastModified moves) and its bytes, as mc reads them back, are the
# same: renditions in all four formats and metadata.json.
# object_hashes FILE: "key sha256 lastModified" for every object of the test.
object_hashes() {
    mc ls --recursive --json "$MC_ALIAS/$S3_BUCKET/$prefix/" 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    if l.strip():
        d = json.loads(l); print(d["key"], d["lastModified"])' |
        while read -r key lm; do
            echo "$key $(mc cat "$MC_ALIAS/$S3_BUCKET/$prefix/$key" | sha256sum | cut -d' ' -f1) $lm"
        done >"$1"
}
object_hashes "$TMP/hash.before"
"$IMGSINK" replay -c "$TMP/w.conf" --group "$group" --topic "$topic" --to-earliest \
    >"$TMP/replay-all.out" 2>&1
check "replay of the whole group to earliest exits 0" test $? -eq 0
sleep 1.2 # LastModified of the rewrite must differ from the first write's
start_worker w3 "$TMP/w.conf" >/dev/null
wpid=${WORKER_PIDS[-1]}
check "third run: lag 0 again" wait_for 180 committed_equals_end "$group" "$topic" 3
kill -TERM "$wpid"
wait "$wpid"
object_hashes "$TMP/hash.after"
python3 - "$TMP/hash.before" "$TMP/hash.after" "$N" <<'PY'
import sys
def load(p):
    return {l.split()[0]: l.split()[1:] for l in open(p) if l.strip()}
before, after, n = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
fails = 0
def check(cond, what):
    global fails
    print(("ok - " if cond else "not ok - ") + what)
    fails += 0 if cond else 1
exts = sorted({k.rsplit(".", 1)[-1] for k in after})
check(set(before) == set(after) and len(after) == 5 * n,
      f"same {len(after)} objects before and after the full replay ({n} records x 4 renditions + metadata.json; {exts})")
rewritten = [k for k in after if k in before and after[k][1] != before[k][1]]
check(len(rewritten) == len(after), f"every object was written again ({len(rewritten)} of {len(after)}, LastModified)")
differ = sorted(k for k in after if k in before and after[k][0] != before[k][0])
for k in differ[:10]:
    print(f"# bytes differ: {k}: {before[k][0]} -> {after[k][0]}")
by_ext = {}
for k in differ:
    by_ext[k.rsplit(".", 1)[-1]] = by_ext.get(k.rsplit(".", 1)[-1], 0) + 1
check(not differ, f"every rewritten object has identical bytes (sha256 of mc cat; differing by type: {by_ext})")
sys.exit(1 if fails else 0)
PY
[ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))
exit 0
