#!/usr/bin/env bash
# The worker and the API with least-privilege store identities, on the HTTPS
# MinIO of test/stack/minio_tls.sh, with the policies of deploy/minio/policies
# as they are (buckets imgsink and raw, prefixes processed/ and uploads/):
#
# - worker: s3:PutObject + s3:PutObjectTagging under imgsink/processed/,
#   s3:GetObject under raw/uploads/, unencrypted PUTs and plaintext refused.
#   Records (inline, claim check, poison, a dead letter whose value goes to
#   the store) are written, dead-lettered and committed to the end; mc with
#   the worker's keys is refused everything else (list, read or delete
#   outputs, write elsewhere or unencrypted, read the lifecycle rules).
# - `imgsink check` with the worker's keys names what is missing: the
#   lifecycle read, s3:PutObject under another prefix, unencrypted PUTs.
# - A worker whose permission is taken away while it runs stops with "store
#   configuration error" and does not commit the record it could not write.
# - api: may PUT under raw/uploads/ and GET outputs (a presigned GET works),
#   nothing else.
# - the plaintext stack's worker identity (test/stack/identity.sh), which
#   every other suite's workers use: the same rights, refused the rest.
. "$(dirname "$0")/lib.sh"

MT=$TMP/mtls
t74_cleanup() {
    bash "$ROOT/test/stack/minio_tls.sh" stop "$MT" >/dev/null 2>&1
    e2e_cleanup
}
trap t74_cleanup EXIT
bash "$ROOT/test/stack/minio_tls.sh" start "$MT" 2>"$TMP/mtls-start.log" ||
    { notok "start the HTTPS MinIO: $(tail -3 "$TMP/mtls-start.log")"; exit 1; }
# shellcheck disable=SC1091
. "$MT/env"
TMC="${MC%% *} --config-dir $MTLS_MC_DIR --quiet --no-color"
tmc() { $TMC "$@"; }
CA=$MTLS_CERTS/ca.crt

# --- buckets, identities, policies (as root) -----------------------------------------
tmc mb --ignore-existing tls/imgsink tls/raw >/dev/null || notok "mc mb imgsink raw"
tmc ilm rule import tls/imgsink <"$ROOT/deploy/minio/lifecycle.json" >/dev/null || notok "ilm import"
rand() { python3 -c 'import secrets,string; print("".join(secrets.choice(string.ascii_letters+string.digits) for _ in range(32)))'; }
WK=imgsink-worker WS=$(rand) AK=imgsink-api AS=$(rand)
for who in worker api; do
    tmc admin policy create tls "imgsink-$who" "$ROOT/deploy/minio/policies/$who.json" >/dev/null ||
        notok "mc admin policy create imgsink-$who"
done
tmc admin user add tls "$WK" "$WS" >/dev/null && tmc admin user add tls "$AK" "$AS" >/dev/null ||
    notok "mc admin user add"
tmc admin policy attach tls imgsink-worker --user "$WK" >/dev/null || notok "attach worker policy"
tmc admin policy attach tls imgsink-api --user "$AK" >/dev/null || notok "attach api policy"
tmc alias set w "$MTLS_ENDPOINT" "$WK" "$WS" --api S3v4 >/dev/null || notok "alias w"
tmc alias set a "$MTLS_ENDPOINT" "$AK" "$AS" --api S3v4 >/dev/null || notok "alias a"

# --- records -------------------------------------------------------------------------------
topic=$(unique_name lp)
dlq="$topic.dlq"
group=$(unique_name g-lp)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
"$KAFKA_CLASS" topics --bootstrap-server "$KAFKA_BOOTSTRAP" --create --topic "$dlq" \
    --partitions 1 --replication-factor 1 --config max.message.bytes=1048576 >/dev/null ||
    notok "create $dlq"
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null
mkdir -p "$TMP/recs"
python3 - "$ROOT/test/e2e" "$TMP/recs" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
import make_records as m
out = sys.argv[2]
for i in range(2):
    img = m.vips_image(os.path.join(out, f"g{i}.jpg"), 480 + 40 * i, 360, i)
    open(os.path.join(out, f"inline-{i}.bin"), "wb").write(m.record(f"inline-{i}", img))
