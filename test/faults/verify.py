#!/usr/bin/env python3
"""The fault suite's final checks, with clients that are not imgsink's: mc
for the store, kcat for the DLQ, Kafka's own tools for offsets. Prints TAP
lines and adds its figures to DIR/figures.json.

    verify.py --work DIR --conf FILE --topic T --dlq D --group G
              --bucket-path ALIAS/BUCKET/PREFIX/
"""
import argparse
import datetime
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the clone
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import (CTYPES, day_path, dlq_records, expected_keys, list_keys, mc_cmd,  # noqa: E402
                    mc_lines, note, read_conf, read_history, renditions, tap)


def show(problems, n=10):
    for p in problems[:n]:
        note(f"  {p}")
    if len(problems) > n:
        note(f"  ... and {len(problems) - n} more")


def kafka_tool(kafka_class, *args):
    r = subprocess.run([kafka_class, *args], capture_output=True, text=True, timeout=180)
    return r.returncode, r.stdout


def check_offsets(a, manifest):
    ends = manifest["end_offsets"]
    rc, out = kafka_tool(a.kafka_class, "get-offsets", "--bootstrap-server", a.bootstrap,
                         "--topic", a.topic, "--time", "-1")
    got_end = {}
    for line in out.splitlines():
        f = line.strip().split(":")
        if len(f) == 3 and f[0] == a.topic:
            got_end[int(f[1])] = int(f[2])
    tap(got_end == dict(enumerate(ends)),
        f"end offsets (GetOffsetShell) are the produced counts {ends}")
    rc, out = kafka_tool(a.kafka_class, "consumer-groups", "--bootstrap-server", a.bootstrap,
                         "--describe", "--group", a.group)
    committed = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 and f[1] == a.topic and f[2].isdigit():
            committed[int(f[2])] = (f[3], f[4])
    ok = len(committed) == len(ends) and all(
        committed.get(p, ("-", "-"))[0] == str(n) == committed[p][1] for p, n in enumerate(ends))
    tap(ok, f"committed offsets equal end offsets on all {len(ends)} partitions (kafka-consumer-groups)")
    if not ok:
        note(f"committed/end per partition: {committed}")


def check_dlq(a, manifest, figures, dlq_first):
    recs = {(r["partition"], r["offset"]): r for r in manifest["records"]}
    poison = {k: r for k, r in recs.items() if r["kind"] != "good"}
    dlq = dlq_records(a.bootstrap, a.dlq)
    got = {}
    problems, foreign = [], []
    for m, hd in dlq:
        try:
            k = (int(hd["imgsink.source.partition"]), int(hd["imgsink.source.offset"]))
        except (KeyError, ValueError):
            problems.append(f"DLQ record at offset {m.get('offset')} without source partition/offset")
            continue
        if hd.get("imgsink.source.topic") != a.topic or k not in recs:
            problems.append(f"DLQ record for unknown source {hd.get('imgsink.source.topic')}{list(k)}")
            continue
        if recs[k]["kind"] == "good":
            foreign.append(f"good record {recs[k]['id']} at {list(k)} in the DLQ: "
                           f"{hd.get('imgsink.error.class')}: {hd.get('imgsink.error.message', '')[:200]}")
        got.setdefault(k, []).append((m, hd))
    # When each poison record first reached the DLQ (its CreateTime: the
    # produce call, before delivery).
    dlq_first.update({k: min(m.get("ts", 0) for m, _ in v) for k, v in got.items()})
    missing = [f"{r['id']} ({r['kind']}) at {list(k)}" for k, r in sorted(poison.items()) if k not in got]
    wrong = []
    for k, r in sorted(poison.items()):
        for m, hd in got.get(k, []):
            want = manifest["poison_class"][r["kind"]]
            msg = hd.get("imgsink.error.message", "")
            if (hd.get("imgsink.error.class") != want or not msg.strip() or m.get("key") != r["key"]
                    or not hd.get("imgsink.worker.version") or not hd.get("imgsink.time")):
                wrong.append(f"{r['id']} ({r['kind']}): class={hd.get('imgsink.error.class')} (want {want}) "
                             f"key={m.get('key')!r} message={msg[:120]!r}")
    tap(not missing and not problems,
        f"every poison record ({len(poison)}) is in the DLQ, found by its source partition/offset")
    show(missing + problems)
    tap(not wrong, "each DLQ record has its original key, the expected imgsink.error.class, a reason "
                   "in imgsink.error.message, the worker version and time")
    show(wrong)
    tap(not foreign, "no good record is in the DLQ (transient store errors are never dead-lettered)")
    show(foreign)
    dups = sum(len(v) - 1 for v in got.values())
    figures.update(dlq_records=len(dlq), dlq_duplicates=dups)
    note(f"DLQ: {len(dlq)} records for {len(got)} poison records ({dups} duplicates: a worker died "
         f"between the DLQ produce and the commit)")
    kinds = {}
    for k, r in poison.items():
        for m, hd in got.get(k, [])[:1]:
            kinds.setdefault(r["kind"], hd.get("imgsink.error.message", "")[:100])
    for kind, msg in sorted(kinds.items()):
        note(f"  {kind}: {msg}")
    return len(missing)


