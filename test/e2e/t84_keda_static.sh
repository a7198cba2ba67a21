#!/usr/bin/env bash
# t82_keda_scale with static membership, the chart's StatefulSet mode: each
# worker has kafka.group.instance.id=imgsink-worker-N, as its pod name.
STATIC=1 exec bash "$(dirname "$0")/t82_keda_scale.sh"
