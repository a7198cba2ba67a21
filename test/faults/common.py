"""Helpers shared by the fault suite's programs (chaos.py, verify.py)."""
import datetime
import json
import os
import shlex
import subprocess
import threading
import time

N_FAIL = 0  # "not ok" lines printed by tap(); the program's exit status


def tap(ok, what):
    global N_FAIL
    print(("ok - " if ok else "not ok - ") + what, flush=True)
    N_FAIL += 0 if ok else 1
    return ok


def note(what):
    print("# " + what, flush=True)


CTYPES = {"jpeg": ("jpg", "image/jpeg"), "webp": ("webp", "image/webp"),
          "png": ("png", "image/png"), "avif": ("avif", "image/avif")}


def read_conf(path):
    conf = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            conf[k.strip()] = v.strip()
    return conf


def renditions(spec):
    """[(name, file name, width, height, format)] from a renditions value."""
    out = []
    for item in spec.split(","):
        name, rest = item.strip().split("=", 1)
        parts = rest.split("/")
        w, h = (int(x) for x in parts[0].split("x"))
        out.append((name, f"{name}.{CTYPES[parts[1]][0]}", w, h, parts[1]))
    return out


def day_path(manifest):
    day = datetime.datetime.fromtimestamp(manifest["uploaded_at_ms"] / 1000, datetime.timezone.utc)
    return f"{manifest['tenant']}/{day:%Y/%m/%d}"


def expected_keys(manifest, rends, rec):
    """Keys (relative to s3.prefix) a good record must have."""
    base = f"{day_path(manifest)}/{rec['id']}"
    return [f"{base}/{f}" for _, f, _, _, _ in rends] + [f"{base}/metadata.json"]


def json_lines(data):
    """Non-empty lines of JSON-lines output. Split on the bytes b"\n" only:
    str.splitlines() also splits at U+0085, U+2028, \x1c-\x1e, which
    binary record values (kcat -J) may hold inside a JSON string."""
    return [line.decode(errors="replace") for line in data.split(b"\n") if line.strip()]


def mc_cmd(*args):
    return shlex.split(os.environ["MC"]) + list(args)


def mc_lines(*args, timeout=120):
    """Runs mc with --json; returns the parsed JSON lines, or raises."""
    r = subprocess.run(mc_cmd("--json", *args), capture_output=True, timeout=timeout)
    out = []
    for line in json_lines(r.stdout):
        out.append(json.loads(line))
    errs = [o for o in out if o.get("status") == "error"]
    if r.returncode != 0 or errs:
        msg = errs[0].get("error", {}).get("message", "") if errs else r.stderr.decode()[:300]
        raise RuntimeError(f"mc {' '.join(args[:2])}: rc={r.returncode} {msg}")
    return out


def list_keys(bucket_path, timeout=120):
    """{key relative to bucket_path: etag} of the latest versions, with mc."""
    return {o["key"]: o.get("etag") for o in mc_lines("ls", "--recursive", bucket_path, timeout=timeout)
            if o.get("type") == "file"}


def dlq_records(bootstrap, topic, timeout=60):
    """Every DLQ record as (kcat JSON envelope, headers dict), read with kcat."""
    r = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e",
                        "-q", "-J", "-m", "10"], capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"kcat DLQ read: rc={r.returncode} {r.stderr.decode()[:300]}")
    out = []
    for line in json_lines(r.stdout):
        m = json.loads(line)
        h = m.get("headers") or []
        if isinstance(h, dict):
            hd = h
        else:
            hd = dict(zip(h[0::2], h[1::2]))
        out.append((m, hd))
    return out


def vm_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class History:
    """The run's history: one JSON object a line (t = seconds since start)."""

    def __init__(self, path, t0=None):
        self.t0 = t0 or time.time()
        self.lock = threading.Lock()
        self.f = open(path, "a", buffering=1)

    def __call__(self, event, **details):
        now = time.time()
        rec = {"t": round(now - self.t0, 3),
               "time": datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
               .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "event": event}
        rec.update(details)
        with self.lock:
            self.f.write(json.dumps(rec, sort_keys=False) + "\n")


def read_history(path):
    out = []
    for line in open(path):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out
