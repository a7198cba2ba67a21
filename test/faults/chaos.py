#!/usr/bin/env python3
"""Runs imgsink workers through a seeded plan of faults while records are
produced in waves, records a history and checks, while it runs, that no
committed offset passes a record whose outputs do not exist.

    chaos.py --seed N --work DIR --conf FILE --imgsink BIN --topic T --dlq D
             --group G --bucket-path ALIAS/BUCKET/PREFIX/ --toxi-url URL ...
    chaos.py --seed N --print-plan     # the plan only

Everything random comes from the seed: which records are poison and where
they go (gen.py), the order and timing of the faults, which worker each one
hits, the toxics' parameters. (Timing on a busy machine still varies, so
what was in flight at a kill does too.)

Prints TAP lines for what it checks; the final state is checked by verify.py.
Writes DIR/history.jsonl (JSON lines: t, time, event, details) and
DIR/figures.json.
"""
import argparse
import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the clone
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import (History, dlq_records, expected_keys, list_keys, note, read_conf,  # noqa: E402
                    renditions, tap, vm_rss_kib)

from gen import KEY_DELIM_ARG, MSG_DELIM_ARG  # noqa: E402

RSS_LIMIT_KIB = 1536 * 1024  # 1.5 GiB: generous; a leak or unbounded buffering crosses it
# Faults per run, one per slot in a seeded order; "kill2" kills two workers
# at once (a bigger rebalance).
N_FAULTS = {"kill": 5, "kill2": 1, "stop": 2, "minio": 1, "kafka": 1,
            "latency": 1, "reset": 1, "blackhole": 1, "disable": 1}


class Fatal(Exception):
    """The run cannot go on (the stack or the producer failed)."""


# --- the plan -----------------------------------------------------------------

def make_plan(seed, waves, workers, slot_s, poll_interval_ms):
    """A list of (time, action, args) in time order. Each slot of slot_s
    seconds produces one wave, then (0.5-3 s later, while that wave is being
    processed) starts one fault; the fault's end (restart, SIGCONT, toxic
    removed) is scheduled by its duration and may overlap later slots.
    Targets are picked by replaying the plan in order, so a worker is never
    killed while stopped, nor stopped twice."""
    rng = random.Random(seed * 7919 + 17)
    faults = [f for f, n in N_FAULTS.items() for _ in range(n)]
    rng.shuffle(faults)
    n_slots = max(waves, len(faults) + 2)
    ev = []
    t = 3.0
    for k in range(n_slots):
        if k < waves:
            ev.append([t, "produce", {"wave": k}])
        if k < len(faults):
            f = faults[k]
            ft = round(t + rng.uniform(0.5, 3.0), 2)
            pair = {}
            if f == "kill":
                ev.append([ft, "kill", pair])
                ev.append([round(ft + rng.uniform(1, 4), 2), "start", pair])
            elif f == "kill2":
                back = round(ft + rng.uniform(2, 5), 2)
                for d in (0, 0.01):
                    pair = {}
                    ev.append([round(ft + d, 2), "kill", pair])
                    ev.append([back + d, "start", pair])
            elif f == "stop":
                # Past max.poll.interval.ms (and the session timeout): the
                # group moves its partitions; SIGCONT brings back a zombie.
                ev.append([ft, "stop", pair])
                ev.append([round(ft + poll_interval_ms / 1000 + rng.uniform(2, 6), 2), "cont", pair])
            elif f in ("minio", "kafka"):
                ev.append([ft, "restart", {"server": f, "down": round(rng.uniform(3, 8), 1)}])
            elif f == "latency":
                a = {"name": "latency", "type": "latency", "stream": "downstream",
                     "attrs": {"latency": rng.randrange(500, 1500), "jitter": rng.randrange(100, 500)}}
                ev.append([ft, "toxic_add", a])
                ev.append([round(ft + rng.uniform(10, 15), 2), "toxic_remove", {"name": "latency"}])
            elif f == "reset":
                # reset_peer: TCP RST on every connection (after timeout ms).
                a = {"name": "reset", "type": "reset_peer", "stream": "upstream",
                     "attrs": {"timeout": rng.choice([0, 0, 20, 100])}}
                ev.append([ft, "toxic_add", a])
                ev.append([round(ft + rng.uniform(6, 10), 2), "toxic_remove", {"name": "reset"}])
            elif f == "blackhole":
                # timeout=0: data is dropped and the connection kept open
                # until the toxic goes. Downstream: requests reach the store
                # (the PUT may be done) but no answer comes back.
                a = {"name": "blackhole", "type": "timeout", "stream": "downstream",
                     "attrs": {"timeout": 0}}
                ev.append([ft, "toxic_add", a])
                ev.append([round(ft + rng.uniform(8, 12), 2), "toxic_remove", {"name": "blackhole"}])
            elif f == "disable":
                # Proxy disabled: open connections closed, new ones refused.
                ev.append([ft, "proxy", {"enabled": False}])
                ev.append([round(ft + rng.uniform(6, 10), 2), "proxy", {"enabled": True}])
        t += slot_s
    ev.sort(key=lambda e: e[0])
    # Resolve targets in execution order. A kill or stop with no worker up
    # to hit (all down or stopped at that moment) is dropped with its pair.
    up = set(range(workers))  # running and not stopped
    for e in ev:
        if e[1] in ("kill", "stop"):
            if not up:
                e[2]["skip"] = True
                continue
            e[2]["worker"] = rng.choice(sorted(up))
            up.discard(e[2]["worker"])
        elif e[1] in ("start", "cont") and not e[2].get("skip"):
            up.add(e[2]["worker"])
    return [(e[0], e[1], e[2]) for e in ev if not e[2].get("skip")]


