#!/usr/bin/env python3
"""Writes raw Kafka record values for tests, encoded here and not by imgsink,
so the worker is tested against an independent Avro encoder.

    make_records.py OUTDIR
    make_records.py ref FILE --id ID --bucket B --key K --size N
                    [--sha256 HEX] [--version-id V] [--tenant T] [--retention DAYS]
    make_records.py inline FILE --id ID --image PATH [--tenant T] [--retention DAYS]

The first form writes OUTDIR/NN-name.bin files (record values) and
OUTDIR/poison.ids / OUTDIR/good.ids. Good records carry small real images
made with libvips' command-line tool; poison records are each broken in one
specific way. The other two write one record value to FILE: a claim check
(payload: ObjectRef) or an inline image.
"""
import argparse
import os
import struct
import subprocess
import sys
import zlib

UPLOADED = 1767225600000  # 2026-01-01T00:00:00Z


def zz(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def s(x):
    b = x.encode() if isinstance(x, str) else x
    return zz(len(b)) + b


def record(rid, payload, tenant="acme", source=0, ctype="image/jpeg", fname="x.jpg", attrs=None,
           retention=7):
    out = s(rid) + s(tenant) + zz(source) + zz(UPLOADED) + s(ctype) + s(fname)
    attrs = attrs or {}
    if attrs:
        out += zz(len(attrs)) + b"".join(s(k) + s(v) for k, v in attrs.items())
    out += zz(0)  # end of map blocks
    out += zz(retention)
    out += zz(0) + s(payload)  # union branch 0: inline bytes
    return out


def header(rid, tenant="acme", source=0, ctype="image/jpeg", fname="x.jpg", retention=7):
    """Every field before the payload; attributes empty."""
    return (s(rid) + s(tenant) + zz(source) + zz(UPLOADED) + s(ctype) + s(fname) + zz(0)
            + zz(retention))


def nullable(x):
    """["null", "string"]: branch 0 is null, branch 1 a string."""
    return zz(0) if x is None else zz(1) + s(x)


def record_ref(rid, bucket, key, size, sha256=None, version_id=None, tenant="acme", retention=7):
    """A claim check: payload union branch 1, ObjectRef {bucket, key,
    version_id, size, sha256} in schema order."""
    ref = s(bucket) + s(key) + nullable(version_id) + zz(size) + nullable(sha256)
    return header(rid, tenant=tenant, retention=retention) + zz(1) + ref


def png_header_only(w, h):
    """A PNG whose IHDR declares w x h, with one tiny IDAT: a pixel bomb header."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def vips_image(path, w, h, seed):
    subprocess.run(["vips", "gaussnoise", path + ".v", str(w), str(h), "--sigma", str(20 + seed)], check=True)
    subprocess.run(["vips", "copy", path + ".v", path + "[Q=90]"], check=True)
    os.unlink(path + ".v")
    with open(path, "rb") as f:
        return f.read()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    good = [vips_image(os.path.join(out, f"g{i}.jpg"), 900 + 40 * i, 600 + 30 * i, i) for i in range(3)]
    recs = [
        ("good-a", "good", record("good-a", good[0], attrs={"camera": "test", "note": "ü"})),
        ("junk", "poison", b"this is not an avro record at all\n"),
        ("good-b", "good", record("good-b", good[1])),
        ("magic1", "poison", b"\x01\x00\x00\x00\x07" + record("magic1", good[0])),
        ("text", "poison", record("text", b"hello, I am plain text\n" * 10, ctype="image/jpeg")),
        ("dotdot", "poison", record("../../etc/passwd", good[0])),
        ("trunc", "poison", record("trunc", good[1][: len(good[1]) // 2])),
        ("bomb", "poison", record("bomb", png_header_only(100000, 100000), ctype="image/png")),
        ("good-c", "good", record("good-c", good[2])),
        ("svg", "poison", record("svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>', ctype="image/svg+xml")),
        ("empty", "poison", record("empty", b"")),
        # Over librdkafka's 1 MB default message size: the dead letter must
        # still fit (the DLQ producer's message.max.bytes follows the input).
        ("bigjunk", "poison", record("bigjunk", os.urandom(2 * 1024 * 1024))),
        ("hugelen", "poison", s("hugelen") + s("acme") + zz(0) + zz(UPLOADED) + s("image/jpeg") + s("f") + zz(0) + zz(7) + zz(0) + zz(1 << 40)),
    ]
    with open(os.path.join(out, "good.ids"), "w") as g, open(os.path.join(out, "poison.ids"), "w") as p:
        for i, (name, kind, value) in enumerate(recs):
            with open(os.path.join(out, f"{i:02d}-{name}.bin"), "wb") as f:
                f.write(value)
            (g if kind == "good" else p).write(name + "\n")
    for i in range(3):
        os.unlink(os.path.join(out, f"g{i}.jpg"))


def one(argv):
    p = argparse.ArgumentParser(prog="make_records.py")
    p.add_argument("kind", choices=["ref", "inline"])
    p.add_argument("file")
    p.add_argument("--id", required=True)
    p.add_argument("--tenant", default="acme")
    p.add_argument("--retention", type=int, default=7)
    p.add_argument("--bucket")
    p.add_argument("--key")
    p.add_argument("--size", type=int)
    p.add_argument("--sha256")
    p.add_argument("--version-id")
    p.add_argument("--image")
    a = p.parse_args(argv)
    if a.kind == "ref":
        value = record_ref(a.id, a.bucket, a.key, a.size, sha256=a.sha256, version_id=a.version_id,
                           tenant=a.tenant, retention=a.retention)
    else:
        with open(a.image, "rb") as f:
            value = record(a.id, f.read(), tenant=a.tenant, retention=a.retention)
    with open(a.file, "wb") as f:
        f.write(value)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("ref", "inline"):
        one(sys.argv[1:])
    else:
        main()
