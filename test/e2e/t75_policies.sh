#!/usr/bin/env bash
# The store policies of deploy/: linted offline by parliament (AWS IAM
# grammar, known actions and resources), checked for what they must and
# must not allow, and enforced by the plaintext MinIO of the test stack:
# the worker's and the API's policies refuse every request without TLS.
. "$(dirname "$0")/lib.sh"

# shellcheck disable=SC1091
. "$ROOT/test/stack/common.sh"
PARLIAMENT=$IMGSINK_VENV/bin/parliament

# --- parliament, offline: --string with stdin closed (its --file refuses a
# non-terminal stdin) -----------------------------------------------------------------
lint() { "$PARLIAMENT" --string "$(cat "$1")" </dev/null 2>&1; }
n=0
for f in "$ROOT"/deploy/aws/policies/*.json "$ROOT"/deploy/minio/policies/*.json; do
    out=$(lint "$f")
    rc=$?
    n=$((n + 1))
    [ -n "$out" ] && note "$(basename "$f"): $out"
    check "parliament: ${f#"$ROOT"/} has no findings" test "$rc" -eq 0 -a -z "$out"
done
check "parliament linted $n policies" test "$n" -ge 6
# The lint can fail: a misspelt action and a wildcard are findings.
python3 - "$ROOT/deploy/aws/policies/worker.json" "$TMP/bad.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["Statement"][0]["Action"] = ["s3:PutObjekt"]
d["Statement"][1]["Resource"] = "*"
json.dump(d, open(sys.argv[2], "w"))
PY
out=$(lint "$TMP/bad.json")
check "parliament: a misspelt action is a finding (control)" grep -q "Unknown action s3:PutObjekt" <<<"$out"

# --- what the policies allow ------------------------------------------------------------
python3 - "$ROOT/deploy" <<'PY'
import json, os, sys
d = sys.argv[1]
def load(p):
    return json.load(open(os.path.join(d, p)))
def allows(pol):
    out = set()
    for s in pol["Statement"]:
        if s["Effect"] != "Allow":
            continue
        acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        for a in acts:
            for r in res:
                out.add((a, r))
    return out
def denies(pol):
    return [s for s in pol["Statement"] if s["Effect"] == "Deny"]
def tap(ok, what):
    print(("ok - " if ok else "not ok - ") + what)

KMS = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
want = {
    "aws/policies/worker.json": {
        ("s3:PutObject", "arn:aws:s3:::imgsink-processed/processed/*"),
        ("s3:PutObjectTagging", "arn:aws:s3:::imgsink-processed/processed/*"),
        ("s3:GetObject", "arn:aws:s3:::imgsink-raw/uploads/*"),
        ("s3:GetObjectVersion", "arn:aws:s3:::imgsink-raw/uploads/*"),
        ("kms:GenerateDataKey", KMS), ("kms:Decrypt", KMS)},
    "aws/policies/api.json": {
        ("s3:PutObject", "arn:aws:s3:::imgsink-raw/uploads/*"),
        ("s3:GetObject", "arn:aws:s3:::imgsink-processed/processed/*"),
        ("kms:GenerateDataKey", KMS), ("kms:Decrypt", KMS)},
    "minio/policies/worker.json": {
        ("s3:PutObject", "arn:aws:s3:::imgsink/processed/*"),
        ("s3:PutObjectTagging", "arn:aws:s3:::imgsink/processed/*"),
        ("s3:GetObject", "arn:aws:s3:::raw/uploads/*")},
    "minio/policies/api.json": {
        ("s3:PutObject", "arn:aws:s3:::raw/uploads/*"),
        ("s3:GetObject", "arn:aws:s3:::imgsink/processed/*")},
}
for p, w in want.items():
    got = allows(load(p))
    tap(got == w, f"{p} allows exactly {sorted(a for a, _ in w)}" + ("" if got == w else f": extra {sorted(got - w)}, missing {sorted(w - got)}"))
def has_deny(pol, cond_op, key, value):
    return any(s.get("Condition", {}).get(cond_op, {}).get(key) == value for s in denies(pol))
bp = load("aws/policies/bucket-processed.json")
tap(has_deny(bp, "Bool", "aws:SecureTransport", "false"), "bucket-processed.json refuses requests without TLS")
tap(has_deny(bp, "Null", "s3:x-amz-server-side-encryption", "true"), "bucket-processed.json refuses unencrypted PUTs")
tap(has_deny(load("aws/policies/bucket-raw.json"), "Bool", "aws:SecureTransport", "false"), "bucket-raw.json refuses requests without TLS")
for who in ("worker", "api"):
    tap(has_deny(load(f"minio/policies/{who}.json"), "Bool", "aws:SecureTransport", "false"), f"minio/policies/{who}.json refuses requests without TLS")
tap(has_deny(load("minio/policies/worker.json"), "Null", "s3:x-amz-server-side-encryption", "true"), "minio/policies/worker.json refuses unencrypted PUTs")
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || N_FAIL=$((N_FAIL + 1))

# --- MinIO enforces them: no TLS, no access -------------------------------------------------
# The plaintext MinIO of the stack; buckets imgsink (the stack's) and raw.
[ "$S3_BUCKET" = imgsink ] || note "stack bucket is $S3_BUCKET, the policies name imgsink"
mc mb --ignore-existing "$MC_ALIAS/raw" >/dev/null || notok "mc mb raw"
rand() { python3 -c 'import secrets,string; print("".join(secrets.choice(string.ascii_letters+string.digits) for _ in range(32)))'; }
suffix=$RANDOM$$
WK=t75-worker-$suffix WS=$(rand) AK=t75-api-$suffix AS=$(rand)
for who in worker api; do
    mc admin policy create "$MC_ALIAS" "t75-$who-$suffix" "$ROOT/deploy/minio/policies/$who.json" \
        >/dev/null || notok "mc admin policy create $who.json"
done
mc admin user add "$MC_ALIAS" "$WK" "$WS" >/dev/null || notok "user add worker"
mc admin user add "$MC_ALIAS" "$AK" "$AS" >/dev/null || notok "user add api"
mc admin policy attach "$MC_ALIAS" "t75-worker-$suffix" --user "$WK" >/dev/null || notok "attach worker"
mc admin policy attach "$MC_ALIAS" "t75-api-$suffix" --user "$AK" >/dev/null || notok "attach api"
mc alias set t75w "$S3_ENDPOINT" "$WK" "$WS" --api S3v4 >/dev/null
mc alias set t75a "$S3_ENDPOINT" "$AK" "$AS" --api S3v4 >/dev/null
echo probe >"$TMP/p.txt"
refused() {
    local what=$1 o
    shift
    o=$("$@" 2>&1)
    if [ $? -ne 0 ] && grep -qiE 'access denied|insufficient permissions' <<<"$o"; then
        ok "plaintext refused: $what"
    else
        notok "plaintext refused: $what ($o)"
    fi
}
refused "worker PUT (encrypted) under processed/" mc cp --enc-s3 t75w/imgsink/ "$TMP/p.txt" t75w/imgsink/processed/t75/p.txt
refused "API PUT under raw/uploads/" mc cp "$TMP/p.txt" t75a/raw/uploads/acme/p.txt
mc cp "$TMP/p.txt" "$MC_ALIAS/imgsink/processed/t75/p.txt" >/dev/null
refused "API GET of an output" mc cat t75a/imgsink/processed/t75/p.txt
write_conf "$TMP/w.conf" "$(unique_name t75)" "$(unique_name t75).dlq" "$(unique_name g-t75)" processed \
    s3.sse=AES256
IMGSINK_S3_ACCESS_KEY=$WK IMGSINK_S3_SECRET_KEY=$WS "$IMGSINK" check -c "$TMP/w.conf" >"$TMP/check.out" 2>&1
grep 'write' "$TMP/check.out" | sed 's/^/# check: /'
check "imgsink check over plaintext names the refused PUT and TLS" \
    grep -q "FAIL  write      missing permission s3:PutObject on imgsink/processed/\* (or a bucket policy refuses these PUTs, e.g. without TLS" "$TMP/check.out"
mc rm "$MC_ALIAS/imgsink/processed/t75/p.txt" >/dev/null
for u in "$WK" "$AK"; do mc admin user rm "$MC_ALIAS" "$u" >/dev/null; done
for who in worker api; do mc admin policy rm "$MC_ALIAS" "t75-$who-$suffix" >/dev/null; done
mc alias rm t75w >/dev/null
mc alias rm t75a >/dev/null

[ "$N_FAIL" -eq 0 ]
