#!/usr/bin/env bash
# shellcheck disable=SC2034 # META_* reach bench/bench.py through the environment
# bench/run.sh - imgsink's benchmark (`make bench`, by hand, never part of
# `make test`). Makes the standard rendition set (bench/renditions.conf) of
# the wallpaper corpus with every contender on the same cores, round after
# round in a rotating order, then writes bench/results.md, bench/throughput.png
# and bench/rss.png. bench/method.md says what is measured and how.
#
# Every contender runs against Debian 13's libraries: imgsink and bench/limit
# from the default build (the Debian 13 sysroot's loader and libraries),
# ImageMagick installed in that sysroot by bench/deps.sh and run inside it
# (scripts/sysroot-run.sh); sharp bundles its own libvips. limit-deb12 is
# bench/limit built against the host's Debian 12 libvips (make PLATFORM=host),
# a reference row.
#
#   bench/run.sh                 # what `make bench` runs after building
#   bench/run.sh --small         # only the small-image workload (bench/small.sh)
#
# Environment: BENCH_WORKLOADS (default "standard small"; `make bench
# BENCH_WORKLOADS=small` is the same as --small); bench/small.sh lists its own.
# Environment: BENCH_RUNS (rounds, default 3), BENCH_PASSES (corpus passes per
# run, default 2), BENCH_THREADS (default nproc), BENCH_RSS_REPEAT (default
# 10), BENCH_NODE_DIR (sharp's install dir, default $IMGSINK_CACHE/bench-node),
# BENCH_CONTENDERS (the contenders, in the names of bench/bench.py; default
# the issue's set: limit limit-1t limit-deb12 imgsink imgsink-1x1 imgsink-2x1
# sharp-cascade magick-hint), BENCH_LAT_PASSES (corpus passes per latency
# run, default 3), BENCH_TAG
# (suffix of the report's file names, e.g. -jemalloc: bench/results-jemalloc.md),
# BENCH_BASELINE (another build dir, e.g. build when BUILD=build/jemalloc: adds
# the contenders limit-base, imgsink-base and imgsink-base-q run from it),
# BENCH_KEEP_STACK=1 (leave the Kafka + MinIO it started running),
# IMGSINK_STACK_DIR (default build/bench/stack: a stack of its own).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WORKLOADS=${BENCH_WORKLOADS:-standard small}
SMALL_COMMAND="make bench BENCH_WORKLOADS=\"$WORKLOADS\""
if [[ ${1:-} == --small ]]; then
	WORKLOADS=small
	SMALL_COMMAND="bash bench/run.sh --small"
elif (($#)); then
	echo "usage: bench/run.sh [--small]" >&2
	exit 2
fi
for w in $WORKLOADS; do
	[[ $w == standard || $w == small ]] || { echo "BENCH_WORKLOADS: $w: expected standard and/or small" >&2; exit 2; }
done
want() { [[ " $WORKLOADS " == *" $1 "* ]]; }
export IMGSINK_STACK_DIR=${IMGSINK_STACK_DIR:-$ROOT/${BUILD:-build}/bench/stack}
# shellcheck source=SCRIPTDIR/../test/stack/common.sh
. test/stack/common.sh

RUNS=${BENCH_RUNS:-3}
PASSES=${BENCH_PASSES:-2}
THREADS=${BENCH_THREADS:-$(nproc)}
RSS_REPEAT=${BENCH_RSS_REPEAT:-10}
RSS_INTERVAL=0.2
LAT_PASSES=${BENCH_LAT_PASSES:-3} # latency runs: the corpus LAT_PASSES times, paced
LAT_LOADS="0.5 0.8"               # offered load as fractions of the measured throughput
NODE_DIR=${BENCH_NODE_DIR:-$IMGSINK_CACHE/bench-node}
BUILD=${BUILD:-build}
BIN=$ROOT/$BUILD/bench
OUT=$BIN/out
IMGSINK=$ROOT/$BUILD/imgsink
PY=$(python3_bin)
UPLOADED=1767225600000 # fixed key dates: 2026-01-01
CLK_TCK=$(getconf CLK_TCK)

# Debian 13's ImageMagick 7 in the sysroot, under its versioned name, run
# inside the sysroot (its coder modules and policy are the sysroot's).
SYSROOT=${IMGSINK_SYSROOT:-$IMGSINK_CACHE/sysroot-trixie}
MAGICK=/usr/bin/magick-im7.q16
[[ -x $SYSROOT$MAGICK ]] || die "ImageMagick not installed in the Debian 13 sysroot $SYSROOT: run make bench"
in_sysroot() { IMGSINK_SYSROOT=$SYSROOT bash "$ROOT/scripts/sysroot-run.sh" "$@"; }
sysroot_version() { dpkg-query --admindir="$SYSROOT/var/lib/dpkg" -W -f='${Version}' "$1" 2>/dev/null; }
# bench/limit against the host's Debian 12 libvips: the limit-deb12 row.
DEB12_LIMIT=$ROOT/build/host/bench/limit
for f in "$IMGSINK" "$BIN/limit" "$BIN/lagwatch" "$BIN/pace" "$NODE_DIR/node_modules/sharp/package.json"; do
	[[ -e $f ]] || die "$f missing: run make bench"
done
BASE_BIN=''
if [[ -n ${BENCH_BASELINE:-} ]]; then
	BASE_BIN=$ROOT/$BENCH_BASELINE
	for f in "$BASE_BIN/imgsink" "$BASE_BIN/bench/limit"; do
		[[ -x $f ]] || die "$f missing (BENCH_BASELINE=$BENCH_BASELINE)"
	done
fi
for c in node gnuplot kcat /usr/bin/time; do
	command -v "$c" >/dev/null || die "$c not found: run make bench"
done

RENDITIONS=$(sed -n 's/^renditions *= *//p' bench/renditions.conf)
default=$("$IMGSINK" config 2>/dev/null | sed -n 's/^renditions=//p')
[[ $RENDITIONS == "$default" ]] ||
	die "bench/renditions.conf ($RENDITIONS) differs from imgsink's default renditions ($default)"

rm -rf "$OUT"
mkdir -p "$OUT"
RESULTS=$OUT/runs.jsonl
: >"$RESULTS"

# --- cleanup: exactly what this script started ----------------------------------
PIDS=()
stack_started=0
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	if ((stack_started)) && [[ -z ${BENCH_KEEP_STACK:-} ]]; then
		bash test/stack/stop.sh --purge >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT
# forget PID: drop one from the cleanup list once it is waited for.
forget() {
	local keep=() p
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]+"${keep[@]}"}")
}