def planned(plan):
    """What the plan injects, in the figures' terms."""
    acts = [(act, args) for _, act, args in plan]
    return {"kills": sum(1 for a, _ in acts if a == "kill"),
            "stops": sum(1 for a, _ in acts if a == "stop"),
            "minio_restarts": sum(1 for a, x in acts if a == "restart" and x["server"] == "minio"),
            "kafka_restarts": sum(1 for a, x in acts if a == "restart" and x["server"] == "kafka"),
            "network_faults": sum(1 for a, x in acts if a == "toxic_add" or (a == "proxy" and not x["enabled"]))}


# --- Kafka: committed offsets as the broker records them ----------------------

class CommitTail(threading.Thread):
    """Follows __consumer_offsets with kcat and decodes the group's offset
    commits: every commit the coordinator accepted, in order, with its time.
    Lighter than asking Kafka's consumer-groups tool every few seconds (a
    JVM start each), and it sees every commit, not samples. The final check
    uses Kafka's own tool."""

    FMT = "%p %o %K %S %T\\n%k%s"

    def __init__(self, bootstrap, group, topic, hist, log):
        super().__init__(daemon=True)
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.hist, self.log = hist, log
        self.lock = threading.Lock()
        self.latest = {}  # partition -> (offset, commit time ms)
        self.n_commits = 0
        self.backwards = 0
        self.stopping = threading.Event()
        self.proc = None
        self.seen = {}  # __consumer_offsets partition -> last offset read

    def snapshot(self):
        with self.lock:
            return dict(self.latest)

    @staticmethod
    def decode_key(k):
        if len(k) < 2:
            return None
        ver = struct.unpack(">h", k[:2])[0]
        if ver not in (0, 1):  # 2 is group metadata
            return None
        pos = 2
        out = []
        for _ in range(2):
            n = struct.unpack(">h", k[pos:pos + 2])[0]
            pos += 2
            out.append(k[pos:pos + n].decode(errors="replace"))
            pos += n
        return out[0], out[1], struct.unpack(">i", k[pos:pos + 4])[0]

    @staticmethod
    def commit_time(val):
        """commitTimestamp of an OffsetCommitValue (versions 1-4), or None."""
        ver = struct.unpack(">h", val[:2])[0]
        pos = 10 + (4 if ver >= 3 else 0)  # version, offset[, leader epoch]
        if ver >= 4:  # compact string: unsigned varint length + 1
            n = shift = 0
            while True:
                b = val[pos]
                pos += 1
                n |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            pos += max(n - 1, 0)
        elif ver >= 1:
            pos += 2 + max(struct.unpack(">h", val[pos:pos + 2])[0], 0)
        else:
            return None
        return struct.unpack(">q", val[pos:pos + 8])[0]

    def handle(self, key, val, ts):
        k = self.decode_key(key)
        if not k or k[0] != self.group or k[1] != self.topic or val is None or len(val) < 10:
            return
        # Every OffsetCommitValue version starts with version, offset.
        off = struct.unpack(">q", val[2:10])[0]
        try:
            ts = self.commit_time(val) or ts
        except (struct.error, IndexError):
            pass
        p = k[2]
        with self.lock:
            prev = self.latest.get(p)
            self.n_commits += 1
            if prev and off == prev[0]:
                self.latest[p] = (off, ts)
                return
            if prev and off < prev[0]:
                self.backwards += 1
            self.latest[p] = (off, ts)
        self.hist("commit", partition=p, offset=off, commit_time_ms=ts,
                  previous=prev[0] if prev else None)

    def read(self, f):
        while not self.stopping.is_set():
            line = f.readline()
            if not line:
                return
            parts = line.split()
            if len(parts) != 5:
                raise ValueError(f"unexpected kcat output {line[:80]!r}")
            cp, co, klen, vlen, ts = (int(x) for x in parts)
            key = f.read(klen) if klen > 0 else b""
            val = f.read(vlen) if vlen > 0 else None
            # After a restart kcat reads from the beginning again: skip
            # what was already read.
            if co > self.seen.get(cp, -1):
                self.seen[cp] = co
                self.handle(key, val, ts)

    def run(self):
        while not self.stopping.is_set():
            self.proc = subprocess.Popen(
                ["kcat", "-C", "-b", self.bootstrap, "-t", "__consumer_offsets", "-o", "beginning",
                 "-u", "-q", "-f", self.FMT], stdout=subprocess.PIPE, stderr=self.log,
                stdin=subprocess.DEVNULL)
            try:
                self.read(self.proc.stdout)
            except (ValueError, struct.error) as e:
                self.hist("commit tail error", error=str(e))
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            if not self.stopping.is_set():
                # kcat gives up while the broker is down: start again.
                self.hist("commit tail restarted", rc=self.proc.returncode)
                time.sleep(1)

    def stop(self):
        self.stopping.set()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()


