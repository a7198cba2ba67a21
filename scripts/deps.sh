#!/usr/bin/env bash
# Install everything imgsink needs to build and test: Debian packages, the
# Kafka broker jars, MinIO and mc. Run by `make deps`.
#
# Idempotent and fast when nothing is missing: Debian packages are checked
# with dpkg-query and `apt-get update` runs only when one must be installed;
# downloads and builds go to $IMGSINK_CACHE (outside the clone) with stamp
# files recording the pinned version, so changing a pin rebuilds that part.
#
# Prints one line per component: "<component>: present" or ": installed".
set -euo pipefail

# shellcheck source=SCRIPTDIR/../test/stack/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../test/stack/common.sh"

# Build and link deps, test tools (kcat, clang-format, shellcheck), the
# corpus extractor's tools (binutils/xz-utils for dpkg-deb), python3 for the
# stack scripts' port picking and curl for health checks; prometheus for
# promtool, which validates /metrics and the alerting rules (test/e2e/t50).
APT_PACKAGES=(
	build-essential pkg-config
	librdkafka-dev libvips-dev libavro-dev libcurl4-openssl-dev libssl-dev
	libjansson-dev libxml2-dev libmicrohttpd-dev libjemalloc-dev libcmocka-dev
	kcat clang-format shellcheck python3 python3-yaml curl libvips-tools docker-compose valgrind clang libclang-rt-14-dev gdb
	xz-utils binutils libimage-exiftool-perl prometheus python3-venv
	debootstrap
)

mkdir -p "$IMGSINK_CACHE" "$IMGSINK_BIN"

# Two `make deps` at once (parallel make, two test runs) must not both run
# apt-get or build the same binary: serialise on a lock in the cache.
exec 9>"$IMGSINK_CACHE/.deps.lock"
flock 9

