#!/usr/bin/env bash
# Runs imgsink's test suites and ends with one summary line:
#   "N passed, M failed, K skipped"
# A TAP "ok ... # SKIP reason" line is a skip, never a pass.
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
skipped=0
failures=()
# The first "not ok" lines of each failed program, with the two lines after
# each, printed again just above the summary: CI keeps only the head and
# the tail of a long output.
failure_lines=()

# count NAME LOGFILE EXIT: tallies TAP lines of one program's output. "ok"
# lines with a "# SKIP" directive (TAP: any case, after the description)
# are skips; the other "ok" lines are passes.
count() {
    local name=$1 log=$2 rc=$3 p f k
    p=$(grep -cE '^ok( |$)' "$log")
    k=$(grep -ciE '^ok( |$).*#[[:space:]]*skip' "$log")
    p=$((p - k))
    f=$(grep -cE '^not ok( |$)' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # Crashed or failed outside a test case: that is a failure too.
        f=1
        echo "not ok - $name exited with status $rc" >>"$log"
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$k" -eq 0 ]; then
        f=1
        echo "not ok - $name ran no test" >>"$log"
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + k))
    if [ "$f" -gt 0 ]; then
        failures+=("$name")
        local l
        while IFS= read -r l; do
            failure_lines+=("  $name: ${l:0:300}")
        done < <(grep -E -m2 -A2 '^not ok' "$log" | grep -v '^--$' | head -6)
        echo "FAIL $name ($p passed, $f failed, $k skipped) - log: $log"
        grep -E '^not ok|^# ' "$log" | head -20 | sed 's/^/    /'
    else
        echo "ok   $name ($p passed$([ "$k" -gt 0 ] && echo ", $k skipped"))"
    fi
    if [ "$k" -gt 0 ]; then
        grep -iE '^ok( |$).*#[[:space:]]*skip' "$log" | head -10 | sed 's/^/    /'
    fi
}

# preflight SUITE: the tools SUITE needs, checked before it runs so a
# missing one reads as such, not as a linker error or a stack that does not
# start. Prints one "not ok - preflight: ..." line per missing tool into the
# summary (a failure) and returns 1 when anything is missing.
# minio, mc and toxiproxy-server live in the deps cache (test/stack/common.sh).
IMGSINK_BIN=$(. test/stack/common.sh && echo "$IMGSINK_BIN")
have_tool() { command -v "$1" >/dev/null 2>&1 || [ -x "$IMGSINK_BIN/$1" ]; }
# runtime_lib COMPILER FILE: the compiler finds FILE (it prints the bare
# name when it does not).
runtime_lib() { local f; f=$("$1" -print-file-name="$2" 2>/dev/null) && [ -f "$f" ]; }
preflight() {
    local suite=$1 log=$LOGDIR/preflight-$1.log missing=() t
    local pkgs="rdkafka vips avro-c libcurl libcrypto jansson libxml-2.0 libmicrohttpd cmocka"
    case $suite in
    unit | asan)
        for t in cc pkg-config; do have_tool "$t" || missing+=("$t"); done
        if have_tool pkg-config; then
            for t in $pkgs; do pkg-config --exists "$t" || missing+=("the $t library (pkg-config $t)"); done
        fi
        if [ "$suite" = asan ] && have_tool cc; then
            for t in libasan.so libubsan.so; do runtime_lib cc "$t" || missing+=("cc's $t"); done
        fi
        ;;
    fuzz)
        if have_tool clang; then
            for t in libclang_rt.fuzzer-x86_64.a libclang_rt.asan-x86_64.a; do
                runtime_lib clang "$t" || missing+=("clang's $t")
            done
        else
            missing+=(clang)
        fi
        ;;
    e2e)
        for t in java kcat mc minio curl python3 exiftool gdb promtool toxiproxy-server vips; do
            have_tool "$t" || missing+=("$t")
        done
        if have_tool python3 && ! python3 -c 'import yaml' 2>/dev/null; then
            missing+=("python3 with yaml")
        fi
        ;;
    faults)
        have_tool toxiproxy-server || missing+=(toxiproxy-server)
        ;;
    esac
    [ ${#missing[@]} -eq 0 ] && return 0
    : >"$log"
    for t in "${missing[@]}"; do
        echo "not ok - preflight: $suite needs $t (install with make deps)" | tee -a "$log"
    done
    count "$suite/preflight" "$log" 1 >/dev/null
    return 1
}

run_cmocka() {
    local dir=$1 label=$2 t name log rc n=0 wrap=()
    preflight "$label" || return
    # Line-buffered, so a program that dies shows the test it died in:
    # cmocka keeps a test's messages until the test ends and exits with
    # status 255, printing nothing, when a signal hits another thread. Not
    # under ASan: stdbuf works by LD_PRELOAD, and ASan's runtime must be
    # the first library loaded.
    if [ "$label" = unit ]; then wrap=(stdbuf -oL -eL); fi
    for t in "$dir"/test_*; do
        [ -x "$t" ] || continue
        n=$((n + 1))
        name="$label/$(basename "$t")"
        log="$LOGDIR/${label}_$(basename "$t").log"
        CMOCKA_MESSAGE_OUTPUT=TAP ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            timeout 300 "${wrap[@]}" "$t" >"$log" 2>&1
        rc=$?
        count "$name" "$log" "$rc"
    done
    if [ "$n" -eq 0 ]; then
        # Nothing built is not nothing failed.
        echo "not ok - $label: no test program in $dir (make build-tests)" >"$LOGDIR/$label.log"
        count "$label" "$LOGDIR/$label.log" 1
    fi
}

# start_stack SUITE: starts (or reuses) the local stack for SUITE; on
# failure counts a "not ok" for SUITE/stack and returns 1. The stack is
# stopped when this script exits, unless it was running before the first
# suite started it (`make demo`, another run's): that one is someone
# else's and is left running.
stack_owned=
start_stack() {
    if ! bash test/stack/start.sh >"$LOGDIR/stack-start.log" 2>&1; then
        echo "not ok - local stack (Kafka + MinIO) failed to start" >"$LOGDIR/stack.log"
        cat "$LOGDIR/stack-start.log" >>"$LOGDIR/stack.log"
        count "$1/stack" "$LOGDIR/stack.log" 1
        tail -30 "$LOGDIR/stack-start.log"
        [ "$stack_owned" = no ] || trap 'bash test/stack/stop.sh >/dev/null 2>&1 || true' EXIT
        return 1
    fi
    if [ -z "$stack_owned" ]; then
        if grep -q '^kafka: reused' "$LOGDIR/stack-start.log" &&
            grep -q '^minio: reused' "$LOGDIR/stack-start.log"; then
            stack_owned=no
            echo "#    the stack at ${IMGSINK_STACK_DIR:-.stack} was running already: it is left running"
        else
            stack_owned=yes
            trap 'bash test/stack/stop.sh >/dev/null 2>&1 || true' EXIT
        fi
    fi
}

run_e2e() {
    local t name log rc
    preflight e2e || return
    start_stack e2e || return
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
    preflight fuzz || return
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
    preflight faults || return
    start_stack faults || return
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
    printf '%s\n' "${failure_lines[@]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
