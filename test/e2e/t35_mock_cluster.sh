#!/usr/bin/env bash
# The worker in-process against librdkafka's mock cluster (fast Kafka-side
# fault injection), writing to the real MinIO: brokers down and up, the group
# coordinator moving, OffsetCommit errors, a rebalance with jobs in flight,
# a member that joins and leaves mid-rebalance, and a final commit refused
# for an old generation (workers stopped together).
#
# Each scenario runs under gdb so that a crash prints its backtrace. A crash
# is never a pass. One whose faulting frame is inside librdkafka's mock
# cluster (rd_kafka_mock_*: the test's broker, a librdkafka bug, not
# imgsink's) reruns the scenario once, with a note and the backtrace; only
# the rerun's checks count, and a second crash fails. Any other crash fails
# at once. A crashed run's remaining checks did not run: that is reported as
# a failure line of its own.
. "$(dirname "$0")/lib.sh"

# run_once SCENARIO OUT LOG: runs it; prints the TAP lines and notes it
# produced; returns 0 (ran to the end), 1 (ended early without a crash), 2
# (crashed inside the mock cluster) or 3 (crashed elsewhere).
run_once() {
    local scenario=$1 out=$2 log=$3 rc=0
    # Thread events off: gdb prints them on the program's stdout and they
    # can glue onto a TAP line.
    timeout 300 gdb -q -batch -ex "set print thread-events off" -ex run -ex bt --args \
        "$ROOT/$BUILD/mock/mock_worker" "$scenario" >"$out" 2>"$log" || rc=$?
    grep -E '^(ok|not ok) - |^# ' "$out" | sed "s/^\(ok\|not ok\) - /\1 - $scenario: /"
    if grep -q 'received signal SIG' "$out"; then
        local bt
        bt=$(sed -n '/received signal SIG/,$p' "$out" | grep -E '^#[0-9]' | head -12)
        echo "$bt" | sed 's/^/# /'
        if echo "$bt" | head -1 | grep -q 'rd_kafka_mock'; then return 2; fi
        return 3
    fi
    # gdb's own status says little (with -batch, "bt" after a normal exit
    # fails): only timeout's 124 counts; the inferior's exit is in $out.
    if [ "$rc" -eq 124 ] || grep -q 'exited with code\|exited with status' "$out" ||
        ! grep -q "two renditions exist" "$out"; then
        return 1
    fi
    return 0
}

run_scenario() { # run_scenario NAME: prints the scenario's TAP lines
    local scenario=$1 out=$TMP/$scenario.out log=$TMP/$scenario.log r
    run_once "$scenario" "$out" "$log" >"$TMP/$scenario.tap"
    r=$?
    if [ $r -eq 2 ]; then
        # The first run's passes become notes, replaced by the rerun's
        # checks; its failures stay failures.
        sed 's/^ok /# first run: ok /' "$TMP/$scenario.tap"
        note "$scenario: crashed inside librdkafka's mock cluster (backtrace above); running it once more"
        cp "$log" "$TMP/$scenario.first.log"
        run_once "$scenario" "$out" "$log" >"$TMP/$scenario.tap"
        r=$?
    fi
    cat "$TMP/$scenario.tap"
    case $r in
    0) ;;
    1)
        notok "$scenario: mock_worker did not run to the end"
        tail -20 "$log" | sed 's/^/# /'
        ;;
    2)
        notok "$scenario: mock_worker crashed inside librdkafka's mock cluster twice (backtrace above); the checks after the crash did not run"
        ;;
    3)
        notok "$scenario: mock_worker crashed (backtrace above); the checks after the crash did not run"
        tail -20 "$log" | sed 's/^/# /'
        ;;
    esac
}

command -v gdb >/dev/null || notok "gdb is needed to tell a crash's place (install with make deps)"
for scenario in basic broker-down coordinator commit-errors rebalance join-leave final-commit; do
    echo "# scenario: $scenario"
    run_scenario "$scenario"
    if [ "$scenario" = rebalance ]; then
        revokes=$(grep -c '"partitions revoked' "$TMP/$scenario.log")
        note "worker revokes: $revokes (one forced mid-run, one at close)"
        check "rebalance: the worker drained and committed a revoke mid-run" [ "$revokes" -ge 2 ]
    fi
done
exit 0
