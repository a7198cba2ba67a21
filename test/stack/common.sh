# shellcheck shell=bash
# The variables are used by the scripts that source this file.
# shellcheck disable=SC2034
# Shared by scripts/deps.sh and the test/stack/ scripts: pinned versions,
# cache paths and the PID-file helpers. Sourced, never executed.
#
# Everything downloaded or built lives in $IMGSINK_CACHE, outside the clone,
# so a fresh clone (CI) on the same machine reuses it and `make deps` takes
# seconds the second time.

IMGSINK_CACHE="${IMGSINK_CACHE:-${HOME:-/root}/.cache/imgsink}"

# Kafka 3.9.x, not 4.x: 4.0 removed the old request versions that
# librdkafka 2.0.2 (Debian 12) uses. Keep in step with kafka-pom.xml.
KAFKA_VERSION=3.9.1
# MinIO and mc are built from their Go modules. Their tags (RELEASE.*) are not
# semver, so the module proxy only knows these pseudo-versions.
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MC_MODULE=github.com/minio/mc
MC_VERSION=v0.0.0-20250313080218-cf909e1063a9
# Toxiproxy (TCP fault proxy for test/faults), also from its Go module.
TOXIPROXY_MODULE=github.com/Shopify/toxiproxy/v2
TOXIPROXY_VERSION=v2.12.0
# Chart validation tools (test/e2e/t80), from their Go modules; KEDA's module
# is only downloaded (not built) for its ScaledObject CRD schema.
HELM_MODULE=helm.sh/helm/v3
HELM_VERSION=v3.19.0
KUBECONFORM_MODULE=github.com/yannh/kubeconform
KUBECONFORM_VERSION=v0.7.0
KEDA_MODULE=github.com/kedacore/keda/v2
KEDA_VERSION=v2.16.1
# The Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule), likewise.
PROMOP_MODULE=github.com/prometheus-operator/prometheus-operator
PROMOP_VERSION=v0.85.0
# Kubernetes version the chart is validated for (kubernetes-validate's
# schemas; helm template --kube-version) and where the standalone schemas go.
K8S_SCHEMA_VERSION=1.31.0
K8S_SCHEMA_DIR="${IMGSINK_CACHE:-${HOME:-/root}/.cache/imgsink}/k8s-schemas/v$K8S_SCHEMA_VERSION"

IMGSINK_BIN="$IMGSINK_CACHE/bin"
# Python tools of the tests (scripts/requirements-test.txt), in a venv built
# by deps.sh with Debian's python3: "$IMGSINK_VENV/bin/NAME".
IMGSINK_VENV="$IMGSINK_CACHE/venv"
KAFKA_HOME="$IMGSINK_CACHE/kafka-$KAFKA_VERSION"
MINIO_BIN="$IMGSINK_BIN/minio"
MC_BIN="$IMGSINK_BIN/mc"
TOXIPROXY_BIN="$IMGSINK_BIN/toxiproxy-server"
TOXIPROXY_CLI="$IMGSINK_BIN/toxiproxy-cli"

# The repository root, from this file's own location (works from any cwd).
STACK_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$STACK_SCRIPTS/../.." && pwd)"
IMGSINK_STACK_DIR="${IMGSINK_STACK_DIR:-$REPO_ROOT/.stack}"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian's python3 rather than whatever pyenv shim is first on PATH: it is
# installed by deps.sh (python3-yaml pulls it in) and needs no environment.
python3_bin() {
	if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else command -v python3; fi
}

