#!/usr/bin/env bash
# Start the local test stack on loopback: one Kafka node in KRaft mode
# (broker and controller in one JVM) and one MinIO server, then create the
# bucket, its lifecycle rule, the claim-check bucket, the least-privilege
# store identities (identity.sh) and the topics, and write
# $IMGSINK_STACK_DIR/env.
#
#   test/stack/start.sh          # then: . .stack/env
#
# Idempotent: servers whose PID files point at a live, healthy process are
# reused, so every test may call it. Ports are picked free on first start and
# kept in $STATE/ports for later starts (data dirs survive a plain stop.sh);
# KAFKA_PORT / MINIO_PORT in the environment override the choice (and
# KAFKA_CONTROLLER_PORT / MINIO_CONSOLE_PORT, which restart.sh passes so a
# restarted server is back on all its ports even while they are in TIME_WAIT).
#
# Everything listens on 127.0.0.1 only; nothing here talks to the network.
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_TIMEOUT=${KAFKA_TIMEOUT:-90}
MINIO_TIMEOUT=${MINIO_TIMEOUT:-30}
BUCKET=imgsink
RAW_BUCKET=raw
INPUT_TOPIC=images
DLQ_TOPIC=images.dlq

t0=$SECONDS
mkdir -p "$IMGSINK_STACK_DIR"
STATE=$(cd "$IMGSINK_STACK_DIR" && pwd)
KCONF="$STATE/kafka/server.properties"
KDATA="$STATE/kafka/data"
MDATA="$STATE/minio/data"
MC=("$MC_BIN" --config-dir "$STATE/mc")

[[ -d $KAFKA_HOME/libs && -x $MINIO_BIN && -x $MC_BIN ]] ||
	die "Kafka jars, minio or mc missing from $IMGSINK_CACHE: run scripts/deps.sh"
for c in kcat curl java; do
	command -v "$c" >/dev/null || die "$c not found: run scripts/deps.sh"
done

# Two tests starting the stack at once must not start two of each server.
# Bounded, so a wedged holder is reported instead of hanging a CI run.
exec 8>"$STATE/.lock"
flock -w 300 8 || die "another start.sh or stop.sh holds $STATE/.lock"

kafka_pid() { pid_of "$STATE/kafka.pid" "$KCONF"; }
minio_pid() { pid_of "$STATE/minio.pid" "$MDATA"; }

# --- ports --------------------------------------------------------------------
# Saved ports are reused when their server is still running (it cannot move)
# or the port is still free; otherwise a fresh free port is picked.
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-} MINIO_CONSOLE_PORT=${MINIO_CONSOLE_PORT:-}
saved_kafka='' saved_kctl='' saved_minio='' saved_mcon=''
if [[ -f $STATE/ports ]]; then
	# shellcheck disable=SC1091
	saved_kafka=$(. "$STATE/ports" && echo "$KAFKA_PORT")
	# shellcheck disable=SC1091
	saved_kctl=$(. "$STATE/ports" && echo "$KAFKA_CONTROLLER_PORT")
	# shellcheck disable=SC1091
	saved_minio=$(. "$STATE/ports" && echo "$MINIO_PORT")
	# shellcheck disable=SC1091
	saved_mcon=$(. "$STATE/ports" && echo "$MINIO_CONSOLE_PORT")
fi

# choose_port SAVED OVERRIDE RUNNING: print the port to use.
choose_port() {
	local saved=$1 override=$2 running=$3
	if [[ -n $running ]]; then
		[[ -z $override || $override == "$saved" ]] ||
			die "a server is already running on port $saved (wanted $override): run stop.sh first"
		echo "$saved"
	elif [[ -n $override ]]; then
		echo "$override"
	elif [[ -n $saved ]] && port_free "$saved"; then
		echo "$saved"
	else
		free_ports 1
	fi
}

kpid=$(kafka_pid) || kpid=''
mpid=$(minio_pid) || mpid=''
KAFKA_PORT=$(choose_port "$saved_kafka" "${KAFKA_PORT:-}" "$kpid")
KAFKA_CONTROLLER_PORT=$(choose_port "$saved_kctl" "$KAFKA_CONTROLLER_PORT" "$kpid")
MINIO_PORT=$(choose_port "$saved_minio" "${MINIO_PORT:-}" "$mpid")
MINIO_CONSOLE_PORT=$(choose_port "$saved_mcon" "$MINIO_CONSOLE_PORT" "$mpid")
ports=("$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$MINIO_PORT" "$MINIO_CONSOLE_PORT")
[[ $(printf '%s\n' "${ports[@]}" | sort -u | wc -l) == 4 ]] ||
	die "port clash among ${ports[*]}: set KAFKA_PORT/MINIO_PORT or run stop.sh --purge"
