#!/usr/bin/env bash
# Runs imgsink's test suites and ends with one summary line:
#   "N passed, M failed"
#
#   test/run.sh            unit + asan + fuzz + e2e + faults (what `make test` runs)
#   test/run.sh unit|asan|fuzz|e2e [NAME...]
#   test/run.sh faults     the fault-injection suite (test/faults/run.sh;
#                          FAULT_SEED=N repeats a run)
#
# Unit tests are cmocka programs run with TAP output. End-to-end tests
# (test/e2e/t*.sh) run against a real Kafka and MinIO on loopback, started
# here and stopped on exit; each prints TAP lines ("ok - ..." / "not ok - ...").
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
LOGDIR=$BUILD/test-logs
mkdir -p "$LOGDIR"

passed=0
failed=0
failures=()

# count NAME LOGFILE EXIT: tallies TAP lines of one program's output.
count() {
    local name=$1 log=$2 rc=$3 p f
    p=$(grep -cE '^ok( |$)' "$log")
    f=$(grep -cE '^not ok( |$)' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # Crashed or failed outside a test case: that is a failure too.
        f=1
        echo "not ok - $name exited with status $rc" >>"$log"
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        f=1
        echo "not ok - $name ran no test" >>"$log"
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -gt 0 ]; then
        failures+=("$name")
        echo "FAIL $name ($p passed, $f failed) - log: $log"
        grep -E '^not ok|^# ' "$log" | head -20 | sed 's/^/    /'
    else
        echo "ok   $name ($p passed)"
    fi
}

run_cmocka() {
    local dir=$1 label=$2 t name log rc
    for t in "$dir"/test_*; do
        [ -x "$t" ] || continue
        name="$label/$(basename "$t")"
        log="$LOGDIR/${label}_$(basename "$t").log"
        CMOCKA_MESSAGE_OUTPUT=TAP ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            timeout 300 "$t" >"$log" 2>&1
        rc=$?
        count "$name" "$log" "$rc"
    done
}

run_e2e() {
    local t name log rc
    # shellcheck disable=SC2317
    cleanup() { bash test/stack/stop.sh >/dev/null 2>&1 || true; }
    trap cleanup EXIT
    if ! bash test/stack/start.sh >"$LOGDIR/stack-start.log" 2>&1; then
        echo "not ok - local stack (Kafka + MinIO) failed to start" >"$LOGDIR/stack.log"
        cat "$LOGDIR/stack-start.log" >>"$LOGDIR/stack.log"
        count "e2e/stack" "$LOGDIR/stack.log" 1
        tail -30 "$LOGDIR/stack-start.log"
        return
    fi
    for t in test/e2e/t*.sh; do
        name="e2e/$(basename "$t" .sh)"
        if [ $# -gt 0 ] && [[ " $* " != *" $(basename "$t" .sh) "* ]]; then
            continue
        fi
        log="$LOGDIR/$(basename "$t" .sh).log"
        echo "..   $name"
        ROOT=$ROOT BUILD=$BUILD timeout 1200 bash "$t" >"$log" 2>&1
        rc=$?
        count "$name" "$log" "$rc"
    done
}

# libFuzzer targets (test/fuzz/fuzz_*.c, built by `make fuzz-build` with
# clang): each runs FUZZ_SECONDS (default 10) from its corpus in
# $BUILD/fuzz; fuzz_pipeline is seeded with the hostile inputs. One TAP line
# per target; a finding leaves its input in $BUILD/fuzz/ (artifact).
run_fuzz() {
    local secs=${FUZZ_SECONDS:-10} t name log rc seeds extra
    log="$LOGDIR/fuzz-build.log"
    if ! make -s fuzz-build BUILD="$BUILD" >"$log" 2>&1; then
        echo "not ok - fuzz targets build (make fuzz-build, needs clang)" >>"$log"
        count "fuzz/build" "$log" 1
        return
    fi
    seeds=$BUILD/fuzz/seed-pipeline
    if [ ! -d "$seeds" ]; then
        mkdir -p "$BUILD/test-inputs" "$seeds.tmp"
        python3 test/hostile/make_inputs.py "$BUILD/test-inputs" >"$LOGDIR/fuzz-seeds.log" 2>&1 &&
            find "$BUILD/test-inputs" -maxdepth 1 -type f -size -64k ! -name .stamp \
                -exec cp {} "$seeds.tmp/" \; && mv "$seeds.tmp" "$seeds"
    fi
    for t in "$BUILD"/fuzz/fuzz_*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        log="$LOGDIR/fuzz_$name.log"
        mkdir -p "$BUILD/fuzz/corpus-$name"
        extra=()
        if [ "$name" = fuzz_pipeline ] && [ -d "$seeds" ]; then extra=("$seeds"); fi
        echo "..   fuzz/$name (${secs}s)"
        ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            timeout $((secs + 120)) "$t" -max_total_time="$secs" -rss_limit_mb=2048 \
            -max_len=65536 -artifact_prefix="$BUILD/fuzz/$name-" "$BUILD/fuzz/corpus-$name" \
            "${extra[@]}" >"$log" 2>&1
        rc=$?
        if [ "$rc" -eq 0 ]; then
            echo "ok - $name: $(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1)" >>"$log"
        else
            echo "not ok - $name found a crash, leak or sanitizer report (exit $rc); input in $BUILD/fuzz/" >>"$log"
        fi
        count "fuzz/$name" "$log" "$rc"
    done
}

# The fault suite needs the stack too: started (or reused, when run_e2e
# already started it) and stopped on exit the same way.
run_faults() {
    local log=$LOGDIR/faults.log rc
    # shellcheck disable=SC2317
    cleanup() { bash test/stack/stop.sh >/dev/null 2>&1 || true; }
    trap cleanup EXIT
    if ! bash test/stack/start.sh >"$LOGDIR/stack-start.log" 2>&1; then
        echo "not ok - local stack (Kafka + MinIO) failed to start" >"$LOGDIR/stack.log"
        cat "$LOGDIR/stack-start.log" >>"$LOGDIR/stack.log"
        count "faults/stack" "$LOGDIR/stack.log" 1
        tail -30 "$LOGDIR/stack-start.log"
        return
    fi
    echo "..   faults (about 6 minutes)"
    ROOT=$ROOT BUILD=$BUILD timeout 1500 bash test/faults/run.sh >"$log" 2>&1
    rc=$?
    count "faults" "$log" "$rc"
    grep -E '^# figures' "$log" | sed 's/^/    /'
}

suite=${1:-all}
shift || true
case $suite in
unit) run_cmocka "$BUILD/test" unit ;;
asan) run_cmocka "$BUILD/asan/test" asan ;;
e2e) run_e2e "$@" ;;
fuzz) run_fuzz ;;
faults) run_faults ;;
all)
    run_cmocka "$BUILD/test" unit
    run_cmocka "$BUILD/asan/test" asan
    run_fuzz
    run_e2e
    run_faults
    ;;
*)
    echo "usage: $0 [unit|asan|fuzz|e2e|faults|all]" >&2
    exit 2
    ;;
esac

echo
if [ "$failed" -gt 0 ]; then
    echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
