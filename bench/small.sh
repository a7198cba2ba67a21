# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034 # OUT, BIN, ... are set by bench/run.sh; RENDITIONS is read by its worker_conf
# bench/small.sh - the small-image workload of bench/run.sh (sourced by it,
# after the stack is up; `bash bench/run.sh --small` or `make bench
# BENCH_WORKLOADS=small` runs only this). Per-record overhead dominates
# here: 400x300 JPEGs, two small renditions, a 12-partition topic with the
# records spread evenly (round-robin by bench/pace, not by key hash). In
# interleaved rounds: imgsink (1 worker x THREADS threads, 2 workers x 1
# thread), bench/limit and sharp's cascade on the same images; for imgsink
# also job-thread busy %, each partition's share of the records written while
# every partition still had a backlog, and latency with a backlog; then
# latency at half the measured throughput. Writes its own section of
# bench/results.md (bench.py small-report).
#
# Environment: BENCH_SMALL_RECORDS (records per run, default 600, rounded up
# to whole passes over the images), BENCH_SMALL_RUNS (rounds, default 3),
# BENCH_SMALL_LAT_S (length of the 50 % load run in seconds, default 20),
# BENCH_SMALL_CONTENDERS (subset of: imgsink-small imgsink-small-2w
# limit-small sharp-small).

SMALL_RENDITIONS=medium=320x320/jpeg/82,thumb=128x128/jpeg/80
SMALL_PARTS=12
SMALL_RUNS=${BENCH_SMALL_RUNS:-3}
SMALL_LAT_S=${BENCH_SMALL_LAT_S:-20}
SMALL_DIR=$ROOT/$BUILD/bench/small-images

# 400x300 images made deterministically from the corpus: each photograph
# cut to 800x600 (cover, centred) and that split into its four quadrants,
# so every image is distinct content. Cached; made again when the corpus or
# this recipe changes.
small_images() {
	local recipe f base tmp k
	recipe="v1 $(basename -a "${FILES[@]}" | tr '\n' ' ')"
	if [[ -f $SMALL_DIR/.recipe && $(<"$SMALL_DIR/.recipe") == "$recipe" ]]; then
		return
	fi
	rm -rf "$SMALL_DIR"
	mkdir -p "$SMALL_DIR"
	tmp=$SMALL_DIR/.tmp.v
	for f in "${FILES[@]}"; do
		base=$(basename "$f" .jpg)
		# (stderr: libvips warns about the EXIF resolution unit of some)
		vips thumbnail "$f" "$tmp" 800 --height 600 --crop centre 2>/dev/null
		k=0
		for xy in "0 0" "400 0" "0 300" "400 300"; do
			# shellcheck disable=SC2086 # two numbers
			vips crop "$tmp" "$SMALL_DIR/small-$base-$k.jpg[Q=85,strip]" $xy 400 300 2>/dev/null
			k=$((k + 1))
		done
	done
	rm -f "$tmp"
	echo "$recipe" >"$SMALL_DIR/.recipe"
}

small_topic() { # NAME
	bash test/stack/topic.sh "$1" "$SMALL_PARTS" >/dev/null
}

# wait_assigned LOG...: until the partitions the workers hold cover all
# SMALL_PARTS partitions and none of the workers is left without any. The
# worker uses cooperative-sticky assignment: its "partitions assigned" and
# "partitions revoked"/"lost" lines list only what is added or taken away.
wait_assigned() {
	local i
	for ((i = 0; i < 600; i++)); do
		"$PY" - "$SMALL_PARTS" "$@" <<-'EOF' && return 0
			import json, sys
			held = []
			for path in sys.argv[2:]:
			    cur = set()
			    for line in open(path, errors="replace"):
			        if not line.startswith("{"):
			            continue
			        try:
			            d = json.loads(line)
			        except ValueError:
			            continue
			        msg = str(d.get("msg", ""))
			        if msg == "partitions assigned":
			            cur |= set(d.get("partitions") or [])
			        elif msg.startswith(("partitions revoked", "partitions lost")):
			            cur -= set(d.get("partitions") or [])
			    held.append(cur)
			ok = all(held) and len({p for h in held for p in h}) == int(sys.argv[1])
			sys.exit(0 if ok else 1)
		EOF
		sleep 0.1
	done
	die "workers did not settle on the $SMALL_PARTS partitions in 60 s (logs: $*)"
}

