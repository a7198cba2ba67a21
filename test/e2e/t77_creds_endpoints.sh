#!/usr/bin/env bash
# The EC2 IMDSv2 source against a local endpoint speaking the protocol (PUT
# a session token, GET the role, GET its credentials with the token), handing
# out real MinIO STS credentials: a worker writes records with them (mc) and
# refreshes them. Then hostile endpoints, IMDS and container alike: a body
# that is not JSON, a missing field, a 10 MiB body, an Expiration that is not
# a time, a wrong IMDS token, a wrong container authorization token, a 500.
# Each stops start-up with a message naming the source and what is wrong,
# and no secret in it.
. "$(dirname "$0")/lib.sh"
# shellcheck disable=SC1091
. "$ROOT/test/stack/common.sh"
PY="$IMGSINK_VENV/bin/python"

topic=$(unique_name imds)
dlq="$topic.dlq"
group=$(unique_name g-imds)
prefix=$(out_prefix t77)
user=$(unique_name sts | tr -dc 'a-z0-9-' | cut -c1-30)
usersecret=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | cut -c1-30)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null
mc admin user add "$MC_ALIAS" "$user" "$usersecret" >/dev/null || notok "mc admin user add"
mc admin policy attach "$MC_ALIAS" imgsink-worker --user "$user" >/dev/null || notok "mc admin policy attach"

read -r iport cport <<<"$(free_ports 2)"
issued="$TMP/issued.txt"
authtok="$TMP/auth-token"
echo "right-token-$RANDOM$RANDOM" >"$authtok"
start_server() { # start_server NAME PROTOCOL PORT ARGS...
    local name=$1 proto=$2 port=$3
    shift 3
    spawn "$TMP/$name.pid" "$TMP/$name.log" "$PY" "$ROOT/test/e2e/creds_server.py" "$proto" \
        --port "$port" --sts "$S3_ENDPOINT" --user "$user" --secret "$usersecret" --lifetime 20 \
        --issued "$issued" "$@"
    wait_for 60 grep -q "credentials endpoint on" "$TMP/$name.log" || notok "$name listens"
}
stop_servers() {
    local n pid
    for n in imds container; do
        pid=$(pid_of "$TMP/$n.pid" "$ROOT/test/e2e/creds_server.py") && kill "$pid" 2>/dev/null
    done
    return 0
}
trap 'stop_servers; e2e_cleanup' EXIT
start_server imds imds "$iport"
start_server container container "$cport" --auth-token-file "$authtok"
mode() { curl -fsS -X POST "http://127.0.0.1:$1/_mode?m=$2" >/dev/null; }

write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" "s3.credentials.refresh.margin.ms=5000"
# source_env imds|container|wrongauth: sets SRC_ENV to an env command with
# only that source (an array: env execs imgsink, so $! is its PID).
source_env() {
    local src=$1
    SRC_ENV=(env -u IMGSINK_S3_ACCESS_KEY -u IMGSINK_S3_SECRET_KEY -u AWS_ACCESS_KEY_ID
        -u AWS_SECRET_ACCESS_KEY -u AWS_PROFILE -u AWS_CONTAINER_CREDENTIALS_FULL_URI
        -u AWS_ROLE_ARN AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent)
    case $src in
    imds) SRC_ENV+=(AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:$iport/") ;;
    container) SRC_ENV+=(AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:$cport/creds"
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$authtok") ;;
    wrongauth) SRC_ENV+=(AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:$cport/creds"
        AWS_CONTAINER_AUTHORIZATION_TOKEN="not-the-token") ;;
    esac
}

# --- IMDSv2: a worker writes with its credentials and refreshes them ----------
source_env imds
"${SRC_ENV[@]}" "$IMGSINK" run -c "$TMP/w.conf" >>"$TMP/w1.log" 2>&1 &
WORKER_PIDS+=($!)
check "the worker takes its credentials from IMDS" \
    wait_for 60 grep -q '"store credentials from imds"' "$TMP/w1.log"
vips gaussnoise "$TMP/i.v" 320 240 --sigma 25 && vips copy "$TMP/i.v" "$TMP/i.jpg[Q=85]" || notok "vips"
for i in 0 1 2 3 4; do
    "$PY" "$ROOT/test/e2e/make_records.py" inline "$TMP/r$i.bin" --id "r$i" --image "$TMP/i.jpg"
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -k "r$i" "$TMP/r$i.bin" || notok "kcat r$i"
done
all_written() { [ "$(count_objects "$prefix" metadata.json)" -eq 5 ]; }
check "5 records written with IMDS credentials (mc)" wait_for 300 all_written
refreshed() { [ "$(grep -c '"msg":"credentials refreshed"' "$TMP/w1.log")" -ge 2 ]; }
check "the worker refreshed its IMDS credentials twice" wait_for 120 refreshed
check "every IMDS credentials GET carried a session token from the PUT (no 401)" \
    bash -c '! grep -q "401" "$0" && grep -q "^PUT /latest/api/token" "$0"' "$TMP/imds.log"
kill -TERM "${WORKER_PIDS[0]}" 2>/dev/null
wait "${WORKER_PIDS[0]}" 2>/dev/null
WORKER_PIDS=()

# --- hostile endpoints: start-up stops, naming what is wrong ----------------------
refused() { # refused SOURCE PORT MODE EXPECTED: start-up fails with EXPECTED in the error
    local src=$1 port=$2 m=$3 want=$4 out rc s
    mode "$port" "$m"
    source_env "$src"
    out=$("${SRC_ENV[@]}" timeout 120 "$IMGSINK" run -c "$TMP/w.conf" 2>&1)
    rc=$?
    echo "$out" >"$TMP/refused-$src-$m.log"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || { echo "# rc $rc"; return 1; }
    grep -qF -- "$want" <<<"$out" || { echo "# wanted: $want"; echo "$out" | tail -3 | sed 's/^/# /'; return 1; }
    while IFS= read -r s; do
        [ ${#s} -ge 8 ] && grep -qF -- "$s" <<<"$out" && { echo "# a secret leaked"; return 1; }
    done <"$issued"
    note "$src/$m: $(grep -o '"msg":"[^"]*"' <<<"$out" | tail -1)"
    return 0
}
for src in imds container; do
    p=$iport
    [ $src = container ] && p=$cport
    check "$src: bad JSON is refused" refused $src $p badjson "the response is not a JSON object"
    check "$src: a missing Token is refused" refused $src $p missing "field Token is missing"
    check "$src: a 10 MiB body is refused" refused $src $p huge "response larger than 65536 bytes"
    check "$src: a bad Expiration is refused" refused $src $p badexpiry "Expiration is not an ISO 8601"
    check "$src: HTTP 500 is refused" refused $src $p fail "HTTP 500"
    mode $p good
done
check "imds: a wrong session token (401) is refused" refused imds "$iport" wrongtoken "HTTP 401"
mode "$iport" good
check "container: a wrong authorization token (401) is refused" \
    refused wrongauth "$cport" good "container endpoint http://127.0.0.1:$cport/creds: HTTP 401"
mc admin user remove "$MC_ALIAS" "$user" >/dev/null 2>&1
[ "$N_FAIL" -eq 0 ]