# pid_of PIDFILE MARKER: print the PID if the process is alive *and* its
# command line contains MARKER (a path under the state dir). The marker check
# stops us from ever signalling an unrelated process that reused a stale PID.
pid_of() {
	local pidfile=$1 marker=$2 pid
	[[ -s $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	# cmdline is NUL-separated; make it one line before matching.
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
	echo "$pid"
}

# proc_start PID: the process's start time in clock ticks since boot (field
# 22 of /proc/PID/stat); PID plus start time names one process for good.
# The command name (field 2) may hold spaces and parentheses: cut after the
# last ')'.
proc_start() {
	local s f
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	read -r -a f <<<"$s"
	echo "${f[19]}"
}

# proc_running PID START: true while that process still has a live thread.
# Not the same as pid_of: once a JVM starts shutting down, its main thread
# (the thread-group leader) exits first, /proc/PID/cmdline reads empty and
# the leader shows state Z, while the shutdown hooks still run in other
# threads for a second or two. A real zombie (Z with one thread) is gone
# for our purposes; it just waits for PID 1 to reap it.
proc_running() {
	local st
	[[ "$(proc_start "$1")" == "$2" ]] || return 1
	st=$(awk '/^State:/ { s = $2 } /^Threads:/ { t = $2 } END { print s, t }' \
		"/proc/$1/status" 2>/dev/null) || return 1
	case $st in
	'' | X* | 'Z 0' | 'Z 1') return 1 ;;
	esac
}

# port_free PORT: true if nothing listens on 127.0.0.1:PORT.
port_free() {
	"$(python3_bin)" - "$1" <<-'EOF'
		import socket, sys
		s = socket.socket()
		try:
		    s.bind(("127.0.0.1", int(sys.argv[1])))
		except OSError:
		    sys.exit(1)
	EOF
}

# free_ports N: print N distinct free loopback ports chosen by the kernel.
# Racy by nature (another process may take one before we bind it), which is
# acceptable for a test stack; the servers' startup check catches it.
free_ports() {
	"$(python3_bin)" - "$1" <<-'EOF'
		import socket, sys
		socks = []
		for _ in range(int(sys.argv[1])):
		    s = socket.socket()
		    s.bind(("127.0.0.1", 0))
		    socks.append(s)
		print(" ".join(str(s.getsockname()[1]) for s in socks))
	EOF
}

# spawn PIDFILE LOGFILE CMD...: start CMD in its own session (so the caller's
# Ctrl-C or job control does not reach it) with stdin closed and output
# appended to LOGFILE. The child writes its own PID and then execs, so the
# PID file holds the server's PID whatever setsid does about forking.
spawn() {
	local pidfile=$1 logfile=$2
	shift 2
	rm -f "$pidfile"
	printf '\n=== %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$logfile"
	# Every fd above 2 is closed in the child. fd 8 is our lock on
	# $STATE/.lock: a server inheriting it would hold the lock for its whole
	# life and every later start.sh/stop.sh would wait on it. Others (make's
	# jobserver pipe, a CI runner's pipes) would be kept open just as long.
	# shellcheck disable=SC2016 # $$ and $@ are for the inner bash
	setsid bash -c '
		echo $$ >"$0"
		for fd in /proc/self/fd/*; do
			fd=${fd##*/}
			if ((fd > 2)); then exec {fd}>&-; fi
		done
		exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s $pidfile ]] && return 0
		sleep 0.1
	done
	die "$1 did not start (no PID file $pidfile)"
}

# Apicurio Registry (the Schema Registry of the tests), unpacked from its
# Maven "all" tar.gz by deps.sh (registry-pom.xml); run by registry.sh.
REGISTRY_VERSION=3.3.3
REGISTRY_HOME="$IMGSINK_CACHE/apicurio-registry-$REGISTRY_VERSION"

# java21_bin: a java of version 21 or newer under /usr/lib/jvm (Apicurio 3
# needs it; Debian 12's default is 17), newest first; fails with a message.
java21_bin() {
	local j v
	for j in $(ls -d /usr/lib/jvm/*/bin/java 2>/dev/null | sort -rV); do
		v=$("$j" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
		if [[ $v =~ ^[0-9]+$ ]] && ((v >= 21)); then
			echo "$j"
			return 0
		fi
	done
	printf 'error: %s\n' "no Java 21 or newer under /usr/lib/jvm/*/bin/java (Apicurio Registry $REGISTRY_VERSION needs one; found: $(ls /usr/lib/jvm 2>/dev/null | tr '\n' ' '))" >&2
	return 1
}
