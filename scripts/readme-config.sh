#!/usr/bin/env bash
# Regenerates the configuration reference in README.md from the config table
# (imgsink help config --markdown), between the two marker lines.
#   scripts/readme-config.sh          rewrite README.md
#   scripts/readme-config.sh --check  exit 1 if README.md is out of date
set -euo pipefail
cd "$(dirname "$0")/.."
table=$(build/imgsink help config --markdown)
new=$(python3 - "$table" <<'PY'
import sys
table = sys.argv[1]
text = open("README.md").read()
start, end = "<!-- config-table:start -->", "<!-- config-table:end -->"
a, b = text.index(start) + len(start), text.index(end)
sys.stdout.write(text[:a] + "\n" + table + "\n" + text[b:])
PY
)
if [ "${1:-}" = --check ]; then
    [ "$new" = "$(cat README.md)" ] || { echo "README.md config reference is stale: run scripts/readme-config.sh" >&2; exit 1; }
else
    printf '%s\n' "$new" >README.md
fi
