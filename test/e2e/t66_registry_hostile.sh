#!/usr/bin/env bash
# A hostile Schema Registry (mock_registry.py over https with basic auth and
# a CA of this test's own): responses too large, not JSON, nested 100000
# deep, not Avro, not AVRO, another record, a non-string schema each send
# their record to the DLQ with a reason naming the problem; an unknown id
# (40403) too. A 500 and a 404 that is not 40403 are retried and the record
# is then processed. `imgsink produce --schema-registry` refuses ids that are
# negative, not integers or out of range, and reports a 409 and a 401. Bad
# schema.registry.* values stop start-up naming the key.
. "$(dirname "$0")/lib.sh"

MOCK_PID=
mock_cleanup() {
    [ -n "$MOCK_PID" ] && kill -TERM "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
    e2e_cleanup
}
trap mock_cleanup EXIT

topic=$(unique_name hostile-reg)
dlq="$topic.dlq"
group=$(unique_name g-hreg)
prefix=$(out_prefix t66)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

# --- a CA and a server certificate for 127.0.0.1 -----------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=t66 test CA" \
    -keyout "$TMP/ca.key" -out "$TMP/ca.pem" 2>/dev/null || notok "openssl CA"
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$TMP/srv.key" \
    -out "$TMP/srv.csr" 2>/dev/null || notok "openssl CSR"
printf 'subjectAltName=IP:127.0.0.1\n' >"$TMP/san.ext"
openssl x509 -req -in "$TMP/srv.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial \
    -days 2 -extfile "$TMP/san.ext" -out "$TMP/srv.pem" 2>/dev/null || notok "openssl sign"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$ROOT/test/e2e/mock_registry.py" "$port" "$ROOT/schemas/image_record.avsc" \
    'reg-user:s3cr3t:pw' "$TMP/srv.pem" "$TMP/srv.key" >"$TMP/mock.out" 2>&1 &
MOCK_PID=$!
url="https://127.0.0.1:$port"
mock_up() { curl -fsS -o /dev/null --max-time 5 --cacert "$TMP/ca.pem" -u 'reg-user:s3cr3t:pw' "$url/schemas/ids/1"; }
check "mock registry answers over https with basic auth (curl)" wait_for 60 mock_up
code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$TMP/ca.pem" "$url/schemas/ids/1")
check "mock registry refuses a request without credentials (401)" test "$code" = 401

# --- records: one per registry behaviour ------------------------------------
img() { vips gaussnoise "$1.v" "$2" "$3" --sigma "$4" && vips copy "$1.v" "$1[Q=90]" && rm -f "$1.v"; }
img "$TMP/a.jpg" 320 240 20 || notok "vips a.jpg"
python3 - "$ROOT/test/e2e" "$TMP" <<'PY'
import struct, sys
sys.path.insert(0, sys.argv[1])
from make_records import record
tmp = sys.argv[2]
img = open(tmp + "/a.jpg", "rb").read()
for n in range(1, 12):
    open(f"{tmp}/h{n}.bin", "wb").write(b"\0" + struct.pack(">I", n) + record(f"h{n}", img))
PY
for n in $(seq 1 11); do
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -p 0 -k "h$n" "$TMP/h$n.bin" || notok "kcat h$n"
done

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" "schema.registry.url=$url" \
    "schema.registry.basic.auth.user.info=reg-user:s3cr3t:pw" \
    "schema.registry.ssl.ca.location=$TMP/ca.pem" "schema.registry.timeout.ms=5000" \
    "retry.backoff.initial.ms=100"
gets1=$(grep -c '^GET /schemas/ids/1$' "$TMP/mock.out")
start_worker w1 "$TMP/w.conf" >/dev/null
check "lag 0: committed offset = end offset (11)" wait_for 300 committed_equals_end "$group" "$topic" 1
has_meta() { mc stat "$MC_ALIAS/$S3_BUCKET/$prefix/acme/2026/01/01/$1/metadata.json" >/dev/null 2>&1; }
for r in h1 h8 h9; do check "$r processed (mc)" has_meta "$r"; done
check "only h1 h8 h9 written: 3 metadata.json objects" test "$(count_objects "$prefix" metadata.json)" -eq 3
check "500 and a 404 without 40403 were retried (log)" \
    test "$(grep -c 'schema lookup failed, retrying' "$TMP/w1.log")" -ge 4
check "the secret is not in the worker's log" sh -c "! grep -q s3cr3t '$TMP/w1.log'"
check "schema 1 fetched once by the worker (cached)" \
    test "$(grep -c '^GET /schemas/ids/1$' "$TMP/mock.out")" -eq $((gets1 + 1))

