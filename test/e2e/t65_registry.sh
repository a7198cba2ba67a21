#!/usr/bin/env bash
# Schema Registry on the real stack with a real registry (Apicurio Registry,
# test/stack/registry.sh, its Confluent-compatible API):
#   - `imgsink produce --schema-registry` registers the bundled schema under
#     TOPIC-value and writes records with the id it got (v1);
#   - a producer's v2 schema (an added optional field with a default) is
#     accepted under BACKWARD, an incompatible change is refused with 409;
#   - v1 and v2 records (v2 encoded by Python, not by imgsink) in one topic
#     are all processed (mc reads the objects back);
#   - a record with an id the registry does not know goes to the DLQ with a
#     reason naming it (kcat reads the headers);
#   - registry down: a record with an id the worker has not cached is
#     retried, not dead-lettered, and processed once the registry is back;
#   - the committed offset reaches the end (Kafka's own group tool).
. "$(dirname "$0")/lib.sh"

TP_PID=
registry_cleanup() {
    [ -n "$TP_PID" ] && kill -TERM "$TP_PID" 2>/dev/null && wait "$TP_PID" 2>/dev/null
    bash "$ROOT/test/stack/registry.sh" stop >/dev/null 2>&1
    e2e_cleanup
}
trap registry_cleanup EXIT

topic=$(unique_name reg)
dlq="$topic.dlq"
group=$(unique_name g-reg)
prefix=$(out_prefix t65)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

