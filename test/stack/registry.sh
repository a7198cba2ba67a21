#!/usr/bin/env bash
# The Schema Registry of the tests: Apicurio Registry (deps.sh unpacks it
# from Maven Central) with in-memory storage, on a free loopback port.
#
#   test/stack/registry.sh start   prints the Confluent-compatible API root,
#                                  http://127.0.0.1:PORT/apis/ccompat/v7
#   test/stack/registry.sh stop
#
# State under $IMGSINK_STACK_DIR/registry/: PID file, log, url. It needs a
# Java 21+ (java21_bin in common.sh). Start waits (up to 5 minutes: a JVM on
# a loaded machine) until the API answers. Storage is in memory: a restart
# (stop, start) forgets every schema; the port stays the same across a
# restart so a running worker finds it again. Stop signals only the PID in
# the PID file, and only if its command line names this state directory.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091 # pinned versions, paths and helpers of the stack
. "$HERE/common.sh"
DIR=$IMGSINK_STACK_DIR/registry
PIDFILE=$DIR/registry.pid
MARK="-Dimgsink.state=$DIR"

stop() {
	local pid start
	pid=$(pid_of "$PIDFILE" "$MARK") || { rm -f "$PIDFILE"; return 0; }
	start=$(proc_start "$pid")
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 300); do
		proc_running "$pid" "$start" || break
		sleep 0.1
	done
	if proc_running "$pid" "$start"; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$PIDFILE"
}

start() {
	local java port mport url
	[[ -f $REGISTRY_HOME/app/quarkus-run.jar ]] ||
		die "$REGISTRY_HOME/app/quarkus-run.jar is missing: run scripts/deps.sh"
	java=$(java21_bin) || exit 1
	mkdir -p "$DIR"
	stop
	# Keep the port of an earlier start: a restarted registry must be
	# where the workers look for it.
	if [[ -s $DIR/port ]] && port_free "$(<"$DIR/port")"; then
		port=$(<"$DIR/port")
		read -r mport < <(free_ports 1)
	else
		read -r port mport < <(free_ports 2)
	fi
	echo "$port" >"$DIR/port"
	url="http://127.0.0.1:$port/apis/ccompat/v7"
	# Quarkus' management interface (health, metrics) defaults to port
	# 9000, MinIO's: give it a free one. Heap bounded: 8 stacks share
	# the machine.
	spawn "$PIDFILE" "$DIR/registry.log" "$java" "$MARK" -Xmx384m -XX:+UseSerialGC \
		-Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
		-Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$mport" \
		-Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
		-Dquarkus.log.console.json=false \
		-jar "$REGISTRY_HOME/app/quarkus-run.jar"
	for _ in $(seq 1500); do
		if curl -fsS -o /dev/null --max-time 2 "$url/subjects" 2>/dev/null; then
			echo "$url" >"$DIR/url"
			echo "$url"
			return 0
		fi
		pid_of "$PIDFILE" "$MARK" >/dev/null || break
		sleep 0.2
	done
	tail -n 20 "$DIR/registry.log" | sed 's/^/# /' >&2
	stop
	die "Apicurio Registry did not answer on $url"
}

case ${1:-} in
start) start ;;
stop) stop ;;
*) die "usage: $0 start|stop" ;;
esac
