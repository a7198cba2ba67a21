#!/usr/bin/env bash
# The build under test is the Debian 13 one (Makefile PLATFORM=trixie, the
# default): the binary's loader and RPATH point into the trixie sysroot that
# `make deps` built, the dynamic loader resolves libvips 8.16, librdkafka 2.8
# and glibc from there and nothing from the host's /usr/lib, and a worker
# running against the real Kafka and MinIO maps those libraries (and the
# sysroot's libheif AV1 encoder plugin for an AVIF rendition) while it
# writes every rendition (mc reads them back) and commits to the end
# (Kafka's own group tool). Skipped for a PLATFORM=host build.
. "$(dirname "$0")/lib.sh"

SYSROOT=${IMGSINK_SYSROOT:-${IMGSINK_CACHE:-${HOME:-/root}/.cache/imgsink}/sysroot-trixie}
LIBDIR=$SYSROOT/usr/lib/x86_64-linux-gnu
interp=$(readelf -l "$IMGSINK" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
note "interpreter: $interp"
if [[ $interp != "$SYSROOT"/* ]]; then
    skip "Debian 13 build" "$IMGSINK is not linked against $SYSROOT (a PLATFORM=host build?)"
    exit 0
fi

check "the sysroot is Debian 13 (trixie)" \
    grep -qx 'VERSION_CODENAME=trixie' "$SYSROOT/etc/os-release"
check "interpreter is the sysroot's loader" test "$interp" = "$LIBDIR/ld-linux-x86-64.so.2"
rpath=$(readelf -d "$IMGSINK" | sed -n 's/.*(RPATH).*\[\(.*\)\]/\1/p')
note "RPATH: $rpath"
check "RPATH (inherited by every library, not RUNPATH) is the sysroot's lib dir" test "$rpath" = "$LIBDIR"

# What the loader resolves, asked of the binary's own loader.
LD_TRACE_LOADED_OBJECTS=1 "$IMGSINK" >"$TMP/ldd.txt" 2>&1
grep -E 'libvips|librdkafka|libc\.so|libcurl\.so' "$TMP/ldd.txt" | sed 's/^/# /'
resolved() { grep -qE "^[[:space:]]*$1 => $LIBDIR/$1 " "$TMP/ldd.txt"; }
for lib in libvips.so.42 librdkafka.so.1 libc.so.6 libcurl.so.4 libavro.so.24; do
    check "$lib resolves into the sysroot" resolved "$lib"
done
n_host=$(awk '$2 == "=>" && $3 ~ /^\// && index($3, ENVIRON["SYSROOT"]) != 1' SYSROOT="$SYSROOT" "$TMP/ldd.txt" | wc -l)
check "no library resolves outside the sysroot ($n_host do)" test "$n_host" -eq 0
check "no library is missing" bash -c '! grep -q "not found" "$0"' "$TMP/ldd.txt"
check "imgsink version names librdkafka 2.8" bash -c '"$0" version | grep -q "librdkafka 2\.8\."' "$IMGSINK"
# The sysroot's own pkg-config says which versions those files are.
vips_ver=$(grep -m1 '^Version:' "$LIBDIR/pkgconfig/vips.pc" | awk '{print $2}')
rdk_ver=$(grep -m1 '^Version:' "$LIBDIR/pkgconfig/rdkafka.pc" | awk '{print $2}')
note "sysroot: libvips $vips_ver, librdkafka $rdk_ver"
check "sysroot libvips is 8.16" bash -c '[[ $0 == 8.16.* ]]' "$vips_ver"
check "sysroot librdkafka is 2.8" bash -c '[[ $0 == 2.8.* ]]' "$rdk_ver"

# --- a worker against the real stack ----------------------------------------
topic=$(unique_name deb13)
dlq="$topic.dlq"
group=$(unique_name g-deb13)
prefix=$(out_prefix t06)
bash "$ROOT/test/stack/topic.sh" "$topic" 1 >/dev/null
bash "$ROOT/test/stack/topic.sh" "$dlq" 1 >/dev/null
python3 "$ROOT/test/e2e/make_records.py" "$TMP/recs" >/dev/null
n=0
while read -r key; do
    f=$(ls "$TMP"/recs/*-"$key".bin)
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -p 0 -k "$key" "$f" || notok "kcat produce $key"
    n=$((n + 1))
done <"$TMP/recs/good.ids"
note "produced $n good records"
renditions="large=2048x2048/webp/80,medium=512x512/jpeg/82,tiny=64x64/avif/50"
write_conf "$TMP/w.conf" "$topic" "$dlq" "$group" "$prefix" "renditions=$renditions"
start_worker w1 "$TMP/w.conf" >/dev/null # not in $(...): cleanup must know the PID
pid=${WORKER_PIDS[-1]}
check "lag 0: committed offset = end offset ($n)" \
    wait_for 180 committed_equals_end "$group" "$topic" 1
python3 "$ROOT/test/e2e/verify_store.py" --alias "$MC_ALIAS" --bucket "$S3_BUCKET" \
    --prefix "$prefix" --tenant acme --uploaded-at-ms 1767225600000 --ids "$TMP/recs/good.ids" \
    --renditions "$renditions" --bytes
[ $? -eq 0 ] || N_FAIL=$((N_FAIL + 1))
n_avif=$(mc ls --recursive "$MC_ALIAS/$S3_BUCKET/$prefix/" 2>/dev/null | grep -c 'tiny\.avif$')
check "mc lists $n AVIF renditions ($n_avif)" test "$n_avif" -eq "$n"

# The running worker's own mappings: which files it really loaded.
cp "/proc/$pid/maps" "$TMP/maps.txt" 2>/dev/null || notok "read /proc/$pid/maps"
mapped() { awk '{print $6}' "$TMP/maps.txt" | sort -u | grep -E "$1"; }
mapped 'libvips|librdkafka|libc\.so|heif' | sed 's/^/# mapped: /'
check "worker maps the sysroot's libvips 8.16 (libvips.so.42.18)" \
    bash -c 'grep -qF "$0/libvips.so.42.18." "$1"' "$LIBDIR" "$TMP/maps.txt"
check "worker maps the sysroot's librdkafka" bash -c 'grep -qF "$0/librdkafka.so.1" "$1"' "$LIBDIR" "$TMP/maps.txt"
check "worker maps the sysroot's libheif AV1 encoder plugin" \
    bash -c 'grep -qE "$0/libheif/plugins/libheif-aomenc\.so" "$1"' "$LIBDIR" "$TMP/maps.txt"
n_host=$(awk '$6 ~ /\.so/ && index($6, ENVIRON["SYSROOT"]) != 1 {print $6}' SYSROOT="$SYSROOT" "$TMP/maps.txt" |
    sort -u | tee "$TMP/host-libs.txt" | wc -l)
sed 's/^/# host library mapped: /' "$TMP/host-libs.txt"
check "worker maps no shared library from the host ($n_host)" test "$n_host" -eq 0

# --- the Dockerfile, as far as a machine without a Docker engine goes -------
# The sysroot stands in for debian:trixie-slim: every package of both stages
# is installed in it (scripts/sysroot.sh), the build stage's command builds
# there, and the runtime stage's packages own every library the binary needs.
docker_pkgs() { # docker_pkgs STAGE(1|2): the packages one RUN apt-get installs
    awk -v want="$1" '/apt-get install/ { n++ } n == want && /apt-get install/, /rm -rf/' "$ROOT/Dockerfile" |
        tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' |
        grep -vE '^(apt-get|install|rm|useradd|update|build|lists)$'
}
docker_pkgs 1 >"$TMP/build.pkgs"
docker_pkgs 2 >"$TMP/runtime.pkgs"
note "Dockerfile: $(wc -l <"$TMP/build.pkgs") build packages, $(wc -l <"$TMP/runtime.pkgs") runtime packages"
check "Dockerfile stages are FROM debian:trixie-slim" \
    test "$(grep -c '^FROM debian:trixie-slim' "$ROOT/Dockerfile")" -eq 2
not_installed=$(cat "$TMP/build.pkgs" "$TMP/runtime.pkgs" | while read -r p; do
    [ "$(chroot "$SYSROOT" dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
        echo "$p"
done)
check "every Dockerfile package is installed in the sysroot (missing: ${not_installed:-none})" \
    test -z "$not_installed"
dbuild=build/t06-docker
rm -rf "${ROOT:?}/$dbuild"
(cd "$ROOT" && bash scripts/sysroot-run.sh make -s PLATFORM=host BUILD=$dbuild build) >"$TMP/docker-build.log" 2>&1
check "the build stage's make builds in Debian 13 with gcc $(chroot "$SYSROOT" gcc -dumpversion)" \
    test -x "$ROOT/$dbuild/imgsink"
(cd "$ROOT" && bash scripts/sysroot-run.sh ldd "$dbuild/imgsink") >"$TMP/docker-ldd.txt" 2>&1
# The runtime packages and everything they depend on, recursively.
# shellcheck disable=SC2046 # one package name per word
chroot "$SYSROOT" apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances $(cat "$TMP/runtime.pkgs") 2>/dev/null |
    sed -n 's/^  *\(Pre\)\{0,1\}Depends: \([^ <>]*\).*/\2/p; /^[a-z0-9]/p' | sed 's/:amd64$//' |
    sort -u >"$TMP/runtime.closure"
note "runtime stage closure: $(wc -l <"$TMP/runtime.closure") packages"
unowned=$(awk '$2 == "=>" { print $3 }' "$TMP/docker-ldd.txt" | while read -r lib; do
    pkg=$(chroot "$SYSROOT" dpkg -S "$(readlink -f "$SYSROOT$lib" | sed "s|^$SYSROOT||")" 2>/dev/null |
        head -n1 | cut -d: -f1)
    grep -qx "$pkg" "$TMP/runtime.closure" || echo "$lib($pkg)"
done)
n_needed=$(awk '$2 == "=>"' "$TMP/docker-ldd.txt" | wc -l)
check "the runtime stage's packages provide all $n_needed libraries (not: ${unowned:-none})" \
    test -z "$unowned" -a "$n_needed" -gt 10
rm -rf "${ROOT:?}/$dbuild"

[ "$N_FAIL" -eq 0 ]