dlq_dump "$dlq" >"$TMP/dlq.json"
python3 - "$TMP/dlq.json" <<'PY'
import json, sys
want = {
    "h2": "registry response exceeds 1048576 bytes",
    "h3": "registry response is not JSON",
    "h4": "not a valid Avro schema",
    "h5": "schemaType PROTOBUF is not AVRO",
    "h6": "writer schema cannot be resolved against ImageRecord",
    "h7": "registry response is not JSON",
    "h10": 'registry response has no "schema" string',
    "h11": "not found in the registry",
}
got = {}
for l in open(sys.argv[1], errors="replace"):
    m = json.loads(l)
    h = m.get("headers") or []
    got.setdefault(m["key"], []).append(dict(zip(h[0::2], h[1::2])))
def check(c, what): print(("ok - " if c else "not ok - ") + what)
check(sorted(got) == sorted(want), f"DLQ holds exactly the refused ids: {sorted(got)}")
for k, words in want.items():
    h = got.get(k, [{}])[0]
    r = h.get("imgsink.error.message", "")
    print(f"# DLQ {k}: {r!r}")
    check(len(got.get(k, [])) == 1 and h.get("imgsink.error.class") == "envelope" and words in r,
          f"{k}: class envelope, reason says '{words}'")
PY
[ $? -eq 0 ] || notok "reading the DLQ"

# --- produce: ids the registry must not get away with -------------------------
mkdir -p "$TMP/one" && cp "$TMP/a.jpg" "$TMP/one/p.jpg"
produce() { # produce TOPIC [USERINFO]: output of imgsink produce --schema-registry
    "$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" -t "$1" --schema-registry "$url" \
        -X "schema.registry.ssl.ca.location=$TMP/ca.pem" \
        -X "schema.registry.basic.auth.user.info=${2:-reg-user:s3cr3t:pw}" "$TMP/one" 2>&1
}
for s in neg str huge; do
    out=$(produce "$s")
    rc=$?
    note "$s: $out"
    check "produce refuses the id the registry sent for $s-value" \
        sh -c "[ $rc -ne 0 ] && echo \"\$1\" | grep -q 'without an id in 0..2147483647'" _ "$out"
done
out=$(produce conflict)
rc=$?
note "conflict: $out"
check "produce reports a 409" sh -c "[ $rc -ne 0 ] && echo \"\$1\" | grep -q 'registry answered 409'" _ "$out"
out=$(produce fine reg-user:wrong)
rc=$?
note "wrong password: $out"
check "produce reports a 401" sh -c "[ $rc -ne 0 ] && echo \"\$1\" | grep -q 'registry answered 401'" _ "$out"
out=$("$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" -t fine --schema-registry "$url" \
    -X "schema.registry.basic.auth.user.info=reg-user:s3cr3t:pw" "$TMP/one" 2>&1)
rc=$?
note "no CA: $out"
check "produce without the CA refuses the certificate" \
    sh -c "[ $rc -ne 0 ] && echo \"\$1\" | grep -qi 'certificate'" _ "$out"

# --- bad configuration stops start-up, naming key and value -------------------
badconf() { # badconf EXPECTED KEY=VALUE...
    local want=$1 out rc
    shift
    write_conf "$TMP/bad.conf" "$topic" "$dlq" "$group-bad" "$prefix" "$@"
    out=$(IMGSINK_S3_ACCESS_KEY=$S3_WORKER_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_WORKER_SECRET_KEY \
        timeout 60 "$IMGSINK" run -c "$TMP/bad.conf" 2>&1)
    rc=$?
    note "$* -> rc $rc: $(echo "$out" | tail -n1)"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qF -- "$want" <<<"$out"
}
check "schema.registry.url=ftp://x stops start-up" \
    badconf "schema.registry.url=ftp://x: expected an http:// or https:// URL" "schema.registry.url=ftp://x"
check "user info without ':' stops start-up" \
    badconf "schema.registry.basic.auth.user.info: expected USER:PASSWORD" \
    "schema.registry.url=$url" "schema.registry.basic.auth.user.info=nocolon"
check "a missing CA file stops start-up" \
    badconf "schema.registry.ssl.ca.location=$TMP/nope.pem: expected a readable PEM file" \
    "schema.registry.url=$url" "schema.registry.ssl.ca.location=$TMP/nope.pem"
check "a CA without a URL stops start-up" \
    badconf "schema.registry.url: required when" "schema.registry.ssl.ca.location=$TMP/ca.pem"
exit $((N_FAIL > 0))
