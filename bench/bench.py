#!/usr/bin/env python3
"""bench.py - helpers of bench/run.sh: turn raw measurements into result
lines (one JSON object per run in runs.jsonl), then into bench/results.md and
the data files the gnuplot scripts plot.

  bench.py record  --out RUNS.jsonl [--set key=value ...]   < one JSON line
  bench.py e2e     --out RUNS.jsonl --lag LAG.jsonl --expect N --mpix MP
                   [--set key=value ...] WORKER.log...
  bench.py latency --log WORKER.log --stamps STAMPS.txt [--before M --after M]
                   [--load F --rate R --pace PACE.json --expect N]  (prints JSON)
  bench.py rss     --samples RSS.tsv --lag LAG.jsonl --passes N --per-pass M (prints JSON)
  bench.py report  --dir OUT --md bench/results.md
  bench.py small-report --dir OUT --md bench/results.md --command CMD
"""
import argparse
import datetime as dt
import json
import os
import statistics
import sys


def parse_sets(sets):
    out = {}
    for s in sets or []:
        k, _, v = s.partition("=")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def append(path, obj):
    with open(path, "a") as f:
        f.write(json.dumps(obj, sort_keys=True) + "\n")


def log_lines(paths):
    for p in paths:
        with open(p, errors="replace") as f:
            for line in f:
                if line.startswith("{"):
                    try:
                        yield json.loads(line)
                    except ValueError:
                        pass


def epoch(iso):
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=dt.timezone.utc).timestamp()


def lag_lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def cmd_record(a):
    obj = json.loads(sys.stdin.read().strip().splitlines()[-1])
    obj.update(parse_sets(a.set))
    append(a.out, obj)


def prom_sums(paths):
    """Sums of a few of the worker's Prometheus series over its workers."""
    out = {}
    for p in paths or []:
        for line in open(p):
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("imgsink_put_duration_seconds_sum",
                                                "imgsink_put_duration_seconds_count",
                                                "imgsink_processing_duration_seconds_sum"):
                out[parts[0]] = out.get(parts[0], 0.0) + float(parts[1])
    return out


def cmd_e2e(a):
    """End to end: from the first partition assignment (the worker fetches
    at once: the records are already in the topic) to the first read of the
    committed offsets equal to the end offsets."""
    per_worker = [list(log_lines([p])) for p in a.logs]
    lines = [l for w in per_worker for l in w]
    assigned = [epoch(l["time"]) for l in lines if l.get("msg") == "partitions assigned"]
    written = [l for l in lines if l.get("msg") == "record written"]
    lag = lag_lines(a.lag)
    if not assigned or not lag or lag[-1]["committed"] != lag[-1]["end"]:
        sys.exit("bench.py e2e: no assignment in the logs or lag never reached 0")
    t0, t1 = min(assigned), lag[-1]["t"]
    if a.stamps:  # records produced after the assignment: from the first one
        t0 = min(read_stamps(a.stamps).values())
    if a.start_stamps:
        t0 = min(read_stamps(a.start_stamps).values())
    last_put = max(epoch(l["time"]) for l in written) if written else t1
    proc = sorted(l["processing_ms"] for l in written)
    n = lag[-1]["end"]
    obj = {
        "images": n, "seconds": round(t1 - t0, 3), "images_per_s": round(n / (t1 - t0), 3),
        "megapixels_per_s": round(a.mpix / (t1 - t0), 2),
        "last_put_s": round(last_put - t0, 3),
        "records_written": len(written),
        "pipeline_ms_median": round(statistics.median(proc), 1) if proc else None,
        "pipeline_s": round(sum(proc) / 1e3, 2),
        "expected": a.expect, "failures": 0 if n == a.expect else abs(n - a.expect),
    }
    # Several workers: records each one wrote (the partitions' keys decide
    # the split), and the throughput while every worker still had records.
    if len(per_worker) > 1:
        ends, counts = [], []
        for w in per_worker:
            ts = [epoch(l["time"]) for l in w if l.get("msg") == "record written"]
            counts.append(len(ts))
            ends.append(max(ts) if ts else t0)
        t_idle = min(ends)
        both = sum(1 for l in written if epoch(l["time"]) <= t_idle)
        obj["records_per_worker"] = counts
        obj["busiest_worker_share"] = round(max(counts) / sum(counts), 3) if sum(counts) else None
        obj["parallel_images_per_s"] = round(both / (t_idle - t0), 3) if t_idle > t0 else None
    started = [l for l in lines if "max_inflight" in l and str(l.get("msg", "")).endswith("started")]
    if started:
        obj["max_inflight"] = started[0]["max_inflight"]
    if a.stamps:
        obj.update(backlog_stats(written, a.stamps, a.partitions, t0, n, t1 - t0))
    m = prom_sums(a.metrics)
    if m:
        obj["put_s"] = round(m.get("imgsink_put_duration_seconds_sum", 0), 2)
        obj["puts"] = int(m.get("imgsink_put_duration_seconds_count", 0))
        obj["job_busy_s"] = round(m.get("imgsink_processing_duration_seconds_sum", 0), 2)
    obj.update(parse_sets(a.set))
    if "max_inflight" in obj and "max.inflight" not in obj.get("config", "max.inflight"):
        obj["config"] += ", worker.max.inflight={} (default)".format(obj["max_inflight"])
    append(a.out, obj)
    print(json.dumps(obj))