export DEBIAN_FRONTEND=noninteractive
# needrestart (if the image has it) runs after every install and may restart
# services or print perl warnings in a non-interactive run: skip it.
export NEEDRESTART_SUSPEND=1
apt_updated=0
apt_install() {
	if ((apt_updated == 0)); then
		apt-get update -qq
		apt_updated=1
	fi
	apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

is_installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# --- Debian packages --------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
	is_installed "$p" || missing+=("$p")
done
# Java and Maven may come from the image rather than Debian; only install
# Debian's when the command itself is absent.
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if ((${#missing[@]})); then
	apt_install "${missing[@]}"
	echo "apt packages: installed ${missing[*]}"
else
	echo "apt packages: present (${#APT_PACKAGES[@]} + java + maven)"
fi

# --- Kafka broker and tools, as jars from Maven Central ---------------------
# Apache's binary tarball is not on a package registry, so we resolve the
# same jars through Maven (kafka-pom.xml). ~/.m2 is the download cache; the
# stamp holds the pom's hash so editing the pom re-copies.
pom="$STACK_SCRIPTS/kafka-pom.xml"
pom_sum=$(sha256sum "$pom" | cut -d' ' -f1)
stamp="$KAFKA_HOME/.stamp"
if [[ -f $stamp && "$(<"$stamp")" == "$pom_sum" ]]; then
	echo "kafka $KAFKA_VERSION: present"
else
	grep -q "<kafka.version>$KAFKA_VERSION</kafka.version>" "$pom" ||
		die "kafka-pom.xml and test/stack/common.sh disagree on the Kafka version"
	rm -rf "$KAFKA_HOME"
	mkdir -p "$KAFKA_HOME"
	# Copy into a temporary dir and rename, so an interrupted run never
	# leaves a half-filled libs/ that looks complete.
	# Maven 3.8 prints colour codes even with -q -B: keep its output in a
	# log and show it only on failure.
	mvnlog="$KAFKA_HOME/mvn.log"
	mvn -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
		-DoutputDirectory="$KAFKA_HOME/libs.tmp" >"$mvnlog" 2>&1 ||
		{ tail -n 40 "$mvnlog" >&2; die "maven failed (log: $mvnlog)"; }
	# Sanity check: the broker and the tools' main classes must be there.
	for j in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar"; do
		[[ -f $KAFKA_HOME/libs.tmp/$j ]] || die "maven did not provide $j"
	done
	mv "$KAFKA_HOME/libs.tmp" "$KAFKA_HOME/libs"
	echo "$pom_sum" >"$stamp"
	echo "kafka $KAFKA_VERSION: installed ($(find "$KAFKA_HOME/libs" -name '*.jar' | wc -l) jars)"
fi

# --- MinIO and mc, built from their Go modules ------------------------------
# The Go toolchain comes with the machine image (Debian 12's golang is too
# old for MinIO); it may not be on PATH in a stripped CI environment.
go_bin() {
	if command -v go >/dev/null; then
		command -v go
	elif [[ -x /usr/local/go/bin/go ]]; then
		echo /usr/local/go/bin/go
	else
		die "Go toolchain not found (needed to build MinIO and mc)"
	fi
}

# go_tool NAME MODULE VERSION [PACKAGE]: the stamp file $IMGSINK_BIN/.NAME.version
# holds MODULE@VERSION. A binary without a stamp (built by hand) is adopted
# if `go version -m` shows it was built from the pinned module version.
# PACKAGE (default MODULE) is the main package when it is not the module's
# root; `go install` names the binary after its directory, so it is built
# in a scratch GOBIN and renamed to NAME.
go_tool() {
	local name=$1 module=$2 version=$3 pkg=${4:-$2} bin="$IMGSINK_BIN/$1"
	local want="$module@$version" stamp="$IMGSINK_BIN/.$1.version" go
	if [[ -x $bin && -f $stamp && "$(<"$stamp")" == "$want" ]]; then
		echo "$name $version: present"
		return
	fi
	go=$(go_bin)
	if [[ -x $bin ]] && "$go" version -m "$bin" 2>/dev/null |
		grep -qE "^[[:space:]]+mod[[:space:]]+${module}[[:space:]]+${version}([[:space:]]|\$)"; then
		echo "$want" >"$stamp"
		echo "$name $version: present (adopted existing binary)"
		return
	fi
	rm -f "$stamp"
	# Static, path-independent binaries. This takes minutes on 2 cores
	# (MinIO is large); the Go build cache makes a rebuild much faster.
	if [[ $pkg == "$module" ]]; then
		GOBIN="$IMGSINK_BIN" GOFLAGS=-trimpath CGO_ENABLED=0 "$go" install "$want"
	else
		local scratch
		scratch=$(mktemp -d "$IMGSINK_CACHE/gobin.XXXXXX")
		GOBIN="$scratch" GOFLAGS=-trimpath CGO_ENABLED=0 "$go" install "$pkg@$version" ||
			{ rm -rf "$scratch"; die "go install $pkg@$version failed"; }
		mv "$scratch/${pkg##*/}" "$bin"
		rm -rf "$scratch"
	fi
	echo "$want" >"$stamp"
	echo "$name $version: installed"
}

go_tool minio "$MINIO_MODULE" "$MINIO_VERSION"
go_tool mc "$MC_MODULE" "$MC_VERSION"
# The TCP fault proxy of the fault suite (test/faults): latency, resets and
# black holes on the path to the store.
go_tool toxiproxy-server "$TOXIPROXY_MODULE" "$TOXIPROXY_VERSION" "$TOXIPROXY_MODULE/cmd/server"
go_tool toxiproxy-cli "$TOXIPROXY_MODULE" "$TOXIPROXY_VERSION" "$TOXIPROXY_MODULE/cmd/cli"
# Chart validation (deploy/helm, test/e2e/t80): helm (several minutes to
# build once) and kubeconform; the KEDA CRDs come from KEDA's module zip.
go_tool helm "$HELM_MODULE" "$HELM_VERSION" "$HELM_MODULE/cmd/helm"
go_tool kubeconform "$KUBECONFORM_MODULE" "$KUBECONFORM_VERSION" "$KUBECONFORM_MODULE/cmd/kubeconform"

# Python tools of the tests, pinned in scripts/requirements-test.txt, in a
# venv of Debian's python3 under the cache (never the system's site-packages).
# Rebuilt when the requirements change.
req="$REPO_ROOT/scripts/requirements-test.txt"
req_sum=$(sha256sum "$req" | cut -d' ' -f1)
if [[ -f $IMGSINK_VENV/.stamp && "$(<"$IMGSINK_VENV/.stamp")" == "$req_sum" ]]; then
	echo "python test tools: present ($IMGSINK_VENV)"
else
	[[ -x $IMGSINK_VENV/bin/python ]] || /usr/bin/python3 -m venv "$IMGSINK_VENV"
	piplog="$IMGSINK_CACHE/pip.log"
	"$IMGSINK_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >"$piplog" 2>&1 ||
		{ tail -n 40 "$piplog" >&2; die "pip install -r $req failed (log: $piplog)"; }
	echo "$req_sum" >"$IMGSINK_VENV/.stamp"
	echo "python test tools: installed ($(grep -cE '^[A-Za-z]' "$req") pinned packages)"
fi

# --- Apicurio Registry (Schema Registry of the tests), from Maven Central ----
# The "all" tar.gz is a Quarkus app (quarkus-run.jar + lib/); registry-pom.xml
# unpacks it. Same stamp scheme as Kafka: the pom's hash.
rpom="$STACK_SCRIPTS/registry-pom.xml"
rpom_sum=$(sha256sum "$rpom" | cut -d' ' -f1)
if [[ -f $REGISTRY_HOME/.stamp && "$(<"$REGISTRY_HOME/.stamp")" == "$rpom_sum" ]]; then
	echo "apicurio-registry $REGISTRY_VERSION: present"
else
	grep -q "<registry.version>$REGISTRY_VERSION</registry.version>" "$rpom" ||
		die "registry-pom.xml and test/stack/common.sh disagree on the registry version"
	rm -rf "$REGISTRY_HOME"
	mkdir -p "$REGISTRY_HOME"
	mvnlog="$REGISTRY_HOME/mvn.log"
	mvn -B -Dstyle.color=never -f "$rpom" dependency:unpack \
		-DoutputDirectory="$REGISTRY_HOME/app.tmp" -Dmarkers.dir="$REGISTRY_HOME/markers" >"$mvnlog" 2>&1 ||
		{ tail -n 40 "$mvnlog" >&2; die "maven failed (log: $mvnlog)"; }
	[[ -f $REGISTRY_HOME/app.tmp/quarkus-run.jar ]] || die "maven did not provide quarkus-run.jar"
	mv "$REGISTRY_HOME/app.tmp" "$REGISTRY_HOME/app"
	echo "$rpom_sum" >"$REGISTRY_HOME/.stamp"
	echo "apicurio-registry $REGISTRY_VERSION: installed"
fi
java21_bin >/dev/null || die "Apicurio Registry needs Java 21+ (see above)"
# Standalone schemas for kubeconform (test/e2e/t80): the Kubernetes kinds from
# the venv's kubernetes-validate with their $refs inlined, and KEDA's
# ScaledObject CRD and the Prometheus Operator's ServiceMonitor and
# PrometheusRule CRDs from their module zips (downloaded, not built). Remade when
# a version changes.
k8s_want="kubernetes-validate:$K8S_SCHEMA_VERSION keda:$KEDA_VERSION prometheus-operator:$PROMOP_VERSION"
if [[ -f $K8S_SCHEMA_DIR/.stamp && "$(<"$K8S_SCHEMA_DIR/.stamp")" == "$k8s_want" ]]; then
	echo "kubeconform schemas: present ($K8S_SCHEMA_DIR)"
else
	kv_dir=$("$IMGSINK_VENV/bin/python" -c 'import kubernetes_validate, os; print(os.path.dirname(kubernetes_validate.__file__))')
	kv_dir="$kv_dir/kubernetes-json-schema/v$K8S_SCHEMA_VERSION-local-strict"
	[[ -f $kv_dir/_definitions.json ]] || die "kubernetes-validate has no schemas for $K8S_SCHEMA_VERSION ($kv_dir)"
	keda_dir=$(GOFLAGS=-mod=mod "$(go_bin)" mod download -json "$KEDA_MODULE@$KEDA_VERSION" |
		"$IMGSINK_VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
	keda_crd="$keda_dir/config/crd/bases/keda.sh_scaledobjects.yaml"
	[[ -f $keda_crd ]] || die "KEDA $KEDA_VERSION has no $keda_crd"
	promop_dir=$(GOFLAGS=-mod=mod "$(go_bin)" mod download -json "$PROMOP_MODULE@$PROMOP_VERSION" |
		"$IMGSINK_VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
	promop_crds=()
	for c in servicemonitors prometheusrules; do
		promop_crds+=("$promop_dir/example/prometheus-operator-crd/monitoring.coreos.com_$c.yaml")
		[[ -f ${promop_crds[-1]} ]] || die "prometheus-operator $PROMOP_VERSION has no ${promop_crds[-1]}"
	done
	rm -rf "$K8S_SCHEMA_DIR.tmp"
	n=$("$IMGSINK_VENV/bin/python" "$REPO_ROOT/scripts/k8s-schemas.py" "$K8S_SCHEMA_DIR.tmp" "$kv_dir" "$keda_crd" "${promop_crds[@]}")
	rm -rf "$K8S_SCHEMA_DIR"
	mv "$K8S_SCHEMA_DIR.tmp" "$K8S_SCHEMA_DIR"
	echo "$k8s_want" >"$K8S_SCHEMA_DIR/.stamp"
	echo "kubeconform schemas: installed ($n kinds)"
fi
# The Debian 13 (trixie) sysroot the default build compiles in (PLATFORM=trixie
# in the Makefile): debootstrap + Debian 13's -dev packages, cached.
bash "$REPO_ROOT/scripts/sysroot.sh"
