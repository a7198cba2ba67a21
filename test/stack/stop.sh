#!/usr/bin/env bash
# Stop the local test stack started by start.sh.
#
#   test/stack/stop.sh            # stop; keep data, ports and logs
#   test/stack/stop.sh --purge    # stop and delete data, credentials, mc
#                                 # config and env (logs are kept)
#   test/stack/stop.sh kafka|minio|toxiproxy   # stop that server only
#                                 # (restart.sh; the fault suite's proxy)
#
# Signals exactly the PIDs in the PID files, and only if that process's
# command line still names this state dir (a stale PID file whose PID was
# reused by something else is just removed). TERM, up to 20 s for a clean
# shutdown, then KILL. Never kills by name.
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

purge=0 only=''
case ${1:-} in
'') ;;
--purge) purge=1 ;;
kafka | minio | toxiproxy) only=$1 ;;
*) die "usage: $0 [--purge | kafka | minio | toxiproxy]" ;;
esac

if [[ ! -d $IMGSINK_STACK_DIR ]]; then
	log "no stack at $IMGSINK_STACK_DIR"
	exit 0
fi
STATE=$(cd "$IMGSINK_STACK_DIR" && pwd)
STOP_TIMEOUT=${STOP_TIMEOUT:-20}

# Not while a start.sh is half-way: it would respawn what we stop. But stop
# runs in cleanup paths and must not fail: after a minute, go on anyway.
exec 8>"$STATE/.lock"
flock -w 60 8 || log "warning: $STATE/.lock still held after 60s; stopping anyway"

# stop_one NAME PIDFILE MARKER
stop_one() {
	local name=$1 pidfile=$2 marker=$3 pid start t0=$SECONDS
	if ! pid=$(pid_of "$pidfile" "$marker") || ! start=$(proc_start "$pid"); then
		if [[ -e $pidfile ]]; then
			rm -f "$pidfile"
			log "$name: not running (removed stale PID file)"
		else
			log "$name: not running"
		fi
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	# Poll: the server is not our child, so `wait` cannot be used. From here
	# on the process is followed by PID and start time, not by pid_of: see
	# proc_running in common.sh for why the command line cannot be used.
	local i
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		proc_running "$pid" "$start" || break
		sleep 0.1
	done
	if proc_running "$pid" "$start"; then
		log "$name: pid $pid ignored TERM for ${STOP_TIMEOUT}s, sending KILL"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			proc_running "$pid" "$start" || break
			sleep 0.1
		done
		! proc_running "$pid" "$start" || die "$name: pid $pid survived KILL"
	fi
	rm -f "$pidfile"
	log "$name: stopped (pid $pid, ~$((SECONDS - t0))s)"
}

# The fault suite's TCP proxy (test/faults), if one was left running: it
# only forwards, so it goes first. Then Kafka: a clean broker shutdown needs
# nothing from MinIO, and the order keeps consumers from seeing an S3 outage
# before Kafka goes away.
if [[ $only == toxiproxy || (-z $only && -e $STATE/toxiproxy.pid) ]]; then
	stop_one toxiproxy "$STATE/toxiproxy.pid" "$STATE/toxiproxy.json"
fi
# The secured broker of the security tests (kafka-secure.sh), if any.
if [[ -z $only && -e $STATE/kafka-secure/kafka.pid ]]; then
	"$STACK_SCRIPTS/kafka-secure.sh" stop
fi
[[ -n $only && $only != kafka ]] ||
	stop_one kafka "$STATE/kafka.pid" "$STATE/kafka/server.properties"
[[ -n $only && $only != minio ]] ||
	stop_one minio "$STATE/minio.pid" "$STATE/minio/data"

if ((purge)); then
	rm -rf "$STATE/kafka" "$STATE/minio" "$STATE/mc" \
		"$STATE/env" "$STATE/ports" "$STATE/minio.creds"
	log "purged data in $STATE (logs kept)"
fi
