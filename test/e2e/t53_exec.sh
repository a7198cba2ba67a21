#!/usr/bin/env bash
# An exec processor's program gets nothing of the worker's, and what it
# prints cannot carry a secret into the dead-letter topic. The worker runs
# with its credentials in the environment, as in production
# (IMGSINK_S3_SECRET_KEY); its one exec processor reports what it can see of
# them on stderr, prints the store's secret key it was "configured" with and
# an aws_secret_access_key=... line, and fails. Every record must reach the
# DLQ with a reason that shows the program saw no IMGSINK_* variable and has
# the secrets as [hidden], and the group must commit past them.
. "$(dirname "$0")/lib.sh"

topic=$(unique_name exec)
dlq="$topic.dlq"
group=$(unique_name g-exec)
prefix=$(out_prefix t53)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

python3 "$ROOT/test/e2e/make_records.py" "$TMP/recs" >/dev/null
n=0
for f in "$TMP"/recs/*-good-*.bin; do
    key=$(basename "$f" .bin)
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -p 0 -k "${key#*-}" "$f" || notok "kcat produce $key"
    n=$((n + 1))
done
note "produced $n good records"

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" \
    "processors=x@source" "processor.x.type=exec" \
    "processor.x.command=echo \"\$(env | grep -c IMGSINK_) IMGSINK vars, key \${IMGSINK_S3_SECRET_KEY:-unset}, upload as $S3_WORKER_SECRET_KEY, aws_secret_access_key=t53-aws-secret-value\" >&2; exit 3"
start_worker w1 "$TMP/w.conf" >/dev/null
check "lag 0: committed offset = end offset ($n) after the program failed on every record" \
    wait_for 120 committed_equals_end "$group" "$topic" 1
# shellcheck disable=SC2317 # called through check
none_written() { [ "$(count_objects "$prefix" metadata.json)" = 0 ]; }
check "nothing written to the store" none_written

dlq_dump "$dlq" >"$TMP/dlq.json"
python3 - "$TMP/dlq.json" "$n" "$S3_WORKER_SECRET_KEY" <<'PY'
import json, sys
path, n, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3]
recs = [json.loads(l) for l in open(path, errors="replace") if l.strip()]
def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
check(len(recs) == n, f"{n} records in the DLQ (got {len(recs)})")
for m in recs:
    h = m.get("headers") or []
    reason = dict(zip(h[0::2], h[1::2])).get("imgsink.error.message", "")
    shown = reason.replace(secret, "<S3 SECRET KEY>")
    print(f"# DLQ {m['key']}: reason={shown!r}")
    check("exited with status 3" in reason, f"{m['key']}: the reason is the program's exit")
    check("0 IMGSINK vars, key unset" in reason,
          f"{m['key']}: the program saw no IMGSINK_* variable")
    check(secret not in reason and "t53-aws-secret-value" not in reason
          and "aws_secret_access_key=[hidden]" in reason and "upload as [hidden]" in reason,
          f"{m['key']}: the secrets it printed are [hidden]")
PY
exit 0
