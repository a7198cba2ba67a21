#!/usr/bin/env python3
"""Checks and the per-step table of t39_scale.sh, from files it leaves in DIR:

  w*.log         the workers' JSON logs (log.level=debug): "record written"
                 lines (partition, offset), "partitions assigned" / "revoked"
                 / "lost" lines, "imgsink ... started", "stopping: ..."
  steps          one line per step: label workers begin_ms end_ms lag
  produced       every record of the topic, read with kcat: partition offset
                 timestamp_ms key
  versions.json  `mc ls --recursive --versions --json` of the output prefix
  overlaps       (optional) "FIRST SECOND" per removal of two workers, the
                 second SIGTERMed while the first drained: checked that the
                 second's "stopping" line came before the first's "committing
                 stored offsets" line, with records in flight at the first's
                 stop; at least one such overlap is required

usage: scale_check.py DIR TOPIC PARTITIONS RENDITIONS

Prints TAP lines ("ok - ..." / "not ok - ...") and "# " comments; exits with
the number of failed checks.
"""
import collections
import datetime
import glob
import json
import os
import re
import statistics
import sys

d, topic, parts, renditions = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
failed = 0


def tap(good, what, details=()):
    global failed
    print(("ok - " if good else "not ok - ") + what)
    for line in list(details)[:10]:
        print("#   " + line)
    if not good:
        failed += 1


def ms(iso):
    t = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


PART_RE = re.compile(r"^(.*)\[(\d+)\]$")


def our_parts(names):
    out = set()
    for n in names or []:
        m = PART_RE.match(n)
        if m and m.group(1) == topic:
            out.add(int(m.group(2)))
    return out


# --- the workers' logs --------------------------------------------------------
writes = []  # (time, worker, partition, offset)
own = collections.defaultdict(list)  # worker -> [(time, kind, {partitions})]
started, stopping, last_line = {}, {}, {}
stop_inflight, leaving = {}, {}  # "stopping" line's in-flight count; "committing stored offsets" line
n_lost = 0
for path in sorted(glob.glob(os.path.join(d, "w*.log"))):
    w = os.path.basename(path)[:-4]
    for line in open(path, errors="replace"):
        try:
            o = json.loads(line)
            t = ms(o["time"])
        except (ValueError, KeyError):
            continue
        last_line[w] = t
        msg = o.get("msg", "")
        if msg == "record written" and o.get("topic") == topic:
            writes.append((t, w, o["partition"], o["offset"]))
        elif msg == "partitions assigned":
            own[w].append((t, "assign", our_parts(o.get("partitions"))))
        elif msg.startswith("partitions revoked"):
            own[w].append((t, "revoke", our_parts(o.get("partitions"))))
        elif msg.startswith("partitions lost"):
            own[w].append((t, "lost", our_parts(o.get("partitions"))))
            n_lost += 1
        elif re.fullmatch(r"imgsink \S+ started", msg):
            started.setdefault(w, t)
        elif msg.startswith("stopping: finishing"):
            stopping.setdefault(w, t)
            stop_inflight.setdefault(w, o.get("inflight", 0))
        elif msg.startswith("committing stored offsets and leaving"):
            leaving.setdefault(w, t)
writes.sort()

produced = {}  # (partition, offset) -> (timestamp_ms, key)
for line in open(os.path.join(d, "produced")):
    f = line.split()
    if len(f) >= 4:
        produced[(int(f[0]), int(f[1]))] = (int(f[2]), f[3])

first_write = {}
by_part = collections.defaultdict(list)  # partition -> [(time, worker)]
for t, w, p, o in writes:
    first_write.setdefault((p, o), t)
    by_part[p].append((t, w))

steps = []
for line in open(os.path.join(d, "steps")):
    label, workers, b, e, lag = line.split()
    steps.append((label, int(workers), int(b), int(e), int(lag)))

# --- ownership intervals: assigned .. revoked (or lost), stretched to the
# worker's last write of the partition before it was assigned it again (a
# revoke drains running jobs, which write after the revoke line) ----------
intervals = collections.defaultdict(list)  # partition -> [[start, end, worker, how]]
for w, evs in own.items():
    openat = {}
    for t, kind, ps in evs:
        for p in ps:
            if kind == "assign":
                openat.setdefault(p, t)
            elif p in openat:
                intervals[p].append([openat.pop(p), t, w, kind])
    for p, t in openat.items():  # never revoked: held until the log ends
        intervals[p].append([t, last_line[w], w, "end"])
for p, ivs in intervals.items():
    ivs.sort()
    for t, w in by_part[p]:
        mine = [iv for iv in ivs if iv[2] == w and iv[0] <= t]
        if mine:
            iv = mine[-1]
            iv[1] = max(iv[1], t)

