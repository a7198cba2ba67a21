#!/usr/bin/env bash
# bench/deps.sh - what the benchmark needs beyond `make deps`: Debian's
# ImageMagick, gnuplot and GNU time, and sharp from npm (pinned) installed
# into $BENCH_NODE_DIR (default $IMGSINK_CACHE/bench-node), outside the
# clone. Idempotent; apt-get runs only when a package is missing.
#
#   bench/deps.sh --sharp-libvips   # also npm's libvips 8.18 (library and
#                                   # headers) for `make VIPS=sharp-libvips`,
#                                   # into $IMGSINK_CACHE/sharp-libvips
set -euo pipefail

# shellcheck source=SCRIPTDIR/../test/stack/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../test/stack/common.sh"

SHARP_VERSION=0.35.5
# The libvips build that sharp $SHARP_VERSION itself depends on.
SHARP_LIBVIPS_VERSION=1.3.4
NODE_DIR=${BENCH_NODE_DIR:-$IMGSINK_CACHE/bench-node}

# npm_pinned DIR NAME VERSION PACKAGE...: the packages at VERSION in DIR.
npm_pinned() {
	local dir=$1 name=$2 version=$3 have deps='' p
	shift 3
	have=$(node -p "try { require('$dir/node_modules/$1/package.json').version } catch (e) { '' }" 2>/dev/null || true)
	if [[ $have == "$version" ]]; then
		echo "$* $version: present in $dir"
		return
	fi
	mkdir -p "$dir"
	for p in "$@"; do deps+="${deps:+, }\"$p\": \"$version\""; done
	printf '{\n  "name": "%s",\n  "private": true,\n  "dependencies": { %s }\n}\n' "$name" "$deps" >"$dir/package.json"
	(cd "$dir" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
	echo "$* $version: installed in $dir"
}

APT_PACKAGES=(imagemagick gnuplot-nox time nodejs npm)

mkdir -p "$IMGSINK_CACHE"
exec 9>"$IMGSINK_CACHE/.bench-deps.lock"
flock 9

missing=()
for p in "${APT_PACKAGES[@]}"; do
	case $p in
	nodejs | npm) command -v "${p/nodejs/node}" >/dev/null && continue ;;
	esac
	[[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	echo "bench apt packages: installed ${missing[*]}"
else
	echo "bench apt packages: present (${APT_PACKAGES[*]})"
fi

npm_pinned "$NODE_DIR" imgsink-bench "$SHARP_VERSION" sharp
if [[ ${1:-} == --sharp-libvips ]]; then
	npm_pinned "$IMGSINK_CACHE/sharp-libvips" imgsink-sharp-libvips "$SHARP_LIBVIPS_VERSION" \
		@img/sharp-libvips-linux-x64 @img/sharp-libvips-dev
fi