run_imgsink_small() { # ROUND CONTENDER WORKERS THREADS_PER_WORKER
	local round=$1 name=$2 nw=$3 nt=$4 tag topic pids=() logs=() i hwm=0 wcpu=0 c0 c1 n addr
	local metrics=()
	tag=$name-r$round-$$
	topic=bench-$tag
	small_topic "$topic"
	worker_conf "$OUT/$tag.conf" "$topic" "g-$tag" "bench/$tag" "$nt"
	c0=$(stack_cpu)
	for ((i = 0; i < nw; i++)); do
		start_worker "$OUT/$tag.conf" "$OUT/$tag.w$i.log"
		pids+=("$WPID")
		logs+=("$OUT/$tag.w$i.log")
	done
	# The backlog goes in once the group is settled (every worker holding
	# its share of the partitions), so a second worker's join does not
	# measure the rebalance; bench/pace writes it many times faster than
	# the workers drain it. Time then runs from the first record's timestamp.
	wait_assigned "${logs[@]}"
	"$BIN/pace" -b "$KAFKA_BOOTSTRAP" -s "$SMALL_SRC" -S "$SMALL_PARTS" -t "$topic" \
		-p "$SMALL_PARTS" -n "$SMALL_N" >"$OUT/$tag.pace.json" 2>>"$OUT/pace.err" ||
		die "$tag: bench/pace failed (see $OUT/pace.err)"
	"$BIN/lagwatch" -b "$KAFKA_BOOTSTRAP" -g "g-$tag" -t "$topic" -p "$SMALL_PARTS" -T 900 \
		>"$OUT/$tag.lag.jsonl" || die "$tag: lag did not reach 0 (logs: $OUT/$tag.w*.log)"
	c1=$(stack_cpu)
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
	n=$(count_metadata "bench/$tag")
	[[ $n -eq $SMALL_N ]] || die "$tag: $n metadata.json objects in the store, expected $SMALL_N"
	kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -e -q -f '%p %o %T\n' >"$OUT/$tag.stamps"
	"$PY" bench/bench.py e2e --out "$SMALL_RESULTS" --lag "$OUT/$tag.lag.jsonl" --expect "$SMALL_N" \
		--mpix "$(awk -v n="$SMALL_N" 'BEGIN { print n * 0.12 }')" \
		--stamps "$OUT/$tag.stamps" --partitions "$SMALL_PARTS" \
		--set contender="\"$name\"" --set round="$round" --set workers="$nw" --set threads="$nt" \
		--set peak_rss_kb="$hwm" --set cpu_s="$wcpu" --set cpu_s_per_image="$(div "$wcpu" "$SMALL_N")" \
		--set stack_cpu_s="$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')" \
		--set config="\"$nw worker(s) x $nt thread(s)\"" \
		"${metrics[@]+"${metrics[@]}"}" "${logs[@]}" >/dev/null
}

run_small_contender() { # ROUND CONTENDER
	local t0
	t0=$(now)
	case $2 in
	imgsink-small) run_imgsink_small "$1" imgsink-small 1 "$THREADS" ;;
	imgsink-small-2w) run_imgsink_small "$1" imgsink-small-2w 2 1 ;;
	limit-small)
		timed "$OUT/one.json" "$BIN/limit" -t "$THREADS" -r "$SMALL_REPEAT" -R "$SMALL_RENDITIONS" \
			"${SMALL_FILES[@]}" 2>>"$OUT/limit.err"
		"$PY" bench/bench.py record --out "$SMALL_RESULTS" --set round="$1" --set peak_rss_kb="$RSS_KB" \
			--set cpu_s="$CPU" --set cpu_s_per_image="$(div "$CPU" "$SMALL_N")" \
			--set contender='"limit-small"' --set config="\"$THREADS thread(s)\"" <"$OUT/one.json"
		;;
	sharp-small)
		NODE_PATH=$NODE_DIR/node_modules UV_THREADPOOL_SIZE=$THREADS \
			timed "$OUT/one.json" node bench/sharp.js -t "$THREADS" -r "$SMALL_REPEAT" -m cascade \
			-R "$SMALL_RENDITIONS" "${SMALL_FILES[@]}"
		"$PY" bench/bench.py record --out "$SMALL_RESULTS" --set round="$1" --set peak_rss_kb="$RSS_KB" \
			--set cpu_s="$CPU" --set cpu_s_per_image="$(div "$CPU" "$SMALL_N")" \
			--set contender='"sharp-small"' \
			--set config="\"$THREADS lanes, sharp.concurrency(1), decode once + cascade\"" <"$OUT/one.json"
		;;
	*) die "unknown small-workload contender $2" ;;
	esac
	log "bench small: round $1 $2: $(tail -n 1 "$SMALL_RESULTS" | "$PY" -c 'import json,sys; r=json.load(sys.stdin); print("%.2f images/s, %.2f s" % (r["images_per_s"], r["seconds"]))') (took $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s)"
}

