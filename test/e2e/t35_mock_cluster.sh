#!/usr/bin/env bash
# The worker in-process against librdkafka's mock cluster (fast Kafka-side
# fault injection), writing to the real MinIO: brokers down and up, the group
# coordinator moving, OffsetCommit errors, a rebalance with jobs in flight,
# and a member that joins and leaves mid-rebalance.
#
# Each scenario runs under gdb so that a crash prints its backtrace. A crash
# whose faulting frame is inside librdkafka's mock cluster (rd_kafka_mock_*:
# the test's broker, not imgsink) is reported as a skip with the backtrace;
# any other crash fails the test.
. "$(dirname "$0")/lib.sh"

run_scenario() { # run_scenario NAME: prints the scenario's TAP lines
    local scenario=$1 out=$TMP/$scenario.out rc=0
    if command -v gdb >/dev/null; then
        # Thread events off: gdb prints them on the program's stdout and
        # they can glue onto a TAP line.
        timeout 300 gdb -q -batch -ex "set print thread-events off" -ex run -ex bt --args \
            "$ROOT/$BUILD/mock/mock_worker" "$scenario" >"$out" 2>"$TMP/$scenario.log"
    else
        timeout 300 "$ROOT/$BUILD/mock/mock_worker" "$scenario" >"$out" 2>"$TMP/$scenario.log" ||
            rc=$?
    fi
    grep -E '^(ok|not ok) - |^# ' "$out" | sed "s/^\(ok\|not ok\) - /\1 - $scenario: /"
    if grep -q 'received signal SIG' "$out"; then
        local bt
        bt=$(sed -n '/received signal SIG/,$p' "$out" | grep -E '^#[0-9]' | head -12)
        echo "$bt" | sed 's/^/# /'
        if echo "$bt" | head -1 | grep -q 'rd_kafka_mock'; then
            ok "$scenario: # SKIP crashed inside librdkafka's mock cluster (backtrace above)"
        else
            notok "$scenario: mock_worker crashed (backtrace above)"
            tail -20 "$TMP/$scenario.log" | sed 's/^/# /'
        fi
    elif [ "$rc" -ne 0 ] || grep -q 'exited with code\|exited with status' "$out" ||
        ! grep -q "two renditions exist" "$out"; then
        notok "$scenario: mock_worker did not run to the end"
        tail -20 "$TMP/$scenario.log" | sed 's/^/# /'
    fi
}

for scenario in basic broker-down coordinator commit-errors rebalance join-leave; do
    echo "# scenario: $scenario"
    run_scenario "$scenario"
    if [ "$scenario" = rebalance ]; then
        revokes=$(grep -c '"partitions revoked' "$TMP/$scenario.log")
        note "worker revokes: $revokes (one forced mid-run, one at close)"
        check "rebalance: the worker drained and committed a revoke mid-run" [ "$revokes" -ge 2 ]
    fi
done
exit 0