# --- workers ------------------------------------------------------------------

class Workers:
    def __init__(self, n, imgsink, conf, work, env, hist):
        self.n, self.imgsink, self.conf, self.work, self.env, self.hist = n, imgsink, conf, work, env, hist
        self.procs = [None] * n
        self.state = ["down"] * n
        self.runs = 0
        self.crashes = []
        self.lock = threading.Lock()

    def log_path(self, i):
        return os.path.join(self.work, f"w{i}.log")

    def start(self, i):
        with self.lock:
            self.runs += 1
            with open(self.log_path(i), "ab") as f:
                f.write(f"# worker w{i}, run {self.runs}, started {time.strftime('%H:%M:%S')}\n".encode())
            logf = open(self.log_path(i), "ab")
            p = subprocess.Popen([self.imgsink, "run", "-c", self.conf], stdout=logf,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env)
            logf.close()
            self.procs[i], self.state[i] = p, "running"
        self.hist("worker started", worker=i, pid=p.pid, run=self.runs)

    def signal(self, i, sig, new_state, event):
        with self.lock:
            p = self.procs[i]
            if p is None or p.poll() is not None:
                raise Fatal(f"{event}: worker w{i} is not running")
            os.kill(p.pid, sig)
            if sig == signal.SIGKILL:
                p.wait()
            self.state[i] = new_state
        self.hist(event, worker=i, pid=p.pid)

    def check(self):
        """A worker that exited without being told to is a crash: recorded,
        then restarted so the run goes on."""
        gone = []
        with self.lock:
            for i, p in enumerate(self.procs):
                if p is not None and self.state[i] in ("running", "stopped") and p.poll() is not None:
                    gone.append((i, p.pid, p.returncode))
                    self.state[i] = "down"
        for i, pid, rc in gone:
            last = self.last_error(i)
            self.crashes.append({"worker": i, "pid": pid, "rc": rc, "last_error": last})
            self.hist("worker exited unexpectedly", worker=i, pid=pid, rc=rc, last_error=last)
            note(f"worker w{i} (pid {pid}) exited on its own with status {rc}: {last}")
            if len(self.crashes) >= 10:
                raise Fatal(f"workers keep exiting on their own ({len(self.crashes)} times); "
                            f"last: {last}")
            self.start(i)

    def last_error(self, i):
        """The last error line of worker i's log, for the report."""
        last = ""
        try:
            with open(self.log_path(i), "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path(i)) - 65536))
                for line in f.read().decode(errors="replace").splitlines():
                    if '"level":"error"' in line or line.startswith("#"):
                        last = line[:400]
        except OSError:
            pass
        return last

    def pids(self):
        with self.lock:
            return {i: p.pid for i, p in enumerate(self.procs)
                    if p is not None and self.state[i] in ("running", "stopped")}

    def terminate_all(self, timeout):
        """SIGTERM every worker (SIGCONT first if stopped); returns
        {worker: exit status or None if it had to be killed}."""
        with self.lock:
            live = [(i, p) for i, p in enumerate(self.procs) if p is not None and p.poll() is None]
            for i, p in live:
                if self.state[i] == "stopped":
                    os.kill(p.pid, signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
                self.state[i] = "stopping"
        out = {}
        deadline = time.time() + timeout
        for i, p in live:
            try:
                out[i] = p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                out[i] = None
            self.hist("worker stopped", worker=i, pid=p.pid, rc=out[i])
        return out

    def kill_all(self):
        with self.lock:
            for p in self.procs:
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()


# --- sampling during the run --------------------------------------------------

class Sampler(threading.Thread):
    """Every few seconds: the latest committed offset of each partition (as
    the broker recorded it), then the DLQ and the store as they are now. For
    every committed offset c of partition p, each record of p below c must
    have all its objects (good) or a DLQ record (poison). Objects are never
    deleted, so one missing after the commit was read was missing when the
    commit was made. Also samples each worker's VmRSS."""

    def __init__(self, a, manifest, rends, tail, workers, hist, interval):
        super().__init__(daemon=True)
        self.a, self.manifest, self.rends, self.tail = a, manifest, rends, tail
        self.workers, self.hist, self.interval = workers, hist, interval
        self.by_part = {}
        for r in manifest["records"]:
            self.by_part.setdefault(r["partition"], []).append(r)
        for recs in self.by_part.values():
            recs.sort(key=lambda r: r["offset"])
            assert all(r["offset"] == i for i, r in enumerate(recs))
        self.stopping = threading.Event()
        self.samples = self.skipped = self.checked = 0
        self.with_commits = 0
        self.violations = {}
        self.peak_rss = {}
        self.ok_keys = set()  # keys seen once; objects are never deleted

    def rss(self):
        out = {}
        for i, pid in self.workers.pids().items():
            kib = vm_rss_kib(pid)
            if kib is not None:
                out[f"w{i}"] = kib
                self.peak_rss[f"w{i}"] = max(self.peak_rss.get(f"w{i}", 0), kib)
        return out

    def sample(self):
        t0 = time.time()
        commits = self.tail.snapshot()
        rss = self.rss()
        try:
            dlq = dlq_records(self.a.bootstrap, self.a.dlq, timeout=30)
            keys = list_keys(self.a.bucket_path, timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
            self.skipped += 1
            self.hist("sample skipped", reason=str(e)[:200], rss_kib=rss)
            return
        in_dlq = set()
        for m, hd in dlq:
            if hd.get("imgsink.source.topic") == self.a.topic:
                try:
                    in_dlq.add((int(hd["imgsink.source.partition"]), int(hd["imgsink.source.offset"])))
                except (KeyError, ValueError):
                    pass
        checked = 0
        bad = []
        for p, (c, ts) in sorted(commits.items()):
            for r in self.by_part.get(p, [])[:c]:
                checked += 1
                if r["kind"] == "good":
                    missing = [k for k in expected_keys(self.manifest, self.rends, r) if k not in keys]
                    if missing:
                        bad.append((r, c, ts, "missing objects: " + ", ".join(m.rsplit("/", 1)[1] for m in missing)))
                elif (p, r["offset"]) not in in_dlq:
                    bad.append((r, c, ts, "no DLQ record"))
        for r, c, ts, why in bad:
            k = (r["partition"], r["offset"])
            if k not in self.violations:
                self.violations[k] = {"partition": k[0], "offset": k[1], "id": r["id"], "kind": r["kind"],
                                      "committed": c, "commit_time_ms": ts, "problem": why,
                                      "seen_at": round(time.time() - self.hist.t0, 3)}
                self.hist("violation", **self.violations[k])
        self.samples += 1
        self.checked += checked
        if commits:
            self.with_commits += 1
        self.hist("sample", committed={str(p): c for p, (c, _) in sorted(commits.items())},
                  records_checked=checked, objects=len(keys), dlq_records=len(dlq),
                  violations=len(bad), rss_kib=rss, took_s=round(time.time() - t0, 2))

    def run(self):
        while not self.stopping.wait(self.interval):
            try:
                self.sample()
            except Exception as e:  # keep sampling; the history says why
                self.hist("sample error", error=repr(e)[:300])


# --- the run ------------------------------------------------------------------

class Run:
    def __init__(self, a):
        self.a = a
        self.manifest = json.load(open(os.path.join(a.work, "manifest.json")))
        self.conf = read_conf(a.conf)
        self.rends = renditions(self.conf["renditions"])
        self.hist = History(os.path.join(a.work, "history.jsonl"))
        self.stacklog = open(os.path.join(a.work, "stack.log"), "ab")
        env = dict(os.environ)
        # The worker's least-privilege identity (test/faults/run.sh), not root.
        env["IMGSINK_S3_ACCESS_KEY"] = os.environ["S3_WORKER_ACCESS_KEY"]
        env["IMGSINK_S3_SECRET_KEY"] = os.environ["S3_WORKER_SECRET_KEY"]
        self.workers = Workers(a.workers, a.imgsink, a.conf, a.work, env, self.hist)
        self.tail = CommitTail(a.bootstrap, a.group, a.topic, self.hist, self.stacklog)
        self.sampler = Sampler(a, self.manifest, self.rends, self.tail, self.workers, self.hist,
                               a.sample_interval)
        self.counts = {k: 0 for k in ("kills", "stops", "minio_restarts", "kafka_restarts",
                                      "network_faults", "waves")}
        self.produced = [0] * self.manifest["partitions"]
        self.proxy_enabled = True
        self.conts = []  # (worker, size of its log at SIGCONT)

    def sleep_until(self, when):
        while True:
            left = when - time.time()
            if left <= 0:
                return
            self.workers.check()
            time.sleep(min(0.25, left))

    def end_offsets(self):
        args = ["kcat", "-Q", "-b", self.a.bootstrap, "-m", "10"]
        for p in range(self.manifest["partitions"]):
            args += ["-t", f"{self.a.topic}:{p}:-1"]
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return {}
        out = {}
        for line in r.stdout.splitlines():
            # "TOPIC [P] offset N"
            parts = line.split()
            if len(parts) == 4 and parts[2] == "offset":
                out[int(parts[1].strip("[]"))] = int(parts[3])
        return out

    def produce(self, wave):
        n = 0
        for p in range(self.manifest["partitions"]):
            f = os.path.join(self.a.work, f"wave-{wave:02d}-p{p}.bin")
            if not os.path.exists(f):
                continue
            k = sum(1 for r in self.manifest["records"] if r["wave"] == wave and r["partition"] == p)
            r = subprocess.run(["kcat", "-P", "-b", self.a.bootstrap, "-t", self.a.topic, "-p", str(p),
                                "-X", "enable.idempotence=true", "-K", KEY_DELIM_ARG, "-D", MSG_DELIM_ARG,
                                "-l", f], stdout=self.stacklog, stderr=self.stacklog, timeout=180)
            if r.returncode != 0:
                raise Fatal(f"kcat produce of wave {wave} partition {p} failed (rc {r.returncode})")
            self.produced[p] += k
            n += k
        want = {p: c for p, c in enumerate(self.produced)}
        for _ in range(10):  # a query may time out while the broker is busy
            ends = self.end_offsets()
            if ends == want:
                break
            time.sleep(1)
        if ends != want:
            raise Fatal(f"after wave {wave}: end offsets {ends}, expected {want}")
        self.counts["waves"] += 1
        self.hist("produce", wave=wave, records=n, end_offsets=[ends[p] for p in sorted(ends)])

    def toxi(self, *args):
        r = subprocess.run([self.a.toxi_cli, "-h", self.a.toxi_url, *args], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            raise Fatal(f"toxiproxy-cli {' '.join(args)}: {r.stderr.strip()[:200]}")

    def do(self, action, args):
        w = self.workers
        if action == "produce":
            self.produce(args["wave"])
        elif action == "kill":
            w.signal(args["worker"], signal.SIGKILL, "down", "SIGKILL")
            self.counts["kills"] += 1
        elif action == "start":
            w.start(args["worker"])
        elif action == "stop":
            w.signal(args["worker"], signal.SIGSTOP, "stopped", "SIGSTOP")
            self.counts["stops"] += 1
        elif action == "cont":
            # The log's size before SIGCONT: the worker writes at once.
            self.conts.append((args["worker"], os.path.getsize(w.log_path(args["worker"]))))
            w.signal(args["worker"], signal.SIGCONT, "running", "SIGCONT")
        elif action == "restart":
            s = args["server"]
            self.hist(f"{s} stopping", down_s=args["down"])
            t0 = time.time()
            r = subprocess.run(["bash", self.a.restart, s, str(args["down"])], stdout=self.stacklog,
                               stderr=self.stacklog, timeout=240)
            if r.returncode != 0:
                raise Fatal(f"restart.sh {s} failed (rc {r.returncode}); see stack.log")
            self.counts[f"{s}_restarts"] += 1
            self.hist(f"{s} restarted", took_s=round(time.time() - t0, 1))
        elif action == "toxic_add":
            cmd = ["toxic", "add", "-t", args["type"], "-n", args["name"],
                   "-u" if args["stream"] == "upstream" else "-d"]
            for k, v in args["attrs"].items():
                cmd += ["-a", f"{k}={v}"]
            self.toxi(*cmd, "s3")
            self.counts["network_faults"] += 1
            self.hist("toxic added", **args)
        elif action == "toxic_remove":
            self.toxi("toxic", "remove", "-n", args["name"], "s3")
            self.hist("toxic removed", name=args["name"])
        elif action == "proxy":
            if args["enabled"] != self.proxy_enabled:
                self.toxi("toggle", "s3")
                self.proxy_enabled = args["enabled"]
            if not args["enabled"]:
                self.counts["network_faults"] += 1
            self.hist("proxy enabled" if args["enabled"] else "proxy disabled")
        else:
            raise ValueError(action)

    def caught_up(self):
        com = self.tail.snapshot()
        return all(com.get(p, (0,))[0] == n for p, n in enumerate(self.manifest["end_offsets"]))

    def group_tool_caught_up(self):
        """Kafka's own kafka-consumer-groups: in case the commit tail missed
        something, it has the last word on whether the group caught up."""
        r = subprocess.run([self.a.kafka_class, "consumer-groups", "--bootstrap-server", self.a.bootstrap,
                            "--describe", "--group", self.a.group], capture_output=True, text=True,
                           timeout=120)
        got = {}
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) >= 5 and f[1] == self.a.topic and f[2].isdigit():
                got[int(f[2])] = f[3]
        return all(got.get(p) == str(n) for p, n in enumerate(self.manifest["end_offsets"]))

    def fenced_after_stop(self):
        """How many SIGSTOPped workers found themselves out of the group on
        SIGCONT, per their own log (what the stop was meant to cause)."""
        n = 0
        for i, size in self.conts:
            with open(self.workers.log_path(i), "rb") as f:
                f.seek(size)
                text = f.read().decode(errors="replace").split("\n# worker ")[0]
            if "partitions lost" in text or "session timed out" in text or "max.poll" in text:
                n += 1
        return n

    def diagnose_stuck(self):
        com = self.tail.snapshot()
        for p, n in enumerate(self.manifest["end_offsets"]):
            c = com.get(p, (0,))[0]
            if c == n:
                continue
            r = self.sampler.by_part[p][c]
            note(f"partition {p}: committed {c} of {n}; first uncommitted record: offset {c} "
                 f"id {r['id']} kind {r['kind']}")
            pat = f'"partition":{p},"offset":{c},'
            for i in range(self.a.workers):
                try:
                    for line in open(self.workers.log_path(i), errors="replace"):
                        if pat in line:
                            note(f"  w{i}: {line.strip()[:300]}")
                except OSError:
                    pass

    def main(self):
        a = self.a
        plan = make_plan(a.seed, self.manifest["waves"], a.workers, a.slot, int(self.conf.get(
            "kafka.max.poll.interval.ms", "10000")))
        self.hist("run started", seed=a.seed, records=len(self.manifest["records"]),
                  partitions=self.manifest["partitions"], workers=a.workers, topic=a.topic,
                  group=a.group, store=a.bucket_path,
                  plan=[{"at": t, "action": act, **args} for t, act, args in plan])
        note(f"plan: {len(plan)} steps over ~{plan[-1][0]:.0f}s: "
             + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in planned(plan).items()))
        self.tail.start()
        for i in range(a.workers):
            self.workers.start(i)
        self.sampler.start()
        t_start = time.time()
        fatal = None
        try:
            for t, act, args in plan:
                self.sleep_until(t_start + t)
                self.do(act, args)
        except Fatal as e:
            fatal = str(e)
            self.hist("run aborted", reason=fatal)
        t_faults = time.time() - t_start
        tap(fatal is None, f"ran the fault plan to the end in {t_faults:.0f}s"
            + (f": {fatal}" if fatal else ""))
        c = self.counts
        tap(fatal is None and c["waves"] == self.manifest["waves"],
            f"produced {sum(self.produced)} records in {c['waves']} waves at the planned offsets "
            f"(end offsets checked after every wave)")
        want = planned(plan)
        tap(all(c[k] == v for k, v in want.items()),
            f"injected {c['kills']} SIGKILLs, {c['stops']} SIGSTOPs past max.poll.interval.ms, "
            f"{c['minio_restarts']} MinIO and {c['kafka_restarts']} Kafka restarts, "
            f"{c['network_faults']} network faults on the S3 path")
        if not self.proxy_enabled:
            self.toxi("toggle", "s3")

        # Drain: the group must catch up with everything produced.
        converged = False
        t_wait = time.time()
        last_tool = time.time()
        while fatal is None and time.time() - t_wait < a.converge_timeout:
            self.workers.check()
            if self.caught_up():
                converged = True
                break
            if time.time() - last_tool > 30:
                last_tool = time.time()
                if self.group_tool_caught_up():
                    converged = True
                    self.hist("caught up per kafka-consumer-groups (commit tail lagging)")
                    break
            time.sleep(1)
        waited = time.time() - t_wait
        self.hist("caught up" if converged else "not caught up", waited_s=round(waited, 1),
                  committed={str(p): c for p, (c, _) in sorted(self.tail.snapshot().items())})
        if not tap(converged, f"the group caught up (committed = end offset on every partition) "
                              f"{waited:.0f}s after the last fault (limit {a.converge_timeout}s)"):
            self.diagnose_stuck()
        # One last sample after everything is committed.
        time.sleep(1)
        self.sampler.stopping.set()
        self.sampler.join(120)
        try:
            self.sampler.sample()
        except Exception as e:
            self.hist("sample error", error=repr(e)[:300])

        rcs = self.workers.terminate_all(a.stop_timeout)
        tap(all(rc == 0 for rc in rcs.values()),
            f"workers exit 0 on SIGTERM within {a.stop_timeout}s: "
            + ", ".join(f"w{i}={rc if rc is not None else 'killed'}" for i, rc in sorted(rcs.items())))
        self.tail.stop()
        s = self.sampler
        tap(not self.workers.crashes,
            f"no worker exited on its own over {self.workers.runs} worker runs"
            + (f": {self.workers.crashes}" if self.workers.crashes else ""))
        tap(s.with_commits >= 10 and not s.violations,
            f"sampled during the run ({s.samples} samples, {s.skipped} skipped while a server was down, "
            f"{s.checked} record checks): every committed offset had the outputs of all records below it")
        for v in list(s.violations.values())[:10]:
            note(f"violation: {json.dumps(v)}")
        fenced = self.fenced_after_stop()
        note(f"{fenced} of {len(self.conts)} SIGSTOPped workers were out of the group when continued "
             f"(their log shows the session timeout or lost partitions)")
        note(f"{self.tail.n_commits} offset commits seen in __consumer_offsets, "
             f"{self.tail.backwards} of them lower than the partition's previous commit")
        peak = max(s.peak_rss.values()) if s.peak_rss else 0
        tap(0 < peak < RSS_LIMIT_KIB,
            f"worker RSS bounded: peak {peak / 1024:.0f} MiB < {RSS_LIMIT_KIB // 1024} MiB "
            f"(per worker: {', '.join(f'{k}={v // 1024}' for k, v in sorted(s.peak_rss.items()))})")
        figures = {
            "seed": a.seed, "worker_runs": self.workers.runs, "records": len(self.manifest["records"]),
            "kills": c["kills"], "stops": c["stops"], "minio_restarts": c["minio_restarts"],
            "kafka_restarts": c["kafka_restarts"], "network_faults": c["network_faults"],
            "crashes": len(self.workers.crashes), "samples": s.samples, "violations": len(s.violations),
            "peak_rss_mib": round(peak / 1024, 1), "commits_seen": self.tail.n_commits,
            "commits_backwards": self.tail.backwards, "stops_fenced": fenced,
            "fault_phase_s": round(t_faults),
            "drain_s": round(waited), "converged": converged,
        }
        with open(os.path.join(a.work, "figures.json"), "w") as f:
            json.dump(figures, f)
        self.hist("run ended", **figures)
        return 1 if common.N_FAIL else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--print-plan", action="store_true")
    ap.add_argument("--work")
    ap.add_argument("--conf")
    ap.add_argument("--imgsink")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--topic")
    ap.add_argument("--dlq")
    ap.add_argument("--group")
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP"))
    ap.add_argument("--bucket-path", help="ALIAS/BUCKET/PREFIX/ for mc")
    ap.add_argument("--toxi-cli")
    ap.add_argument("--toxi-url")
    ap.add_argument("--restart", help="test/stack/restart.sh")
    ap.add_argument("--kafka-class", default=os.environ.get("KAFKA_CLASS"))
    ap.add_argument("--slot", type=float, default=14.0)
    ap.add_argument("--waves", type=int, default=16)
    ap.add_argument("--sample-interval", type=float, default=3.0)
    ap.add_argument("--converge-timeout", type=int, default=360)
    ap.add_argument("--stop-timeout", type=int, default=40)
    a = ap.parse_args()
    if a.print_plan:
        for t, act, args in make_plan(a.seed, a.waves, a.workers, a.slot, 10000):
            print(f"{t:7.2f} {act} {json.dumps(args)}")
        return 0
    run = Run(a)

    def on_signal(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    try:
        return run.main()
    except Exception as e:  # a failure of the suite itself is a failure too
        tap(False, f"chaos.py failed: {e!r}")
        for line in traceback.format_exc().splitlines():
            note(line)
        return 1
    finally:
        # Whatever happened, no worker outlives the run.
        run.workers.kill_all()
        run.tail.stop()


if __name__ == "__main__":
    sys.exit(main())
