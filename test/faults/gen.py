#!/usr/bin/env python3
"""Writes the fault suite's records: small images encoded as ImageRecords by
an independent Avro encoder (test/e2e/make_records.py), about 2 % poison
records interleaved, every record assigned to a partition and a production
wave, all chosen from the seed.

    gen.py --seed N --out DIR [--records 2100] [--partitions 6] [--waves 16]

Writes, in DIR:
  wave-WW-pP.bin   the records of wave WW for partition P, as kcat -l input:
                   key KEY_DELIM value MSG_DELIM, one after the other
  manifest.json    one entry per record: id, key, kind ("good" or the poison
                   kind), partition, offset, wave. Offsets are what Kafka
                   assigns when each file is produced in wave order to a
                   fresh topic by an idempotent producer (which never
                   duplicates or reorders within a partition); the suite
                   checks the end offsets after every wave.
"""
import argparse
import json
import os
import random
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the clone
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import make_records as mr  # noqa: E402

# kcat -K / -D delimiters: multi-byte, without NUL (kcat takes C strings).
KEY_DELIM = b"\x1dIMGSINK-FAULTS-KEY\x1d"
MSG_DELIM = b"\x1eIMGSINK-FAULTS-RECORD\x1f"
KEY_DELIM_ARG = r"\x1dIMGSINK-FAULTS-KEY\x1d"
MSG_DELIM_ARG = r"\x1eIMGSINK-FAULTS-RECORD\x1f"

TENANT = "faults"
N_IMAGES = 30

# Poison kinds, each broken in one way (the same kinds as the e2e DLQ test),
# with the DLQ error class the worker gives each.
POISON_CLASS = {
    "junk": "envelope", "magic1": "envelope", "text": "image", "dotdot": "envelope",
    "trunc": "image", "bomb": "image", "svg": "image", "empty": "envelope",
    "hugelen": "envelope",
}


def vips(*args):
    subprocess.run(["vips", *args], check=True, stdout=subprocess.DEVNULL)


def make_image(d, i, seed):
    """A smooth colour image (noise blown up, so it compresses to a few tens
    of KB): JPEG of 240x192 to 560x432 for most, a smaller PNG for every fifth."""
    png = i % 5 == 4
    w8, h8 = 30 + (i * 7) % 41, 24 + (i * 5) % 31
    bands = []
    for b in range(3):
        p = os.path.join(d, f"n{i}-{b}.v")
        vips("gaussnoise", p, str(w8), str(h8), "--mean", str(96 + 20 * b), "--sigma", str(30 + i),
             "--seed", str((seed * 97 + i * 3 + b) % 2**31))
        bands.append(p)
    rgb = os.path.join(d, f"rgb{i}.v")
    vips("bandjoin", " ".join(bands), rgb)
    big = os.path.join(d, f"big{i}.v")
    # PNG is lossless: smaller, or the records get large.
    vips("resize", rgb, big, "4" if png else "8")
    out = os.path.join(d, f"img{i}." + ("png" if png else "jpg"))
    vips("cast", big, out + ("[compression=9]" if png else "[Q=75]"), "uchar")
    for p in bands + [rgb, big]:
        os.unlink(p)
    with open(out, "rb") as f:
        return f.read(), ("image/png" if out.endswith(".png") else "image/jpeg"), os.path.basename(out)