open(os.path.join(out, "junk.bin"), "wb").write(b"not avro\n")
open(os.path.join(out, "bigjunk.bin"), "wb").write(os.urandom(1536 * 1024))
PY
# The API's identity uploads the claim-checked image, as a client would.
tmc cp "$TMP/recs/g0.jpg" a/raw/uploads/acme/c.jpg >/dev/null
check "api identity: PUT under raw/uploads/ allowed" test $? -eq 0
python3 "$ROOT/test/e2e/make_records.py" ref "$TMP/recs/claim.bin" --id claim --bucket raw \
    --key uploads/acme/c.jpg --size "$(stat -c %s "$TMP/recs/g0.jpg")"
for k in inline-0 junk claim bigjunk inline-1; do
    kcat -P -b "$KAFKA_BOOTSTRAP" -X message.max.bytes=16777216 -t "$topic" -p 0 -k "$k" \
        "$TMP/recs/$k.bin" || notok "kcat produce $k"
done
note "produced 5 records: 2 inline, 1 claim check, 2 poison (one of 1.5 MiB)"

lp_conf() { # lp_conf FILE GROUP TOPIC [key=value...]
    local file=$1 g=$2 t=$3
    shift 3
    {
        echo "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP"
        echo "kafka.group.id=$g"
        echo "kafka.session.timeout.ms=10000"
        echo "kafka.heartbeat.interval.ms=1000"
        echo "input.topics=$t"
        echo "dlq.topic=$dlq"
        echo "s3.endpoint=$MTLS_ENDPOINT"
        echo "s3.tls.ca.file=$CA"
        echo "s3.bucket=imgsink"
        echo "s3.path.style=true"
        echo "s3.prefix=processed/"
        echo "s3.sse=AES256"
        echo "claimcheck.allowed=raw/uploads/{tenant}/"
        echo "retry.backoff.max.ms=2000"
        echo "http.listen=127.0.0.1:0"
        for line in "$@"; do echo "$line"; done
    } >"$file"
}
as_worker() { IMGSINK_S3_ACCESS_KEY=$WK IMGSINK_S3_SECRET_KEY=$WS "$@"; }
lp_worker() { # lp_worker NAME CONF (not through as_worker: $! must be imgsink's PID)
    IMGSINK_S3_ACCESS_KEY=$WK IMGSINK_S3_SECRET_KEY=$WS "$IMGSINK" run -c "$2" >>"$TMP/$1.log" 2>&1 &
    WORKER_PIDS+=($!)
    LAST_PID=$!
}
exited() { ! kill -0 "$1" 2>/dev/null; }
quiet() { "$@" >/dev/null 2>&1; }

# --- the flow with the worker's identity --------------------------------------------------
lp_conf "$TMP/w.conf" "$group" "$topic"
lp_worker w1 "$TMP/w.conf"
check "least-privilege worker: committed offset = end offset (5)" \
    wait_for 240 committed_equals_end "$group" "$topic" 1
check "start-up warns that the lifecycle rules cannot be read, and goes on" \
    grep -q "cannot verify the lifecycle rules" "$TMP/w1.log"
kill -TERM "$LAST_PID" 2>/dev/null
wait "$LAST_PID"
n_meta=$(tmc ls --recursive tls/imgsink/processed/acme/ | grep -c 'metadata.json$')
check "mc (root): 3 records written (inline-0, inline-1, claim): $n_meta metadata.json" test "$n_meta" -eq 3
python3 "$ROOT/test/e2e/verify_sse.py" --mc "$TMC" --target tls/imgsink/processed \
    --sse AES256 --min-objects 10 --min-dlq 1 | sed 's/ - / - least privilege: /'
[ "${PIPESTATUS[0]}" -eq 0 ] || N_FAIL=$((N_FAIL + 1))
dlq_dump "$dlq" >"$TMP/dlq.json"
check "DLQ: 2 dead letters (junk, bigjunk by reference)" \
    test "$(grep -c . "$TMP/dlq.json")" -eq 2 -a "$(grep -c 'imgsink.dlq.value.ref' "$TMP/dlq.json")" -eq 1