# --- stack and corpus --------------------------------------------------------------
if ! pid_of "$IMGSINK_STACK_DIR/kafka.pid" "kafka/server.properties" >/dev/null 2>&1; then
	stack_started=1
fi
bash test/stack/start.sh
set -a
# shellcheck disable=SC1091
. "$IMGSINK_STACK_DIR/env"
set +a
read -r -a MCCMD <<<"$MC"

CORPUS=$(bash test/corpus.sh | tail -n 1 | sed 's/^[0-9]* images in //')
FILES=("$CORPUS"/*.jpg)
NFILES=${#FILES[@]}
((NFILES > 0)) || die "no corpus"
# width height of each image, and the ImageMagick shrink-on-load hint: the
# size of the largest rendition's box fitted to the image.
: >"$OUT/corpus.tsv"
for f in "${FILES[@]}"; do
	w=$(vipsheader -f width "$f" 2>/dev/null)
	h=$(vipsheader -f height "$f" 2>/dev/null)
	echo "$f $w $h $(awk -v w="$w" -v h="$h" 'BEGIN { s = 2048 / (w > h ? w : h); if (s > 1) s = 1;
		printf "%dx%d", int(w * s + 0.999), int(h * s + 0.999) }')" >>"$OUT/corpus.tsv"
done
MPIX=$(awk '{ s += $2 * $3 } END { printf "%.3f", s / 1e6 }' "$OUT/corpus.tsv")
mkdir -p "$OUT/corpus"
cp "${FILES[@]}" "$OUT/corpus/"
NIMG=$((NFILES * PASSES))

# --- machine and versions ------------------------------------------------------------
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
sharp_versions=$(NODE_PATH=$NODE_DIR/node_modules node -e \
	'const s = require("sharp"); console.log(s.versions.sharp + " (bundles libvips " + s.versions.vips + ")")')
git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=''
if git -C "$ROOT" status --porcelain 2>/dev/null | grep -q .; then git_dirty=', uncommitted changes'; fi
# Which libvips a binary runs with: the sysroot's (Debian 13), the host's
# (Debian 12) or another one's (a BENCH_BASELINE build). The binary's own loader
# resolves its libraries (ldd would use the host's).
vips_of() {
	local libs
	libs=$(LD_TRACE_LOADED_OBJECTS=1 "$1" 2>/dev/null || true)
	if grep -q 'libvips-cpp\.so' <<<"$libs"; then
		echo "npm's $(grep -o 'libvips-cpp\.so\.[0-9.]*' <<<"$libs" | head -n 1 | sed 's/libvips-cpp\.so\./libvips /') (not Debian's)"
	elif grep -q "$SYSROOT/.*libvips\.so" <<<"$libs"; then
		echo "Debian 13's libvips $(sysroot_version libvips42t64) (the sysroot's)"
	else
		echo "the host's Debian 12 libvips $(dpkg-query -W -f='${Version}' libvips42 2>/dev/null)"
	fi
}
imgsink_vips=$(vips_of "$IMGSINK")
META_imgsink="$(cat VERSION) (git $git_rev$git_dirty), linked against $imgsink_vips; bench/limit likewise"
if [[ -n $BASE_BIN ]]; then
	if ldd "$BASE_BIN/imgsink" | grep -q 'libvips-cpp\.so'; then
		META_baseline="$BENCH_BASELINE/imgsink and $BENCH_BASELINE/bench/limit, linked against npm's libvips"
	else
		META_baseline="$BENCH_BASELINE/imgsink and $BENCH_BASELINE/bench/limit, linked against $(vips_of "$BASE_BIN/imgsink")"
	fi
fi
META_libvips="Debian 13: $(sysroot_version libvips42t64) (imgsink, limit)"
if [[ -x $DEB12_LIMIT ]]; then
	META_libvips+="; Debian 12: $(dpkg-query -W -f='${Version}' libvips42 2>/dev/null) (limit-deb12: $(vips_of "$DEB12_LIMIT"))"
fi
META_sharp=$sharp_versions
META_imagemagick="$(in_sysroot "$MAGICK" -version | head -n 1 | sed 's/ https.*//') (Debian 13: $(sysroot_version imagemagick), run in the sysroot)"
META_node="$(node --version)"
META_kafka="$KAFKA_VERSION (KRaft, one node, loopback); MinIO $MINIO_VERSION (one drive)"
META_librdkafka="Debian 13: $(sysroot_version librdkafka1)"
META_cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
META_mem_gib="$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"
META_kernel="Linux $(uname -r)"
META_nproc=$(nproc) META_load_before=$load_before META_runs=$RUNS META_passes=$PASSES
META_renditions=$RENDITIONS META_corpus_images=$NFILES META_corpus_mpix=$MPIX
META_rss_interval=$RSS_INTERVAL META_date="$(date -u +%FT%TZ)"
META_corpus_min="$(awk '{ print $2 * $3, $2 "x" $3 }' "$OUT/corpus.tsv" | sort -n | head -n 1 | cut -d' ' -f2)"
META_corpus_max="$(awk '{ print $2 * $3, $2 "x" $3 }' "$OUT/corpus.tsv" | sort -n | tail -n 1 | cut -d' ' -f2)"
export "${!META_@}"
write_meta() {
	"$PY" - "$OUT/meta.json" <<-'EOF'
		import json, os, sys
		m = {k[5:]: v for k, v in os.environ.items() if k.startswith("META_")}
		for k in ("nproc", "runs", "passes", "corpus_images"):
		    m[k] = int(m[k])
		m["corpus_mpix"] = float(m["corpus_mpix"])
		m["shared"] = float(m["load_before"].split()[0]) > 0.5 or float(m.get("load_after", "0").split()[0]) > 0.5
		json.dump(m, open(sys.argv[1], "w"), indent=1)
	EOF
}
write_meta
log "bench: $NFILES images ($MPIX MP) x $PASSES passes per run, $RUNS rounds, $THREADS threads; load $load_before"

# --- helpers -------------------------------------------------------------------------------
now() { date +%s.%N; }
# cpu_s PID: user + system seconds of a live process.
cpu_s() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	s=${s##*) }
	awk -v t="$CLK_TCK" '{ printf "%.2f", ($12 + $13) / t }' <<<"$s"
}
stack_cpu() {
	local k m
	k=$(pid_of "$IMGSINK_STACK_DIR/kafka.pid" "kafka/server.properties" || echo 0)
	m=$(pid_of "$IMGSINK_STACK_DIR/minio.pid" "minio/data" || echo 0)
	awk -v a="$(cpu_s "$k")" -v b="$(cpu_s "$m")" 'BEGIN { printf "%.2f", a + b }'
}
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }

