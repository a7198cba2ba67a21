#!/usr/bin/env bash
# Retention classes: a record may only ask for a retention a lifecycle rule
# covers (retention.classes, default 7). With the default, a record asking for
# 7 days is written tagged retention=7d (mc reads the tags) and one asking for
# 30 goes to the DLQ with class record and a reason naming the value and the
# allowed set (kcat reads the headers); the committed offset reaches the end.
# The worker refuses to start when a class has no rule on the bucket, and
# writes retention=30d objects once retention.classes=7,30 and the bucket has
# both rules.
. "$(dirname "$0")/lib.sh"

topic=$(unique_name retention)
dlq="$topic.dlq"
group=$(unique_name g-retention)
prefix=$(out_prefix t23)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

vips gaussnoise "$TMP/a.v" 640 480 --sigma 20 && vips copy "$TMP/a.v" "$TMP/a.jpg[Q=90]" ||
    notok "vips a.jpg"
for days in 7 30; do
    python3 "$ROOT/test/e2e/make_records.py" inline "$TMP/keep$days.bin" --id "keep$days" \
        --image "$TMP/a.jpg" --retention "$days" || notok "make_records keep$days"
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -p 0 -k "keep$days" "$TMP/keep$days.bin" ||
        notok "kcat produce keep$days"
done
renditions=$("$IMGSINK" config | sed -n 's/^renditions=//p')

# --- the default, retention.classes=7 ----------------------------------------------
write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix"
start_worker w1 "$TMP/w.conf" >/dev/null
check "lag 0: committed offset = end offset (2)" wait_for 120 committed_equals_end "$group" "$topic" 1
echo keep7 >"$TMP/keep7.ids"
echo keep30 >"$TMP/keep30.ids"
python3 "$ROOT/test/e2e/verify_store.py" --alias "$MC_ALIAS" --bucket "$S3_BUCKET" \
    --prefix "$prefix" --tenant acme --uploaded-at-ms 1767225600000 --ids "$TMP/keep7.ids" \
    --renditions "$renditions" --retention 7d --absent "$TMP/keep30.ids"
[ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))
dlq_dump "$dlq" >"$TMP/dlq.json"
python3 - "$TMP/dlq.json" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], errors="replace") if l.strip()]
def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
check([m["key"] for m in recs] == ["keep30"], f"the DLQ holds keep30 only: {[m['key'] for m in recs]}")
for m in recs:
    h = m.get("headers") or []
    hd = dict(zip(h[0::2], h[1::2]))
    reason = hd.get("imgsink.error.message", "")
    print(f"# DLQ {m['key']}: class={hd.get('imgsink.error.class')} reason={reason!r}")
    check(hd.get("imgsink.error.class") == "record", "keep30: class record")
    check("retention_days 30" in reason and "retention.classes=7" in reason,
          "keep30: the reason names the value and the allowed set")
PY
[ $? -eq 0 ] || notok "reading the DLQ"

# --- start-up refuses a class the bucket has no rule for ------------------------------
# With the admin identity: the check reads the bucket's lifecycle rules
# (s3:GetLifecycleConfiguration), which the worker's production policy does
# not grant (its worker warns that it cannot verify them and goes on, see
# t74_least_privilege); an operator runs this verification with an identity
# that may read them.
as_operator timeout 60 "$IMGSINK" run -c "$TMP/w.conf" -X retention.classes=7,30 \
    -X "kafka.group.id=$(unique_name g-refused)" >"$TMP/refused.log" 2>&1
rc=$?
sed 's/^/# refused: /' "$TMP/refused.log" | grep -i 'lifecycle\|error' | head -5
check "run with retention.classes=7,30 and only a 7d rule: exits 1 (got $rc)" test $rc -eq 1
check "... and the error names the missing rule for retention=30d" \
    grep -qF 'no enabled rule expires objects tagged retention=30d after 30 days' "$TMP/refused.log"

# --- retention.classes=7,30 on a bucket with both rules ---------------------------------
b30=$(unique_name r30 | tr 'A-Z' 'a-z')
mc mb "$MC_ALIAS/$b30" >/dev/null || notok "mc mb $b30"
python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
doc["Rules"].append({"ID": "expire-retention-30d", "Status": "Enabled",
                     "Filter": {"Tag": {"Key": "retention", "Value": "30d"}},
                     "Expiration": {"Days": 30}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}})
print(json.dumps(doc))' "$ROOT/deploy/minio/lifecycle.json" | mc ilm rule import "$MC_ALIAS/$b30" >/dev/null ||
    notok "mc ilm rule import (7d and 30d)"
group2=$(unique_name g-retention30)
write_conf "$TMP/w30.conf" "$topic" "$dlq" "$group2" "$prefix" "s3.bucket=$b30" \
    "retention.classes=7,30"
# A bucket of its own: the worker's policy, for that bucket.
read -r ak30 sk30 < <(worker_identity "$b30") || notok "worker identity for $b30"
start_worker w2 "$TMP/w30.conf" "$ak30" "$sk30" >/dev/null
check "classes 7,30: lag 0" wait_for 120 committed_equals_end "$group2" "$topic" 1
python3 "$ROOT/test/e2e/verify_store.py" --alias "$MC_ALIAS" --bucket "$b30" \
    --prefix "$prefix" --tenant acme --uploaded-at-ms 1767225600000 --ids "$TMP/keep30.ids" \
    --renditions "$renditions" --retention 30d
[ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))
check "classes 7,30: no new dead letter" test "$(dlq_dump "$dlq" | grep -c .)" -eq 1
mc rb --force "$MC_ALIAS/$b30" >/dev/null 2>&1
exit 0
