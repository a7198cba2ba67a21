#!/usr/bin/env python3
"""Checks with mc (not imgsink) that every object under a prefix is
encrypted as configured.

    verify_sse.py --mc 'MC ARGS' --target ALIAS/BUCKET/PREFIX --sse AES256|aws:kms
                  [--key-id NAME] --min-objects N [--min-dlq N]

mc stat --json shows X-Amz-Server-Side-Encryption (AES256 or aws:kms) and,
for SSE-KMS, X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id (MinIO:
arn:aws:kms:NAME). Prints one TAP line per check.
"""
import argparse
import json
import shlex
import subprocess
import sys


def mc_json(mc, *args):
    out = subprocess.run(mc + ["--json"] + list(args), capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mc", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--sse", required=True)
    p.add_argument("--key-id")
    p.add_argument("--min-objects", type=int, required=True)
    p.add_argument("--min-dlq", type=int, default=0)
    a = p.parse_args()
    mc = shlex.split(a.mc)
    target = a.target.rstrip("/") + "/"
    keys = [o["key"] for o in mc_json(mc, "ls", "--recursive", target) if o.get("type") == "file"]
    bad, kinds = [], {}
    for k in keys:
        st = mc_json(mc, "stat", target + k)
        md = st[0].get("metadata", {}) if st else {}
        sse = md.get("X-Amz-Server-Side-Encryption", "")
        kid = md.get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", "")
        kinds[k.rsplit("/", 1)[-1].split(".")[-1] if "/dlq/" not in "/" + k else "dlq"] = 1
        if sse != a.sse or (a.key_id and not kid.endswith(":" + a.key_id) and kid != a.key_id):
            bad.append(f"{k}: {sse or 'unencrypted'} {kid}".strip())
    ndlq = sum(1 for k in keys if k.startswith("dlq/") or "/dlq/" in k)
    want = a.sse + (f" with key {a.key_id}" if a.key_id else "")
    print(f"# {target}: {len(keys)} objects ({ndlq} dead-letter values), kinds {sorted(kinds)}")
    ok = True
    for what, cond in [
        (f"at least {a.min_objects} objects under {target}", len(keys) >= a.min_objects),
        (f"at least {a.min_dlq} dead-letter value objects", ndlq >= a.min_dlq),
        (f"mc stat: all {len(keys)} objects are {want}" + (f" (not: {bad[:3]})" if bad else ""), not bad and keys),
    ]:
        print(("ok - " if cond else "not ok - ") + what)
        ok = ok and bool(cond)
    sys.exit(0 if ok else 1)


main()
