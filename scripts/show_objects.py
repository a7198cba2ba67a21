#!/usr/bin/env python3
"""Prints a table of the objects under a prefix of the demo bucket: key,
bytes and tags, read with mc (MC, MC_ALIAS and S3_BUCKET from the stack's
env file)."""
import json
import os
import shlex
import subprocess
import sys


def mc(*args):
    r = subprocess.run(shlex.split(os.environ["MC"]) + ["--json", *args], capture_output=True, text=True)
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def main():
    prefix = sys.argv[1]
    base = f"{os.environ['MC_ALIAS']}/{os.environ['S3_BUCKET']}"
    objs = [o for o in mc("ls", "--recursive", f"{base}/{prefix}") if o.get("type") == "file"]
    rows = []
    for o in objs:
        key = prefix + o["key"]
        tags = mc("tag", "list", f"{base}/{key}")
        tagset = (tags[-1].get("tagset") if tags else None) or {}
        rows.append((key, o.get("size", 0), "&".join(f"{k}={v}" for k, v in sorted(tagset.items()))))
    rows.sort()
    w = max([len(r[0]) for r in rows] + [3])
    print(f"{'key':<{w}}  {'bytes':>9}  tags")
    for k, size, tags in rows:
        print(f"{k:<{w}}  {size:>9}  {tags}")
    untagged = sum(1 for r in rows if "retention=" not in r[2])
    records = sum(1 for r in rows if r[0].endswith("/metadata.json"))
    print(f"\n{len(rows)} objects for {records} records, {sum(r[1] for r in rows)} bytes; "
          f"{len(rows) - untagged} tagged with a retention tag, {untagged} without")


if __name__ == "__main__":
    main()