run_small() {
	local contenders nc r k rate count tag topic wpid
	small_images
	SMALL_FILES=("$SMALL_DIR"/small-*.jpg)
	local nsmall=${#SMALL_FILES[@]}
	((nsmall > 0)) || die "no small images in $SMALL_DIR"
	# Whole passes over the images, so limit and sharp process the same records.
	SMALL_REPEAT=$(((${BENCH_SMALL_RECORDS:-600} + nsmall - 1) / nsmall))
	SMALL_N=$((nsmall * SMALL_REPEAT))
	SMALL_RESULTS=$OUT/small-runs.jsonl
	: >"$SMALL_RESULTS"
	RENDITIONS=$SMALL_RENDITIONS # worker_conf's renditions from here on
	local load0
	load0=$(cut -d' ' -f1-3 /proc/loadavg)
	log "bench small: $nsmall images of 400x300 x $SMALL_REPEAT = $SMALL_N records per run, $SMALL_PARTS partitions, $SMALL_RUNS rounds; load $load0"

	# Every record once in a source topic (keyed by id as imgsink produce
	# does); bench/pace copies them round-robin into each run's topic.
	SMALL_SRC=bench-small-src-$$
	small_topic "$SMALL_SRC"
	"$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$SMALL_SRC" --tenant bench \
		--uploaded-at "$UPLOADED" --repeat "$SMALL_REPEAT" "${SMALL_FILES[@]}" >"$OUT/small-src.produce.log" 2>&1 ||
		die "producing the small images failed (see $OUT/small-src.produce.log)"

	contenders=(imgsink-small imgsink-small-2w limit-small sharp-small)
	if [[ -n ${BENCH_SMALL_CONTENDERS:-} ]]; then read -r -a contenders <<<"$BENCH_SMALL_CONTENDERS"; fi
	nc=${#contenders[@]}
	for ((r = 1; r <= SMALL_RUNS; r++)); do
		for ((k = 0; k < nc; k++)); do
			run_small_contender "$r" "${contenders[$(((k + r - 1) % nc))]}"
		done
	done

	# --- latency at half the measured throughput (1 worker) ---
	rate=$("$PY" -c 'import json,statistics,sys
v = [json.loads(l)["images_per_s"] for l in open(sys.argv[1]) if json.loads(l)["contender"] == "imgsink-small"]
print("%.3f" % (0.5 * statistics.median(v)) if v else "")' "$SMALL_RESULTS")
	if [[ -n $rate ]]; then
		count=$(awk -v r="$rate" -v s="$SMALL_LAT_S" -v n="$SMALL_N" 'BEGIN { c = int(r * s); if (c > n) c = n; if (c < 1) c = 1; print c }')
		tag=small-latency-$$
		topic=bench-$tag
		small_topic "$topic"
		worker_conf "$OUT/$tag.conf" "$topic" "g-$tag" "bench/$tag" "$THREADS"
		start_worker "$OUT/$tag.conf" "$OUT/$tag.log"
		wpid=$WPID
		wait_assigned "$OUT/$tag.log"
		log "bench small: latency run, $count records at $rate records/s"
		"$BIN/pace" -b "$KAFKA_BOOTSTRAP" -s "$SMALL_SRC" -S "$SMALL_PARTS" -t "$topic" \
			-p "$SMALL_PARTS" -n "$count" -r "$rate" >"$OUT/$tag.pace.json" 2>>"$OUT/pace.err" ||
			die "latency run: bench/pace failed"
		"$BIN/lagwatch" -b "$KAFKA_BOOTSTRAP" -g "g-$tag" -t "$topic" -p "$SMALL_PARTS" -T 600 \
			>"$OUT/$tag.lag.jsonl" || die "small latency run: lag did not reach 0"
		stop_workers "$wpid"
		kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -e -q -f '%p %o %T\n' >"$OUT/$tag.stamps"
		"$PY" bench/bench.py latency --log "$OUT/$tag.log" --stamps "$OUT/$tag.stamps" |
			"$PY" -c 'import json,sys; d=json.load(sys.stdin); p=json.load(open(sys.argv[1])); d.update(rate_per_s=float(sys.argv[2]), achieved_rate_per_s=p["rate_per_s"]); print(json.dumps(d))' \
				"$OUT/$tag.pace.json" "$rate" >"$OUT/small-latency.json"
		log "bench small: latency $(cat "$OUT/small-latency.json")"
	fi

	SMALL_META=$("$PY" -c 'import json,sys; print(json.dumps({"images": int(sys.argv[1]), "repeat": int(sys.argv[2]),
		"records": int(sys.argv[3]), "partitions": int(sys.argv[4]), "renditions": sys.argv[5], "runs": int(sys.argv[6]),
		"threads": int(sys.argv[7]), "load_before": sys.argv[8], "load_after": sys.argv[9], "date": sys.argv[10],
		"lat_s": float(sys.argv[11])}))' "$nsmall" "$SMALL_REPEAT" "$SMALL_N" "$SMALL_PARTS" "$SMALL_RENDITIONS" \
		"$SMALL_RUNS" "$THREADS" "$load0" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%FT%TZ)" "$SMALL_LAT_S")
	echo "$SMALL_META" >"$OUT/small-meta.json"
	"$PY" bench/bench.py small-report --dir "$OUT" --md "bench/results${BENCH_TAG:-}.md" \
		--command "${SMALL_COMMAND:-bash bench/run.sh --small}"
	log "bench small: wrote its section of bench/results${BENCH_TAG:-}.md"
}
