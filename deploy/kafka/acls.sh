#!/usr/bin/env bash
# The Kafka ACLs imgsink's principals need, and nothing more, for a cluster
# with an authorizer (KRaft: StandardAuthorizer; allow.everyone.if.no.acl.found
# =false). Prints the kafka-acls commands, or runs them with --apply.
#
#   deploy/kafka/acls.sh [--apply] ROLE PRINCIPAL [options] -- [kafka-acls options]
#
# ROLE and what it gets (literal resource names, never prefixes or '*'):
#   worker    `imgsink run`: Read on its group (join, heartbeat, commit and
#             fetch offsets) and on every input topic (fetch, list offsets;
#             Read implies Describe, so metadata), Write on the DLQ topic
#             (and the events topic if given; Write implies Describe, and
#             since Kafka 3.0 it is all the idempotent DLQ producer needs:
#             no cluster IdempotentWrite).
#   producer  `imgsink produce` / upstream producers: Write on the topics.
#   operator  `imgsink status`, `imgsink replay`, `imgsink check`: Describe
#             on the group and topics (status, check), Read on the group and
#             topics (replay commits offsets for the group).
# Options:
#   --group G      the consumer group (worker, operator)
#   --topic T      an input topic; repeat for several
#   --dlq D        the dead-letter topic (worker)
#   --events E     the events topic (worker), if the worker emits events
# Everything after -- goes to kafka-acls: --bootstrap-server HOST:PORT and
# --command-config FILE (an admin's client properties).
#
# KAFKA_ACLS names the command (default: kafka-acls.sh from the Kafka
# distribution). Example, for the worker running as SCRAM user imgsink:
#   deploy/kafka/acls.sh --apply worker User:imgsink --group imgsink \
#     --topic images --dlq images.dlq -- --bootstrap-server kafka:9092 \
#     --command-config admin.properties
set -euo pipefail

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

apply=0
[[ ${1:-} == --apply ]] && { apply=1; shift; }
(($# >= 2)) || usage
role=$1 principal=$2
shift 2
[[ $principal =~ ^User:[^[:space:]]+$ ]] || { echo "acls.sh: principal must be User:NAME, got '$principal'" >&2; exit 2; }
group='' dlq='' events='' topics=()
while (($#)); do
	case $1 in
	--group) group=${2:?}; shift 2 ;;
	--topic) topics+=("${2:?}"); shift 2 ;;
	--dlq) dlq=${2:?}; shift 2 ;;
	--events) events=${2:?}; shift 2 ;;
	--) shift; break ;;
	*) usage ;;
	esac
done
extra=("$@")
read -r -a cmd <<<"${KAFKA_ACLS:-kafka-acls.sh}"

name_ok() { [[ $1 =~ ^[A-Za-z0-9._-]{1,249}$ ]] || { echo "acls.sh: bad name '$1'" >&2; exit 2; }; }
for t in "${topics[@]}" ${dlq:+"$dlq"} ${events:+"$events"} ${group:+"$group"}; do name_ok "$t"; done

# acl OPERATION RESOURCE-OPTION NAME
acl() {
	local line=("${cmd[@]}" "${extra[@]}" --add --allow-principal "$principal" --operation "$1"
		"$2" "$3" --resource-pattern-type literal)
	if ((apply)); then
		"${line[@]}" >/dev/null
		echo "added: $principal $1 ${2#--} $3"
	else
		printf '%q ' "${line[@]}"
		echo
	fi
}

case $role in
worker)
	[[ -n $group && -n $dlq && ${#topics[@]} -gt 0 ]] || { echo "acls.sh: worker needs --group, --topic and --dlq" >&2; exit 2; }
	acl Read --group "$group"
	for t in "${topics[@]}"; do acl Read --topic "$t"; done
	acl Write --topic "$dlq"
	[[ -z $events ]] || acl Write --topic "$events"
	;;
producer)
	((${#topics[@]})) || { echo "acls.sh: producer needs --topic" >&2; exit 2; }
	for t in "${topics[@]}"; do acl Write --topic "$t"; done
	;;
operator)
	[[ -n $group && ${#topics[@]} -gt 0 ]] || { echo "acls.sh: operator needs --group and --topic" >&2; exit 2; }
	acl Read --group "$group"
	for t in "${topics[@]}"; do acl Read --topic "$t"; done
	;;
*) usage ;;
esac
