#!/usr/bin/env bash
# sysroot-run.sh CMD [ARG...]: run CMD inside the Debian 13 sysroot built by
# scripts/sysroot.sh (gcc 14, Debian 13's headers, pkg-config and libraries),
# in the current directory. The repository is bind-mounted into the sysroot
# at its own path, in a private mount namespace that ends with the command:
# nothing stays mounted, and paths mean the same inside and outside.
#
# The Makefile's default build (PLATFORM=trixie) runs its compiler and
# pkg-config through this. `pkg-config --libs` gets the link flags that make
# the binaries run on the host with the sysroot's loader and libraries:
# --dynamic-linker into the sysroot and an RPATH (not RUNPATH, so it also
# applies to the libraries' own dependencies and to dlopen) to its lib dir.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sysroot=${IMGSINK_SYSROOT:-${IMGSINK_CACHE:-${HOME:-/root}/.cache/imgsink}/sysroot-trixie}
if [[ ! -f $sysroot/.imgsink-stamp ]]; then
	echo "error: no Debian 13 sysroot at $sysroot (make deps builds it; make PLATFORM=host builds against the host's libraries)" >&2
	exit 1
fi
(($#)) || { echo "usage: sysroot-run.sh CMD [ARG...]" >&2; exit 2; }
case $PWD/ in
"$root"/*) ;;
*) echo "error: sysroot-run.sh must run inside $root (cwd: $PWD)" >&2; exit 2 ;;
esac

libdir=/usr/lib/x86_64-linux-gnu
if [[ $1 == pkg-config && " $* " == *" --libs "* ]]; then
	extra="-Wl,--dynamic-linker=$sysroot$libdir/ld-linux-x86-64.so.2 -Wl,--disable-new-dtags -Wl,-rpath,$sysroot$libdir"
else
	extra=
fi

mkdir -p "$sysroot$root"
# The mount point is an empty directory of the sysroot; the bind mount
# exists only in this command's mount namespace.
out=0
# shellcheck disable=SC2016 # expanded by the inner shell
unshare -m -- /bin/sh -c '
	mount --make-rprivate / 2>/dev/null || true
	mount --bind "$1" "$2$1" || exit 1
	sysroot=$2 dir=$3
	shift 3
	exec chroot "$sysroot" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 TMPDIR=/tmp \
		/bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$dir" "$@"
' sh "$root" "$sysroot" "$PWD" "$@" || out=$?
if [[ -n $extra ]] && ((out == 0)); then
	printf '%s\n' "$extra"
fi
exit "$out"