LOG_EVENTS = [  # (what, pattern in a worker log line)
    ("transient PUT failures retried", '"msg":"transient PUT failure'),
    ("DLQ produce retries", '"msg":"DLQ produce failed'),
    ("records given up at a deadline", '"msg":"gave up on the record'),
    ("offsets not stored (partition moved)", '"msg":"offset not stored'),
    ("revokes", '"msg":"partitions revoked'),
    ("lost assignments", '"msg":"partitions lost'),
    ("commit failures", 'commit on revoke failed'),
]


def log_events(work):
    """How often the workers met each kind of trouble, from their logs."""
    counts = {what: 0 for what, _ in LOG_EVENTS}
    for f in sorted(os.listdir(work)):
        if re.fullmatch(r"w\d+\.log", f):
            for line in open(os.path.join(work, f), errors="replace"):
                for what, pat in LOG_EVENTS:
                    if pat in line:
                        counts[what] += 1
    return counts


def check_store(a, manifest, rends, work, figures, first_write):
    base = day_path(manifest)
    good = [r for r in manifest["records"] if r["kind"] == "good"]
    good_ids = {r["id"] for r in good}
    # Every version of every object under the prefix.
    versions = mc_lines("ls", "--recursive", "--versions", a.bucket_path, timeout=600)
    by_key, markers = {}, []
    for o in versions:
        if o.get("type") != "file":
            continue
        if o.get("isDeleteMarker"):  # imgsink never deletes: nor may anything else here
            markers.append(f"{o['key']}: deleted at {o.get('lastModified')}")
        else:
            by_key.setdefault(o["key"], []).append(o)
    live = set(list_keys(a.bucket_path, timeout=600))  # latest versions, not deleted
    # When each key was first written (the store's clock; Kafka's broker
    # runs on the same host and clock).
    for k, vs in by_key.items():
        first_write[k] = min(iso_ms(v["lastModified"]) for v in vs)
    # The latest bytes of everything, downloaded once.
    dl = os.path.join(work, "store")
    r = subprocess.run(mc_cmd("cp", "--recursive", "--quiet", a.bucket_path, dl + "/"),
                       capture_output=True, timeout=900)
    tap(r.returncode == 0, f"downloaded the {len(live)} objects under the prefix with mc cp")

    extra = sorted(k for k in live if k.split("/")[-2] not in good_ids or not k.startswith(base + "/"))
    missing, meta_bad, bytes_bad = [], [], []
    n_rend = 0
    for rec in good:
        d = f"{base}/{rec['id']}"
        names = [f for _, f, _, _, _ in rends] + ["metadata.json"]
        miss = [n for n in names if f"{d}/{n}" not in live]
        if miss:
            missing.append(f"{rec['id']} (partition {rec['partition']} offset {rec['offset']}): {miss}")
            continue
        try:
            meta = json.load(open(os.path.join(dl, d, "metadata.json")))
        except (OSError, ValueError) as e:
            meta_bad.append(f"{rec['id']}: metadata.json unreadable: {e}")
            continue
        k = meta.get("kafka") or {}
        if (meta.get("id") != rec["id"] or meta.get("tenant") != manifest["tenant"]
                or k.get("topic") != a.topic or k.get("partition") != rec["partition"]
                or k.get("offset") != rec["offset"] or len(meta.get("renditions") or []) != len(rends)
                or len((meta.get("input") or {}).get("sha256", "")) != 64):
            meta_bad.append(f"{rec['id']}: id={meta.get('id')} kafka={k} "
                            f"(want partition {rec['partition']} offset {rec['offset']})")
            continue
        entries = {e.get("name"): e for e in meta["renditions"]}
        prefix = a.bucket_path.split("/", 2)[2]
        for name, fname, _, _, _ in rends:
            e = entries.get(name) or {}
            data = open(os.path.join(dl, d, fname), "rb").read()
            n_rend += 1
            if (hashlib.sha256(data).hexdigest() != e.get("sha256") or e.get("bytes") != len(data)
                    or e.get("key") != f"{prefix}{d}/{fname}"):
                bytes_bad.append(f"{d}/{fname}: {len(data)} bytes sha256 "
                                 f"{hashlib.sha256(data).hexdigest()[:12]}, metadata says "
                                 f"{e.get('bytes')} {str(e.get('sha256'))[:12]} key {e.get('key')}")
    per = len(rends) + 1
    tap(not missing, f"every good record ({len(good)}) has its {per} objects: "
                     f"{', '.join(f for _, f, _, _, _ in rends)}, metadata.json")
    show(missing)
    tap(not meta_bad, "metadata.json names the record, its tenant, its Kafka topic/partition/offset, "
                      "every rendition and the source sha256")
    show(meta_bad)
    tap(not bytes_bad and n_rend > 0,
        f"all {n_rend} renditions' bytes (fetched with mc) match the sha256, size and key in metadata.json")
    show(bytes_bad)
    tap(not extra, "no other objects under the prefix: poison records (including the unsafe ids) "
                   "have none")
    show(extra)
    tap(not markers, "no object under the prefix was ever deleted (no delete markers)")
    show(markers)

    # A sample of renditions decodes in its format and fits its box
    # (libvips' own vipsheader, not the worker).
    rng = random.Random(a.seed)
    sample = rng.sample(good, min(40, len(good)))
    undecodable = []
    for rec in sample:
        for name, fname, w, h, fmt in rends:
            p = os.path.join(dl, base, rec["id"], fname)
            if not os.path.exists(p):
                continue
            r = subprocess.run(["vipsheader", "-a", p], capture_output=True, text=True)
            info = dict(l.split(":", 1) for l in r.stdout.splitlines() if ":" in l)
            info = {k.strip(): v.strip() for k, v in info.items()}
            want = {"jpeg": "jpegload", "webp": "webpload", "png": "pngload", "avif": "heifload"}[fmt]
            iw, ih = int(info.get("width", 0)), int(info.get("height", 0))
            if r.returncode or not info.get("vips-loader", "").startswith(want) or not (
                    0 < iw <= w and 0 < ih <= h):
                undecodable.append(f"{rec['id']}/{fname}: {info.get('vips-loader')} {iw}x{ih}")
    tap(not undecodable, f"a sample of {len(sample) * len(rends)} renditions decode in their format "
                         f"and fit their box (vipsheader)")
    show(undecodable)

    # Tags on every version: an object must never exist without its
    # retention tag, not even for a moment (fail closed).
    ids = {v.get("versionId") for vs in by_key.values() for v in vs}
    tags = [t for t in mc_lines("tag", "list", "--recursive", "--versions", a.bucket_path, timeout=900)
            if t.get("versionID") in ids]
    untagged = [f"{t.get('url')} version {t.get('versionID')}: {t.get('tagset')}" for t in tags
                if (t.get("tagset") or {}) != {"retention": "7d", "source": "stream"}]
    n_versions = len(ids)
    tap(not untagged and len(tags) == n_versions,
        f"every version of every object ({len(tags)} of {n_versions}) is tagged "
        f"retention=7d&source=stream")
    show(untagged)

    # Content-Type of a sample, with mc stat.
    ctype_bad = []
    for rec in sample[:10]:
        for name, fname, w, h, fmt in rends + [("metadata", "metadata.json", 0, 0, None)]:
            try:
                st = mc_lines("stat", f"{a.bucket_path}{base}/{rec['id']}/{fname}")
            except RuntimeError as e:
                ctype_bad.append(f"{rec['id']}/{fname}: {e}")
                continue
            md = {k.lower(): v for k, v in ((st[-1] if st else {}).get("metadata") or {}).items()}
            want = CTYPES[fmt][1] if fmt else "application/json"
            if md.get("content-type") != want:
                ctype_bad.append(f"{rec['id']}/{fname}: {md.get('content-type')} (want {want})")
    tap(not ctype_bad, f"a sample of {len(sample[:10]) * per} objects has the right Content-Type (mc stat)")
    show(ctype_bad)

    # Duplicate writes. The bucket keeps versions, so every PUT the store
    # acknowledged is still there: a rendition written twice must have the
    # same bytes (ETag) each time; metadata.json may differ only in
    # processing_ms (a timing).
    rewritten = {k: v for k, v in by_key.items() if len(v) > 1}
    differ = []
    meta_dups = 0
    for key, vs in sorted(rewritten.items()):
        if key.endswith("/metadata.json"):
            meta_dups += len(vs) - 1
            docs = []
            for v in vs:
                r = subprocess.run(mc_cmd("cat", "--version-id", v["versionId"], a.bucket_path + key),
                                   capture_output=True, timeout=60)
                try:
                    doc = json.loads(r.stdout)
                    doc.pop("processing_ms", None)
                    docs.append(json.dumps(doc, sort_keys=True))
                except ValueError:
                    docs.append(f"unreadable: rc {r.returncode}")
            if len(set(docs)) != 1:
                differ.append(f"{key}: {len(vs)} versions of metadata.json differ beyond processing_ms")
        elif len({(v.get("etag"), v.get("size")) for v in vs}) != 1:
            differ.append(f"{key}: versions differ: {[(v.get('etag'), v.get('size')) for v in vs]}")
    extra_versions = sum(len(v) - 1 for v in rewritten.values())
    tap(not differ, f"duplicate writes are identical overwrites: {extra_versions} extra object versions "
                    f"({meta_dups} records' metadata.json rewritten) all equal the first")
    show(differ)

    # Duplicates as the workers report them: "record written" (debug) per
    # partition/offset, across every worker run's log.
    written = {}
    pat = re.compile(r'"msg":"record written".*?"partition":(\d+),"offset":(\d+)')
    for f in sorted(os.listdir(work)):
        if re.fullmatch(r"w\d+\.log", f):
            for line in open(os.path.join(work, f), errors="replace"):
                m = pat.search(line)
                if m:
                    k = (int(m.group(1)), int(m.group(2)))
                    written[k] = written.get(k, 0) + 1
    note("worker logs: " + ", ".join(f"{n} {what}" for what, n in log_events(work).items()))
    log_dups = sum(n - 1 for n in written.values() if n > 1)
    recs_dup = sum(1 for n in written.values() if n > 1)
    note(f"duplicates: {log_dups} repeated 'record written' log lines over {recs_dup} records; "
         f"the store holds {extra_versions} extra versions ({meta_dups} for metadata.json)")
    not_logged = [r["id"] for r in good if (r["partition"], r["offset"]) not in written]
    tap(not not_logged, f"every good record was logged as written at least once ({len(written)} "
                        f"distinct records logged)")
    show(not_logged)
    figures.update(good=len(good), objects=len(by_key), object_versions=n_versions,
                   duplicate_writes_logged=log_dups, duplicate_records_logged=recs_dup,
                   duplicate_object_versions=extra_versions, duplicate_metadata_versions=meta_dups)
    return len(missing) + len(meta_bad) + len({b.split("/")[-2] for b in bytes_bad})