# --- everything else is refused to the worker's identity -------------------------------------
out=$(tmc ls --recursive tls/imgsink/processed/acme/ | awk '/metadata.json$/ { print $NF; exit }')
meta=tls/imgsink/processed/acme/$out
wmeta=w/imgsink/processed/acme/$out
denied() { # denied WHAT CMD...: the command fails with Access Denied
    local what=$1 o
    shift
    o=$("$@" 2>&1)
    if [ $? -ne 0 ] && grep -qiE 'access denied|insufficient permissions' <<<"$o"; then
        ok "worker identity refused: $what"
    else
        notok "worker identity refused: $what ($o)"
    fi
}
echo probe >"$TMP/p.txt"
denied "list the bucket" tmc ls w/imgsink/
denied "list the outputs" tmc ls --recursive w/imgsink/processed/
denied "read an output" tmc cat "$wmeta"
denied "delete an output" tmc rm "$wmeta"
denied "PUT outside processed/" tmc cp --enc-s3 w/imgsink/ "$TMP/p.txt" w/imgsink/other/p.txt
denied "PUT unencrypted under processed/" tmc cp "$TMP/p.txt" w/imgsink/processed/p.txt
denied "read the lifecycle rules" tmc ilm rule export w/imgsink
denied "write to raw" tmc cp --enc-s3 w/raw/ "$TMP/p.txt" w/raw/uploads/acme/p.txt
denied "list users (admin)" tmc admin user ls w
check "mc (root): the output is still there" quiet tmc stat "$meta"
check "worker identity may read a claim check under raw/uploads/" quiet tmc cat w/raw/uploads/acme/c.jpg

# --- imgsink check names what the identity lacks -----------------------------------------------
wcheck() { # wcheck NAME [-X ...]
    local name=$1
    shift
    as_worker "$IMGSINK" check -c "$TMP/w.conf" "$@" >"$TMP/$name.out" 2>&1
    echo $? >"$TMP/$name.rc"
    grep -E 'FAIL|write|read' "$TMP/$name.out" | sed "s/^/# $name: /"
}
has() { grep -qF -- "$2" "$TMP/$1.out"; }
wcheck c1
check "check: PUT with tags and AES256 allowed under processed/" has c1 "ok    write      PUT with tags"
check "check: s3:GetObject allowed on the claim-check prefix" has c1 "ok    read       s3:GetObject allowed on raw/uploads/{tenant}/*"
check "check: names s3:GetLifecycleConfiguration (not granted)" has c1 "the credentials need s3:GetLifecycleConfiguration"
wcheck c2 -X s3.prefix=other/
check "check with s3.prefix=other/: 'missing permission s3:PutObject on imgsink/other/*'" \
    has c2 "FAIL  write      missing permission s3:PutObject on imgsink/other/*"
wcheck c3 -X s3.sse=none
check "check with s3.sse=none: the unencrypted PUT is refused, s3.sse named" \
    has c3 "without s3.sse"
wcheck c4 -X claimcheck.allowed=raw/other/{tenant}/
check "check: 'missing permission s3:GetObject on raw/other/{tenant}/*'" \
    has c4 "FAIL  read       missing permission s3:GetObject on raw/other/{tenant}/*"

# --- a worker without the permission it needs -------------------------------------------------
lp_conf "$TMP/other.conf" "$(unique_name g-lp)" "$topic" s3.prefix=other/
lp_worker w2 "$TMP/other.conf"
check "worker with s3.prefix=other/ exits at start-up" wait_for 120 exited "$LAST_PID"
kill -TERM "$LAST_PID" 2>/dev/null # only if it did not exit: the test must not hang
wait "$LAST_PID"
rc=$?
check "... non-zero ($rc): 'missing permission s3:PutObject on imgsink/other/*'" \
    test "$rc" -ne 0 -a -n "$(grep -F 'missing permission s3:PutObject on imgsink/other/*' "$TMP/w2.log")"

# The permission goes away while the worker runs: the next PUT is refused,
# the worker stops, and the record stays uncommitted.
topic3=$(unique_name lp3)
group3=$(unique_name g-lp3)
bash "$ROOT/test/stack/topic.sh" "$topic3" 1 >/dev/null
kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic3" -p 0 -k inline-0 "$TMP/recs/inline-0.bin" || notok "produce"
lp_conf "$TMP/w3.conf" "$group3" "$topic3"
lp_worker w3 "$TMP/w3.conf"
check "worker 3: first record committed (offset 1)" wait_for 240 committed_equals_end "$group3" "$topic3" 1
tmc admin policy detach tls imgsink-worker --user "$WK" >/dev/null || notok "detach the worker policy"
kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic3" -p 0 -k inline-1 "$TMP/recs/inline-1.bin" || notok "produce"
check "worker 3 stops after the refused PUT" wait_for 240 exited "$LAST_PID"
kill -TERM "$LAST_PID" 2>/dev/null
wait "$LAST_PID"
rc=$?
check "... non-zero ($rc) with 'store configuration error' naming s3:PutObject" \
    test "$rc" -ne 0 -a -n "$(grep -F 'store configuration error' "$TMP/w3.log" | grep -F 's3:PutObject')"