cat >"$STATE/ports" <<EOF
KAFKA_PORT=$KAFKA_PORT
KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT
MINIO_PORT=$MINIO_PORT
MINIO_CONSOLE_PORT=$MINIO_CONSOLE_PORT
EOF
# A server must be (re)started: until it is ready, the env file must not
# point tests at what may be a dead port. (Left alone when both are reused,
# so tests reading it meanwhile are not disturbed.)
[[ -n $kpid && -n $mpid ]] || rm -f "$STATE/env"
KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
S3_ENDPOINT="http://127.0.0.1:$MINIO_PORT"

# fail_with_log NAME LOG MESSAGE: show why a server did not come up: the
# error lines of this run's part of LOG (spawn starts each run with a "==="
# line), since the last lines are mostly shutdown chatter, then the tail.
fail_with_log() {
	local from run
	from=$(grep -n '^=== ' "$2" 2>/dev/null | tail -n 1 | cut -d: -f1) || true
	run=$(tail -n +"${from:-1}" "$2" 2>/dev/null) || true
	log "---- errors in $2 (this run) ----"
	grep -E 'ERROR|FATAL|Exception|Caused by|rror:' <<<"$run" | head -n 20 >&2 || true
	log "---- last lines ----"
	tail -n 15 <<<"$run" >&2 || true
	die "$1: $3"
}

# --- Kafka --------------------------------------------------------------------
kafka_healthy() {
	# Metadata from the broker listing itself means the broker is registered
	# with the controller and unfenced, i.e. it will accept CreateTopics.
	kcat -L -b "$KAFKA_BOOTSTRAP" -m 2 2>/dev/null |
		grep -qF "broker 1 at 127.0.0.1:$KAFKA_PORT"
}

write_kafka_config() {
	mkdir -p "$KDATA"
	cat >"$KCONF" <<EOF
# Written by test/stack/start.sh on every start (ports may change).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KDATA
# One node: every internal topic has replication factor 1.
num.partitions=6
default.replication.factor=1
offsets.topic.replication.factor=1
# Fewer __consumer_offsets partitions than the default 50: the first group
# coordinator lookup creates them, and 50 costs seconds on every fresh stack.
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
# Tests join groups constantly; the default 3 s delay would slow each one.
group.initial.rebalance.delay.ms=0
# Producers may auto-create topics (Kafka's default, kept so tests see what
# production sees); consumers in librdkafka do not by default.
auto.create.topics.enable=true
# Two cores: few threads.
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
# Images travel inline in records: allow up to 64 MiB (the default is 1 MB).
message.max.bytes=67108864
replica.fetch.max.bytes=67108864
EOF
}

if [[ -n $kpid ]] && kafka_healthy; then
	kafka_state="reused (pid $kpid)"
else
	if [[ -z $kpid ]]; then
		rm -f "$STATE/kafka.pid"
		write_kafka_config
		if [[ ! -f $KDATA/meta.properties ]]; then
			# A KRaft cluster id is 16 random bytes in URL-safe base64; one
			# never starting with '-' so it cannot look like an option.
			cid=$("$(python3_bin)" -c 'import base64,os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    if s[0] != "-": print(s); break')
			"$STACK_SCRIPTS/kafka-class.sh" storage format --ignore-formatted \
				-t "$cid" -c "$KCONF" >>"$STATE/kafka.log" 2>&1 ||
				fail_with_log kafka "$STATE/kafka.log" "storage format failed"
		fi
		# -Xms = -Xmx avoids heap resizing pauses; 512m is plenty for tests.
		KAFKA_HEAP_OPTS="-Xms512m -Xmx512m" \
			KAFKA_JVM_OPTS="-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError" \
			KAFKA_LOG4J="$STACK_SCRIPTS/log4j-broker.properties" \
			spawn "$STATE/kafka.pid" "$STATE/kafka.log" \
			"$STACK_SCRIPTS/kafka-class.sh" server "$KCONF"
		kafka_state="started"
	else
		# Alive but not answering yet: probably another start.sh's broker
		# still booting. Wait for it like for our own.
		kafka_state="was starting"
	fi
	deadline=$((SECONDS + KAFKA_TIMEOUT))
	until kafka_healthy; do
		kafka_pid >/dev/null ||
			fail_with_log kafka "$STATE/kafka.log" "broker exited during start-up"
		((SECONDS < deadline)) ||
			fail_with_log kafka "$STATE/kafka.log" "not ready after ${KAFKA_TIMEOUT}s (still running, pid $(<"$STATE/kafka.pid"); stop.sh ends it)"
		sleep 0.5
	done
	kafka_state="$kafka_state (pid $(kafka_pid))"
