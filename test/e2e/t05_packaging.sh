#!/usr/bin/env bash
# Packaging and docs, checked as far as a machine without a Docker engine
# allows: the compose file validates, the Dockerfile copies what exists and
# installs packages Debian has, the README's config reference is current and
# the CLI answers --help.
set -uo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$ROOT"
BUILD=${BUILD:-build}
fails=0
check() {
    local what=$1
    shift
    if "$@"; then echo "ok - $what"; else echo "not ok - $what"; fi
}

check "docker-compose.yml parses as YAML with kafka, minio, init and two workers" /usr/bin/python3 -c '
import yaml, sys
d = yaml.safe_load(open("docker-compose.yml"))
need = {"kafka", "minio", "init-kafka", "init-minio", "worker-1", "worker-2"}
sys.exit(0 if need <= set(d["services"]) else 1)'
if command -v docker-compose >/dev/null; then
    check "docker-compose config validates the compose file" docker-compose -f docker-compose.yml config -q
elif docker compose version >/dev/null 2>&1; then
    check "docker compose config validates the compose file" docker compose -f docker-compose.yml config -q
fi
check "every COPY source in the Dockerfile exists" bash -c '
for src in $(awk "/^COPY/ && !/--from/ { for (i = 2; i < NF; i++) print \$i }" Dockerfile); do
    [ -e "$src" ] || { echo "# missing: $src"; exit 1; }
done'
# The image is Debian 13: ask the apt of the trixie sysroot (make deps) when
# the host is another release.
apt_cache=apt-cache
sysroot=${IMGSINK_SYSROOT:-${IMGSINK_CACHE:-${HOME:-/root}/.cache/imgsink}/sysroot-trixie}
if grep -q '^FROM debian:trixie' Dockerfile && [ -x "$sysroot/usr/bin/apt-cache" ]; then
    apt_cache="chroot $sysroot apt-cache"
fi
export apt_cache
check "every package the Dockerfile installs exists in Debian ($apt_cache)" bash -c '
pkgs=$(sed -n "/apt-get install/,/rm -rf/p" Dockerfile | tr " \\\\" "\n\n" | grep -E "^[a-z0-9][a-z0-9.+-]+$" |
    grep -vE "^(apt-get|install|rm|useradd|update|build)$")
[ $(echo $pkgs | wc -w) -ge 15 ] || { echo "# parsed too few packages: $pkgs"; exit 1; }
for p in $pkgs; do $apt_cache show "$p" >/dev/null 2>&1 || { echo "# no package $p"; exit 1; }; done'
check "README starts with make demo and make test" bash -c 'head -6 README.md | grep -q "^make demo" && head -6 README.md | grep -q "^make test"'
check "README configuration reference matches the config table" bash scripts/readme-config.sh --check
check "imgsink --help names every command" bash -c '"$0" --help | grep -q "produce" && "$0" --help | grep -q "run"' "$BUILD/imgsink"
check "imgsink run with a bad config line names key, value and expectation" bash -c '
f=$(mktemp); printf "s3.bucket=b\ns3.timeout.ms = soon\n" >"$f"
out=$("$0" run -c "$f" 2>&1); rc=$?; rm -f "$f"
[ $rc -eq 2 ] && grep -q ":2: s3.timeout.ms=soon: expected an integer" <<<"$out"' "$BUILD/imgsink"
check "imgsink run without credentials refuses to start" bash -c '
out=$(env -u IMGSINK_S3_ACCESS_KEY -u AWS_ACCESS_KEY_ID AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent AWS_EC2_METADATA_DISABLED=true "$0" run -X kafka.bootstrap.servers=127.0.0.1:1 -X s3.bucket=b 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "credentials: none found: set s3.access.key" <<<"$out"' "$BUILD/imgsink"
check "a bad kafka.* property is reported with librdkafka's reason" bash -c '
out=$(IMGSINK_S3_ACCESS_KEY=a IMGSINK_S3_SECRET_KEY=b timeout 20 "$0" run -X kafka.bootstrap.servers=127.0.0.1:1 -X s3.bucket=b -X kafka.no.such.prop=1 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "kafka.no.such.prop=1" <<<"$out"' "$BUILD/imgsink"
exit 0
