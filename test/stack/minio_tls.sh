#!/usr/bin/env bash
# A second MinIO for the store security tests (t73-t75): HTTPS only, with a
# KMS key, beside the plaintext one of start.sh.
#
#   test/stack/minio_tls.sh start DIR   # certs, server, bucket; writes DIR/env
#   test/stack/minio_tls.sh stop DIR    # stops the server of DIR by its PID
#
# DIR/certs/ca.crt      the CA that signed the server certificate
#                       (DNS:localhost, IP:127.0.0.1)
# DIR/certs/other-ca.crt a CA that signed nothing the server presents
# DIR/certs/wrong.crt   a certificate of the right CA for another host name
#                       (wrong.example), with wrong.key, for a server that
#                       presents a valid chain under the wrong name
# DIR/env               MTLS_ENDPOINT, MTLS_ACCESS_KEY, MTLS_SECRET_KEY,
#                       MTLS_KMS_KEY (the key's name), MTLS_KMS_SECRET (the
#                       key material, only for the secrets checks), MTLS_BUCKET,
#                       MTLS_MC (mc with its own config dir, trusting the CA)
#
# The KMS is MinIO's built-in single key (MINIO_KMS_SECRET_KEY=name:base64 of
# 32 random bytes): SSE-S3 and SSE-KMS with that key id work, any other key id
# is answered 404 kms:KeyNotFound. Started by PID file, stopped by exact PID.
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cmd=${1:-} dir=${2:-}
[[ -n $dir && ($cmd == start || $cmd == stop) ]] || die "usage: $0 start|stop DIR"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
DATA="$dir/data"
PIDFILE="$dir/minio.pid"

if [[ $cmd == stop ]]; then
	if pid=$(pid_of "$PIDFILE" "$DATA") && start=$(proc_start "$pid"); then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 200; i++)); do
			proc_running "$pid" "$start" || break
			sleep 0.1
		done
		if proc_running "$pid" "$start"; then kill -KILL "$pid" 2>/dev/null || true; fi
		log "minio-tls: stopped (pid $pid)"
	fi
	rm -f "$PIDFILE"
	exit 0
fi

CERTS="$dir/certs"
mkdir -p "$CERTS/CAs" "$DATA" "$dir/mc/certs/CAs"
# make_ca NAME: a self-signed CA, NAME.crt / NAME.key.
make_ca() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=imgsink test $1" \
		-keyout "$CERTS/$1.key" -out "$CERTS/$1.crt" 2>/dev/null
}
# make_leaf NAME SAN: a server certificate signed by ca.
make_leaf() {
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$CERTS/$1.key" \
		-out "$CERTS/$1.csr" 2>/dev/null
	printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" >"$CERTS/$1.ext"
	openssl x509 -req -in "$CERTS/$1.csr" -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" \
		-CAcreateserial -days 3 -extfile "$CERTS/$1.ext" -out "$CERTS/$1.crt" 2>/dev/null
}
if [[ ! -s $CERTS/public.crt ]]; then
	make_ca ca
	make_ca other-ca
	make_leaf server 'DNS:localhost,IP:127.0.0.1'
	make_leaf wrong 'DNS:wrong.example'
	# MinIO's names in --certs-dir.
	cp "$CERTS/server.crt" "$CERTS/public.crt"
	cp "$CERTS/server.key" "$CERTS/private.key"
	cp "$CERTS/ca.crt" "$CERTS/CAs/ca.crt"
	cp "$CERTS/ca.crt" "$dir/mc/certs/CAs/ca.crt"
fi
if [[ ! -s $dir/creds ]]; then
	"$(python3_bin)" - >"$dir/creds.tmp" <<-'EOF'
		import base64, os, secrets, string
		up = string.ascii_uppercase + string.digits
		al = string.ascii_letters + string.digits
		print("MTLS_ACCESS_KEY=" + "".join(secrets.choice(up) for _ in range(20)))
		print("MTLS_SECRET_KEY=" + "".join(secrets.choice(al) for _ in range(40)))
		print("MTLS_KMS_KEY=imgsink-test-key")
		print("MTLS_KMS_SECRET=" + base64.b64encode(os.urandom(32)).decode())
	EOF
	chmod 600 "$dir/creds.tmp"
	mv "$dir/creds.tmp" "$dir/creds"
fi
# shellcheck disable=SC1091
. "$dir/creds"

if ! pid_of "$PIDFILE" "$DATA" >/dev/null; then
	read -r port cport < <(free_ports 2)
	echo "$port" >"$dir/port"
	MINIO_ROOT_USER=$MTLS_ACCESS_KEY MINIO_ROOT_PASSWORD=$MTLS_SECRET_KEY \
		MINIO_KMS_SECRET_KEY="$MTLS_KMS_KEY:$MTLS_KMS_SECRET" \
		MINIO_UPDATE=off MINIO_CALLHOME_ENABLE=off MINIO_BROWSER=off \
		spawn "$PIDFILE" "$dir/minio.log" "$MINIO_BIN" server --quiet \
		--certs-dir "$CERTS" --address "127.0.0.1:$port" \
		--console-address "127.0.0.1:$cport" "$DATA"
fi
port=$(<"$dir/port")
MTLS_ENDPOINT="https://localhost:$port"
deadline=$((SECONDS + 120))
until curl -fsS -o /dev/null --max-time 3 --cacert "$CERTS/ca.crt" \
	"$MTLS_ENDPOINT/minio/health/live" 2>/dev/null; do
	pid_of "$PIDFILE" "$DATA" >/dev/null || {
		tail -20 "$dir/minio.log" >&2
		die "minio-tls exited during start-up"
	}
	((SECONDS < deadline)) || die "minio-tls not live after 120s"
	sleep 0.3
done

MC=("$MC_BIN" --config-dir "$dir/mc" --quiet --no-color)
"${MC[@]}" alias set tls "$MTLS_ENDPOINT" "$MTLS_ACCESS_KEY" "$MTLS_SECRET_KEY" \
	--api S3v4 >/dev/null
MTLS_BUCKET=secure
"${MC[@]}" mb --ignore-existing "tls/$MTLS_BUCKET" >/dev/null
"${MC[@]}" ilm rule import "tls/$MTLS_BUCKET" <"$REPO_ROOT/deploy/minio/lifecycle.json" >/dev/null
{
	echo "MTLS_ENDPOINT=$MTLS_ENDPOINT"
	echo "MTLS_PORT=$port"
	echo "MTLS_BUCKET=$MTLS_BUCKET"
	echo "MTLS_CERTS=$CERTS"
	echo "MTLS_MC_DIR=$dir/mc"
	cat "$dir/creds"
} >"$dir/env"
chmod 600 "$dir/env"
log "minio-tls: $MTLS_ENDPOINT (pid $(pid_of "$PIDFILE" "$DATA")), bucket $MTLS_BUCKET, KMS key $MTLS_KMS_KEY"
