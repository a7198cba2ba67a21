#!/usr/bin/env bash
# Run a Kafka main class with the jars scripts/deps.sh cached, like Apache's
# bin/kafka-run-class.sh (whose tarball we do not have).
#
#   kafka-class.sh CLASS|ALIAS [ARGS...]
#
# Aliases for the classes tests need (Kafka 3.9 class names):
#   topics           org.apache.kafka.tools.TopicCommand
#   consumer-groups  org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
#   get-offsets      org.apache.kafka.tools.GetOffsetShell
#   console-consumer org.apache.kafka.tools.consumer.ConsoleConsumer
#   console-producer kafka.tools.ConsoleProducer
#   storage          kafka.tools.StorageTool
#   server           kafka.Kafka
#
# Examples (after `. .stack/env`):
#   $KAFKA_CLASS topics --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --topic images
#   # committed offset, log-end offset and lag per partition of a group:
#   $KAFKA_CLASS consumer-groups --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --group G
#   # end offsets (-1 latest, -2 earliest), one "topic:partition:offset" a line:
#   $KAFKA_CLASS get-offsets --bootstrap-server "$KAFKA_BOOTSTRAP" --topic images --time -1
#
# Environment:
#   KAFKA_HEAP_OPTS   default -Xmx256m (tools); start.sh sets the broker's
#   KAFKA_JVM_OPTS    default: flags for a short-lived tool (fast start-up)
#   KAFKA_LOG4J       log4j config file; default log4j-tools.properties
#                     (WARN and up, to stderr, so stdout stays parseable)
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

(($# >= 1)) || die "usage: $0 CLASS|ALIAS [ARGS...]"
class=$1
shift
case $class in
topics) class=org.apache.kafka.tools.TopicCommand ;;
consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
get-offsets) class=org.apache.kafka.tools.GetOffsetShell ;;
console-consumer) class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
console-producer) class=kafka.tools.ConsoleProducer ;;
storage) class=kafka.tools.StorageTool ;;
server) class=kafka.Kafka ;;
esac

[[ -d $KAFKA_HOME/libs ]] || die "Kafka jars not found in $KAFKA_HOME/libs: run scripts/deps.sh"

java=java
[[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]] && java=$JAVA_HOME/bin/java

# A tool runs for a second or two: the serial GC and the C1-only JIT start
# faster than the defaults and are plenty for it.
read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xmx256m}"
read -r -a jvm <<<"${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto}"

# "libs/*" is expanded by the JVM itself, not the shell.
exec "$java" "${heap[@]}" "${jvm[@]}" -Djava.awt.headless=true \
	-Dlog4j.configuration="file:${KAFKA_LOG4J:-$STACK_SCRIPTS/log4j-tools.properties}" \
	-cp "$KAFKA_HOME/libs/*" "$class" "$@"