def poison_value(kind, rid, good):
    """(key, value) of a poison record of the given kind."""
    if kind == "junk":
        return rid, b"this is not an avro record at all: " + rid.encode() + b"\n"
    if kind == "magic1":
        return rid, b"\x01\x00\x00\x00\x07" + mr.record(rid, good, tenant=TENANT)
    if kind == "text":
        return rid, mr.record(rid, b"hello, I am plain text\n" * 10, tenant=TENANT)
    if kind == "dotdot":
        bad = "../../" + rid  # an id that must never become part of a key
        return bad, mr.record(bad, good, tenant=TENANT)
    if kind == "trunc":
        return rid, mr.record(rid, good[: len(good) // 2], tenant=TENANT)
    if kind == "bomb":
        return rid, mr.record(rid, mr.png_header_only(100000, 100000), tenant=TENANT,
                              ctype="image/png")
    if kind == "svg":
        return rid, mr.record(rid, b'<svg xmlns="http://www.w3.org/2000/svg" width="10" '
                                   b'height="10"><rect width="10" height="10"/></svg>',
                              tenant=TENANT, ctype="image/svg+xml")
    if kind == "empty":
        return rid, mr.record(rid, b"", tenant=TENANT)
    if kind == "hugelen":
        return rid, (mr.s(rid) + mr.s(TENANT) + mr.zz(0) + mr.zz(mr.UPLOADED) + mr.s("image/jpeg")
                     + mr.s("f") + mr.zz(0) + mr.zz(7) + mr.zz(0) + mr.zz(1 << 40))
    raise ValueError(kind)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--records", type=int, default=2100)
    ap.add_argument("--poison-pct", type=float, default=2.0)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--waves", type=int, default=16)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    imgdir = os.path.join(a.out, "img")
    os.makedirs(imgdir, exist_ok=True)
    images = [make_image(imgdir, i, a.seed) for i in range(N_IMAGES)]

    n = a.records
    n_poison = max(len(POISON_CLASS), round(n * a.poison_pct / 100))
    kinds = sorted(POISON_CLASS)
    poison_at = set(rng.sample(range(n), n_poison))
    # Every poison kind at least once; the rest at random.
    pkinds = kinds + [rng.choice(kinds) for _ in range(n_poison - len(kinds))]
    rng.shuffle(pkinds)

    recs = []
    counts = [0] * a.partitions
    files = {}
    for i in range(n):
        wave = i * a.waves // n
        part = rng.randrange(a.partitions)
        if i in poison_at:
            kind = pkinds.pop()
            rid = f"{kind}-{i:05d}"
            data, _, _ = images[rng.randrange(N_IMAGES)]
            key, value = poison_value(kind, rid, data)
        else:
            kind = "good"
            rid = f"img-{i:05d}"
            data, ctype, fname = images[rng.randrange(N_IMAGES)]
            key = rid
            value = mr.record(rid, data, tenant=TENANT, ctype=ctype, fname=fname,
                              attrs={"suite": "faults", "n": str(i)})
        kb = key.encode()
        if KEY_DELIM in value or MSG_DELIM in value or KEY_DELIM in kb or MSG_DELIM in kb:
            sys.exit(f"record {rid} contains a kcat delimiter")  # never with these images
        fpath = os.path.join(a.out, f"wave-{wave:02d}-p{part}.bin")
        if fpath not in files:
            files[fpath] = open(fpath, "wb")
        files[fpath].write(kb + KEY_DELIM + value + MSG_DELIM)
        recs.append({"id": key, "key": key, "kind": kind, "partition": part,
                     "wave": wave, "bytes": len(value)})
    for f in files.values():
        f.close()
    # Offsets: each wave's files are produced in wave order, so a partition's
    # records get consecutive offsets in the order above.
    for r in sorted(recs, key=lambda r: r["wave"]):
        r["offset"] = counts[r["partition"]]
        counts[r["partition"]] += 1
    # Poison and good records are processed the same way; keep the list in
    # (partition, offset) order for readers.
    recs.sort(key=lambda r: (r["partition"], r["offset"]))
    manifest = {
        "seed": a.seed, "tenant": TENANT, "uploaded_at_ms": mr.UPLOADED,
        "partitions": a.partitions, "waves": a.waves, "records": recs,
        "end_offsets": counts, "poison_class": POISON_CLASS,
    }
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    good = sum(1 for r in recs if r["kind"] == "good")
    total = sum(r["bytes"] for r in recs)
    print(f"{n} records ({good} good, {n - good} poison) over {a.partitions} partitions in "
          f"{a.waves} waves, {total // 1024} KiB; per partition {counts}")


if __name__ == "__main__":
    main()
