#!/usr/bin/env bash
# bench/deps.sh - what the benchmark needs beyond `make deps`: Debian 13's
# ImageMagick inside the Debian 13 sysroot (scripts/sysroot.sh), gnuplot and
# GNU time on the host, and sharp from npm (pinned) installed into
# $BENCH_NODE_DIR (default $IMGSINK_CACHE/bench-node), outside the clone.
# Idempotent; apt-get runs only when a package is missing.
#
# ImageMagick goes into the sysroot by chroot apt-get, like the sysroot's own
# packages, but is not in its package list (scripts/sysroot.sh's stamp): the
# benchmark alone needs it, and a change to that list would rebuild the
# sysroot for every build. bench/run.sh runs it through scripts/sysroot-run.sh.
set -euo pipefail

# shellcheck source=SCRIPTDIR/../test/stack/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../test/stack/common.sh"

SHARP_VERSION=0.35.5
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

APT_PACKAGES=(gnuplot-nox time nodejs npm)
SYSROOT_APT_PACKAGES=(imagemagick)
SYSROOT_DIR=${IMGSINK_SYSROOT:-$IMGSINK_CACHE/sysroot-trixie}

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

[[ -f $SYSROOT_DIR/.imgsink-stamp ]] || die "no Debian 13 sysroot at $SYSROOT_DIR: run make deps"
missing=()
for p in "${SYSROOT_APT_PACKAGES[@]}"; do
	[[ "$(dpkg-query --admindir="$SYSROOT_DIR/var/lib/dpkg" -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] ||
		missing+=("$p")
done
if ((${#missing[@]})); then
	log="$IMGSINK_CACHE/bench-sysroot-apt.log"
	# The package lists scripts/sysroot.sh left first (no upgrade of what the
	# build links against); a fresh apt-get update only when they are stale.
	if ! chroot "$SYSROOT_DIR" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		sh -c 'apt-get install -y -qq --no-install-recommends "$@" && apt-get clean' \
		sh "${missing[@]}" >"$log" 2>&1; then
		chroot "$SYSROOT_DIR" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
			sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" && apt-get clean' \
			sh "${missing[@]}" >>"$log" 2>&1 ||
			{ tail -n 40 "$log" >&2; die "apt-get install ${missing[*]} in the Debian 13 sysroot failed (log: $log)"; }
	fi
	echo "bench sysroot packages: installed ${missing[*]} in $SYSROOT_DIR"
else
	echo "bench sysroot packages: present (${SYSROOT_APT_PACKAGES[*]} in $SYSROOT_DIR)"
fi

npm_pinned "$NODE_DIR" imgsink-bench "$SHARP_VERSION" sharp
