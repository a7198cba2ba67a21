#!/usr/bin/env bash
# Create a topic on the test stack if it does not exist, and wait until every
# partition has a leader, so a test can produce to it at once.
#
#   test/stack/topic.sh NAME PARTITIONS
#
# Tests use a unique topic per test. The broker comes from $KAFKA_BOOTSTRAP,
# else from $IMGSINK_STACK_DIR/env (written by start.sh). Fails if the topic
# exists with a different partition count: a test would silently be wrong.
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

(($# == 2)) || die "usage: $0 NAME PARTITIONS"
name=$1 parts=$2
[[ $name =~ ^[A-Za-z0-9._-]{1,249}$ ]] || die "bad topic name: $name"
[[ $parts =~ ^[1-9][0-9]*$ ]] || die "bad partition count: $parts"

if [[ -z ${KAFKA_BOOTSTRAP:-} ]]; then
	[[ -f $IMGSINK_STACK_DIR/env ]] || die "no KAFKA_BOOTSTRAP and no $IMGSINK_STACK_DIR/env: run start.sh"
	# shellcheck disable=SC1091
	KAFKA_BOOTSTRAP=$(. "$IMGSINK_STACK_DIR/env" && echo "$KAFKA_BOOTSTRAP")
fi

# topic_state: print the number of partitions if the topic exists and every
# partition has a leader, else "-". Lists all topics rather than asking for
# this one: a metadata request naming a topic can auto-create it (the broker
# has auto.create.topics.enable=true) with the default 6 partitions.
# kcat 1.7's metadata output looks like:
#   topic "images" with 6 partitions:
#     partition 0, leader 1, replicas: 1, isrs: 1
# with ": Broker: ..." errors appended to a partition that is not ready.
topic_state() {
	local out
	out=$(kcat -L -b "$KAFKA_BOOTSTRAP" -m 5 2>/dev/null) || { echo -; return; }
	awk -v head="  topic \"$name\" with " '
		index($0, head) == 1 { found = 1; bad = ($0 !~ /partitions:$/); next }
		found && /^  topic / { exit }
		found && /^    partition / { n++; if ($0 ~ /leader -1|: Broker:|: Local:/) bad = 1 }
		END { if (found && !bad && n > 0) print n; else print "-" }' <<<"$out"
}

state=$(topic_state)
if [[ $state == - ]]; then
	# --if-not-exists: another test may be creating the same topic now.
	"$STACK_SCRIPTS/kafka-class.sh" topics --bootstrap-server "$KAFKA_BOOTSTRAP" \
		--create --if-not-exists --topic "$name" \
		--partitions "$parts" --replication-factor 1 >/dev/null
	for ((i = 0; i < 100; i++)); do
		state=$(topic_state)
		[[ $state == - ]] || break
		sleep 0.1
	done
	[[ $state != - ]] || die "topic $name created but its partitions have no leader after 10s"
fi
[[ $state == "$parts" ]] || die "topic $name has $state partitions, wanted $parts"