# timed OUTJSON CMD...: runs CMD under /usr/bin/time; sets RSS_KB and CPU.
timed() {
	local out=$1
	shift
	/usr/bin/time -f '%M %U %S' -o "$OUT/time.txt" "$@" >"$out"
	read -r RSS_KB u s <"$OUT/time.txt"
	CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
}

run_limit() { # ROUND CONTENDER THREADS
	timed "$OUT/one.json" "${LIMIT_BIN:-$BIN/limit}" -t "$3" -r "$PASSES" "${FILES[@]}" 2>>"$OUT/limit.err"
	"$PY" bench/bench.py record --out "$RESULTS" --set round="$1" --set peak_rss_kb="$RSS_KB" \
		--set cpu_s="$CPU" --set cpu_s_per_image="$(div "$CPU" "$NIMG")" \
		--set contender="\"$2\"" --set config="\"$3 thread(s)\"" <"$OUT/one.json"
}

run_sharp() { # ROUND MODE
	NODE_PATH=$NODE_DIR/node_modules UV_THREADPOOL_SIZE=$THREADS \
		timed "$OUT/one.json" node bench/sharp.js -t "$THREADS" -r "$PASSES" -m "$2" "${FILES[@]}"
	"$PY" bench/bench.py record --out "$RESULTS" --set round="$1" --set peak_rss_kb="$RSS_KB" \
		--set cpu_s="$CPU" --set cpu_s_per_image="$(div "$CPU" "$NIMG")" \
		--set config="\"$THREADS lanes, sharp.concurrency(1)\"" <"$OUT/one.json"
}

