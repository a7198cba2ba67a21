#!/usr/bin/env bash
# imgsink's fault suite: three workers, 2,100 records over 6 partitions (2 %
# poison), and while they run: SIGKILL and restart of workers, SIGSTOP of a
# worker past kafka.max.poll.interval.ms, MinIO and the Kafka broker
# restarted, latency, connection resets and a black hole on the S3 path
# (through toxiproxy). Then everything is checked with clients that are not
# imgsink's (mc, kcat, Kafka's tools). See test/faults/chaos.py (the run and
# the checks made during it) and verify.py (the checks at the end).
#
#   test/faults/run.sh [--seed N]      # or FAULT_SEED=N; random if neither
#
# Needs the local stack (test/stack/start.sh; `test/run.sh faults` starts
# it). The seed is printed first: the same seed repeats the same records,
# faults, targets and timings (within what a busy machine allows).
# Prints TAP lines and a summary of figures. KEEP_TMP=1 keeps the work dir
# (records, worker logs, history) even when everything passed.
set -uo pipefail

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${BUILD:-build}
IMGSINK=$ROOT/$BUILD/imgsink
HERE=$ROOT/test/faults

seed=${FAULT_SEED:-}
while [ $# -gt 0 ]; do
    case $1 in
    --seed) seed=${2:-}; shift 2 || break ;;
    --seed=*) seed=${1#--seed=}; shift ;;
    *) echo "usage: $0 [--seed N]" >&2; exit 2 ;;
    esac
done
[ -n "$seed" ] || seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
if ! [[ $seed =~ ^[0-9]{1,18}$ ]]; then
    echo "not ok - seed must be a non-negative integer, got '$seed'"
    exit 2
fi
echo "# seed $seed (repeat with: FAULT_SEED=$seed make test-faults)"

# shellcheck disable=SC1091 # pinned versions, paths and helpers of the stack
. "$ROOT/test/stack/common.sh"
STACK_DIR=$(cd "$IMGSINK_STACK_DIR" 2>/dev/null && pwd) || STACK_DIR=$IMGSINK_STACK_DIR
export IMGSINK_STACK_DIR=$STACK_DIR # for restart.sh, run by chaos.py
if [ ! -f "$STACK_DIR/env" ]; then
    echo "not ok - the local stack is not running (no $STACK_DIR/env): run test/stack/start.sh"
    exit 1
fi
set -a # python helpers read MC, KAFKA_BOOTSTRAP, S3_* from the environment
# shellcheck disable=SC1091
. "$STACK_DIR/env"
set +a
PY=$(python3_bin)
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the clone
for f in "$IMGSINK" "$TOXIPROXY_BIN" "$TOXIPROXY_CLI"; do
    if [ ! -x "$f" ]; then
        echo "not ok - $f is missing: run make (and scripts/deps.sh)"
        exit 1
    fi
done

T0=$SECONDS
WORK=$(mktemp -d /tmp/imgsink-faults.XXXXXX)
run_id="$(date +%s)-$$"
topic="faults-$run_id"
dlq="$topic.dlq"
group="g-$topic"
# A bucket of its own, with versioning: every PUT the store acknowledged
# stays visible, so duplicate writes can be compared version by version.
bucket="imgsink-faults-$run_id"
# Under processed/, the output prefix of the worker's policy
# (deploy/minio/policies/worker.json).
prefix="processed/seed-$seed/"
bucket_path="$MC_ALIAS/$bucket/$prefix"
N_FAIL=0

mc() { $MC "$@"; }
ok() { echo "ok - $*"; }
notok() {
    echo "not ok - $*"
    N_FAIL=$((N_FAIL + 1))
}
note() { echo "# $*"; }

# The proxy is stopped by its PID file (stop.sh checks the PID still names
# this stack's toxiproxy.json). The work dir stays when something failed.
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    bash "$ROOT/test/stack/stop.sh" toxiproxy >/dev/null 2>&1
    mkdir -p "$ROOT/$BUILD/test-logs"
    cp "$WORK/history.jsonl" "$ROOT/$BUILD/test-logs/faults-history.jsonl" 2>/dev/null
    if [ "$N_FAIL" -gt 0 ] || [ -n "${KEEP_TMP:-}" ]; then
        rm -f "$WORK"/wave-*.bin # the seed makes them again
        note "work dir kept: $WORK (worker logs w*.log, history.jsonl, manifest.json, store/)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# --- Kafka topics and the bucket ----------------------------------------------
if ! bash "$ROOT/test/stack/topic.sh" "$topic" 6 >/dev/null ||
    ! bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null; then
    notok "create topics $topic (6 partitions) and $dlq"
    exit 1
fi
if ! mc mb --ignore-existing "$MC_ALIAS/$bucket" >/dev/null ||
    ! mc version enable "$MC_ALIAS/$bucket" >/dev/null ||
    ! mc ilm rule import "$MC_ALIAS/$bucket" <"$ROOT/deploy/minio/lifecycle.json" >/dev/null; then
    notok "create bucket $bucket with versioning and the lifecycle rule"
    exit 1