def iso_ms(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def check_commit_times(a, manifest, rends, work, first_write, dlq_first):
    """Every offset commit the broker recorded during the run (not only the
    sampled ones), against when the records below it became durable: the
    first version of each of its objects (good) or its first DLQ record
    (poison) must be older than the commit."""
    commits = [(h["partition"], h["offset"], h["commit_time_ms"])
               for h in read_history(os.path.join(work, "history.jsonl")) if h["event"] == "commit"]
    by_part = {}
    for r in manifest["records"]:
        by_part.setdefault(r["partition"], []).append(r)
    # ready[p][i]: when records 0..i of partition p were all durable.
    ready = {}
    inf = float("inf")
    for p, recs in by_part.items():
        recs.sort(key=lambda r: r["offset"])
        acc, out = 0.0, []
        for r in recs:
            if r["kind"] == "good":
                t = max(first_write.get(k, inf) for k in expected_keys(manifest, rends, r))
            else:
                t = dlq_first.get((r["partition"], r["offset"]), inf)
            acc = max(acc, t)
            out.append((acc, r, t))
        ready[p] = out
    bad = []
    for p, c, t in commits:
        if c <= 0:
            continue
        acc, _, _ = ready[p][c - 1]
        if acc > t + 2:  # ms: both clocks are the host's; 2 ms for rounding
            late = [(r, rt) for _, r, rt in ready[p][:c] if rt > t + 2]
            r, rt = late[0]
            bad.append(f"commit of offset {c} on partition {p} at {t} ms: {len(late)} records below "
                       f"it not durable yet, first {r['id']} (offset {r['offset']}, {r['kind']}) "
                       f"durable {'never' if rt == inf else f'{rt - t:.0f} ms later'}")
    tap(commits and not bad, f"every offset commit the broker recorded ({len(commits)}) came after "
                             f"the first write of every object or DLQ record of all records below it "
                             f"(store version times and DLQ timestamps against commit times)")
    show(bad)
    return len(bad)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--conf", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--dlq", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--bucket-path", required=True)
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP"))
    ap.add_argument("--kafka-class", default=os.environ.get("KAFKA_CLASS"))
    a = ap.parse_args()
    manifest = json.load(open(os.path.join(a.work, "manifest.json")))
    rends = renditions(read_conf(a.conf)["renditions"])
    fpath = os.path.join(a.work, "figures.json")
    figures = json.load(open(fpath)) if os.path.exists(fpath) else {}

    try:
        check_offsets(a, manifest)
        first_write, dlq_first = {}, {}
        lost_poison = check_dlq(a, manifest, figures, dlq_first)
        lost_good = check_store(a, manifest, rends, a.work, figures, first_write)
        figures["early_commits"] = check_commit_times(a, manifest, rends, a.work, first_write,
                                                      dlq_first)
    except Exception as e:  # a failure of the checks themselves is a failure too
        tap(False, f"verify.py failed: {e!r}")
        for line in traceback.format_exc().splitlines():
            note(line)
        return 1
    # Records written more than once, per SIGKILL: what a kill repeats (work
    # finished since the last commit, and done records behind an unfinished
    # one). Stops and restarts add a few; kills are most of it.
    kills = figures.get("kills") or 0
    figures["duplicates_per_kill"] = (round(figures.get("duplicate_records_logged", 0) / kills, 1)
                                      if kills else None)
    note(f"duplicates per kill: {figures['duplicates_per_kill']} "
         f"({figures.get('duplicate_records_logged', 0)} records written more than once, {kills} kills)")
    figures["lost"] = lost_good + lost_poison
    figures["poison"] = sum(1 for r in manifest["records"] if r["kind"] != "good")
    tap(figures["lost"] == 0, f"lost records: {figures['lost']} ({lost_good} good records without "
                              f"correct objects, {lost_poison} poison records not in the DLQ)")
    with open(fpath, "w") as f:
        json.dump(figures, f)
    return 1 if common.N_FAIL else 0


if __name__ == "__main__":
    sys.exit(main())
