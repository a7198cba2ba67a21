#!/usr/bin/env bash
# Poison records go to the DLQ with their reason and do not hold up the good
# records behind them. One partition, so "behind" is well defined: good and
# poison records interleave at known offsets.
. "$(dirname "$0")/lib.sh"

topic=$(unique_name poison)
dlq="$topic.dlq"
group=$(unique_name g-poison)
prefix=$(out_prefix t20)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

python3 "$ROOT/test/e2e/make_records.py" "$TMP/recs"
# A record that carries an earlier dead letter's imgsink.* headers, as one
# an operator replays from a DLQ into the input topic does: its new dead
# letter must carry one set of them, the earlier ones renamed.
printf 'not avro, dead-lettered before\n' >"$TMP/recs/99-again.bin"
echo again >>"$TMP/recs/poison.ids"
n=0
for f in "$TMP"/recs/*.bin; do
    key=$(basename "$f" .bin)
    key=${key#*-}
    [ "$key" = again ] && continue
    kcat -P -b "$KAFKA_BOOTSTRAP" -X message.max.bytes=16777216 -t "$topic" -p 0 -k "$key" \
        -H "origin=e2e" "$f" || notok "kcat produce $key"
    n=$((n + 1))
done
kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -p 0 -k again -H "origin=e2e" \
    -H "imgsink.error.class=image" -H "imgsink.error.message=earlier reason" \
    -H "imgsink.source.topic=images" -H "imgsink.source.partition=3" \
    -H "imgsink.source.offset=41" -H "imgsink.worker.version=0.0.1" \
    -H "imgsink.time=2026-01-01T00:00:00Z" -H "imgsink.previous.error.class=older" \
    "$TMP/recs/99-again.bin" || notok "kcat produce again"
n=$((n + 1))
n_poison=$(grep -c . "$TMP/recs/poison.ids")
n_good=$(grep -c . "$TMP/recs/good.ids")
note "produced $n records: $n_good good, $n_poison poison"

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix"
start_worker w1 "$TMP/w.conf" >/dev/null
check "lag 0: committed offset = end offset ($n) despite $n_poison poison records" \
    wait_for 120 committed_equals_end "$group" "$topic" 1

python3 "$ROOT/test/e2e/verify_store.py" --alias "$MC_ALIAS" --bucket "$S3_BUCKET" \
    --prefix "$prefix" --tenant acme --uploaded-at-ms 1767225600000 --ids "$TMP/recs/good.ids" \
    --renditions "$("$IMGSINK" config | sed -n 's/^renditions=//p')" --bytes \
    --absent "$TMP/recs/poison.ids"
[ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))

# Every poison record is in the DLQ once, with its original key, value and
# headers, and a class and reason that name the problem.
dlq_dump "$dlq" >"$TMP/dlq.json"
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$dlq" -e -q -f '%k %S\n' >"$TMP/dlq.sizes"
python3 - "$TMP/dlq.json" "$TMP/recs" "$topic" "$TMP/dlq.sizes" "$((n - 1))" <<'PY'
import json, os, sys
path, recs, topic, sizes_path, again_offset = sys.argv[1:6]
sizes = dict(l.split() for l in open(sizes_path) if l.strip())
want = {  # key -> (class, words the reason must contain)
    "junk": ("envelope", ""), "magic1": ("envelope", ""),
    "text": ("image", "not an image"), "dotdot": ("envelope", "id"),
    "trunc": ("image", ""), "bomb": ("image", "limits.max.pixels"),
    "svg": ("image", "not an image"), "empty": ("envelope", "empty"),
    "hugelen": ("envelope", "exceeds"), "bigjunk": ("image", "not an image"),
    "again": ("envelope", "plain Avro"),
}
values = {}
for f in sorted(os.listdir(recs)):
    if f.endswith(".bin"):
        values[f[3:-4]] = open(os.path.join(recs, f), "rb").read()
got = {}
for line in open(path, errors="replace"):
    m = json.loads(line)
    h = m.get("headers") or []
    hd = dict(zip(h[0::2], h[1::2]))
    got.setdefault(m["key"], []).append((hd, m))
fails = 0
def check(cond, what):
    global fails
    print(("ok - " if cond else "not ok - ") + what)
    fails += 0 if cond else 1
check(sorted(got) == sorted(want), f"DLQ holds exactly the poison records: {sorted(got)}")
check(all(len(v) == 1 for v in got.values()), "each poison record is in the DLQ once")
for key, (klass, words) in want.items():
    if key not in got:
        continue
    hd, m = got[key][0]
    reason = hd.get("imgsink.error.message", "")
    print(f"# DLQ {key}: class={hd.get('imgsink.error.class')} reason={reason!r}")
    check(hd.get("imgsink.error.class") == klass and words.lower() in reason.lower() and reason,
          f"{key}: class {klass}, reason mentions '{words}'")
    check(hd.get("imgsink.source.topic") == topic and hd.get("imgsink.source.offset", "").isdigit()
          and hd.get("imgsink.worker.version") and hd.get("imgsink.time") and hd.get("origin") == "e2e",
          f"{key}: source topic/offset, version, time and original headers present")
    check(int(sizes.get(key, -1)) == len(values[key]),
          f"{key}: original value carried ({sizes.get(key)} bytes, sent {len(values[key])})")
if "again" in got:
    m = got["again"][0][1]
    h = m.get("headers") or []
    names, hd = h[0::2], dict(zip(h[0::2], h[1::2]))
    print(f"# DLQ again: headers {names}")
    dup = sorted({n for n in names if names.count(n) > 1})
    check(not dup, f"again: no header twice (twice: {dup})")
    check(hd.get("imgsink.error.class") == "envelope" and hd.get("imgsink.source.topic") == topic
          and hd.get("imgsink.source.offset") == again_offset,
          "again: imgsink.error.* and imgsink.source.* are this dead letter's")
    check(hd.get("imgsink.previous.error.message") == "earlier reason"
          and hd.get("imgsink.previous.source.offset") == "41"
          and hd.get("imgsink.previous.error.class") == "image",
          "again: the earlier dead letter's headers are kept as imgsink.previous.*")
sys.exit(0)
PY

# --- dead letters too large for the DLQ topic ---------------------------------
# A record over input.max.record.bytes (4 MiB) and one under it that the DLQ
# topic (max.message.bytes 3 MiB) refuses: neither may stall the partition.
# Each dead letter carries its value by reference to the store, where mc
# finds the original bytes tagged for expiry.
topic2=$(unique_name poison-big)
dlq2="$topic2.dlq"
group2=$(unique_name g-poison-big)
prefix2=$(out_prefix t20big)
bash "$ROOT/test/stack/topic.sh" "$topic2" 1 >/dev/null
"$KAFKA_CLASS" topics --bootstrap-server "$KAFKA_BOOTSTRAP" --create --topic "$dlq2" \
    --partitions 1 --replication-factor 1 --config max.message.bytes=3145728 >/dev/null ||
    notok "create $dlq2 with max.message.bytes=3145728"
bash "$ROOT/test/stack/topic.sh" "$dlq2" 1 >/dev/null
mkdir -p "$TMP/big"
python3 - "$ROOT/test/e2e" "$TMP/big" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
import make_records as m
out = sys.argv[2]
open(os.path.join(out, "huge.bin"), "wb").write(os.urandom(10 * 1024 * 1024))
open(os.path.join(out, "mid.bin"), "wb").write(m.record("mid", os.urandom(3584 * 1024)))
PY
good=("$TMP"/recs/*-good-a.bin "$TMP"/recs/*-good-b.bin)
produce2() { # produce2 KEY FILE [kcat args...]
    local key=$1 file=$2
    shift 2
    kcat -P -b "$KAFKA_BOOTSTRAP" -X message.max.bytes=16777216 -t "$topic2" -p 0 -k "$key" \
        -H "origin=e2e" "$@" "$file" || notok "kcat produce $key"
}
produce2 good-a "${good[0]}"
produce2 huge "$TMP/big/huge.bin"
produce2 mid "$TMP/big/mid.bin"
produce2 good-b "${good[1]}"
note "produced 4 records to $topic2: 10 MiB and 3.5 MiB poison between 2 good"

write_conf "$TMP/w2.conf" "$topic2" "$dlq2" "$group2" "$prefix2" "input.max.record.bytes=4MiB"
start_worker w2 "$TMP/w2.conf" >/dev/null
check "lag 0 on $topic2: committed offset = end offset (4) past the oversize dead letters" \
    wait_for 120 committed_equals_end "$group2" "$topic2" 1
check "both good records written ($prefix2)" test "$(count_objects "$prefix2" metadata.json)" -eq 2

dlq_dump "$dlq2" >"$TMP/dlq2.json"
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$dlq2" -e -q -f '%k %S\n' >"$TMP/dlq2.sizes"
# ref_check KEY FILE: the object the dead letter of KEY refers to holds the
# bytes of FILE (sha256 of mc cat) and the retention tag.
ref_check() {
    local ref obj want got
    ref=$(python3 - "$TMP/dlq2.json" "$1" <<'PY'
import json, sys
for l in open(sys.argv[1], errors="replace"):
    m = json.loads(l)
    h = m.get("headers") or []
    hd = dict(zip(h[0::2], h[1::2]))
    if m["key"] == sys.argv[2]:
        print(hd.get("imgsink.dlq.value.ref", ""))
PY
)
    note "$1: imgsink.dlq.value.ref=$ref"
    [[ $ref == s3://$S3_BUCKET/* ]] || return 1
    obj=${ref#s3://}
    want=$(sha256sum <"$2" | cut -d' ' -f1)
    got=$(mc cat "$MC_ALIAS/$obj" | sha256sum | cut -d' ' -f1)
    note "$1: sha256 sent $want, in the store $got"
    [ "$want" = "$got" ] || return 1
    mc tag list --json "$MC_ALIAS/$obj" >"$TMP/tags.json" 2>&1
    note "$1: tags $(tr -d '\n' <"$TMP/tags.json" | head -c 300)"
    python3 -c 'import json,sys; t=json.load(open(sys.argv[1])).get("tagset") or {}
sys.exit(0 if t.get("retention") == "7d" else 1)' "$TMP/tags.json"
}
check "10 MiB record: its value is in the store, byte for byte, tagged retention=7d" \
    ref_check huge "$TMP/big/huge.bin"
check "3.5 MiB record the DLQ topic refuses: its value is in the store, tagged retention=7d" \
    ref_check mid "$TMP/big/mid.bin"
python3 - "$TMP/dlq2.json" "$TMP/dlq2.sizes" "$TMP/big" "$topic2" "$prefix2" "$S3_BUCKET" <<'PY'
import hashlib, json, os, sys
path, sizes_path, big, topic, prefix, bucket = sys.argv[1:7]
sizes = dict(l.split() for l in open(sizes_path) if l.strip())
got = {}
for l in open(path, errors="replace"):
    m = json.loads(l)
    h = m.get("headers") or []
    got.setdefault(m["key"], []).append(list(zip(h[0::2], h[1::2])))
fails = 0
def check(cond, what):
    global fails
    print(("ok - " if cond else "not ok - ") + what)
    fails += 0 if cond else 1
check(sorted(got) == ["huge", "mid"] and all(len(v) == 1 for v in got.values()),
      f"{topic}.dlq holds each poison record once: {sorted(got)}")
for key, klass, off in (("huge", "envelope", 1), ("mid", "image", 2)):
    if key not in got:
        continue
    hd = dict(got[key][0])
    data = open(os.path.join(big, key + ".bin"), "rb").read()
    print(f"# DLQ {key}: class={hd.get('imgsink.error.class')} reason={hd.get('imgsink.error.message')!r}")
    check(hd.get("imgsink.error.class") == klass and hd.get("origin") == "e2e"
          and hd.get("imgsink.source.offset") == str(off),
          f"{key}: class {klass}, source offset {off}, original headers kept")
    check(hd.get("imgsink.dlq.value.ref") == f"s3://{bucket}/{prefix}/dlq/{topic}/0/{off}.value"
          and hd.get("imgsink.dlq.value.size") == str(len(data))
          and hd.get("imgsink.dlq.value.sha256") == hashlib.sha256(data).hexdigest(),
          f"{key}: reference, size and sha256 headers name the stored value ({hd.get('imgsink.dlq.value.ref')})")
    check(sizes.get(key) == "0", f"{key}: the dead letter's own value is empty ({sizes.get(key)} bytes)")
sys.exit(0)
PY
exit 0
