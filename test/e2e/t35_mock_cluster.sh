#!/usr/bin/env bash
# The worker in-process against librdkafka's mock cluster (fast Kafka-side
# fault injection), writing to the real MinIO: brokers down and up, the group
# coordinator moving, OffsetCommit errors, a rebalance with jobs in flight,
# and a member that joins and leaves mid-rebalance.
. "$(dirname "$0")/lib.sh"

for scenario in basic broker-down coordinator commit-errors rebalance join-leave; do
    echo "# scenario: $scenario"
    timeout 300 "$ROOT/$BUILD/mock/mock_worker" "$scenario" 2>"$TMP/$scenario.log" |
        sed "s/^\(ok\|not ok\) - /\1 - $scenario: /"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        notok "$scenario: mock_worker exited with $rc"
        tail -20 "$TMP/$scenario.log" | sed 's/^/# /'
    fi
    if [ "$scenario" = rebalance ]; then
        revokes=$(grep -c '"partitions revoked' "$TMP/$scenario.log")
        note "worker revokes: $revokes (one forced mid-run, one at close)"
        check "rebalance: the worker drained and committed a revoke mid-run" [ "$revokes" -ge 2 ]
    fi
done
exit 0
