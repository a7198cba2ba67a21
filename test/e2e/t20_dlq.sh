#!/usr/bin/env bash
# Poison records go to the DLQ with their reason and do not hold up the good
# records behind them. One partition, so "behind" is well defined: good and
# poison records interleave at known offsets.
. "$(dirname "$0")/lib.sh"

topic=$(unique_name poison)
dlq="$topic.dlq"
group=$(unique_name g-poison)
prefix=$(unique_name t20)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

python3 "$ROOT/test/e2e/make_records.py" "$TMP/recs"
n=0
for f in "$TMP"/recs/*.bin; do
    key=$(basename "$f" .bin)
    key=${key#*-}
    kcat -P -b "$KAFKA_BOOTSTRAP" -X message.max.bytes=16777216 -t "$topic" -p 0 -k "$key" \
        -H "origin=e2e" "$f" || notok "kcat produce $key"
    n=$((n + 1))
done
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
python3 - "$TMP/dlq.json" "$TMP/recs" "$topic" "$TMP/dlq.sizes" <<'PY'
import json, os, sys
path, recs, topic, sizes_path = sys.argv[1:5]
sizes = dict(l.split() for l in open(sizes_path) if l.strip())
want = {  # key -> (class, words the reason must contain)
    "junk": ("envelope", ""), "magic1": ("envelope", ""),
    "text": ("image", "not an image"), "dotdot": ("envelope", "id"),
    "trunc": ("image", ""), "bomb": ("image", "limits.max.pixels"),
    "svg": ("image", "not an image"), "empty": ("envelope", "empty"),
    "hugelen": ("envelope", "exceeds"), "bigjunk": ("image", "not an image"),
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
sys.exit(0)
PY
exit 0