url=$(bash "$ROOT/test/stack/registry.sh" start) || { notok "start Apicurio Registry"; exit 1; }
ok "Apicurio Registry answers at $url"
# The worker reaches the registry through a toxiproxy of this test's own
# (a child of this script, stopped by its PID): disabling the proxy takes the
# registry away (connection refused) without losing its in-memory schemas.
# shellcheck disable=SC1091
TP_BIN=$(. "$ROOT/test/stack/common.sh" && echo "$TOXIPROXY_BIN")
TP_CLI=$(. "$ROOT/test/stack/common.sh" && echo "$TOXIPROXY_CLI")
read -r tp_api tp_port < <(. "$ROOT/test/stack/common.sh" && free_ports 2)
rport=${url#http://127.0.0.1:}
rport=${rport%%/*}
echo "[{\"name\": \"registry\", \"listen\": \"127.0.0.1:$tp_port\", \"upstream\": \"127.0.0.1:$rport\", \"enabled\": true}]" >"$TMP/tp.json"
"$TP_BIN" -host 127.0.0.1 -port "$tp_api" -config "$TMP/tp.json" >"$TMP/toxiproxy.log" 2>&1 &
TP_PID=$!
tp_url="http://127.0.0.1:$tp_api"
proxied=${url/:$rport\//:$tp_port/}
registry_answers() { curl -fsS -o /dev/null --max-time 5 "$proxied/subjects"; }
check "the registry answers through the proxy at $proxied" wait_for 60 registry_answers
subject="$topic-value"
ctype='Content-Type: application/vnd.schemaregistry.v1+json'
curl -fsS -X PUT -H "$ctype" -d '{"compatibility":"BACKWARD"}' "$url/config/$subject" >/dev/null ||
    notok "set BACKWARD on $subject"

# --- schemas: v1 (bundled), v2 (optional field added), v3 (another one), bad ----
python3 - "$ROOT/schemas/image_record.avsc" "$TMP" <<'PY'
import json, sys
v1 = json.load(open(sys.argv[1]))
def with_fields(*fields):
    s = json.loads(json.dumps(v1))
    s["fields"] += list(fields)
    return {"schema": json.dumps(s)}
opt = lambda n: {"name": n, "type": ["null", "string"], "default": None}
json.dump(with_fields(opt("camera")), open(sys.argv[2] + "/v2.json", "w"))
json.dump(with_fields(opt("camera"), opt("lens")), open(sys.argv[2] + "/v3.json", "w"))
json.dump(with_fields(opt("camera"), opt("lens"), {"name": "owner", "type": "string"}),
          open(sys.argv[2] + "/bad.json", "w"))
PY
register() { # register FILE: prints the id the registry gives
    curl -fsS -X POST -H "$ctype" --data-binary "@$1" "$url/subjects/$subject/versions" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

img() { vips gaussnoise "$1.v" "$2" "$3" --sigma "$4" && vips copy "$1.v" "$1[Q=90]" && rm -f "$1.v"; }
mkdir -p "$TMP/v1"
for i in 1 2 3; do img "$TMP/v1/v1-$i.jpg" $((300 + 40 * i)) 200 $((10 + i)) || notok "vips v1-$i"; done
img "$TMP/v2.jpg" 320 240 25 || notok "vips v2.jpg"

out=$("$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --tenant acme \
    --uploaded-at 1767225600000 --schema-registry "$url" "$TMP/v1" 2>&1)
note "$out"
id1=$(echo "$out" | sed -n "s/^registered the ImageRecord schema under $subject: id \([0-9]*\)$/\1/p")
check "imgsink produce registered the schema under $subject (id ${id1:-none})" test -n "$id1"
check "imgsink produce delivered 3 records" grep -q ': 3 delivered, 0 failed' <<<"$out"
got=$(curl -fsS "$url/subjects/$subject/versions/latest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
check "the registry lists id $id1 as the latest version of $subject (curl)" test "$got" = "$id1"

id2=$(register "$TMP/v2.json")
check "v2 (optional field with a default) accepted under BACKWARD: id ${id2:-none}" \
    test -n "$id2" -a "$id2" != "$id1"
code=$(curl -sS -o "$TMP/409.json" -w '%{http_code}' -X POST -H "$ctype" --data-binary "@$TMP/bad.json" \
    "$url/subjects/$subject/versions")
note "incompatible change: HTTP $code $(head -c 300 "$TMP/409.json")"
check "a required field without a default is refused under BACKWARD (409)" test "$code" = 409

# v2 records, encoded here: a v1 record followed by the new field (union
# branch 1, a string) and the Confluent header with id2. One with the
# field null. One record with an id the registry does not know.
python3 - "$ROOT/test/e2e" "$TMP" "$id2" <<'PY'
import struct, sys
sys.path.insert(0, sys.argv[1])
from make_records import record, zz, s
tmp, id2 = sys.argv[2], int(sys.argv[3])
img = open(tmp + "/v2.jpg", "rb").read()
hdr = lambda i: b"\0" + struct.pack(">I", i)
open(tmp + "/v2-a.bin", "wb").write(hdr(id2) + record("v2-a", img) + zz(1) + s("nikon"))
open(tmp + "/v2-b.bin", "wb").write(hdr(id2) + record("v2-b", img) + zz(0))
open(tmp + "/unknown.bin", "wb").write(hdr(999999) + record("unknown", img))
PY
for r in v2-a v2-b unknown; do
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -p 0 -k "$r" "$TMP/$r.bin" || notok "kcat $r"
done

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" "schema.registry.url=$proxied"
start_worker w1 "$TMP/w.conf" >/dev/null
n_meta_ge() { [ "$(count_objects "$prefix" metadata.json)" -ge "$1" ]; }
check "v1 and v2 records processed: 5 metadata.json objects (mc)" wait_for 240 n_meta_ge 5
check "lag 0 after the first 6 records" wait_for 240 committed_equals_end "$group" "$topic" 1
has_meta() { mc stat "$MC_ALIAS/$S3_BUCKET/$prefix/acme/2026/01/01/$1/metadata.json" >/dev/null 2>&1; }
for r in v1-1 v1-2 v1-3 v2-a v2-b; do
    check "$r: metadata.json in the store (mc)" has_meta "$r"
done
n_thumbs=$(mc ls --recursive "$MC_ALIAS/$S3_BUCKET/$prefix/" | grep -c '/thumb\.jpg$')
check "5 thumbnails written (got $n_thumbs)" test "$n_thumbs" -eq 5
check "unknown id: nothing written" test -z "$(mc ls "$MC_ALIAS/$S3_BUCKET/$prefix/acme/2026/01/01/unknown/" 2>/dev/null)"

dlq_dump "$dlq" >"$TMP/dlq.json"
python3 - "$TMP/dlq.json" <<'PY'
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1], errors="replace") if l.strip()]
def check(c, what): print(("ok - " if c else "not ok - ") + what)
check([m["key"] for m in msgs] == ["unknown"], f"DLQ holds only the unknown id: {[m['key'] for m in msgs]}")
if msgs:
    h = msgs[0].get("headers") or []
    h = dict(zip(h[0::2], h[1::2]))
    print(f"# DLQ unknown: class={h.get('imgsink.error.class')} reason={h.get('imgsink.error.message')!r}")
    check(h.get("imgsink.error.class") == "envelope" and
          "schema id 999999 not found in the registry" in h.get("imgsink.error.message", "") and
          "40403" in h.get("imgsink.error.message", ""),
          "unknown id: class envelope, reason 'schema id 999999 not found in the registry' (40403)")
PY
[ $? -eq 0 ] || notok "reading the DLQ"

# --- registry down: retried, not dead-lettered -----------------------------------
id3=$(register "$TMP/v3.json")
check "v3 registered: id ${id3:-none}" test -n "$id3"
"$TP_CLI" -h "$tp_url" toggle registry >/dev/null || notok "toxiproxy: disable the registry proxy"
check "registry unreachable for the worker (connection refused)" sh -c "! curl -fsS -o /dev/null --max-time 2 '$proxied/subjects'"
python3 - "$ROOT/test/e2e" "$TMP" "$id3" <<'PY'
import struct, sys
sys.path.insert(0, sys.argv[1])
from make_records import record, zz, s
tmp, id3 = sys.argv[2], int(sys.argv[3])
img = open(tmp + "/v2.jpg", "rb").read()
open(tmp + "/v3.bin", "wb").write(b"\0" + struct.pack(">I", id3) + record("v3", img) + zz(1) + s("canon") + zz(1) + s("50mm"))
PY
kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -p 0 -k v3 "$TMP/v3.bin" || notok "kcat v3"
retries_ge() { [ "$(grep -c 'schema lookup failed, retrying' "$TMP/w1.log")" -ge "$1" ]; }
check "the worker retries the lookup while the registry is down (log)" wait_for 240 retries_ge 3
note "$(grep -m1 'schema lookup failed, retrying' "$TMP/w1.log")"
addr=$(http_address w1) && scrape_metrics "$addr"
n=$(metric 'imgsink_retries_total{class="registry"}')
check "imgsink_retries_total{class=\"registry\"} counts them (${n:-none})" test "${n:-0}" -ge 1
check "nothing new in the DLQ while the registry is down" test "$(dlq_dump "$dlq" | grep -c .)" -eq 1
no_meta() { ! has_meta "$1"; }
check "v3 not written while the registry is down" no_meta v3

"$TP_CLI" -h "$tp_url" toggle registry >/dev/null || notok "toxiproxy: enable the registry proxy"
check "the registry answers again" wait_for 60 registry_answers
check "v3 processed once the registry answers (mc)" wait_for 240 has_meta v3
check "lag 0: committed offset = end offset (7)" wait_for 240 committed_equals_end "$group" "$topic" 1
check "still one dead letter" test "$(dlq_dump "$dlq" | grep -c .)" -eq 1
exit $((N_FAIL > 0))