# One convert per image, THREADS at a time, one thread each; decode once,
# then each rendition is cut from the previous one (as imgsink does).
# shellcheck disable=SC2016 # expanded by the inner bash
MAGICK_ONE='f=$1 hint=$2 o=$OUT_DIR/$(basename "$1" .jpg)
def=()
[ "$MODE" = magick-hint ] && def=(-define "jpeg:size=$hint")
exec "$MAGICK" "${def[@]}" "$f" -auto-orient -strip -resize "2048x2048>" \
	\( +clone -quality 80 -write "$o.large.webp" +delete \) -resize "512x512>" \
	\( +clone -quality 82 -write "$o.medium.jpg" +delete \) -resize "128x128>" \
	-quality 80 "$o.thumb.jpg"'
run_magick() { # ROUND MODE
	local t0 t1 p
	rm -rf "$OUT/magick" && mkdir -p "$OUT/magick"
	# Inside the sysroot only the clone is visible: the corpus's copy in $OUT.
	for ((p = 0; p < PASSES; p++)); do
		awk -v d="$OUT/corpus" '{ n = split($1, a, "/"); print d "/" a[n], $4 }' "$OUT/corpus.tsv"
	done >"$OUT/magick.list"
	t0=$(now)
	timed /dev/null env IMGSINK_SYSROOT="$SYSROOT" bash scripts/sysroot-run.sh env MODE="$2" MAGICK="$MAGICK" OUT_DIR="$OUT/magick" MAGICK_THREAD_LIMIT=1 \
		OMP_NUM_THREADS=1 xargs -P "$THREADS" -L 1 bash -c "$MAGICK_ONE" _ <"$OUT/magick.list" 2>>"$OUT/magick.err"
	t1=$(now)
	[[ $(find "$OUT/magick" -type f | wc -l) -eq $((NFILES * 3)) ]] || die "ImageMagick made too few files"
	echo "{\"contender\": \"$2\", \"threads\": $THREADS, \"images\": $NIMG, \"failures\": 0,
		\"seconds\": $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'),
		\"images_per_s\": $(awk -v a="$t0" -v b="$t1" -v n="$NIMG" 'BEGIN { printf "%.3f", n / (b - a) }'),
		\"megapixels_per_s\": $(awk -v a="$t0" -v b="$t1" -v m="$MPIX" -v p="$PASSES" 'BEGIN { printf "%.2f", m * p / (b - a) }')}" |
		tr -d '\n\t' >"$OUT/one.json"
	echo >>"$OUT/one.json"
	"$PY" bench/bench.py record --out "$RESULTS" --set round="$1" --set peak_rss_kb="$RSS_KB" \
		--set cpu_s="$CPU" --set cpu_s_per_image="$(div "$CPU" "$NIMG")" \
		--set config="\"$THREADS processes, 1 thread each\"" <"$OUT/one.json"
}

# worker_conf FILE TOPIC GROUP PREFIX THREADS: the standard renditions
# spelled out, debug log for the per-record lines, and offsets committed
# every 100 ms instead of 5 s so lag 0 is seen when it happens (commit
# frequency costs the worker nothing measurable).
worker_conf() {
	cat >"$1" <<-EOF
		kafka.bootstrap.servers=$KAFKA_BOOTSTRAP
		kafka.group.id=$3
		kafka.auto.commit.interval.ms=100
		input.topics=$2
		dlq.topic=$DLQ_TOPIC
		s3.endpoint=$S3_ENDPOINT
		s3.region=$S3_REGION
		s3.bucket=$S3_BUCKET
		s3.path.style=true
		s3.prefix=$4/
		renditions=$RENDITIONS
		worker.threads=$5
		log.level=debug
	EOF
	# Workers side by side: each its own free port for the HTTP endpoints.
	if [[ -n $HTTP_KEY ]]; then echo "http.listen=127.0.0.1:0" >>"$1"; fi
}
HTTP_KEY=$("$IMGSINK" config 2>/dev/null | grep '^http\.listen=' || true)
start_worker() { # CONF LOG
	IMGSINK_S3_ACCESS_KEY=$S3_ACCESS_KEY IMGSINK_S3_SECRET_KEY=$S3_SECRET_KEY \
		"$IMGSINK" run -c "$1" >"$2" 2>&1 &
	WPID=$!
	PIDS+=("$WPID")
}
stop_workers() { # PID...
	local p
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "$@"; do
		wait "$p" || die "worker $p exited with status $?"
		forget "$p"
	done
}
count_metadata() { # PREFIX
	"${MCCMD[@]}" ls --recursive "$MC_ALIAS/$S3_BUCKET/$1/" 2>/dev/null | grep -c '/metadata\.json$' || true
}
new_topic() { # NAME
	bash test/stack/topic.sh "$1" 6 >/dev/null
}

