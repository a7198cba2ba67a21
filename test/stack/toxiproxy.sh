#!/usr/bin/env bash
# Starts toxiproxy (a real TCP fault proxy) in front of this stack's MinIO,
# for tests that cut, slow or black-hole the S3 path.
#
#   test/stack/toxiproxy.sh [SEED]
#
# Prints "API_URL LISTEN_PORT": the proxy is named "s3" and forwards
# 127.0.0.1:LISTEN_PORT to MinIO. SEED (default 1) seeds toxiproxy's random
# toxics. Its PID file is $IMGSINK_STACK_DIR/toxiproxy.pid; stop it with
# `test/stack/stop.sh toxiproxy` (which checks the PID still names this
# stack's toxiproxy.json). A proxy left over by an interrupted run is
# stopped first.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091 # pinned versions, paths and helpers of the stack
. "$HERE/common.sh"
STATE=$IMGSINK_STACK_DIR
seed=${1:-1}
[ -f "$STATE/env" ] || die "the local stack is not running (no $STATE/env): run test/stack/start.sh"
[ -x "$TOXIPROXY_BIN" ] || die "$TOXIPROXY_BIN is missing: run scripts/deps.sh"
S3_ENDPOINT=$(. "$STATE/env" && echo "$S3_ENDPOINT")

bash "$HERE/stop.sh" toxiproxy >/dev/null 2>&1 || true
read -r api port < <(free_ports 2)
cat >"$STATE/toxiproxy.json" <<JSON
[{"name": "s3", "listen": "127.0.0.1:$port", "upstream": "${S3_ENDPOINT#http://}", "enabled": true}]
JSON
spawn "$STATE/toxiproxy.pid" "$STATE/toxiproxy.log" "$TOXIPROXY_BIN" -host 127.0.0.1 -port "$api" \
    -config "$STATE/toxiproxy.json" -seed "$seed"
url="http://127.0.0.1:$api"
for _ in $(seq 100); do
    curl -fsS --max-time 1 "$url/proxies" 2>/dev/null | grep -q '"s3"' && break
    sleep 0.1
done
if ! "$TOXIPROXY_CLI" -h "$url" inspect s3 >/dev/null 2>&1 ||
    ! curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/minio/health/live"; then
    tail -5 "$STATE/toxiproxy.log" | sed 's/^/# /' >&2
    die "toxiproxy $TOXIPROXY_VERSION does not forward 127.0.0.1:$port to MinIO at $S3_ENDPOINT"
fi
echo "$url $port"