def read_stamps(path):
    """{(partition, offset): produce time in s} from kcat -f '%p %o %T'."""
    stamps = {}
    with open(path) as f:
        for line in f:
            p, o, t = line.split()
            stamps[(int(p), int(o))] = int(t) / 1e3
    return stamps


def backlog_stats(written, stamps_path, nparts, t0, n, seconds):
    """The small workload's backlog run, all records in the topic before the
    worker starts. Share: each partition's part of the records written while
    every partition still had records to write (up to the first partition's
    last write), against an equal share; max deviation in %. Latency: write
    time minus the later of the record's timestamp and the first assignment
    (the time the worker could first have fetched it), against
    (backlog / throughput) x 1.5 (the backlog being all n records)."""
    stamps = read_stamps(stamps_path)
    seen, ws = set(), []
    for l in sorted(written, key=lambda l: epoch(l["time"])):
        key = (l["partition"], l["offset"])
        if key in seen:  # written again after a rebalance: the first counts
            continue
        seen.add(key)
        ws.append((epoch(l["time"]), key))
    last = {}
    for t, (p, _) in ws:
        last[p] = t
    first = {}
    for t, (p, _) in ws:
        first.setdefault(p, t)
    out = {}

    def share(t_start, t_end):
        counts = [0] * nparts
        for t, (p, _) in ws:
            if t_start <= t <= t_end:
                counts[p] += 1
        fair = sum(counts) / nparts
        return counts, round(100 * max(abs(c - fair) for c in counts) / fair, 1) if fair else None

    if len(last) == nparts:
        # From the first write, and from the moment every partition had its
        # first write: at the start the dispatcher (work-conserving) fills the
        # in-flight slots from whichever partitions' records came in the first
        # fetches; once all are being served the share is the dispatch's.
        t_end = min(last.values())
        out["share_counts"], out["share_max_dev_pct"] = share(t0, t_end)
        out["share_window_s"] = round(t_end - t0, 3)
        t_all = max(first.values())
        out["steady_share_counts"], out["steady_share_max_dev_pct"] = share(t_all, t_end)
        out["steady_share_start_s"] = round(t_all - t0, 3)
    else:
        out["share_counts"] = None
        out["share_max_dev_pct"] = None  # some partition never written: not fair
        out["steady_share_max_dev_pct"] = None
    lat = [(t - max(stamps[k], t0)) * 1e3 for t, k in ws if k in stamps]
    if lat:
        out["backlog_p50_ms"] = round(pct(lat, 50))
        out["backlog_p99_ms"] = round(pct(lat, 99))
        out["backlog_max_ms"] = round(max(lat))
        out["backlog_p99_bound_ms"] = round(1.5 * 1e3 * seconds)  # n / (n / seconds) x 1.5
    return out


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


STAGES = ("queue", "decode", "resize_encode", "put")


def prom_stage_sums(path):
    """{stage: (sum, count)} of imgsink_stage_duration_seconds in a scrape."""
    out = {}
    for line in open(path):
        parts = line.split()
        if len(parts) != 2 or not line.startswith("imgsink_stage_duration_seconds_"):
            continue
        name, _, labels = parts[0].partition("{")
        stage = labels.split('stage="', 1)[-1].split('"', 1)[0] if labels else None
        if stage and name.endswith(("_sum", "_count")):
            s, c = out.get(stage, (0.0, 0.0))
            out[stage] = (s + float(parts[1]), c) if name.endswith("_sum") else (s, c + float(parts[1]))
    return out


