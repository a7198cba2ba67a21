#!/usr/bin/env bash
# `imgsink status`: what it reports must be what Kafka's own
# kafka-consumer-groups reports (offsets, lag, members, assignments, state),
# with two workers live, then with both stopped and a backlog; --watch
# follows the catch-up with a progress line and ends cleanly on SIGINT.
. "$(dirname "$0")/lib.sh"

topic=$(unique_name status)
dlq="$topic.dlq"
group=$(unique_name g-status)
prefix=$(out_prefix t41)
bash "$ROOT/test/stack/topic.sh" "$topic" 3 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null

mkdir -p "$TMP/a" "$TMP/b"
for i in $(seq -w 1 18); do vips gaussnoise "$TMP/a/s$i.png" 40 30 || notok "vips s$i"; done
for i in $(seq -w 1 9); do vips gaussnoise "$TMP/b/t$i.png" 40 30 || notok "vips t$i"; done
"$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --tenant acme "$TMP/a" >/dev/null 2>&1 ||
    notok "produce 18 records"

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix"
start_worker w1 "$TMP/w.conf" >/dev/null
start_worker w2 "$TMP/w.conf" >/dev/null
check "two workers: lag 0" wait_for 180 committed_equals_end "$group" "$topic" 3

kgroups() { "$KAFKA_CLASS" consumer-groups --bootstrap-server "$KAFKA_BOOTSTRAP" --group "$group" "$@" 2>/dev/null; }
stable_with() { kgroups --describe --state | awk -v g="$group" -v n="$1" '$1 == g && $(NF - 1) == "Stable" && $NF == n { f = 1 } END { exit !f }'; }
check "group Stable with 2 members (kafka-consumer-groups --state)" wait_for 60 stable_with 2

# compare JSON: our --json against the three kafka-consumer-groups views.
compare() {
    local tag=$1
    "$IMGSINK" status -c "$TMP/w.conf" --json >"$TMP/$tag.json" 2>"$TMP/$tag.err"
    local rc=$?
    "$IMGSINK" status -c "$TMP/w.conf" >"$TMP/$tag.table" 2>>"$TMP/$tag.err"
    kgroups --describe >"$TMP/$tag.offsets"
    kgroups --describe --members --verbose >"$TMP/$tag.members"
    kgroups --describe --state >"$TMP/$tag.state"
    sed 's/^/# /' "$TMP/$tag.table"
    check "$tag: status exits 0 (got $rc)" test $rc -eq 0
    python3 - "$TMP/$tag" "$group" "$topic" <<'PY'
import json, re, sys
base, group, topic = sys.argv[1:4]
st = json.load(open(base + ".json"))
fails = 0
def check(cond, what):
    global fails
    print(("ok - " if cond else "not ok - ") + f"{base.rsplit('/', 1)[1]}: " + what)
    fails += 0 if cond else 1
def rows(path, head):
    lines = [l.split() for l in open(path) if l.strip()]
    hdr = next(l for l in lines if l and l[0] == head)
    return [dict(zip(hdr, l)) for l in lines if l[0] == group and l is not hdr]
# Offsets: CURRENT-OFFSET, LOG-END-OFFSET, LAG, CONSUMER-ID per partition.
want = {}
for r in rows(base + ".offsets", "GROUP"):
    if r["TOPIC"] == topic:
        want[int(r["PARTITION"])] = (r["CURRENT-OFFSET"], r["LOG-END-OFFSET"], r["LAG"], r["CONSUMER-ID"])
def show(v):
    return "-" if v is None else str(v)
got = {p["partition"]: (show(p["committed"]), show(p["end"]), show(p["lag"]), show(p["member_id"]))
       for p in st["partitions"] if p["topic"] == topic}
print(f"# kafka-consumer-groups: {sorted(want.items())}")
print(f"# imgsink status --json: {sorted(got.items())}")
check(got == want and len(got) == 3, "committed, end, lag and member per partition match kafka-consumer-groups")
lags = [int(v[2]) for v in want.values() if v[2] != "-"]
check(st["total_lag"] == sum(lags), f"total lag {st['total_lag']} = sum of LAG {sum(lags)}")
# State, member count and assignor.
# GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE #MEMBERS; the strategy is
# blank for an empty group, so read from both ends.
f = next(l.split() for l in open(base + ".state") if l.split() and l.split()[0] == group)
kstate, kmembers, kassignor = f[-2], int(f[-1]), f[3] if len(f) == 6 else ""
check(st["state"] == kstate and len(st["members"]) == kmembers,
      f"state {st['state']} and {len(st['members'])} members match ({kstate}, {kmembers})")
check(st["assignor"] == kassignor, f"assignor '{st['assignor']}' matches '{kassignor}'")
# Members: id, host, client id and assignment. Kafka 3.9's tool prints an
# assignment as "(0,2)" per topic, without the topic's name; this group
# reads one topic.
km = {}
for r in rows(base + ".members", "GROUP"):
    parts = set()
    line = " ".join(l for l in open(base + ".members") if r["CONSUMER-ID"] in l)
    for t, ps in re.findall(r"([^\s(,]*)\(([\d,]*)\)", line):
        parts |= {(t or topic, int(x)) for x in ps.split(",") if x}
    km[r["CONSUMER-ID"]] = (r["HOST"], r["CLIENT-ID"], parts)
gm = {m["member_id"]: (m["host"], m["client_id"], {(a["topic"], a["partition"]) for a in m["assignment"]})
      for m in st["members"]}
if gm != km:
    print(f"# kafka-consumer-groups --members: {km}")
    print(f"# imgsink status --json members:   {gm}")
check(gm == km, f"members with host, client id and assignment match ({len(gm)} members)")
# The table says the same as the JSON.
tab = {}
for l in open(base + ".table"):
    f = l.split()
    if len(f) >= 5 and f[0] == topic:
        tab[int(f[1])] = (f[2], f[3], f[4], f[5])
check(tab == {p: v for p, v in got.items()}, "the table shows the same committed, end, lag and member")
sys.exit(1 if fails else 0)
PY
    [ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))
}
compare live