# --- checks -------------------------------------------------------------------
written = {(p, o) for _, _, p, o in writes}
lost = sorted(set(produced) - written)
tap(not lost, "nothing lost: each of the %d records in the topic has a \"record written\" line "
    "(%d writes, %d missing)" % (len(produced), len(writes), len(lost)),
    ["partition %d offset %d (%s) never written" % (p, o, produced[(p, o)][1]) for p, o in lost])

# The store: every key's versions.
versions = collections.defaultdict(list)
for line in open(os.path.join(d, "versions.json")):
    if not line.strip():
        continue
    v = json.loads(line)
    if v.get("type") == "file":
        versions[v["key"]].append(v)
names = ["metadata.json"] + ["%s.%s" % (r.split("=")[0], "jpg") for r in renditions.split(",")]
live = collections.defaultdict(set)  # id -> names whose latest version is not a delete marker
markers = []
for k, vs in versions.items():
    parts_k = k.split("/")
    if any(v.get("isDeleteMarker") for v in vs):
        markers.append(k)
    latest = max(vs, key=lambda v: v.get("lastModified", ""))
    if not latest.get("isDeleteMarker") and len(parts_k) >= 2:
        live[parts_k[-2]].add(parts_k[-1])
missing = []
for (p, o), (_, key) in sorted(produced.items()):
    miss = [n for n in names if n not in live.get(key, ())]
    if miss:
        missing.append("partition %d offset %d id %s: %s" % (p, o, key, " ".join(miss)))
tap(not missing, "every record's %s are in the store (mc ls --versions: %d keys, %d missing)"
    % (", ".join(names), len(versions), len(missing)), missing)
tap(not markers, "no delete marker under the prefix (%d)" % len(markers), markers)

rewritten = {k: vs for k, vs in versions.items() if len(vs) > 1}
differ = ["%s: %d versions, ETags %s" % (k, len(vs), sorted({v.get("etag") for v in vs}))
          for k, vs in sorted(rewritten.items())
          if len({(v.get("etag"), v.get("size")) for v in vs}) > 1]
tap(not differ, "duplicates are identical overwrites: %d keys written more than once, every "
    "version of each key has one ETag and size" % len(rewritten), differ)
dup = collections.Counter((p, o) for _, _, p, o in writes)
print("# records written more than once (\"record written\" lines): %d"
      % sum(1 for c in dup.values() if c > 1))

overlaps = []
for p, ivs in sorted(intervals.items()):
    for i, a in enumerate(ivs):
        for b in ivs[i + 1:]:
            if a[2] != b[2] and a[0] < b[1] and b[0] < a[1]:
                overlaps.append("partition %d: %s held it %d..%d (%s), %s %d..%d (%s)"
                                % (p, a[2], a[0], a[1], a[3], b[2], b[0], b[1], b[3]))
tap(not overlaps and intervals, "no double ownership: per partition, no two workers' ownership "
    "intervals (assigned .. revoked, and any write after) overlap (%d intervals)"
    % sum(len(v) for v in intervals.values()), overlaps)

outside, interleaved = [], []
for p, ws in sorted(by_part.items()):
    for t, w in ws:
        if not any(iv[2] == w and iv[0] <= t <= iv[1] for iv in intervals.get(p, ())):
            outside.append("partition %d written by %s at %d without holding it" % (p, w, t))
    runs = collections.Counter(w for i, (t, w) in enumerate(ws) if i == 0 or ws[i - 1][1] != w)
    held = collections.Counter(iv[2] for iv in intervals.get(p, ()))
    for w, n in runs.items():
        if n > held[w]:
            interleaved.append("partition %d: %s wrote in %d separate runs, held it %d times: %s"
                               % (p, w, n, held[w],
                                  " ".join(x for i, (_, x) in enumerate(ws)
                                           if i == 0 or ws[i - 1][1] != x)))
tap(not outside, "every write was made by a worker holding the partition (%d writes)" % len(writes),
    outside)
tap(not interleaved, "writes of one partition by two workers never interleave", interleaved)


def pending(p, t):
    """Records of partition p in the topic by time t and not yet written."""
    return sum(1 for (q, o), (ts, _) in produced.items()
               if q == p and ts <= t and first_write.get((q, o), float("inf")) > t)


def holders(t):
    """partition -> workers holding it at time t."""
    h = collections.defaultdict(set)
    for p, ivs in intervals.items():
        for s, e, w, _ in ivs:
            if s <= t <= e:
                h[p].add(w)
    return h