def cmd_latency(a):
    """Produce time (the record's timestamp) to the worker's "record written"
    line, and where it went: the line's queue (dispatched to a job thread),
    decode, encode and PUT times; "fetch and other" is the rest (in Kafka
    until fetched, header checks, metadata.json built)."""
    stamps = read_stamps(a.stamps)
    recs, seen = [], set()
    for l in log_lines([a.log]):
        if l.get("msg") != "record written":
            continue
        key = (l["partition"], l["offset"])
        if key not in stamps or key in seen:
            continue
        seen.add(key)
        r = {"ms": (epoch(l["time"]) - stamps[key]) * 1e3}
        for k, f in (("queue", "queue_ms"), ("decode", "decode_ms"), ("resize_encode", "encode_ms"),
                     ("put", "put_ms")):
            r[k] = l.get(f)
        if all(r[k] is not None for k in STAGES):
            r["fetch_other"] = r["ms"] - sum(r[k] for k in STAGES)
        recs.append(r)
    if not recs:
        sys.exit("bench.py latency: no record written matched a produced record")
    lat = [r["ms"] for r in recs]
    parts = ("fetch_other",) + STAGES

    def split(rs):
        rs = [r for r in rs if "fetch_other" in r]
        return {k: round(statistics.mean(r[k] for r in rs)) for k in parts} if rs else None

    def at(p):  # the record at the nearest rank
        v = sorted(recs, key=lambda r: r["ms"])
        return v[max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))]

    # The slowest 5 % (at least one record): what the tail is made of.
    tail = sorted(recs, key=lambda r: r["ms"])[-max(1, len(recs) // 20):]
    out = {"records": len(recs), "p50_ms": round(pct(lat, 50)), "p99_ms": round(pct(lat, 99)),
           "max_ms": round(max(lat)), "mean_ms": round(statistics.mean(lat)),
           "split_mean_ms": split(recs), "split_p50_ms": split([at(50)]),
           "split_p99_ms": split([at(99)]), "split_tail_ms": split(tail),
           "tail_records": len(tail)}
    if a.expect is not None:
        out["expected"] = a.expect
    if a.load is not None:
        out["load_pct"] = round(100 * a.load)
    if a.rate is not None:
        out["rate_per_s"] = a.rate
        out["interval_s"] = round(1 / a.rate, 3)
    if a.pace:
        out["achieved_rate_per_s"] = json.load(open(a.pace)).get("rate_per_s")
    if a.before and a.after:
        b, e = prom_stage_sums(a.before), prom_stage_sums(a.after)
        m = {}
        for st in STAGES:
            ds = e.get(st, (0, 0))[0] - b.get(st, (0, 0))[0]
            dc = e.get(st, (0, 0))[1] - b.get(st, (0, 0))[1]
            m[st] = {"count": int(dc), "mean_ms": round(1e3 * ds / dc) if dc else None}
        out["metrics_stage"] = m
    print(json.dumps(out))


def cmd_rss(a):
    """RSS growth over a run of N passes of the corpus. RSS swings with the
    images in flight, so each pass is summed up by its highest sample (the
    samples taken while that pass was being committed) and the growth is the
    median of the last three passes' highs against the first three's."""
    samples = []
    with open(a.samples) as f:
        for line in f:
            t, kb = line.split()
            samples.append((float(t), int(kb)))
    lag = lag_lines(a.lag)

    def when(count):  # first time the committed total reached count
        return next(l["t"] for l in lag if l["committed"] >= count)

    highs, start = [], samples[0][0]
    for k in range(1, a.passes + 1):
        end = when(k * a.per_pass)
        window = [kb for t, kb in samples if start <= t <= end]
        if window:
            highs.append(max(window))
        start = end
    n = min(3, len(highs) // 2) or 1
    base, final = statistics.median(highs[:n]), statistics.median(highs[-n:])
    print(json.dumps({
        "samples": len(samples), "pass_high_kb": highs, "passes_compared": n,
        "first_passes_kb": base, "last_passes_kb": final,
        "peak_kb": max(kb for _, kb in samples),
        "growth_pct": round(100.0 * (final - base) / base, 1),
        "first_to_last_pct": round(100.0 * (highs[-1] - highs[0]) / highs[0], 1),
        "seconds": round(when(a.passes * a.per_pass) - samples[0][0], 1),
        "images": a.passes * a.per_pass,
    }))


# --- report -------------------------------------------------------------------

LABELS = {
    "limit": "limit (libvips in process, C)",
    "limit-1t": "limit, 1 thread",
    "limit-deb12": "limit against Debian 12's libvips (reference)",
    "imgsink": "imgsink end to end, 1 worker",
    "imgsink-1x1": "imgsink end to end, 1 worker x 1 thread",
    "imgsink-2x1": "imgsink end to end, 2 workers x 1 thread",
    "imgsink-q": "imgsink end to end, 1 worker, max.inflight 8 per thread",
    "imgsink-1x1q": "imgsink end to end, 1 worker x 1 thread, max.inflight 8",
    "imgsink-2x1q": "imgsink end to end, 2 workers x 1 thread, max.inflight 8",
    "limit-base": "limit, baseline build",
    "imgsink-base": "imgsink end to end, 1 worker, baseline build",
    "imgsink-base-q": "imgsink end to end, 1 worker, max.inflight 8 per thread, baseline build",
    "sharp-source": "sharp, each rendition from the source",
    "sharp-cascade": "sharp, decode once + cascade",
    "magick": "ImageMagick, one convert per image",
    "magick-hint": "ImageMagick + jpeg:size shrink-on-load hint",
}
ORDER = list(LABELS)
SHORT = {
    "limit": "limit", "limit-1t": "limit 1t", "limit-deb12": "limit (Debian 12)", "imgsink": "imgsink 1w x cores",
    "imgsink-1x1": "imgsink 1w x 1t", "imgsink-2x1": "imgsink 2w x 1t",
    "imgsink-q": "imgsink 1w x cores, if8", "imgsink-1x1q": "imgsink 1w x 1t, if8",
    "imgsink-2x1q": "imgsink 2w x 1t, if8", "limit-base": "limit (baseline)",
    "imgsink-base": "imgsink (baseline)", "imgsink-base-q": "imgsink if8 (baseline)",
    "sharp-source": "sharp (source)",
    "sharp-cascade": "sharp (cascade)", "magick": "ImageMagick", "magick-hint": "ImageMagick+hint",
}


def med(runs, key):
    v = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(v) if v else None


def medv(values):
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def cmd_report(a):
    runs = [json.loads(l) for l in open(os.path.join(a.dir, "runs.jsonl")) if l.strip()]
    meta = json.load(open(os.path.join(a.dir, "meta.json")))
    extra = {}
    for name in ("rss",):
        p = os.path.join(a.dir, name + ".json")
        if os.path.exists(p):
            extra[name] = json.load(open(p))
    lats = []  # one per offered load, lowest first
    for f in sorted(os.listdir(a.dir)):
        if f.startswith("latency-") and f.endswith(".json") and f[8:-5].isdigit():
            lats.append(json.load(open(os.path.join(a.dir, f))))
    lats.sort(key=lambda l: l.get("load_pct", 0))
    by = {}
    for r in runs:
        by.setdefault(r["contender"], []).append(r)
    tput = {c: med(rs, "images_per_s") for c, rs in by.items()}
    imgsink = tput.get("imgsink")

    rows, plot = [], []
    for c in ORDER:
        rs = by.get(c)
        if not rs:
            continue
        ips = [r["images_per_s"] for r in rs]
        cpu = med(rs, "cpu_s_per_image")
        rss = med(rs, "peak_rss_kb")
        ratio = imgsink / tput[c] if imgsink and c != "imgsink" else None
        rows.append("| {} | {} | {} | {} | {} | {} – {} | {} | {} | {} | {} |".format(
            LABELS[c], rs[0].get("config", ""), len(rs), fmt(med(rs, "seconds"), ".2f"),
            fmt(statistics.median(ips), ".2f"), fmt(min(ips), ".2f"), fmt(max(ips), ".2f"),
            fmt(med(rs, "megapixels_per_s"), ".1f"), fmt(cpu, ".3f"),
            fmt(rss / 1024 if rss else None, ".0f"), fmt(ratio, ".2f")))
        plot.append((SHORT[c], statistics.median(ips), min(ips), max(ips)))
    with open(os.path.join(a.dir, "throughput.dat"), "w") as f:
        for i, (label, m, lo, hi) in enumerate(plot):
            f.write('{} "{}" {:.3f} {:.3f} {:.3f}\n'.format(i, label, m, lo, hi))

    def ratio(x, y):
        return tput[x] / tput[y] if tput.get(x) and tput.get(y) else None

    best_sharp = max((c for c in ("sharp-source", "sharp-cascade") if c in tput),
                     key=lambda c: tput[c], default=None)
    best_magick = max((c for c in ("magick", "magick-hint") if c in tput),
                      key=lambda c: tput[c], default=None)
    rss = extra.get("rss")
    lim_cpu = med(by.get("limit", []), "cpu_s_per_image")
    img_cpu = med(by.get("imgsink", []), "cpu_s_per_image")
    r2 = by.get("imgsink-2x1", [])
    share = med(r2, "busiest_worker_share")
    rpw = [r.get("records_per_worker") for r in r2 if r.get("records_per_worker")]
    settle = med(r2, "settle_s")

    def row(name, v, spec, want, ok):
        return "| {} | {} | {} | {} |".format(
            name, fmt(v, spec), want, "–" if ok is None else ("met" if ok else "**missed**"))

    def at_least(v, bound):
        return None if v is None else v >= bound

    # One row per target of issue 12, all from this run; "–" when the
    # contenders it needs were not run (BENCH_CONTENDERS).
    trows = [
        row("imgsink / limit, same {} cores".format(meta["nproc"]), ratio("imgsink", "limit"),
            ".2f", "≥ 0.90", at_least(ratio("imgsink", "limit"), 0.90)),
        row("imgsink / limit, 1 core each (1 worker x 1 thread against limit -t 1)",
            ratio("imgsink-1x1", "limit-1t"), ".2f", "≥ 0.90",
            at_least(ratio("imgsink-1x1", "limit-1t"), 0.90)),
        row("imgsink / limit per CPU second (worker only: limit's CPU s per image ÷ the worker's)",
            lim_cpu / img_cpu if lim_cpu and img_cpu else None, ".2f", "≥ 0.95",
            at_least(lim_cpu / img_cpu if lim_cpu and img_cpu else None, 0.95)),
        row("imgsink / sharp (decode once + cascade)", ratio("imgsink", "sharp-cascade"), ".2f",
            "≥ 1.2", at_least(ratio("imgsink", "sharp-cascade"), 1.2)),
        row("2 workers / 1 worker, 1 thread each (records round-robin over 6 partitions, {}; "
            "busiest worker's share of the records {}{})".format(
                "produced once the group was stable, {} s after the workers started".format(
                    fmt(settle, ".1f")) if settle is not None else
                "in the topic before the workers started, the group's joining included",
                fmt(100 * share if share is not None else None, ".1f") + " %",
                ", per round " + ", ".join("/".join(str(x) for x in c) for c in rpw) if rpw else ""),
            ratio("imgsink-2x1", "imgsink-1x1"), ".2f", "≥ 1.8",
            at_least(ratio("imgsink-2x1", "imgsink-1x1"), 1.8)),
    ]
    for l in lats:
        if l.get("load_pct") == 50:
            trows.append("| latency at 50 % of the measured throughput, p50 / p99 | {} / {} ms | "
                         "p99 ≤ 1000 ms | {} |".format(l["p50_ms"], l["p99_ms"],
                                                      "met" if l["p99_ms"] <= 1000 else "**missed**"))
        else:
            trows.append("| latency at {} % of the measured throughput, p50 / p99 | {} / {} ms | "
                         "reported | – |".format(l.get("load_pct"), l["p50_ms"], l["p99_ms"]))
    if rss:
        trows.append("| RSS growth over {}x the corpus | {:+.1f} % | < 10 % | {} |".format(
            rss["images"] // meta["corpus_images"], rss["growth_pct"],
            "met" if rss["growth_pct"] < 10 else "**missed**"))
    refs = [
        row("reference: imgsink / limit against Debian 12's libvips 8.14 (limit-deb12)",
            ratio("imgsink", "limit-deb12"), ".2f", "–", None),
        row("reference: limit on Debian 13 / limit on Debian 12 (same 2 threads)",
            ratio("limit", "limit-deb12"), ".2f", "–", None),
        row("reference: imgsink / ImageMagick with the jpeg:size hint (bounded by the shared "
            "WebP/JPEG codecs, not a target)", ratio("imgsink", "magick-hint"), ".2f", "–", None),
        row("for comparison, what these cores gave the limit: 2 threads / 1 thread",
            ratio("limit", "limit-1t"), ".2f", "–", None),
    ]
    trows += [r for r in refs if "| – | – | – |" not in r]

    md = []
    md.append("# imgsink benchmark results\n")
    md.append("Written by `make bench` (bench/run.sh) on {}. Raw data: `{}/`.\n".format(
        meta["date"], os.path.relpath(a.dir)))
    md.append("## Machine\n")
    md.append("- {} cores (`nproc`), {}, {} GiB memory, {}".format(
        meta["nproc"], meta["cpu"], meta["mem_gib"], meta["kernel"]))
    md.append("- load average before / after: {} / {}".format(meta["load_before"],
                                                          meta.get("load_after", "?")))
    if meta.get("shared"):
        md.append("- **The machine was shared** with other work while this ran (load average "
                  "above 0.5 before the start): absolute numbers are noisy; contenders were "
                  "interleaved round by round and medians are reported, and CPU seconds per "
                  "image are less sensitive to the sharing than wall-clock throughput.")
    md.append("")
    md.append("## Versions\n")
    for k in ("imgsink", "libvips", "sharp", "imagemagick", "node", "kafka", "librdkafka"):
        if meta.get(k):
            md.append("- {}: {}".format(k, meta[k]))
    md.append("")
    md.append("## Workload\n")
    md.append("- corpus: {} wallpaper photographs (DESIGN §10, test/corpus.sh), {:.1f} MP in "
              "total, {} to {}; each run processes it {} times ({} images).".format(
                  meta["corpus_images"], meta["corpus_mpix"], meta["corpus_min"],
                  meta["corpus_max"], meta["passes"], meta["corpus_images"] * meta["passes"]))
    md.append("- renditions (bench/renditions.conf, imgsink's default): `{}`; fit inside, "
              "auto-orient, no metadata.".format(meta["renditions"]))
    if meta.get("baseline"):
        md.append("- baseline build (the rows marked so): {}.".format(meta["baseline"]))
    md.append("- {} rounds; in each round every contender runs once, in an order rotated "
              "from round to round. Medians over the rounds.".format(meta["runs"]))
    md.append("")
    md.append("## Throughput\n")
    md.append("| contender | config | runs | median s | images/s (median) | images/s min – max "
              "| MP/s | CPU s / image | peak RSS MiB | imgsink ÷ this |")
    md.append("|---|---|---|---|---|---|---|---|---|---|")
    md.extend(rows)
    md.append("")
    md.append("CPU s / image: user + system time of the contender's own processes (for imgsink "
              "the worker processes only; the Kafka broker and MinIO ran on the same cores, "
              "their CPU is in the next table).")
    md.append("")
    md.append("Where the time of imgsink's runs went (medians over the rounds, per image unless "
              "said otherwise). Job threads busy: the worker's own "
              "`imgsink_processing_duration_seconds` sum (pipeline, PUTs, everything for a "
              "record) over threads x run time; pipeline: the worker's per-record "
              "`processing_ms`; PUT: `imgsink_put_duration_seconds` (4 PUTs a record).")
    md.append("")
    md.append("| imgsink run | worker CPU s | Kafka + MinIO CPU s | pipeline s (wall) | PUT s (wall) "
              "| job threads busy | records per worker | first fetch → last PUT s | → lag 0 s |")
    md.append("|---|---|---|---|---|---|---|---|---|")
    for c in ORDER:
        rs = [r for r in by.get(c, []) if r.get("stack_cpu_s") is not None]
        if not rs:
            continue
        per = lambda r, k: r[k] / r["images"] if r.get(k) is not None else None
        busy = [r["job_busy_s"] / (r["workers"] * r["threads"] * r["seconds"])
                for r in rs if r.get("job_busy_s")]
        rpw = rs[0].get("records_per_worker")
        md.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            SHORT[c], fmt(med(rs, "cpu_s_per_image"), ".3f"),
            fmt(medv([per(r, "stack_cpu_s") for r in rs]), ".3f"),
            fmt(medv([per(r, "pipeline_s") for r in rs]), ".3f"),
            fmt(medv([per(r, "put_s") for r in rs]), ".3f"),
            fmt(100 * statistics.median(busy) if busy else None, ".0f") + (" %" if busy else ""),
            "/".join(str(x) for x in rpw) if rpw else "all",
            fmt(med(rs, "last_put_s"), ".2f"), fmt(med(rs, "seconds"), ".2f")))
    md.append("")
    md.append("![throughput](throughput{}.png)\n".format(a.tag))
    md.append("## Targets\n")
    md.append("| target | value | wanted | |")
    md.append("|---|---|---|---|")
    md.extend(trows)
    md.append("")
    if lats:
        md.append("## Latency\n")
        md.append("One worker ({} threads). The corpus x {} ({} records) copied by bench/pace "
                  "into a fresh topic at a fixed rate, a fraction of imgsink's median throughput "
                  "above, round-robin over 6 partitions; each record's timestamp is the time it "
                  "was produced. Latency: that timestamp to the worker's \"record written\" "
                  "line (after the record's last PUT, metadata.json). Nearest-rank percentiles "
                  "(with {} records, p99 is the slowest record).\n".format(
                      meta["nproc"], lats[0]["records"] // meta["corpus_images"],
                      lats[0]["records"], lats[0]["records"]))
        md.append("| load | rate records/s (achieved) | records | p50 ms | p99 ms | max ms | mean ms |")
        md.append("|---|---|---|---|---|---|---|")
        for l in lats:
            md.append("| {} % | {} ({}) | {} | {} | {} | {} | {} |".format(
                l.get("load_pct"), fmt(l.get("rate_per_s"), ".2f"),
                fmt(l.get("achieved_rate_per_s"), ".2f"), l["records"], l["p50_ms"], l["p99_ms"],
                l["max_ms"], l["mean_ms"]))
        md.append("")
        md.append("Where the time went, ms (the record's own \"record written\" line: queue = "
                  "dispatched by the poll thread until a job thread took it; decode = header "
                  "checks, shrink-on-load decode of the 2048 px base, dHash and mean colour; "
                  "resize + encode = the three renditions; PUT = its four PUTs; fetch + other = "
                  "the rest: in Kafka until fetched, the envelope, metadata.json built). The "
                  "tail: the slowest 5 % of the records, at least one.\n")
        md.append("| load | records | total | fetch + other | queue | decode | resize + encode "
                  "| PUT |")
        md.append("|---|---|---|---|---|---|---|---|")
        for l in lats:
            for what, key, tot in (("mean", "split_mean_ms", l["mean_ms"]),
                                   ("p50 record", "split_p50_ms", l["p50_ms"]),
                                   ("p99 record", "split_p99_ms", l["p99_ms"]),
                                   ("slowest {}".format(l.get("tail_records", 1)), "split_tail_ms",
                                    None)):
                sp = l.get(key)
                if not sp:
                    continue
                total = tot if tot is not None else sum(sp.values())
                md.append("| {} % | {} | {} | {} | {} | {} | {} | {} |".format(
                    l.get("load_pct"), what, total, sp["fetch_other"], sp["queue"],
                    sp["decode"], sp["resize_encode"], sp["put"]))
        md.append("")
        ms = [l for l in lats if l.get("metrics_stage")]
        if ms:
            md.append("The same split from the worker's own `imgsink_stage_duration_seconds` "
                      "(/metrics scraped before and after each run; mean ms per record, "
                      "records counted): " + "; ".join(
                          "{} %: {}".format(l["load_pct"], ", ".join(
                              "{} {} ({})".format(st, fmt(v["mean_ms"], "d"), v["count"])
                              for st, v in l["metrics_stage"].items())) for l in ms) + ".\n")
    if rss:
        md.append("## Memory\n")
        md.append("One worker ({} threads) through {} records ({} x the corpus, `imgsink produce "
                  "--repeat`) in {} s, VmRSS sampled from /proc every {} s: peak {:.0f} MiB. "
                  "Highest RSS of each pass (MiB): {}. Median of the first {n} passes' highs "
                  "{:.0f} MiB, of the last {n} passes' {:.0f} MiB: growth **{:+.1f} %** "
                  "(first pass against last pass alone: {:+.1f} %).\n".format(
                      meta["nproc"], rss["images"], rss["images"] // meta["corpus_images"],
                      rss["seconds"], meta["rss_interval"], rss["peak_kb"] / 1024,
                      ", ".join("%.0f" % (h / 1024) for h in rss["pass_high_kb"]),
                      rss["first_passes_kb"] / 1024, rss["last_passes_kb"] / 1024,
                      rss["growth_pct"], rss["first_to_last_pct"], n=rss["passes_compared"]))
        md.append("![rss](rss{}.png)\n".format(a.tag))
    md.append("## Method\n")
    md.append(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "method.md")).read()
              .strip())
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes{}.md".format(a.tag))
    if os.path.exists(notes):
        md.append("")
        md.append(open(notes).read().strip())
    # The small workload's section of an earlier run stays (its own command).
    small = small_section(a.md)
    if small:
        md.append("")
        md.append(small)
    with open(a.md, "w") as f:
        f.write("\n".join(md) + "\n")


