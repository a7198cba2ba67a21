#!/usr/bin/env bash
# Build the Debian 13 (trixie) sysroot that the default build compiles in
# and links against: `debootstrap --variant=minbase trixie`, then Debian 13's
# -dev packages installed inside it through chroot. Run by scripts/deps.sh.
#
# Cached under $IMGSINK_CACHE/sysroot-trixie and idempotent: the stamp holds
# the package list, so editing SYSROOT_PACKAGES reinstalls; a complete
# sysroot is built in a temporary directory and renamed, so an interrupted
# run never leaves a half-built one that looks complete.
#
# The mirror is the one the host's apt already uses (read from
# /etc/apt/sources.list*), never a host name written here.
set -euo pipefail

# shellcheck source=SCRIPTDIR/../test/stack/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../test/stack/common.sh"

# What the build, the unit tests (cmocka), the ASan build and the libFuzzer
# targets (clang 19 and its runtime) need, plus the
# runtime libraries the Dockerfile's runtime stage installs (already pulled
# in by the -dev packages; listed so the same names are checked to exist).
# Debian 13's libheif loads its codecs as plugins (Debian 12's had them
# built in): AV1 encode (AVIF renditions), AV1 and HEVC decode (inputs).
SYSROOT_PACKAGES=(
	build-essential pkg-config
	librdkafka-dev libvips-dev libavro-dev libcurl4-openssl-dev libssl-dev
	libjansson-dev libxml2-dev libmicrohttpd-dev libjemalloc-dev libcmocka-dev
	librdkafka1 libvips42t64 libavro24 libcurl4t64 libssl3t64 libjansson4
	libxml2 libmicrohttpd12t64 libjemalloc2 ca-certificates
	clang libclang-rt-19-dev
	libheif-plugin-aomenc libheif-plugin-dav1d libheif-plugin-libde265
)

# debian_mirror: the URI of the host's Debian archive (the entry whose suite
# is the host's own codename), from one-line or deb822 sources files.
debian_mirror() {
	local codename files=() f
	# shellcheck disable=SC1091
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[[ -n $codename ]] || die "sysroot: no VERSION_CODENAME in /etc/os-release"
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] && files+=("$f")
	done
	((${#files[@]})) || die "sysroot: no apt sources under /etc/apt"
	awk -v want="$codename" '
		# one-line format: deb [opts] URI SUITE COMPONENTS...
		/^[[:space:]]*deb[[:space:]]/ {
			n = split($0, w, /[[:space:]]+/); i = 2
			while (i <= n && (w[i] == "" || w[i] ~ /^\[/)) {
				if (w[i] ~ /^\[/) { while (i <= n && w[i] !~ /\]$/) i++ }
				i++
			}
			if (w[i + 1] == want) { print w[i]; exit }
			next
		}
		# deb822: a stanza of "Key: value" lines, blank line between stanzas
		/^[[:space:]]*$/ { if (uris != "" && suites ~ ("(^| )" want "( |$)")) { print uris; exit }
		                   uris = ""; suites = ""; next }
		/^URIs:/   { sub(/^URIs:[[:space:]]*/, ""); split($0, u, /[[:space:]]+/); uris = u[1]; next }
		/^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0; next }
		END { if (uris != "" && suites ~ ("(^| )" want "( |$)")) print uris }
	' "${files[@]}" | head -n 1
}

SYSROOT_DIR="$IMGSINK_CACHE/sysroot-trixie"
want="trixie ${SYSROOT_PACKAGES[*]}"
stamp="$SYSROOT_DIR/.imgsink-stamp"
if [[ -f $stamp && "$(<"$stamp")" == "$want" ]]; then
	echo "debian 13 sysroot: present ($SYSROOT_DIR)"
	exit 0
fi

command -v debootstrap >/dev/null || die "sysroot: debootstrap missing (scripts/deps.sh installs it)"
mirror=$(debian_mirror)
[[ -n $mirror ]] || die "sysroot: no Debian mirror for the host's codename in /etc/apt/sources.list*"

start=$(date +%s)
tmp="$SYSROOT_DIR.tmp"
# An existing sysroot with a different package list is completed in place
# (apt-get install is idempotent), and so is a bootstrapped one whose
# package install was interrupted; otherwise bootstrap from scratch.
if [[ -x $SYSROOT_DIR/usr/bin/apt-get ]]; then
	rm -rf "$tmp"
	mv "$SYSROOT_DIR" "$tmp"
elif [[ -f $tmp/.imgsink-bootstrapped ]]; then
	:
else
	rm -rf "$tmp"
	log="$IMGSINK_CACHE/debootstrap.log"
	debootstrap --variant=minbase trixie "$tmp" "$mirror" >"$log" 2>&1 ||
		{ tail -n 40 "$log" >&2; die "debootstrap trixie failed (log: $log)"; }
	touch "$tmp/.imgsink-bootstrapped"
fi
log="$IMGSINK_CACHE/sysroot-apt.log"
# /proc is not needed by apt or dpkg; no mounts, so nothing to clean up.
chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
	sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" && apt-get clean' \
	sh "${SYSROOT_PACKAGES[@]}" >"$log" 2>&1 ||
	{ tail -n 40 "$log" >&2; die "apt-get install in the trixie sysroot failed (log: $log)"; }
echo "$want" >"$tmp/.imgsink-stamp"
mv "$tmp" "$SYSROOT_DIR"
echo "debian 13 sysroot: installed in $(($(date +%s) - start)) s ($SYSROOT_DIR," \
	"libvips $(chroot "$SYSROOT_DIR" pkg-config --modversion vips)," \
	"librdkafka $(chroot "$SYSROOT_DIR" pkg-config --modversion rdkafka))"