# settle_group TAG LOG...: waits until the workers' group is stable, every
# worker holding partitions and all 6 assigned (imgsink_assigned_partitions
# on each worker's /metrics); prints the seconds it took.
settle_group() {
	local tag=$1 t0 deadline addr sum ok l a
	shift
	t0=$(now)
	deadline=$((SECONDS + 120))
	while ((SECONDS < deadline)); do
		sum=0 ok=1
		for l in "$@"; do
			addr=$(grep -o '"msg":"serving /metrics[^}]*"address":"[^"]*"' "$l" | sed 's/.*"address":"//; s/"$//' || true)
			a=$([[ -n $addr ]] && curl -fsS --max-time 2 "http://$addr/metrics" 2>/dev/null |
				awk '$1 == "imgsink_assigned_partitions" { print $2 }')
			[[ ${a:-0} -gt 0 ]] || ok=0
			sum=$((sum + ${a:-0}))
		done
		if ((ok && sum == 6)); then
			awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
			return 0
		fi
		sleep 0.2
	done
	die "$tag: the group did not settle (every worker assigned, 6 partitions) within 120 s"
}

run_imgsink() { # ROUND CONTENDER WORKERS THREADS_PER_WORKER [MAX_INFLIGHT]
	local round=$1 name=$2 nw=$3 nt=$4 inflight=${5:-} tag topic pids=() logs=() i hwm=0 wcpu=0 c0 c1 n
	local settled="" start=()
	tag=$name-r$round-$$
	topic=bench-$tag
	new_topic "$topic"
	worker_conf "$OUT/$tag.conf" "$topic" "g-$tag" "bench/$tag" "$nt"
	if [[ -n $inflight ]]; then echo "worker.max.inflight=$inflight" >>"$OUT/$tag.conf"; fi
	# Round-robin: the records spread evenly over the 6 partitions, so the
	# workers' shares are what the group's assignment makes them, not the
	# hash of 38 keys.
	produce() {
		"$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --tenant bench --partitioner round-robin \
			--uploaded-at "$UPLOADED" --repeat "$PASSES" "$CORPUS" >"$OUT/$tag.produce.log" 2>&1 ||
			die "$tag: imgsink produce failed (see $OUT/$tag.produce.log)"
	}
	# The 1-thread runs that the 2-against-1 ratio compares measure the
	# workers, not the group's joining: the workers start on the empty
	# topic, the run waits until the group is stable (with librdkafka's
	# default heartbeat.interval.ms of 3 s a second member gets its
	# partitions about 6 s after it starts: two cooperative rounds, each
	# noticed at a heartbeat), then the records are produced and the time
	# counts from the first one. Every other run has the records in the
	# topic first and counts from the first assignment.
	case $name in imgsink-1x1 | imgsink-2x1) settled=1 ;; esac
	[[ -n $settled ]] || produce
	c0=$(stack_cpu)
	for ((i = 0; i < nw; i++)); do
		start_worker "$OUT/$tag.conf" "$OUT/$tag.w$i.log"
		pids+=("$WPID")
		logs+=("$OUT/$tag.w$i.log")
	done
	if [[ -n $settled ]]; then
		settled=$(settle_group "$tag" "${logs[@]}") || exit 1
		c0=$(stack_cpu)
		produce
	fi
	"$BIN/lagwatch" -b "$KAFKA_BOOTSTRAP" -g "g-$tag" -t "$topic" -p 6 -T 900 >"$OUT/$tag.lag.jsonl" ||
		die "$tag: lag did not reach 0 (logs: $OUT/$tag.w*.log)"
	c1=$(stack_cpu)
	# The worker's own counters, where it serves them (http.listen).
	local metrics=() addr
	for ((i = 0; i < nw; i++)); do
		addr=$(grep -o '"msg":"serving /metrics[^}]*"address":"[^"]*"' "${logs[$i]}" | sed 's/.*"address":"//; s/"$//' || true)
		if [[ -n $addr ]] && curl -fsS --max-time 5 "http://$addr/metrics" >"$OUT/$tag.w$i.metrics" 2>/dev/null; then
			metrics+=(--metrics "$OUT/$tag.w$i.metrics")
		fi
	done
	for i in "${pids[@]}"; do
		hwm=$((hwm + $(awk '/^VmHWM/ { print $2 }' "/proc/$i/status")))
		wcpu=$(awk -v a="$wcpu" -v b="$(cpu_s "$i")" 'BEGIN { printf "%.2f", a + b }')
	done
	stop_workers "${pids[@]}"
	if [[ $settled ]]; then
		kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -e -q -f '%p %o %T\n' >"$OUT/$tag.stamps"
		start=(--start-stamps "$OUT/$tag.stamps" --set settle_s="$settled")
	fi
	n=$(count_metadata "bench/$tag")
	[[ $n -eq $NIMG ]] || die "$tag: $n metadata.json objects in the store, expected $NIMG"
	"$PY" bench/bench.py e2e --out "$RESULTS" --lag "$OUT/$tag.lag.jsonl" --expect "$NIMG" \
		--mpix "$(awk -v m="$MPIX" -v p="$PASSES" 'BEGIN { print m * p }')" \
		--set contender="\"$name\"" --set round="$round" --set workers="$nw" --set threads="$nt" \
		--set peak_rss_kb="$hwm" --set cpu_s="$wcpu" --set cpu_s_per_image="$(div "$wcpu" "$NIMG")" \
		--set stack_cpu_s="$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')" \
		--set config="\"$nw worker(s) x $nt thread(s)${inflight:+, worker.max.inflight=$inflight}\"" \
		"${start[@]+"${start[@]}"}" "${metrics[@]+"${metrics[@]}"}" "${logs[@]}" >/dev/null
}