# --- per step: progress, and the rebalance stall of its join or leaves -------
rows, starved, worst = [], [], []
for i, (label, workers, b, e, lag) in enumerate(steps):
    nxt = steps[i + 1][2] if i + 1 < len(steps) else e
    in_step = [(t, w, p) for t, w, p, _ in writes if b < t <= e]
    per_part = collections.Counter(p for _, _, p in in_step)
    for p in range(parts):
        n = pending(p, b)
        if n and not per_part[p]:
            starved.append("step %s: partition %d had %d records waiting and none was written"
                           % (label, p, n))
    # Events: "+wN" joins at its "started" line, "-wN" leaves at its
    # "stopping" line. Moved partitions: those the joiner was assigned
    # before the next step, or those the leaver held when it stopped.
    stalls = []
    for sign, w in re.findall(r"([+-])(w\d+)", label):
        if sign == "+":
            te = started.get(w)
            if te is None:
                continue
            # Partitions assigned to the joiner in this step and still its
            # own when it wrote them: one it lost again before writing (a
            # later rebalance moved it on) is not this join's stall.
            moved = set()
            for t, kind, ps in own.get(w, ()):
                if kind == "assign" and te <= t <= nxt:
                    moved |= ps
            held = {p: [iv for iv in intervals.get(p, ()) if iv[2] == w and te <= iv[0] <= nxt]
                    for p in moved}
            by = lambda x, t=None, p=None: x == w and any(  # noqa: E731
                s <= t <= e for s, e, _, _ in held.get(p, ()))
        else:
            te = stopping.get(w)
            if te is None:
                continue
            moved = {p for p, ws in holders(te).items() if w in ws}
            by = lambda x, t=None, p=None: x != w  # noqa: E731
        for p in moved:
            if not pending(p, te):
                continue
            nextw = [t for t, x in by_part[p] if t > te and by(x, t, p)]
            if nextw:
                stalls.append(nextw[0] - te)
                worst.append((nextw[0] - te, label, sign + w, p, te))
    lost_here = sum(1 for k in lost if (i == 0 and produced[k][0] <= e)
                    or b < produced[k][0] <= e)
    dur = max(1, e - b) / 1000.0
    rows.append((label, workers, lag, len(in_step), len(in_step) / dur,
                 statistics.median(stalls) / 1000.0 if stalls else None,
                 max(stalls) / 1000.0 if stalls else None, len(stalls), lost_here))

print("# %-8s %7s %6s %8s %8s %10s %10s %6s %5s" % ("step", "workers", "lag", "written",
                                                    "rec/s", "stall p50", "stall max",
                                                    "moved", "lost"))
for label, workers, lag, nw, rate, p50, mx, nm, lh in rows:
    f = lambda x: "%.2fs" % x if x is not None else "-"  # noqa: E731
    print("# %-8s %7d %6s %8d %8.1f %10s %10s %6d %5d" % (label, workers, lag if lag >= 0 else "?",
                                                          nw, rate, f(p50), f(mx), nm, lh))
print("# (lag at step end; rec/s informational; stall: from a join's \"started\" or a leave's "
      "\"stopping\" line to the next write of each moved partition with records waiting)")
for st, label, ev, p, te in sorted(worst, reverse=True)[:3]:
    print("# longest stalls: %.2fs, step %s, %s at %d, partition %d (held then by %s)"
          % (st / 1000.0, label, ev, te, p, ",".join(sorted(holders(te + st)[p]))))
print("# assignments lost: %d" % n_lost)
tap(not starved, "every partition with records waiting was written in every step (%d steps)"
    % len(steps), starved)

# --- removals overlapping a drain in progress ----------------------------------
opath = os.path.join(d, "overlaps")
pairs = [line.split() for line in open(opath) if len(line.split()) == 2] if os.path.exists(opath) else []
if pairs:
    good, lines = 0, []
    for a, b in pairs:
        sa, sb, la = stopping.get(a), stopping.get(b), leaving.get(a)
        n_in = stop_inflight.get(a, 0)
        if sa is None or sb is None or la is None:
            lines.append("%s then %s: a stopping or leaving line is missing" % (a, b))
            continue
        after = sum(1 for t, w, _, _ in writes if w == a and sb < t <= la)
        inside = n_in > 0 and sa <= sb < la
        good += inside
        lines.append("%s stopped with %d in flight, drained %.3fs; %s stopped %.3fs after %s, %s; "
                     "%s wrote %d records after %s's stop"
                     % (a, n_in, (la - sa) / 1000.0, b, (sb - sa) / 1000.0, a,
                        "inside its drain" if inside else "NOT inside its drain", a, after, b))
    for line in lines:
        print("# overlap: " + line)
    tap(good >= 1, "a SIGTERM removal overlapped a drain in progress: %d of %d two-worker removals"
        % (good, len(pairs)))
sys.exit(failed)
