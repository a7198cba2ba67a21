#!/usr/bin/env bash
# make report [DATE=YYYY-MM-DD]: the analytics report of one day (default
# today, UTC) from the store of the local stack ($IMGSINK_STACK_DIR, default
# .stack), with the views of deploy/analytics/duckdb.sql. Prints the path
# of the HTML page. ANALYTICS_PREFIX as analytics.prefix (default analytics/).
set -euo pipefail
cd "$(dirname "$0")/.."
. test/stack/common.sh
date=${1:-$(date -u +%F)}
stack=${IMGSINK_STACK_DIR:-$PWD/.stack}
[ -f "$stack/env" ] || { echo "report: no stack at $stack (make stack-start, or set IMGSINK_STACK_DIR)" >&2; exit 1; }
set -a
. "$stack/env"
set +a
exec "$IMGSINK_VENV/bin/python" scripts/analytics.py report --date "$date" --out "${REPORT_DIR:-build/report}"