fi
log "kafka: $kafka_state at $KAFKA_BOOTSTRAP"

# --- MinIO --------------------------------------------------------------------
# Test credentials, generated once per state dir and kept: MinIO encrypts its
# IAM data with the root credentials, so they must not change under a data
# dir. Upper-case/digit keys like AWS's, so no escaping is ever needed.
if [[ ! -s $STATE/minio.creds ]]; then
	"$(python3_bin)" - >"$STATE/minio.creds.tmp" <<-'EOF'
		import secrets, string
		up = string.ascii_uppercase + string.digits
		al = string.ascii_letters + string.digits
		print("S3_ACCESS_KEY=" + "".join(secrets.choice(up) for _ in range(20)))
		print("S3_SECRET_KEY=" + "".join(secrets.choice(al) for _ in range(40)))
	EOF
	chmod 600 "$STATE/minio.creds.tmp"
	mv "$STATE/minio.creds.tmp" "$STATE/minio.creds"
fi
# shellcheck disable=SC1091
. "$STATE/minio.creds"

minio_healthy() {
	curl -fsS -o /dev/null --max-time 2 "$S3_ENDPOINT/minio/health/live" 2>/dev/null
}

if [[ -n $mpid ]] && minio_healthy; then
	minio_state="reused (pid $mpid)"
else
	if [[ -z $mpid ]]; then
		rm -f "$STATE/minio.pid"
		mkdir -p "$MDATA"
		# MINIO_UPDATE=off and --quiet: a `go install`ed MinIO has no release
		# tag, takes its binary's mtime as release date and would otherwise
		# ask dl.min.io for a newer version at start-up (network!).
		MINIO_ROOT_USER=$S3_ACCESS_KEY MINIO_ROOT_PASSWORD=$S3_SECRET_KEY \
			MINIO_UPDATE=off MINIO_CALLHOME_ENABLE=off MINIO_BROWSER=on \
			spawn "$STATE/minio.pid" "$STATE/minio.log" \
			"$MINIO_BIN" server --quiet \
			--address "127.0.0.1:$MINIO_PORT" \
			--console-address "127.0.0.1:$MINIO_CONSOLE_PORT" "$MDATA"
		minio_state="started"
	else
		minio_state="was starting"
	fi
	deadline=$((SECONDS + MINIO_TIMEOUT))
	until minio_healthy; do
		minio_pid >/dev/null ||
			fail_with_log minio "$STATE/minio.log" "server exited during start-up"
		((SECONDS < deadline)) ||
			fail_with_log minio "$STATE/minio.log" "not live after ${MINIO_TIMEOUT}s"
		sleep 0.2
	done
	minio_state="$minio_state (pid $(minio_pid))"
fi
log "minio: $minio_state at $S3_ENDPOINT"

# mc keeps its aliases in its own config dir, never in ~/.mc. The alias is
# rewritten every time since the port may have changed.
"${MC[@]}" alias set local "$S3_ENDPOINT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" \
	--api S3v4 >/dev/null
"${MC[@]}" mb --ignore-existing "local/$BUCKET" >/dev/null
# import replaces the bucket's whole lifecycle configuration: idempotent.
# Delete markers get a rule of their own without a tag filter
# (deploy/minio/lifecycle.json): MinIO, like AWS, refuses
# ExpiredObjectDeleteMarker next to Days in one Expiration ("Delete marker
# cannot be specified with Days or Date"); unlike AWS it accepts it in a rule
# filtered on a tag, but a delete marker has no tags, so such a rule would
# never match one. Tried with the pinned MinIO (test/stack/common.sh).
"${MC[@]}" ilm rule import "local/$BUCKET" <"$REPO_ROOT/deploy/minio/lifecycle.json" >/dev/null
# Check the rules as the server reports them back, not as we sent them.
"${MC[@]}" ilm rule export "local/$BUCKET" 2>/dev/null | "$(python3_bin)" -c '
import json, sys
rules = [r for r in json.load(sys.stdin).get("Rules", []) if r.get("Status") == "Enabled"]
ok = any(r.get("Expiration", {}).get("Days") == 7
         and r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == 1
         and r.get("Filter", {}).get("Tag") == {"Key": "retention", "Value": "7d"}
         for r in rules)