run_contender() { # ROUND CONTENDER
	local t0
	t0=$(now)
	case $2 in
	limit) run_limit "$1" limit "$THREADS" ;;
	limit-1t) run_limit "$1" limit-1t 1 ;;
	limit-deb12) LIMIT_BIN=$DEB12_LIMIT run_limit "$1" limit-deb12 "$THREADS" ;;
	imgsink) run_imgsink "$1" imgsink 1 "$THREADS" ;;
	imgsink-1x1) run_imgsink "$1" imgsink-1x1 1 1 ;;
	imgsink-2x1) run_imgsink "$1" imgsink-2x1 2 1 ;;
	imgsink-q) run_imgsink "$1" imgsink-q 1 "$THREADS" $((8 * THREADS)) ;;
	limit-base) LIMIT_BIN=$BASE_BIN/bench/limit run_limit "$1" limit-base "$THREADS" ;;
	imgsink-base) IMGSINK=$BASE_BIN/imgsink run_imgsink "$1" imgsink-base 1 "$THREADS" ;;
	imgsink-base-q) IMGSINK=$BASE_BIN/imgsink run_imgsink "$1" imgsink-base-q 1 "$THREADS" $((8 * THREADS)) ;;
	imgsink-1x1q) run_imgsink "$1" imgsink-1x1q 1 1 8 ;;
	imgsink-t1) run_imgsink "$1" imgsink-t1 1 $((THREADS + 1)) ;; # a job thread more than cores: PUTs overlap
	imgsink-2x1q) run_imgsink "$1" imgsink-2x1q 2 1 8 ;;
	sharp-source | sharp-cascade) run_sharp "$1" "${2#sharp-}" ;;
	magick | magick-hint) run_magick "$1" "$2" ;;
	esac
	log "bench: round $1 $2: $(tail -n 1 "$RESULTS" | "$PY" -c 'import json,sys; r=json.load(sys.stdin); print("%.2f images/s, %.2f s" % (r["images_per_s"], r["seconds"]))') (took $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s)"
}

# --- small-image workload only (--small) -----------------------------------------------------
# shellcheck source=SCRIPTDIR/small.sh
. bench/small.sh
if ! want standard; then
	run_small
	exit 0
fi

# --- rounds --------------------------------------------------------------------------------
CONTENDERS=(limit limit-1t limit-deb12 imgsink imgsink-1x1 imgsink-2x1 sharp-cascade magick-hint)
if [[ -n ${BENCH_CONTENDERS:-} ]]; then read -r -a CONTENDERS <<<"$BENCH_CONTENDERS"; fi
if [[ " ${CONTENDERS[*]} " == *" limit-deb12 "* && ! -x $DEB12_LIMIT ]]; then
	die "$DEB12_LIMIT missing: make bench builds it (make PLATFORM=host build/host/bench/limit)"
