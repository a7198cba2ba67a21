#!/usr/bin/env bash
# Real photographs and renders for tests and benchmarks (DESIGN §10): the
# largest JPEG of each wallpaper in Debian's plasma-workspace-wallpapers,
# copied to OUTDIR as <wallpaper>.jpg. Prints the number of images.
#
#   test/corpus.sh [OUTDIR]      # default $IMGSINK_CACHE/corpus
#
# The .deb (~94 MB) is kept in $IMGSINK_CACHE/debs, so a second run on the
# same machine costs nothing. Debian 12's package (4:5.27.5-2) gives 19
# distinct JPEGs: the largest of each of the 18 wallpapers that ship JPEGs
# plus Flow's dark variant (Flow-dark.jpg), 4.1 to 14.7 megapixels
# (2560x1600 to 5120x2880); Grey.jpg is single-band greyscale. Wallpapers
# shipped only as PNG are skipped.
set -euo pipefail

# shellcheck source=SCRIPTDIR/stack/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack/common.sh"

PKG=plasma-workspace-wallpapers
OUT=${1:-$IMGSINK_CACHE/corpus}
DEBS="$IMGSINK_CACHE/debs"
mkdir -p "$OUT" "$DEBS"
OUT=$(cd "$OUT" && pwd)

for c in apt-get dpkg-deb vipsheader sha256sum; do
	command -v "$c" >/dev/null || die "$c not found: run scripts/deps.sh"
done

exec 9>"$DEBS/.corpus.lock"
flock 9

# apt-get download writes to the current directory; a deb of any version
# already there is reused (the wallpapers do not change between point
# releases, and a pinned version could vanish from the archive).
shopt -s nullglob
debs=("$DEBS/${PKG}"_*.deb)
if ((${#debs[@]} == 0)); then
	# On a fresh machine the package lists are empty until apt-get update.
	lists=(/var/lib/apt/lists/*_Packages*)
	((${#lists[@]})) || apt-get update -qq
	# As root, apt warns that the _apt user cannot write here and downloads
	# unsandboxed; that is harmless, so the warning is filtered out.
	(cd "$DEBS" && apt-get download -qq "$PKG" 2> >(grep -v 'unsandboxed as root' >&2))
	debs=("$DEBS/${PKG}"_*.deb)
	((${#debs[@]})) || die "apt-get download $PKG produced no .deb"
fi
deb=${debs[-1]}

# The stamp's first line names the .deb and the selection rules' version:
# bump SELECTION when the choice of images changes, so old outputs redo.
SELECTION=2
stamp="$OUT/.corpus.stamp"
if [[ -f $stamp && "$(head -n 1 "$stamp")" == "$SELECTION $(basename "$deb")" ]]; then
	ok=1
	while read -r f; do [[ -f $OUT/$f ]] || ok=0; done < <(tail -n +2 "$stamp")
	if ((ok)); then
		echo "$(($(wc -l <"$stamp") - 1)) images in $OUT"
		exit 0
	fi
fi

tmp=$(mktemp -d "$DEBS/extract.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"

names=()
# pick_largest DIR NAME: copy the JPEG with the most pixels in DIR to
# $OUT/NAME.jpg, if DIR has any.
pick_largest() {
	local dir=$1 name=$2 best='' best_px=0 jpg w h
	# Regular files only: some sizes are symlinks to others.
	while IFS= read -r -d '' jpg; do
		# Some of these JPEGs carry an invalid EXIF resolution unit, which
		# libvips warns about on stderr; the tests will meet that too.
		w=$(vipsheader -f width "$jpg" 2>/dev/null)
		h=$(vipsheader -f height "$jpg" 2>/dev/null)
		if ((w * h > best_px)); then best=$jpg best_px=$((w * h)); fi
	done < <(find "$dir" -maxdepth 1 -type f -iname '*.jpg' -print0 2>/dev/null)
	[[ -n $best ]] || return 0
	if ((best_px < 4000000 || best_px > 15000000)); then
		log "warning: $name is $((best_px / 1000000)) MP, outside 4-15 MP"
	fi
	cp "$best" "$OUT/$name.jpg.tmp"
	mv "$OUT/$name.jpg.tmp" "$OUT/$name.jpg"
	names+=("$name.jpg")
}
for dir in "$tmp"/usr/share/wallpapers/*/; do
	name=$(basename "$dir")
	pick_largest "$dir/contents/images" "$name"
	# A dark variant is a different picture (Flow's is the only JPEG one).
	pick_largest "$dir/contents/images_dark" "$name-dark"
done
((${#names[@]})) || die "no JPEG wallpapers found in $deb"

# Distinct content, or a benchmark would measure the same image twice.
dups=$(cd "$OUT" && sha256sum -- "${names[@]}" | cut -d' ' -f1 | sort | uniq -d)
[[ -z $dups ]] || die "duplicate images in $OUT"

{
	echo "$SELECTION $(basename "$deb")"
	printf '%s\n' "${names[@]}"
} >"$stamp"
echo "${#names[@]} images in $OUT"