# --- the small-image workload's section of results.md -------------------------

SMALL_BEGIN = "<!-- small-workload: written by bench/run.sh --small (bench.py small-report) -->"
SMALL_END = "<!-- /small-workload -->"
SMALL_LABELS = {
    "imgsink-small": "imgsink end to end, 1 worker",
    "imgsink-small-2w": "imgsink end to end, 2 workers x 1 thread",
    "limit-small": "limit (libvips in process, C)",
    "sharp-small": "sharp, decode once + cascade",
}


def small_section(path):
    """The marked small-workload section of PATH, or None."""
    try:
        text = open(path).read()
    except OSError:
        return None
    i, j = text.find(SMALL_BEGIN), text.find(SMALL_END)
    return text[i:j + len(SMALL_END)] if 0 <= i < j else None


def cmd_small_report(a):
    runs = [json.loads(l) for l in open(os.path.join(a.dir, "small-runs.jsonl")) if l.strip()]
    meta = json.load(open(os.path.join(a.dir, "meta.json")))
    sm = json.load(open(os.path.join(a.dir, "small-meta.json")))
    lat_path = os.path.join(a.dir, "small-latency.json")
    lat = json.load(open(lat_path)) if os.path.exists(lat_path) else None
    by = {}
    for r in runs:
        by.setdefault(r["contender"], []).append(r)
    tput = {c: med(rs, "images_per_s") for c, rs in by.items()}

    def busy(r):
        if not r.get("job_busy_s"):
            return None
        return 100 * r["job_busy_s"] / (r["workers"] * r["threads"] * r["seconds"])

    shared = (float(sm["load_before"].split()[0]) > 0.5 or
              float(sm["load_after"].split()[0]) > 0.5)
    md = [SMALL_BEGIN, "## Small-image workload ({})\n".format(sm["date"][:10])]
    md.append("Per-record overhead dominates here. Written by `{}` on {}; raw data: "
              "`{}/small-*`.\n".format(a.command, sm["date"], os.path.relpath(a.dir)))
    md.append("- machine: {} cores (`nproc`), {}, {} GiB memory, {}; load average before / "
              "after: {} / {}".format(meta["nproc"], meta["cpu"], meta["mem_gib"],
                                      meta["kernel"], sm["load_before"], sm["load_after"]))
    if shared:
        md.append("- **The machine was shared** with other engineers' work (load average above "
                  "0.5): one run of a few minutes, absolute numbers are noisy; contenders were "
                  "interleaved round by round and medians are reported.")
    md.append("- versions: imgsink {}; {}; sharp {}; Kafka {}; librdkafka {}".format(
        meta["imgsink"], meta["libvips"], meta["sharp"], meta["kafka"], meta["librdkafka"]))
    md.append("- images: {} distinct 400x300 JPEGs (q85) cut from the corpus (each photograph "
              "to 800x600, cover, then its four quadrants; bench/small.sh), {} times over: {} "
              "records per run; renditions `{}`.".format(
                  sm["images"], sm["repeat"], sm["records"], sm["renditions"]))
    md.append("- imgsink: a fresh {}-partition topic per run; once the worker(s) hold all its "
              "partitions the records are copied into it round-robin by `bench/pace` (record i "
              "on partition i mod {}, so every partition gets the same backlog; pace writes "
              "them many times faster than the workers drain them); {} rounds, order rotated "
              "each round; medians over the rounds.".format(
                  sm["partitions"], sm["partitions"], sm["runs"]))
    md.append("")
    md.append("| contender | config | runs | images/s (median) | min – max | CPU s / image "
              "| job threads busy | max partition share deviation | latency with backlog p50 "
              "/ p99 ms | p99 bound ms |")
    md.append("|---|---|---|---|---|---|---|---|---|---|")
    for c in SMALL_LABELS:
        rs = by.get(c)
        if not rs:
            continue
        ips = [r["images_per_s"] for r in rs]
        b = medv([busy(r) for r in rs])
        dev = [r.get("share_max_dev_pct") for r in rs] if "workers" in rs[0] else []
        sdev = [r.get("steady_share_max_dev_pct") for r in rs] if "workers" in rs[0] else []
        md.append("| {} | {} | {} | {} | {} – {} | {} | {} | {} | {} | {} |".format(
            SMALL_LABELS[c], rs[0].get("config", ""), len(rs), fmt(statistics.median(ips), ".1f"),
            fmt(min(ips), ".1f"), fmt(max(ips), ".1f"), fmt(med(rs, "cpu_s_per_image"), ".4f"),
            fmt(b, ".0f") + (" %" if b is not None else ""),
            ("from the first record: worst {} %, median {} %; once every partition was "
             "served: worst {} %, median {} %".format(
                 "never written" if None in dev else fmt(max(dev), ".1f"), fmt(medv(dev), ".1f"),
                 "never written" if None in sdev else fmt(max(sdev), ".1f"),
                 fmt(medv(sdev), ".1f")) if dev else "–"),
            "{} / {}".format(fmt(med(rs, "backlog_p50_ms"), ".0f"),
                             fmt(med(rs, "backlog_p99_ms"), ".0f")) if "workers" in rs[0] else "–",
            fmt(med(rs, "backlog_p99_bound_ms"), ".0f")))
    md.append("")
    md.append("Job threads busy: the worker's `imgsink_processing_duration_seconds` sum (everything "
              "for a record: pipeline and PUTs) over workers x threads x run time (the first "
              "record's timestamp to the first read of committed = end offsets by "
              "`bench/lagwatch`). "
              "Partition share: the records written (the workers' \"record written\" debug "
              "lines) while every partition still had records, i.e. up to the first partition's "
              "last write, per partition against an equal share; counted from the first record "
              "written, and from the moment every partition had had its first write (at the "
              "start the dispatcher fills its in-flight slots from whichever partitions came in "
              "the first fetch responses). Latency with backlog: the "
              "worker's \"record written\" line minus the record's timestamp; bound: "
              "(backlog ÷ throughput) x 1.5 = 1.5 x the run's time.")
    md.append("")
    md.append("Per run (imgsink): images/s, busy, partition share deviation and records per "
              "partition (partitions 0 to 11) from the first record, then once every partition "
              "was served:\n")
    for c in ("imgsink-small", "imgsink-small-2w"):
        for r in by.get(c, []):
            md.append("- {} round {}: {:.1f} images/s, busy {}; share deviation {} % ({} "
                      "records in {} s: {}); once all were served (from {} s) {} % ({})".format(
                          c, r["round"], r["images_per_s"],
                          fmt(busy(r), ".0f") + (" %" if busy(r) is not None else ""),
                          fmt(r.get("share_max_dev_pct"), ".1f"),
                          sum(r["share_counts"]) if r.get("share_counts") else "–",
                          fmt(r.get("share_window_s"), ".1f"),
                          "/".join(str(x) for x in r["share_counts"]) if r.get("share_counts")
                          else "–", fmt(r.get("steady_share_start_s"), ".2f"),
                          fmt(r.get("steady_share_max_dev_pct"), ".1f"),
                          "/".join(str(x) for x in r["steady_share_counts"])
                          if r.get("steady_share_counts") else "–"))
    md.append("")
    if lat:
        md.append("Latency at about 50 % load: {} records produced by `bench/pace` on a fixed "
                  "schedule at {:.1f} records/s (half the 1-worker median; achieved {:.1f}), "
                  "round-robin over the {} partitions, to one worker ({} threads) on an empty "
                  "topic; produce timestamp to the worker's \"record written\" line: p50 "
                  "**{} ms**, p99 **{} ms** (max {} ms).\n".format(
                      lat["records"], lat["rate_per_s"], lat["achieved_rate_per_s"],
                      sm["partitions"], sm["threads"], lat["p50_ms"], lat["p99_ms"],
                      lat["max_ms"]))
    rows = []
    one = by.get("imgsink-small", [])
    b1 = medv([busy(r) for r in one])
    if b1 is not None:
        rows.append(("job threads busy with a backlog, 1 worker (median)", "{:.0f} %".format(b1),
                     ">= 90 %", b1 >= 90))
    for c in ("imgsink-small", "imgsink-small-2w"):
        for key, when in (("share_max_dev_pct", "from the first record"),
                          ("steady_share_max_dev_pct", "once every partition was served")):
            devs = [r.get(key) for r in by.get(c, [])]
            if devs:
                worst = None if None in devs else max(devs)
                rows.append(("every partition's share within ±50 % of fair, {}, {} (worst "
                             "run)".format(SMALL_LABELS[c], when),
                             "never written" if worst is None else "{:.1f} %".format(worst),
                             "<= 50 %", worst is not None and worst <= 50))
    p99, bound = med(one, "backlog_p99_ms"), med(one, "backlog_p99_bound_ms")
    if p99 is not None and bound:
        rows.append(("p99 latency with a backlog, 1 worker (medians)",
                     "{:.0f} ms (bound {:.0f} ms)".format(p99, bound),
                     "<= backlog ÷ throughput x 1.5", p99 <= bound))
    for x, y, name in (("imgsink-small", "limit-small", "imgsink / limit"),
                       ("imgsink-small", "sharp-small", "imgsink / sharp"),
                       ("imgsink-small-2w", "imgsink-small", "2 workers x 1 thread / 1 worker")):
        if tput.get(x) and tput.get(y):
            rows.append((name + " (images/s, medians)", "{:.2f}".format(tput[x] / tput[y]), "",
                         None))
    md.append("| target (reported, not asserted) | value | wanted | |")
    md.append("|---|---|---|---|")
    for name, v, want, ok in rows:
        md.append("| {} | {} | {} | {} |".format(
            name, v, want, "–" if ok is None else ("met" if ok else "**missed**")))
    md.append("")
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes-small.md")
    if os.path.exists(notes):
        md.append(open(notes).read().strip())
        md.append("")
    md.append(SMALL_END)
    section = "\n".join(md)
    try:
        text = open(a.md).read()
    except OSError:
        text = "# imgsink benchmark results\n"
    old = small_section(a.md)
    if old:
        text = text.replace(old, section)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(a.md, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("record")
    p.add_argument("--out", required=True)
    p.add_argument("--set", action="append")
    p = sub.add_parser("e2e")
    p.add_argument("--out", required=True)
    p.add_argument("--lag", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--mpix", type=float, required=True)
    p.add_argument("--set", action="append")
    p.add_argument("--metrics", action="append")
    p.add_argument("--stamps")
    p.add_argument("--start-stamps",
                   help="kcat '%%p %%o %%T' of the topic: the run starts at the first record's "
                   "produce time (workers assigned before the records were produced)")
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("logs", nargs="+")
    p = sub.add_parser("latency")
    p.add_argument("--before")
    p.add_argument("--after")
    p.add_argument("--load", type=float)
    p.add_argument("--rate", type=float)
    p.add_argument("--pace")
    p.add_argument("--expect", type=int)
    p.add_argument("--log", required=True)
    p.add_argument("--stamps", required=True)
    p = sub.add_parser("rss")
    p.add_argument("--samples", required=True)
    p.add_argument("--lag", required=True)
    p.add_argument("--passes", type=int, required=True)
    p.add_argument("--per-pass", type=int, required=True)
    p = sub.add_parser("report")
    p.add_argument("--dir", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--tag", default="")
    p = sub.add_parser("small-report")
    p.add_argument("--dir", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--command", required=True)
    a = ap.parse_args()
    {"record": cmd_record, "e2e": cmd_e2e, "latency": cmd_latency, "rss": cmd_rss,
     "report": cmd_report, "small-report": cmd_small_report}[a.cmd](a)


if __name__ == "__main__":
    main()
