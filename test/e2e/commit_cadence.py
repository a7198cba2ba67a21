#!/usr/bin/env python3
"""How often a group committed a topic's offsets, as the broker recorded it.

Reads __consumer_offsets with kcat (to its end), keeps the offset commits of
one group and topic made at or after --since-ms, groups the records of one
commit request (one timestamp per request, partitions differ) and prints
JSON: {"commits": N, "gaps_ms": [...], "median_gap_ms": M}, the gaps being
between consecutive commit requests.

    commit_cadence.py --bootstrap HOST:PORT --group G --topic T [--since-ms MS]
"""
import argparse
import json
import struct
import subprocess
import sys


def decode_key(k):
    """(group, topic, partition) of an offset commit key (versions 0 and 1),
    None for group metadata (version 2) and anything else."""
    if len(k) < 2 or struct.unpack(">h", k[:2])[0] not in (0, 1):
        return None
    pos, out = 2, []
    for _ in range(2):
        n = struct.unpack(">h", k[pos:pos + 2])[0]
        pos += 2
        out.append(k[pos:pos + n].decode(errors="replace"))
        pos += n
    return out[0], out[1], struct.unpack(">i", k[pos:pos + 4])[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--since-ms", type=int, default=0)
    a = ap.parse_args()
    out = subprocess.run(["kcat", "-C", "-b", a.bootstrap, "-t", "__consumer_offsets", "-o",
                          "beginning", "-e", "-u", "-q", "-f", "%T %K %S\\n%k%s"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120).stdout
    times, pos = set(), 0
    while pos < len(out):
        nl = out.index(b"\n", pos)
        ts, klen, vlen = (int(x) for x in out[pos:nl].split())
        pos = nl + 1
        key = out[pos:pos + max(klen, 0)]
        pos += max(klen, 0) + max(vlen, 0)
        k = decode_key(key) if klen > 0 else None
        # A tombstone (no value) deletes an offset; it is not a commit.
        if k and k[0] == a.group and k[1] == a.topic and vlen > 0 and ts >= a.since_ms:
            times.add(ts)
    # One commit request is appended at once; allow a few ms between the
    # records of one request all the same.
    commits = []
    for t in sorted(times):
        if not commits or t - commits[-1] > 100:
            commits.append(t)
    gaps = [b - a for a, b in zip(commits, commits[1:])]
    median = sorted(gaps)[len(gaps) // 2] if gaps else None
    json.dump({"commits": len(commits), "gaps_ms": gaps, "median_gap_ms": median}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
