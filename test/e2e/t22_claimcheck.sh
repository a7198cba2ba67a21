#!/usr/bin/env bash
# Claim checks (ObjectRef payloads) are requests to read with the worker's
# credentials: only objects under claimcheck.allowed, scoped by tenant, are
# fetched, and the object must be the one the record describes (size, sha256,
# version). A ref under the tenant's prefix is written (mc shows the objects);
# another tenant's prefix, another bucket, traversal tricks, a wrong size, a
# wrong sha256 and a version the store does not have each go to the DLQ with
# class claim-check and a reason naming the violation (kcat reads the headers);
# the committed offset reaches the end (Kafka's own group tool).
. "$(dirname "$0")/lib.sh"

topic=$(unique_name claim)
dlq="$topic.dlq"
group=$(unique_name g-claim)
prefix=$(out_prefix t22)
lower() { tr 'A-Z' 'a-z'; }
# The claim checks live where the worker's identity may read them: the
# stack's raw bucket (versioned) under uploads/, each part of the test in a
# prefix of its own; another bucket is only ever refused, never read.
raw=$S3_RAW_BUCKET rp=$(raw_prefix t22)
ver=$S3_RAW_BUCKET vp=$(raw_prefix t22v)
other=$(unique_name other | lower)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

# --- the store: the raw bucket, another bucket ------------------------------------
mc mb "$MC_ALIAS/$other" >/dev/null || notok "mc mb $other"
img() { # img FILE W H SIGMA: a small real JPEG made by libvips' own tool
    vips gaussnoise "$1.v" "$2" "$3" --sigma "$4" && vips copy "$1.v" "$1[Q=90]" && rm -f "$1.v"
}
img "$TMP/a.jpg" 640 480 20 || notok "vips a.jpg"
img "$TMP/b.jpg" 320 200 30 || notok "vips b.jpg"
size() { stat -c %s "$1"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
sa=$(size "$TMP/a.jpg") ha=$(sha "$TMP/a.jpg") sb=$(size "$TMP/b.jpg") hb=$(sha "$TMP/b.jpg")
mc cp "$TMP/a.jpg" "$MC_ALIAS/$raw/$rp/acme/a.jpg" >/dev/null || notok "mc cp a"
mc cp "$TMP/a.jpg" "$MC_ALIAS/$raw/$rp/globex/secret.jpg" >/dev/null || notok "mc cp secret"
mc cp "$TMP/a.jpg" "$MC_ALIAS/$raw/$rp/acme-corp/a.jpg" >/dev/null || notok "mc cp acme-corp"
mc cp "$TMP/a.jpg" "$MC_ALIAS/$other/uploads/acme/a.jpg" >/dev/null || notok "mc cp other"
# Two versions of one key: a.jpg first, then b.jpg is the current one.
mc cp "$TMP/a.jpg" "$MC_ALIAS/$ver/$vp/acme/v.jpg" >/dev/null || notok "mc cp v1"
mc cp "$TMP/b.jpg" "$MC_ALIAS/$ver/$vp/acme/v.jpg" >/dev/null || notok "mc cp v2"
v1=$(mc ls --versions --json "$MC_ALIAS/$ver/$vp/acme/v.jpg" | python3 -c '
import json, sys
vs = [json.loads(l) for l in sys.stdin if l.strip()]
print(min(vs, key=lambda v: v["lastModified"])["versionId"] if len(vs) == 2 else "")')
note "versioned bucket $ver: first version of $vp/acme/v.jpg is $v1"
check "mc lists two versions, the first is $v1" test -n "$v1"

# --- the records -----------------------------------------------------------------
n=0
ref() { # ref ID ARGS...: one claim-check record, produced with kcat
    local id=$1
    shift
    python3 "$ROOT/test/e2e/make_records.py" ref "$TMP/$id.bin" --id "$id" "$@" ||
        notok "make_records $id"
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -p 0 -k "$id" -H "origin=e2e" "$TMP/$id.bin" ||
        notok "kcat produce $id"
    n=$((n + 1))
}
ref good --bucket "$raw" --key "$rp"/acme/a.jpg --size "$sa" --sha256 "$ha"
ref good-nosha --bucket "$raw" --key "$rp"/acme/a.jpg --size "$sa"
ref old-version --bucket "$ver" --key "$vp"/acme/v.jpg --size "$sa" --sha256 "$ha" \
    --version-id "$v1"
ref current --bucket "$ver" --key "$vp"/acme/v.jpg --size "$sb" --sha256 "$hb"
ref other-tenant --bucket "$raw" --key "$rp"/globex/secret.jpg --size "$sa"
ref tenant-prefix --bucket "$raw" --key "$rp"/acme-corp/a.jpg --size "$sa"
ref other-bucket --bucket "$other" --key uploads/acme/a.jpg --size "$sa"
ref processed-bucket --bucket "$S3_BUCKET" --key uploads/acme/a.jpg --size "$sa"
ref dotdot --bucket "$raw" --key "$rp"/acme/../globex/secret.jpg --size "$sa"
ref encoded --bucket "$raw" --key "$rp"/acme/%2E%2E/globex/secret.jpg --size "$sa"
ref slashes --bucket "$raw" --key "$rp"/acme//a.jpg --size "$sa"
ref wrong-size --bucket "$raw" --key "$rp"/acme/a.jpg --size $((sa + 1)) --sha256 "$ha"
ref wrong-sha --bucket "$raw" --key "$rp"/acme/a.jpg --size "$sa" --sha256 "$hb"
ref bogus-version --bucket "$ver" --key "$vp"/acme/v.jpg --size "$sa" \
    --version-id 0b5dd1f2-3c4e-4f60-8a7b-9c0d1e2f3a4b
ref malformed-version --bucket "$ver" --key "$vp"/acme/v.jpg --size "$sa" --version-id bogus
note "produced $n claim-check records"

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" \
    "claimcheck.allowed=$raw/$rp/{tenant}/,$ver/$vp/{tenant}/"
start_worker w1 "$TMP/w.conf" >/dev/null
check "lag 0: committed offset = end offset ($n)" \
    wait_for 120 committed_equals_end "$group" "$topic" 1

# --- what was written: mc reads it back ---------------------------------------------
printf '%s\n' good good-nosha old-version current >"$TMP/good.ids"
printf '%s\n' other-tenant tenant-prefix other-bucket processed-bucket dotdot encoded slashes \
    wrong-size wrong-sha bogus-version malformed-version >"$TMP/bad.ids"
python3 "$ROOT/test/e2e/verify_store.py" --alias "$MC_ALIAS" --bucket "$S3_BUCKET" \
    --prefix "$prefix" --tenant acme --uploaded-at-ms 1767225600000 --ids "$TMP/good.ids" \
    --renditions "$("$IMGSINK" config | sed -n 's/^renditions=//p')" --absent "$TMP/bad.ids"
[ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))
# The version asked for was the one processed: its metadata names a.jpg's
# sha256, not that of the current version (b.jpg).
meta() { mc cat "$MC_ALIAS/$S3_BUCKET/$prefix/acme/2026/01/01/$1/metadata.json" 2>/dev/null; }
src_sha() { meta "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["input"]["sha256"])' 2>/dev/null; }
check "old-version: metadata.json has the sha256 of the first version" test "$(src_sha old-version)" = "$ha"
check "current: metadata.json has the sha256 of the current version" test "$(src_sha current)" = "$hb"

# --- the DLQ: kcat reads every dead letter with its headers -----------------------
dlq_dump "$dlq" >"$TMP/dlq.json"
python3 - "$TMP/dlq.json" "$topic" "$sa" "$ha" "$hb" <<'PY'
import json, sys
path, topic, sa, ha, hb = sys.argv[1:6]
want = {  # key -> words the reason must contain
    "other-tenant": "not under an allowed prefix for tenant acme",
    "tenant-prefix": "not under an allowed prefix for tenant acme",
    "other-bucket": "not under an allowed prefix for tenant acme",
    "processed-bucket": "not under an allowed prefix for tenant acme",
    "dotdot": "'..' segment",
    "encoded": "'%'",
    "slashes": "'//'",
    "wrong-size": f"size mismatch: record says {int(sa) + 1}, object has {sa}",
    "wrong-sha": f"sha256 mismatch: record says {hb}, object has {ha}",
    "bogus-version": "version not found",
    "malformed-version": "version not found",
}
got = {}
for line in open(path, errors="replace"):
    m = json.loads(line)
    h = m.get("headers") or []
    got.setdefault(m["key"], []).append(dict(zip(h[0::2], h[1::2])))
def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
check(sorted(got) == sorted(want), f"DLQ holds exactly the refused claim checks: {sorted(got)}")
check(all(len(v) == 1 for v in got.values()), "each is in the DLQ once")
for key, words in want.items():
    hd = got.get(key, [{}])[0]
    reason = hd.get("imgsink.error.message", "")
    print(f"# DLQ {key}: class={hd.get('imgsink.error.class')} reason={reason!r}")
    check(hd.get("imgsink.error.class") == "claim-check" and reason.startswith("claim check: ")
          and words in reason, f"{key}: class claim-check, reason says '{words}'")
    check(hd.get("imgsink.source.topic") == topic and hd.get("origin") == "e2e",
          f"{key}: source topic and original headers kept")
PY
[ $? -eq 0 ] || notok "reading the DLQ"

# --- claimcheck.allowed empty (the default): every claim check is refused ----------
topic2=$(unique_name claim-off)
group2=$(unique_name g-claim-off)
bash "$ROOT/test/stack/topic.sh" "$topic2" 1 >/dev/null
kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic2" -p 0 -k good "$TMP/good.bin" || notok "kcat produce"
write_conf "$TMP/off.conf" "$topic2" "$dlq" "$group2" "$prefix-off"
start_worker w2 "$TMP/off.conf" >/dev/null
check "default config: lag 0 on $topic2" wait_for 120 committed_equals_end "$group2" "$topic2" 1
check "default config: the good ref is in the DLQ as claim-check, claimcheck.allowed is empty" \
    bash -c "kcat -C -b '$KAFKA_BOOTSTRAP' -t '$dlq' -e -q -f '%h\n' | grep -F 'imgsink.source.topic=$topic2' | grep -F 'imgsink.error.class=claim-check' | grep -qF 'claimcheck.allowed is empty'"
check "default config: nothing written under $prefix-off" test "$(count_objects "$prefix-off" metadata.json)" -eq 0

# --- a bad claimcheck.allowed stops start-up, naming key, value and why -------------
as_worker "$IMGSINK" run -c "$TMP/w.conf" -X "claimcheck.allowed=$raw/$rp/{tenant}" >"$TMP/bad.log" 2>&1
rc=$?
check "claimcheck.allowed without '/' after {tenant}: exit non-zero (got $rc), names it" \
    bash -c "[ $rc -ne 0 ] && grep -qF 'claimcheck.allowed=$raw/$rp/{tenant}: ' '$TMP/bad.log' && grep -qF 'whole segment' '$TMP/bad.log'"

mc rb --force "$MC_ALIAS/$other" >/dev/null 2>&1
mc rm --recursive --versions --force "$MC_ALIAS/$raw/$rp/" "$MC_ALIAS/$ver/$vp/" >/dev/null 2>&1
exit 0