markers = any(r.get("Expiration", {}).get("ExpiredObjectDeleteMarker")
              and not r.get("Filter", {}).get("Tag") and not r.get("Filter", {}).get("And")
              for r in rules)
sys.exit(0 if ok and markers else
         "lifecycle rules retention=7d -> expire 7 days, noncurrent 1 day, and expired delete "
         "markers not found: %r" % rules)'
log "minio: bucket $BUCKET with lifecycle rules (tag retention=7d expires after 7 days, noncurrent versions after 1; expired delete markers)"

# The claim-check bucket of deploy/'s policies (raw, uploads under uploads/),
# versioned so a claim check may name a version. Then the identities the
# tests' workers, checks and API run with: the production policies of
# deploy/minio/policies (test/stack/identity.sh), never the root user, which
# stays with mc (setup and verification, as an operator's).
"${MC[@]}" mb --ignore-existing "local/$RAW_BUCKET" >/dev/null
"${MC[@]}" version enable "local/$RAW_BUCKET" >/dev/null
read -r S3_WORKER_ACCESS_KEY S3_WORKER_SECRET_KEY < <(IMGSINK_STACK_DIR=$STATE "$STACK_SCRIPTS/identity.sh" worker) ||
	die "creating the worker's store identity failed"
read -r S3_API_ACCESS_KEY S3_API_SECRET_KEY < <(IMGSINK_STACK_DIR=$STATE "$STACK_SCRIPTS/identity.sh" api) ||
	die "creating the API's store identity failed"
[[ -n $S3_WORKER_SECRET_KEY && -n $S3_API_SECRET_KEY ]] || die "no keys for the worker or API identity"
log "minio: bucket $RAW_BUCKET (versioned); users imgsink-worker and imgsink-api with deploy/minio/policies (without the TLS/SSE denies)"

# --- topics and env file ------------------------------------------------------
export KAFKA_BOOTSTRAP
# Both at once: each is a JVM start-up of a couple of seconds.
"$STACK_SCRIPTS/topic.sh" "$INPUT_TOPIC" 6 &
t1=$!
"$STACK_SCRIPTS/topic.sh" "$DLQ_TOPIC" 1 &
t2=$!
wait "$t1" || die "creating topic $INPUT_TOPIC failed"
wait "$t2" || die "creating topic $DLQ_TOPIC failed"

# KEY=VALUE, one a line, for `. env` (or `set -a; . env; set +a`). Values are
# single-quoted only when they need it (MC has spaces) so that simple
# parsers can read the rest.
envline() {
	local v=$2
	[[ $v != *"'"* ]] || die "cannot write $1: value contains a single quote"
	if [[ $v =~ ^[A-Za-z0-9_./:@%+=,-]*$ ]]; then
		printf '%s=%s\n' "$1" "$v"
	else
		printf "%s='%s'\n" "$1" "$v"
	fi
}
{
	echo "# Written by test/stack/start.sh; source it: . $STATE/env"
	envline STACK_DIR "$STATE"
	envline KAFKA_BOOTSTRAP "$KAFKA_BOOTSTRAP"
	envline INPUT_TOPIC "$INPUT_TOPIC"
	envline DLQ_TOPIC "$DLQ_TOPIC"
	envline KAFKA_CLASS "$STACK_SCRIPTS/kafka-class.sh"
	envline KAFKA_TOPIC "$STACK_SCRIPTS/topic.sh"
	envline KAFKA_LOG "$STATE/kafka.log"
	envline S3_ENDPOINT "$S3_ENDPOINT"
	envline S3_REGION us-east-1
	envline S3_ACCESS_KEY "$S3_ACCESS_KEY"
	envline S3_SECRET_KEY "$S3_SECRET_KEY"
	envline S3_WORKER_ACCESS_KEY "$S3_WORKER_ACCESS_KEY"
	envline S3_WORKER_SECRET_KEY "$S3_WORKER_SECRET_KEY"
	envline S3_API_ACCESS_KEY "$S3_API_ACCESS_KEY"
	envline S3_API_SECRET_KEY "$S3_API_SECRET_KEY"
	envline S3_OUT_PREFIX processed
	envline S3_RAW_BUCKET "$RAW_BUCKET"
	envline S3_RAW_PREFIX uploads
	envline S3_BUCKET "$BUCKET"
	envline MC "${MC[*]}"
	envline MC_ALIAS local
	envline MINIO_LOG "$STATE/minio.log"
} >"$STATE/env.tmp"
mv "$STATE/env.tmp" "$STATE/env"
log "stack ready in $((SECONDS - t0))s; env: $STATE/env"