fi
# The workers run with the worker's production policy for this bucket
# (test/stack/identity.sh), never the root user; chaos.py hands these keys
# to every worker it starts. mc stays with the admin alias.
if ! read -r S3_WORKER_ACCESS_KEY S3_WORKER_SECRET_KEY < <(bash "$ROOT/test/stack/identity.sh" worker "$bucket"); then
    notok "a store identity with the worker's policy for $bucket (test/stack/identity.sh)"
    exit 1
fi
export S3_WORKER_ACCESS_KEY S3_WORKER_SECRET_KEY

# --- toxiproxy in front of MinIO ----------------------------------------------
if ! read -r toxi_url toxi_port < <(bash "$ROOT/test/stack/toxiproxy.sh" "$seed"); then
    notok "toxiproxy $TOXIPROXY_VERSION forwards a port to MinIO at $S3_ENDPOINT"
    exit 1
fi
ok "toxiproxy $TOXIPROXY_VERSION (pid $(cat "$STACK_DIR/toxiproxy.pid")) forwards 127.0.0.1:$toxi_port to MinIO"
note "topic $topic (6 partitions), DLQ $dlq, group $group, store $bucket_path (versioned)"

# --- records --------------------------------------------------------------------
if ! out=$("$PY" "$HERE/gen.py" --seed "$seed" --out "$WORK" 2>&1); then
    notok "generate records: $out"
    exit 1
fi
note "$out"

# --- workers' configuration -----------------------------------------------------
# Short Kafka timeouts so a stopped worker is out of the group within
# seconds; S3 timeouts short enough that a black hole is noticed and
# retried; revoke draining shorter than max.poll.interval.ms; debug logs
# for the per-record "record written" lines duplicates are counted from;
# each worker's HTTP endpoints on a port of its own.
cat >"$WORK/worker.conf" <<EOF
kafka.bootstrap.servers=$KAFKA_BOOTSTRAP
kafka.group.id=$group
kafka.session.timeout.ms=6000
kafka.heartbeat.interval.ms=1000
kafka.max.poll.interval.ms=10000
input.topics=$topic
dlq.topic=$dlq
s3.endpoint=http://127.0.0.1:$toxi_port
s3.region=$S3_REGION
s3.bucket=$bucket
s3.path.style=true
s3.prefix=$prefix
s3.connect.timeout.ms=2000
s3.timeout.ms=5000
retry.backoff.max.ms=2000
rebalance.drain.timeout.ms=5000
shutdown.timeout.ms=15000
renditions=small=256x256/jpeg/80,tiny=64x64/webp/70
worker.threads=2
log.level=debug
http.listen=127.0.0.1:0
EOF

# --- the run ----------------------------------------------------------------------
if ! "$PY" "$HERE/chaos.py" --seed "$seed" --work "$WORK" --conf "$WORK/worker.conf" \
    --imgsink "$IMGSINK" --workers 3 --topic "$topic" --dlq "$dlq" --group "$group" \
    --bucket-path "$bucket_path" --toxi-cli "$TOXIPROXY_CLI" --toxi-url "$toxi_url" \
    --restart "$ROOT/test/stack/restart.sh"; then
    N_FAIL=$((N_FAIL + 1)) # it printed its "not ok" lines
fi

# --- final checks -------------------------------------------------------------------
if ! "$PY" "$HERE/verify.py" --work "$WORK" --conf "$WORK/worker.conf" --seed "$seed" \
    --topic "$topic" --dlq "$dlq" --group "$group" --bucket-path "$bucket_path"; then
    N_FAIL=$((N_FAIL + 1)) # it printed its "not ok" lines
fi

# --- summary ------------------------------------------------------------------------
"$PY" - "$WORK/figures.json" "$((SECONDS - T0))" <<'EOF'
import json, sys
try:
    f = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(0)
g = lambda k: f.get(k, "?")
print(f"# figures: seed {g('seed')}; {g('worker_runs')} worker runs; {g('records')} records "
      f"({g('poison')} poison); {g('kills')} kills; {g('stops')} stops; "
      f"{g('minio_restarts')} MinIO + {g('kafka_restarts')} Kafka restarts; "
      f"{g('network_faults')} network faults; lost {g('lost')}; duplicates: "
      f"{g('duplicate_writes_logged')} repeated writes logged over {g('duplicate_records_logged')} records "
      f"({g('duplicates_per_kill')} per kill), "
      f"{g('duplicate_object_versions')} extra object versions; DLQ {g('dlq_records')} records "
      f"({g('dlq_duplicates')} duplicates); peak worker RSS {g('peak_rss_mib')} MiB; "
      f"{g('samples')} samples, {g('violations')} violations; duration {sys.argv[2]}s")
EOF

if [ "$N_FAIL" -eq 0 ]; then
    # Passed: the run's topics and bucket are not needed any more.
    mc rb --force "$MC_ALIAS/$bucket" >/dev/null 2>&1
    "$KAFKA_CLASS" topics --bootstrap-server "$KAFKA_BOOTSTRAP" --delete \
        --topic "$topic" >/dev/null 2>&1
    "$KAFKA_CLASS" topics --bootstrap-server "$KAFKA_BOOTSTRAP" --delete \
        --topic "$dlq" >/dev/null 2>&1
fi
[ "$N_FAIL" -eq 0 ]