# Both stopped, then a backlog of 9 records.
for pid in "${WORKER_PIDS[@]}"; do kill -TERM "$pid"; done
for pid in "${WORKER_PIDS[@]}"; do wait "$pid"; done
WORKER_PIDS=()
"$IMGSINK" produce -b "$KAFKA_BOOTSTRAP" --topic "$topic" --tenant acme "$TMP/b" >/dev/null 2>&1 ||
    notok "produce 9 more records"
compare stopped
check "stopped: state Empty, no members, lag 9" python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(0 if s["state"] == "Empty" and s["members"] == [] and s["total_lag"] == 9 else s)' "$TMP/stopped.json"

# --watch: a worker drains the backlog while status watches; SIGINT ends it.
# stderr is a file here, so the progress comes as one plain line per read.
"$IMGSINK" status -c "$TMP/w.conf" --watch 1 >"$TMP/watch.out" 2>"$TMP/watch.err" &
wpid=$!
sleep 2
start_worker w3 "$TMP/w.conf" >/dev/null
check "watched worker: lag 0" wait_for 120 committed_equals_end "$group" "$topic" 3
sleep 3
kill -INT "$wpid"
wait "$wpid"
rc=$?
tail -4 "$TMP/watch.err" | sed 's/^/# watch stderr: /'
check "status --watch ends with exit 0 on SIGINT (got $rc)" test $rc -eq 0
check "the progress line reached 9 records committed, 0 left, with a rate and an ETA" \
    grep -qE "^group $group: 9 records committed, 0 left, [0-9.]+/s, ETA 0s" "$TMP/watch.err"
check "every progress line adds up: committed + left = 9, left never grows" python3 -c '
import re, sys
pairs = [tuple(map(int, m.groups())) for m in
         (re.search(r"(\d+) records committed, (\d+) left", l) for l in open(sys.argv[1])) if m]
left = [l for _, l in pairs]
ok = pairs and all(c + l == 9 for c, l in pairs) and left == sorted(left, reverse=True)
sys.exit(0 if ok else pairs)' "$TMP/watch.err"
check "after SIGINT the final table shows lag 0 on every partition" \
    test "$(awk -v t="$topic" '$1 == t && $5 == 0' "$TMP/watch.out" | tail -3 | wc -l)" -eq 3

# On a terminal the line is redrawn in place (carriage return, erase line).
if command -v script >/dev/null; then
    script -qec "timeout -s INT 3 $IMGSINK status -c $TMP/w.conf --watch 1 >/dev/null" /dev/null \
        >"$TMP/tty.out" 2>&1
    check "on a terminal the progress line is redrawn in place" \
        grep -q $'\r'"group $group: .*records committed.*"$'\e\\[K' "$TMP/tty.out"
fi

# Clear errors.
"$IMGSINK" status -c "$TMP/w.conf" --group "no-such-$group" >/dev/null 2>"$TMP/err1"
rc=$?
check "unknown group: exit 1, says not found (got $rc: $(cat "$TMP/err1"))" \
    bash -c '[ "$1" -eq 1 ] && grep -q "not found" "$2"' _ $rc "$TMP/err1"
"$IMGSINK" status -c "$TMP/w.conf" --topic "no-such-$topic" >/dev/null 2>"$TMP/err2"
rc=$?
check "unknown topic: exit 1, names it (got $rc: $(cat "$TMP/err2"))" \
    bash -c '[ "$1" -eq 1 ] && grep -q "unknown topic .no-such-" "$2"' _ $rc "$TMP/err2"
"$IMGSINK" status -c "$TMP/w.conf" --watch 0 >/dev/null 2>&1
check "bad --watch value: exit 2" test $? -eq 2
exit 0
