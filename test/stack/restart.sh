#!/usr/bin/env bash
# Restart one server of the local test stack in place, for fault tests: the
# broker or the store goes away and comes back where its clients expect it,
# with the same data dir and the same ports.
#
#   test/stack/restart.sh kafka|minio [DOWN_SECONDS]
#
# Stops exactly the PID in the server's PID file (stop.sh NAME: TERM, then
# KILL after STOP_TIMEOUT), waits DOWN_SECONDS (default 0), then runs
# start.sh with every saved port given explicitly: start.sh would otherwise
# pick a fresh port when the old one is still in TIME_WAIT. The other server
# is left alone (start.sh reuses what is running).
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

(($# >= 1 && $# <= 2)) || die "usage: $0 kafka|minio [DOWN_SECONDS]"
name=$1 down=${2:-0}
[[ $name == kafka || $name == minio ]] || die "usage: $0 kafka|minio [DOWN_SECONDS]"
[[ $down =~ ^[0-9]+([.][0-9]+)?$ ]] || die "bad DOWN_SECONDS: $down"
STATE=$(cd "$IMGSINK_STACK_DIR" 2>/dev/null && pwd) || die "no stack at $IMGSINK_STACK_DIR"
[[ -f $STATE/ports ]] || die "no $STATE/ports: the stack was never started"

t0=$SECONDS
bash "$STACK_SCRIPTS/stop.sh" "$name"
sleep "$down"
# shellcheck disable=SC1091
(. "$STATE/ports" &&
	KAFKA_PORT=$KAFKA_PORT KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT \
		MINIO_PORT=$MINIO_PORT MINIO_CONSOLE_PORT=$MINIO_CONSOLE_PORT \
		bash "$STACK_SCRIPTS/start.sh")
log "$name: restarted in $((SECONDS - t0))s (down ${down}s requested)"
