#!/usr/bin/env bash
# A MinIO of its own for the API path's tests, laid out as production is
# (deploy/minio): an output bucket "imgsink" with the retention rules of
# deploy/minio/lifecycle.json, and a raw bucket "raw" (versioned) whose
# uploads/ prefix publishes every upload to a Kafka topic (its Kafka
# notification target) and expires by deploy/minio/lifecycle-raw.json:
#
#   minio-notify.sh start DIR TOPIC   start it (free loopback ports, PID file
#                                     DIR/minio.pid), make the buckets and
#                                     the users imgsink-worker and
#                                     imgsink-api with the policies of
#                                     deploy/minio/policies (test/stack/
#                                     identity.sh --dir DIR); writes DIR/env:
#                                     N_ENDPOINT, N_ACCESS_KEY, N_SECRET_KEY
#                                     (the admin's, for setup, mc and
#                                     `imgsink check`), N_WORKER_ACCESS_KEY,
#                                     N_WORKER_SECRET_KEY, N_API_ACCESS_KEY,
#                                     N_API_SECRET_KEY, N_BUCKET (output),
#                                     N_RAW_BUCKET, N_RAW_PREFIX (uploads/),
#                                     N_ALIAS (mc's admin alias), N_MC
#   minio-notify.sh stop DIR          stop exactly that server (by PID file)
#
# Kafka is the test stack's (KAFKA_BOOTSTRAP from $IMGSINK_STACK_DIR/env).
# MinIO creates the topic on its first publish unless it exists.
set -euo pipefail
# shellcheck source=test/stack/common.sh
. "$(dirname "$0")/common.sh"

cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || die "usage: $0 start DIR TOPIC | stop DIR"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data="$dir/data"

case $cmd in
stop)
	if pid=$(pid_of "$dir/minio.pid" "$data"); then
		kill -TERM "$pid"
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	fi
	rm -f "$dir/minio.pid"
	exit 0
	;;
start) ;;
*) die "unknown command $cmd" ;;
esac

topic=${3:?TOPIC}
# shellcheck disable=SC1091
. "$IMGSINK_STACK_DIR/env"
read -r port cport < <(free_ports 2)
user="notify$RANDOM$RANDOM"
pass=$("$(python3_bin)" -c 'import secrets; print(secrets.token_hex(16))')
mkdir -p "$data"
# The target's id is API: its ARN is arn:minio:sqs::API:kafka.
MINIO_ROOT_USER=$user MINIO_ROOT_PASSWORD=$pass MINIO_UPDATE=off MINIO_CALLHOME_ENABLE=off \
	MINIO_BROWSER=off \
	MINIO_NOTIFY_KAFKA_ENABLE_API=on MINIO_NOTIFY_KAFKA_BROKERS_API="$KAFKA_BOOTSTRAP" \
	MINIO_NOTIFY_KAFKA_TOPIC_API="$topic" \
	spawn "$dir/minio.pid" "$dir/minio.log" "$MINIO_BIN" server --quiet \
	--address "127.0.0.1:$port" --console-address "127.0.0.1:$cport" "$data"
endpoint="http://127.0.0.1:$port"
deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null --max-time 2 "$endpoint/minio/health/live" 2>/dev/null; do
	pid_of "$dir/minio.pid" "$data" >/dev/null || { tail -20 "$dir/minio.log" >&2; die "minio exited"; }
	((SECONDS < deadline)) || die "minio not live after 60s"
	sleep 0.3
done
mc=("$MC_BIN" --config-dir "$dir/mc")
"${mc[@]}" alias set notify "$endpoint" "$user" "$pass" --api S3v4 >/dev/null
"${mc[@]}" mb --ignore-existing notify/imgsink notify/raw >/dev/null
"${mc[@]}" version enable notify/raw >/dev/null
"${mc[@]}" ilm rule import notify/imgsink <"$REPO_ROOT/deploy/minio/lifecycle.json" >/dev/null
"${mc[@]}" ilm rule import notify/raw <"$REPO_ROOT/deploy/minio/lifecycle-raw.json" >/dev/null
"${mc[@]}" event add notify/raw arn:minio:sqs::API:kafka --event put --prefix uploads/ >/dev/null
# The identities of deploy/minio/policies as they are: the buckets have the
# example names, so nothing is substituted.
read -r wak wsk < <(bash "$STACK_SCRIPTS/identity.sh" --dir "$dir" --alias notify worker) ||
	die "creating the worker's store identity failed"
read -r aak ask < <(bash "$STACK_SCRIPTS/identity.sh" --dir "$dir" --alias notify api) ||
	die "creating the API's store identity failed"
[[ -n $wsk && -n $ask ]] || die "no keys for the worker or API identity"
cat >"$dir/env" <<-EOT
	N_ENDPOINT=$endpoint
	N_ACCESS_KEY=$user
	N_SECRET_KEY=$pass
	N_WORKER_ACCESS_KEY=$wak
	N_WORKER_SECRET_KEY=$wsk
	N_API_ACCESS_KEY=$aak
	N_API_SECRET_KEY=$ask
	N_BUCKET=imgsink
	N_RAW_BUCKET=raw
	N_RAW_PREFIX=uploads/
	N_ALIAS=notify
	N_MC='$MC_BIN --config-dir $dir/mc'
EOT
chmod 600 "$dir/env"
log "minio-notify: pid $(pid_of "$dir/minio.pid" "$data") at $endpoint, uploads under raw/uploads/ -> Kafka topic $topic; users imgsink-worker and imgsink-api"