check "... and the refused record is not committed (committed 1, end 2)" \
    test "$(group_offsets "$group3" "$topic3" | awk '{ print $2, $3 }')" = "1 2"
check "... and it was not sent to the DLQ" test "$(dlq_dump "$dlq" | grep -c .)" -eq 2
tmc admin policy attach tls imgsink-worker --user "$WK" >/dev/null || notok "attach again"

# --- the API's identity ----------------------------------------------------------------------------
check "api identity may read an output" quiet tmc cat "a/imgsink/processed/acme/$out"
url=$(tmc share download --json --expire 10m "a/imgsink/processed/acme/$out" |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["share"])')
check "api identity: a presigned GET of an output works (curl)" \
    curl -fsS --cacert "$CA" -o /dev/null "$url"
adenied() {
    local what=$1 o
    shift
    o=$("$@" 2>&1)
    if [ $? -ne 0 ] && grep -qiE 'access denied|insufficient permissions' <<<"$o"; then
        ok "api identity refused: $what"
    else
        notok "api identity refused: $what ($o)"
    fi
}
adenied "PUT outputs" tmc cp "$TMP/p.txt" a/imgsink/processed/acme/p.txt
adenied "read raw uploads" tmc cat a/raw/uploads/acme/c.jpg
adenied "PUT outside raw/uploads/" tmc cp "$TMP/p.txt" a/raw/other/p.txt
adenied "list the buckets" tmc ls a/raw/
adenied "delete an output" tmc rm "a/imgsink/processed/acme/$out"

# --- the plain stack's worker identity, the one every other suite runs with ----------------------
# test/stack/identity.sh made it from the same policy: it writes under
# processed/ (with tags) and reads raw/uploads/, and is refused the rest.
SMC="$MC --quiet --no-color"
$SMC alias set sw "$S3_ENDPOINT" "$S3_WORKER_ACCESS_KEY" "$S3_WORKER_SECRET_KEY" --api S3v4 >/dev/null ||
    notok "alias sw (the stack's worker identity)"
sp=$(unique_name t74)
$SMC cp --tags "retention=7d" "$TMP/p.txt" "sw/$S3_BUCKET/processed/$sp/p.txt" >/dev/null
check "stack worker identity: PUT with tags under $S3_BUCKET/processed/ allowed" test $? -eq 0
$SMC cp "$TMP/p.txt" "$MC_ALIAS/$S3_RAW_BUCKET/uploads/$sp/p.txt" >/dev/null || notok "mc (admin) cp to raw"
check "stack worker identity may read $S3_RAW_BUCKET/uploads/" quiet $SMC cat "sw/$S3_RAW_BUCKET/uploads/$sp/p.txt"
denied "stack: list the bucket" $SMC ls "sw/$S3_BUCKET/"
denied "stack: read an output" $SMC cat "sw/$S3_BUCKET/processed/$sp/p.txt"
denied "stack: delete an output" $SMC rm "sw/$S3_BUCKET/processed/$sp/p.txt"
denied "stack: PUT outside processed/" $SMC cp "$TMP/p.txt" "sw/$S3_BUCKET/other/$sp/p.txt"
denied "stack: write to $S3_RAW_BUCKET" $SMC cp "$TMP/p.txt" "sw/$S3_RAW_BUCKET/uploads/$sp/q.txt"
denied "stack: read the lifecycle rules" $SMC ilm rule export "sw/$S3_BUCKET"
denied "stack: list users (admin)" $SMC admin user ls sw
check "mc (admin): the probe is in the store" quiet mc stat "$MC_ALIAS/$S3_BUCKET/processed/$sp/p.txt"
mc rm --recursive --force "$MC_ALIAS/$S3_BUCKET/processed/$sp/" "$MC_ALIAS/$S3_RAW_BUCKET/uploads/$sp/" >/dev/null 2>&1

# --- secrets -------------------------------------------------------------------------------------
leaks=0
for f in "$TMP"/*.log "$TMP"/*.out; do
    for s in "$WS" "$AS" "$MTLS_SECRET_KEY" "$MTLS_KMS_SECRET" "$S3_WORKER_SECRET_KEY"; do
        grep -qF -- "$s" "$f" && { note "secret found in $(basename "$f")"; leaks=$((leaks + 1)); }
    done
done
check "no secret key of any identity in any log or check output" test "$leaks" -eq 0

[ "$N_FAIL" -eq 0 ]