fi
NC=${#CONTENDERS[@]}
# A warm-up run first, not recorded: Kafka's JVM compiles its hot paths
# during the first records it serves, and in a cold stack the first
# worker run paid for it (Kafka + MinIO took 4.96 CPU s against 1.1-1.9 s in
# the later rounds of the same bench, on the same 2 cores).
log "bench: warm-up run of one worker (not recorded)"
run_imgsink 0 warmup 1 "$THREADS"
"$PY" -c 'import json, sys
p = sys.argv[1]
keep = [l for l in open(p) if json.loads(l).get("round") != 0]
open(p, "w").writelines(keep)' "$RESULTS"
for ((r = 1; r <= RUNS; r++)); do
	for ((k = 0; k < NC; k++)); do
		run_contender "$r" "${CONTENDERS[$(((k + (r - 1) * 3) % NC))]}"
	done
done

# --- latency: one worker, records paced at LAT_LOADS x the measured throughput ---
# The corpus LAT_PASSES times in a source topic once; bench/pace copies it
# into each load's own topic, round-robin over its 6 partitions, record i at
# start + i / rate (a fixed schedule), timestamped when produced. Latency:
# that timestamp to the worker's "record written" line (its last PUT); the
# line's queue/decode/encode/PUT times and the worker's
# imgsink_stage_duration_seconds (scraped before and after) split it.
tput=$("$PY" -c 'import json,statistics,sys
v = [json.loads(l)["images_per_s"] for l in open(sys.argv[1]) if json.loads(l)["contender"] == "imgsink"]
print(statistics.median(v) if v else "")' "$RESULTS")
[[ -n $tput ]] || die "latency runs: no imgsink run to take the throughput from (BENCH_CONTENDERS)"
LAT_SRC=bench-latency-src-$$
new_topic "$LAT_SRC"
"$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$LAT_SRC" --tenant bench --partitioner round-robin \
	--uploaded-at "$UPLOADED" --repeat "$LAT_PASSES" "$CORPUS" >"$OUT/latency-src.produce.log" 2>&1 ||
	die "latency runs: imgsink produce failed (see $OUT/latency-src.produce.log)"
LAT_N=$((NFILES * LAT_PASSES))
# scrape_worker LOG OUT: the worker's /metrics at the address it logged.
scrape_worker() {
	local addr
	addr=$(grep -o '"msg":"serving /metrics[^}]*"address":"[^"]*"' "$1" | sed 's/.*"address":"//; s/"$//' || true)
	[[ -n $addr ]] && curl -fsS --max-time 5 "http://$addr/metrics" >"$2" 2>/dev/null
}
run_latency() { # LOAD
	local load=$1 rate pct tag topic wpid i
	rate=$(awk -v t="$tput" -v l="$load" 'BEGIN { printf "%.3f", t * l }')
	pct=$(awk -v l="$load" 'BEGIN { printf "%d", 100 * l + 0.5 }')
	tag=latency-$pct-$$
	topic=bench-$tag
	new_topic "$topic"
	worker_conf "$OUT/$tag.conf" "$topic" "g-$tag" "bench/$tag" "$THREADS"
	start_worker "$OUT/$tag.conf" "$OUT/$tag.log"
	wpid=$WPID
	for ((i = 0; i < 300; i++)); do
		grep -q '"partitions assigned"' "$OUT/$tag.log" && break
		sleep 0.1
	done
	scrape_worker "$OUT/$tag.log" "$OUT/$tag.before.metrics" || rm -f "$OUT/$tag.before.metrics"
	log "bench: latency run at $pct % of $tput images/s: $LAT_N records at $rate records/s"
	"$BIN/pace" -b "$KAFKA_BOOTSTRAP" -s "$LAT_SRC" -S 6 -t "$topic" -p 6 -n "$LAT_N" -r "$rate" \
		>"$OUT/$tag.pace.json" 2>>"$OUT/pace.err" || die "latency run: bench/pace failed (see $OUT/pace.err)"
	"$BIN/lagwatch" -b "$KAFKA_BOOTSTRAP" -g "g-$tag" -t "$topic" -p 6 -T 600 >"$OUT/$tag.lag.jsonl" ||
		die "latency run at $pct %: lag did not reach 0"
	scrape_worker "$OUT/$tag.log" "$OUT/$tag.after.metrics" || rm -f "$OUT/$tag.after.metrics"
	stop_workers "$wpid"
	kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -e -q -f '%p %o %T\n' >"$OUT/$tag.stamps"
	local m=()
	if [[ -f $OUT/$tag.before.metrics && -f $OUT/$tag.after.metrics ]]; then
		m=(--before "$OUT/$tag.before.metrics" --after "$OUT/$tag.after.metrics")
	fi
	"$PY" bench/bench.py latency --log "$OUT/$tag.log" --stamps "$OUT/$tag.stamps" \
		--load "$load" --rate "$rate" --pace "$OUT/$tag.pace.json" --expect "$LAT_N" \
		"${m[@]+"${m[@]}"}" >"$OUT/latency-$pct.json"
	log "bench: latency at $pct %: $(cat "$OUT/latency-$pct.json")"
}
for l in $LAT_LOADS; do run_latency "$l"; done

# --- memory: one worker through RSS_REPEAT x the corpus ---------------------------------
tag=rss-$$
topic=bench-$tag
new_topic "$topic"
"$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --tenant bench \
	--uploaded-at "$UPLOADED" --repeat "$RSS_REPEAT" "$CORPUS" >"$OUT/$tag.produce.log" 2>&1
worker_conf "$OUT/$tag.conf" "$topic" "g-$tag" "bench/$tag" "$THREADS"
start_worker "$OUT/$tag.conf" "$OUT/$tag.log"
wpid=$WPID
(
	while [[ -r /proc/$wpid/status ]]; do
		kb=$(awk '/^VmRSS/ { print $2 }' "/proc/$wpid/status" 2>/dev/null) || break
		[[ -n $kb ]] && echo "$(date +%s.%N) $kb"
		sleep "$RSS_INTERVAL"
	done
) >"$OUT/rss.tsv" &
spid=$!
PIDS+=("$spid")
"$BIN/lagwatch" -b "$KAFKA_BOOTSTRAP" -g "g-$tag" -t "$topic" -p 6 -T 1800 >"$OUT/$tag.lag.jsonl" ||
	die "10x run: lag did not reach 0"
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$wpid/status")
kill -TERM "$spid" 2>/dev/null || true
wait "$spid" 2>/dev/null || true
forget "$spid"
stop_workers "$wpid"
n=$(count_metadata "bench/$tag")
[[ $n -eq $((NFILES * RSS_REPEAT)) ]] || die "10x run: $n metadata.json objects, expected $((NFILES * RSS_REPEAT))"
# The group's offsets as Kafka's own tool reports them: every partition at its end.
"$KAFKA_CLASS" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
	--bootstrap-server "$KAFKA_BOOTSTRAP" --describe --group "g-$tag" 2>/dev/null |
	awk -v t="$topic" '$2 == t { n++; if ($4 != $5) bad = 1 } END { exit !(n == 6 && !bad) }' ||
	die "10x run: kafka-consumer-groups does not show committed = end on all 6 partitions"
"$PY" bench/bench.py rss --samples "$OUT/rss.tsv" --lag "$OUT/$tag.lag.jsonl" \
	--passes "$RSS_REPEAT" --per-pass "$NFILES" >"$OUT/rss.json"
"$PY" bench/bench.py e2e --out "$OUT/rss-run.jsonl" --lag "$OUT/$tag.lag.jsonl" \
	--expect $((NFILES * RSS_REPEAT)) --mpix "$(awk -v m="$MPIX" -v p="$RSS_REPEAT" 'BEGIN { print m * p }')" \
	--set peak_rss_kb="$hwm" "$OUT/$tag.log" >/dev/null
log "bench: memory $(cat "$OUT/rss.json")"
# Plot data: seconds since start, RSS MiB; committed records over time.
awk 'NR == 1 { t0 = $1 } { printf "%.2f %.1f\n", $1 - t0, $2 / 1024 }' "$OUT/rss.tsv" >"$OUT/rss.dat"
"$PY" -c 'import json,sys
t0 = float(open(sys.argv[1]).readline().split()[0])
for l in open(sys.argv[2]):
    d = json.loads(l); print("%.2f %d" % (d["t"] - t0, d["committed"]))' "$OUT/rss.tsv" "$OUT/$tag.lag.jsonl" >"$OUT/committed.dat"

# --- report ----------------------------------------------------------------------------------
META_load_after=$(cut -d' ' -f1-3 /proc/loadavg)
export META_load_after
write_meta
TAG=${BENCH_TAG:-}
"$PY" bench/bench.py report --dir "$OUT" --md "bench/results$TAG.md" --tag="$TAG"
gnuplot -e "dat='$OUT/throughput.dat'; out='bench/throughput$TAG.png'" bench/throughput.gp
gnuplot -e "rss='$OUT/rss.dat'; committed='$OUT/committed.dat'; out='bench/rss$TAG.png'; repeat=$RSS_REPEAT" bench/rss.gp
log "bench: wrote bench/results$TAG.md, bench/throughput$TAG.png, bench/rss$TAG.png"

if want small; then run_small; fi
