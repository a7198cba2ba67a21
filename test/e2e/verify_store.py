#!/usr/bin/env python3
"""Checks imgsink's outputs in the object store with mc (not imgsink's client).

For every expected record id: each rendition and metadata.json exists under
{prefix}/{tenant}/{yyyy}/{mm}/{dd}/{id}/, carries the tags retention=<N>d and
source=<source>, has the right Content-Type, and (with --bytes) each rendition's
bytes hash to the sha256 that metadata.json records and decode to an image of
the right format that fits its box (checked with libvips' vipsheader).

Prints TAP lines and exits non-zero if any check failed.
"""
import argparse
import datetime
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile

CTYPES = {"jpeg": ("jpg", "image/jpeg"), "webp": ("webp", "image/webp"),
          "png": ("png", "image/png"), "avif": ("avif", "image/avif")}


def mc(*args):
    cmd = shlex.split(os.environ["MC"]) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=False)
    return r.returncode, r.stdout


def mc_json(*args):
    rc, out = mc("--json", *args)
    try:
        return json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
    except (ValueError, IndexError):
        return {"status": "error", "raw": out[:200].decode(errors="replace")}


def parse_renditions(spec):
    out = []
    for item in spec.split(","):
        name, rest = item.strip().split("=", 1)
        parts = rest.split("/")
        w, h = (int(x) for x in parts[0].split("x"))
        out.append({"name": name, "w": w, "h": h, "format": parts[1],
                    "fit": parts[3] if len(parts) > 3 else "inside"})
    return out


def vipsheader(path):
    r = subprocess.run(["vipsheader", "-a", path], capture_output=True, text=True)
    if r.returncode:
        return None
    info = {}
    for line in r.stdout.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alias", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--tenant", default="demo")
    ap.add_argument("--source", default="stream")
    ap.add_argument("--retention", default="7d")
    ap.add_argument("--uploaded-at-ms", type=int, required=True)
    ap.add_argument("--ids", required=True, help="file with one expected id a line")
    ap.add_argument("--renditions", required=True)
    ap.add_argument("--bytes", action="store_true", help="download and check every rendition")
    ap.add_argument("--absent", help="file with ids that must have no objects")
    a = ap.parse_args()

    day = datetime.datetime.fromtimestamp(a.uploaded_at_ms / 1000, datetime.timezone.utc)
    base = f"{a.prefix}/{a.tenant}/{day:%Y/%m/%d}"
    ids = [l.strip() for l in open(a.ids) if l.strip()]
    rends = parse_renditions(a.renditions)
    problems = {"missing": [], "tags": [], "ctype": [], "bytes": [], "decode": [], "meta": []}
    n_objects = 0

    tmp = tempfile.mkdtemp()
    for rid in ids:
        objs = [(r["name"] + "." + CTYPES[r["format"]][0], CTYPES[r["format"]][1], r) for r in rends]
        objs.append(("metadata.json", "application/json", None))
        meta = None
        rc, out = mc("cat", f"{a.alias}/{a.bucket}/{base}/{rid}/metadata.json")
        if rc == 0:
            try:
                meta = json.loads(out)
            except ValueError:
                problems["meta"].append(f"{rid}: metadata.json is not JSON")
        for name, ctype, r in objs:
            path = f"{a.alias}/{a.bucket}/{base}/{rid}/{name}"
            st = mc_json("stat", path)
            if st.get("status") != "success":
                problems["missing"].append(path)
                continue
            n_objects += 1
            md = {k.lower(): v for k, v in (st.get("metadata") or {}).items()}
            if md.get("content-type") != ctype:
                problems["ctype"].append(f"{path}: {md.get('content-type')} != {ctype}")
            tags = mc_json("tag", "list", path).get("tagset") or {}
            if tags.get("retention") != a.retention or tags.get("source") != a.source:
                problems["tags"].append(f"{path}: {tags}")
            if r is None or not a.bytes:
                continue
            rc, data = mc("cat", path)
            entry = None
            if meta:
                entry = next((e for e in meta.get("renditions", []) if e.get("name") == r["name"]), None)
            if entry is None or hashlib.sha256(data).hexdigest() != entry.get("sha256") \
                    or entry.get("bytes") != len(data) or entry.get("key") != f"{base}/{rid}/{name}":
                problems["bytes"].append(f"{path}: does not match metadata.json")
            f = os.path.join(tmp, name)
            with open(f, "wb") as fp:
                fp.write(data)
            info = vipsheader(f)
            if not info:
                problems["decode"].append(f"{path}: does not decode")
                continue
            w, h = int(info.get("width", 0)), int(info.get("height", 0))
            loader = info.get("vips-loader", "")
            want = {"jpeg": "jpegload", "webp": "webpload", "png": "pngload", "avif": "heifload"}[r["format"]]
            if not loader.startswith(want) or w > r["w"] or h > r["h"] or w < 1 or h < 1:
                problems["decode"].append(f"{path}: {loader} {w}x{h} for box {r['w']}x{r['h']}")
        if meta is not None and (meta.get("id") != rid or meta.get("tenant") != a.tenant
                                 or len(meta.get("renditions", [])) != len(rends)
                                 or len(meta.get("input", {}).get("sha256", "")) != 64):
            problems["meta"].append(f"{rid}: metadata.json fields wrong: id={meta.get('id')}")

    per = len(rends) + 1
    print(f"# {len(ids)} records, {n_objects} objects found, {per} expected per record")
    checks = [
        ("missing", f"every record has its {per} objects ({len(ids) * per} expected)"),
        ("ctype", "every object has the right Content-Type"),
        ("tags", f"every object is tagged retention={a.retention}&source={a.source}"),
        ("meta", "metadata.json names the record, its renditions and the source sha256"),
    ]
    if a.bytes:
        checks += [("bytes", "rendition bytes match the sha256 and size in metadata.json"),
                   ("decode", "renditions decode in their format and fit their box")]
    failed = 0
    for key, what in checks:
        if problems[key]:
            failed += 1
            print(f"not ok - {what}")
            for p in problems[key][:10]:
                print(f"#   {p}")
        else:
            print(f"ok - {what}")
    if a.absent:
        absent = [l.strip() for l in open(a.absent) if l.strip()]
        present = []
        for rid in absent:
            rc, out = mc("ls", "--recursive", f"{a.alias}/{a.bucket}/{base}/{rid}/")
            if out.strip():
                present.append(rid)
        if present:
            failed += 1
            print(f"not ok - poison records have no objects (found for {present})")
        else:
            print(f"ok - the {len(absent)} poison records have no objects")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
