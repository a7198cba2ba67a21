#!/usr/bin/env bash
# A second, secured Kafka node (KRaft, broker and controller in one JVM) for
# the security tests, beside the plain one of start.sh:
#
#   test/stack/kafka-secure.sh start   # then: . $IMGSINK_STACK_DIR/kafka-secure/env
#   test/stack/kafka-secure.sh stop    # stop; keep data and certificates
#   test/stack/kafka-secure.sh purge   # stop and delete its whole state dir
#
# Listeners, all on 127.0.0.1 (free ports, kept in its state dir):
#   ADMIN    PLAINTEXT, principal User:ANONYMOUS, a super user: the tests'
#            own tools (topics, ACLs, kafka-consumer-groups, kcat) use it.
#   SASL     SASL_SSL with SCRAM-SHA-512; server certificate for localhost
#            and 127.0.0.1 from the test CA.
#   MTLS     SSL with ssl.client.auth=required; the principal is the client
#            certificate's CN (User:imgsink-mtls).
#   BADNAME  SASL_SSL like SASL, but its certificate names kafka.invalid
#            only: a client connecting to 127.0.0.1 must refuse it.
# StandardAuthorizer with allow.everyone.if.no.acl.found=false: every
# principal but the super users needs ACLs (deploy/kafka/acls.sh).
#
# The certificates are made here with openssl on first start: a CA, the
# server's PEM keystore (PKCS#8 key + certificate + CA in one file, no
# keytool), a client certificate whose PKCS#8 key is encrypted with a
# passphrase, a second, unrelated CA for the "unknown CA" tests, and a
# client certificate with the same CN from that CA (the mTLS listener must
# refuse it: mutual TLS trusts the CA, not the name). SCRAM
# users are created when the storage is formatted (--add-scram); passwords
# and the key passphrase are random per state dir, in env (mode 600).
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_TIMEOUT=${KAFKA_TIMEOUT:-120}
mkdir -p "$IMGSINK_STACK_DIR/kafka-secure"
S=$(cd "$IMGSINK_STACK_DIR/kafka-secure" && pwd)
CONF="$S/server.properties"
DATA="$S/data"
CERTS="$S/certs"
PIDFILE="$S/kafka.pid"
LOGFILE="$S/kafka.log"

secure_pid() { pid_of "$PIDFILE" "$CONF"; }

stop() {
	local pid start i
	if ! pid=$(secure_pid) || ! start=$(proc_start "$pid"); then
		rm -f "$PIDFILE"
		log "kafka-secure: not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		proc_running "$pid" "$start" || break
		sleep 0.1
	done
	if proc_running "$pid" "$start"; then
		log "kafka-secure: pid $pid ignored TERM for 20s, sending KILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$PIDFILE"
	log "kafka-secure: stopped (pid $pid)"
}

case ${1:-} in
start) ;;
stop)
	exec 8>"$S/.lock"
	flock -w 60 8 || log "warning: $S/.lock still held after 60s; stopping anyway"
	stop
	exit 0
	;;
purge)
	exec 8>"$S/.lock"
	flock -w 60 8 || true
	stop
	rm -rf "$S"
	exit 0
	;;
*) die "usage: $0 start|stop|purge" ;;
esac

[[ -d $KAFKA_HOME/libs ]] || die "Kafka jars missing from $IMGSINK_CACHE: run scripts/deps.sh"
for c in kcat openssl java; do
	command -v "$c" >/dev/null || die "$c not found: run scripts/deps.sh"
done
exec 8>"$S/.lock"
flock -w 300 8 || die "another kafka-secure.sh holds $S/.lock"

rand() { "$(python3_bin)" -c 'import secrets; print(secrets.token_hex(16))'; }

# --- secrets and ports (kept for the life of the state dir) -------------------
if [[ ! -s $S/secrets ]]; then
	umask 077
	{
		echo "SECURE_ADMIN_PASSWORD=$(rand)"
		echo "SECURE_WORKER_PASSWORD=$(rand)"
		echo "SECURE_KEY_PASSPHRASE=$(rand)"
	} >"$S/secrets"
	umask 022
fi
# shellcheck disable=SC1091
. "$S/secrets"

pid=$(secure_pid) || pid=''
if [[ ! -s $S/ports ]] || [[ -z $pid ]]; then
	if [[ -s $S/ports ]]; then
		# shellcheck disable=SC1091
		. "$S/ports"
		for p in "$ADMIN_PORT" "$SASL_PORT" "$MTLS_PORT" "$BADNAME_PORT" "$CTL_PORT"; do
			port_free "$p" || { rm -f "$S/ports"; break; }
		done
	fi
	if [[ ! -s $S/ports ]]; then
		read -r a b c d e <<<"$(free_ports 5)"
		printf 'ADMIN_PORT=%s\nSASL_PORT=%s\nMTLS_PORT=%s\nBADNAME_PORT=%s\nCTL_PORT=%s\n' \
			"$a" "$b" "$c" "$d" "$e" >"$S/ports"
	fi
fi
# shellcheck disable=SC1091
. "$S/ports"

# --- certificates -------------------------------------------------------------
# make_ca NAME: self-signed CA NAME.pem / NAME.key.
make_ca() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=imgsink test $1" \
		-keyout "$CERTS/$1.key" -out "$CERTS/$1.pem" 2>/dev/null
}
# make_cert NAME CN SAN EXT [PASSPHRASE [CA]]: NAME.key (PKCS#8, encrypted
# with PASSPHRASE if not empty) and NAME.pem signed by CA (default: the
# test CA, ca).
make_cert() {
	local name=$1 cn=$2 san=$3 ext=$4 pass=${5:-} ca=${6:-ca}
	if [[ -n $pass ]]; then
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -aes-256-cbc \
			-pass "file:$CERTS/$name.pass" -out "$CERTS/$name.key" 2>/dev/null
		openssl req -new -key "$CERTS/$name.key" -passin "file:$CERTS/$name.pass" \
			-subj "/CN=$cn/O=imgsink tests" -out "$CERTS/$name.csr" 2>/dev/null
	else
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
			-out "$CERTS/$name.key" 2>/dev/null
		openssl req -new -key "$CERTS/$name.key" -subj "/CN=$cn/O=imgsink tests" \
			-out "$CERTS/$name.csr" 2>/dev/null
	fi
	printf '%s\nextendedKeyUsage=%s\n' "${san:+subjectAltName=$san}" "$ext" >"$CERTS/$name.ext"
	openssl x509 -req -in "$CERTS/$name.csr" -CA "$CERTS/$ca.pem" -CAkey "$CERTS/$ca.key" \
		-CAcreateserial -days 30 -extfile "$CERTS/$name.ext" -out "$CERTS/$name.pem" 2>/dev/null
	rm -f "$CERTS/$name.csr" "$CERTS/$name.ext"
}
if [[ ! -s $CERTS/done ]]; then
	rm -rf "$CERTS"
	mkdir -p "$CERTS"
	chmod 700 "$CERTS"
	make_ca ca
	make_ca other-ca
	make_cert server localhost "DNS:localhost,IP:127.0.0.1" serverAuth
	make_cert badname kafka.invalid "DNS:kafka.invalid" serverAuth
	printf '%s' "$SECURE_KEY_PASSPHRASE" >"$CERTS/client.pass"
	make_cert client imgsink-mtls "" clientAuth "$SECURE_KEY_PASSPHRASE"
	rm -f "$CERTS/client.pass"
	# Kafka's PEM keystore: the PKCS#8 key, then the certificate chain.
	cat "$CERTS/server.key" "$CERTS/server.pem" "$CERTS/ca.pem" >"$CERTS/server-keystore.pem"
	cat "$CERTS/badname.key" "$CERTS/badname.pem" "$CERTS/ca.pem" >"$CERTS/badname-keystore.pem"
	echo ok >"$CERTS/done"
fi
# Apart from the set above, so that a state dir made before it gets it too.
if [[ ! -s $CERTS/other-client.pem ]]; then
	make_cert other-client imgsink-mtls "" clientAuth "" other-ca
fi

# --- broker -------------------------------------------------------------------
healthy() {
	kcat -L -b "127.0.0.1:$ADMIN_PORT" -m 2 2>/dev/null | grep -qF "broker 1 at 127.0.0.1:$ADMIN_PORT"
}

write_config() {
	mkdir -p "$DATA"
	local jaas='org.apache.kafka.common.security.scram.ScramLoginModule required;'
	cat >"$CONF" <<-CONF
		# Written by test/stack/kafka-secure.sh on every start.
		process.roles=broker,controller
		node.id=1
		controller.quorum.voters=1@127.0.0.1:$CTL_PORT
		listeners=ADMIN://127.0.0.1:$ADMIN_PORT,SASL://127.0.0.1:$SASL_PORT,MTLS://127.0.0.1:$MTLS_PORT,BADNAME://127.0.0.1:$BADNAME_PORT,CONTROLLER://127.0.0.1:$CTL_PORT
		advertised.listeners=ADMIN://127.0.0.1:$ADMIN_PORT,SASL://127.0.0.1:$SASL_PORT,MTLS://127.0.0.1:$MTLS_PORT,BADNAME://127.0.0.1:$BADNAME_PORT
		listener.security.protocol.map=ADMIN:PLAINTEXT,SASL:SASL_SSL,MTLS:SSL,BADNAME:SASL_SSL,CONTROLLER:PLAINTEXT
		controller.listener.names=CONTROLLER
		inter.broker.listener.name=ADMIN
		log.dirs=$DATA
		ssl.keystore.type=PEM
		ssl.keystore.location=$CERTS/server-keystore.pem
		ssl.truststore.type=PEM
		ssl.truststore.location=$CERTS/ca.pem
		listener.name.badname.ssl.keystore.type=PEM
		listener.name.badname.ssl.keystore.location=$CERTS/badname-keystore.pem
		listener.name.badname.ssl.truststore.type=PEM
		listener.name.badname.ssl.truststore.location=$CERTS/ca.pem
		listener.name.mtls.ssl.client.auth=required
		sasl.enabled.mechanisms=SCRAM-SHA-512
		listener.name.sasl.scram-sha-512.sasl.jaas.config=$jaas
		listener.name.badname.scram-sha-512.sasl.jaas.config=$jaas
		# The DN is in RFC 2253 order (O=...,CN=...): take the CN wherever it is.
		ssl.principal.mapping.rules=RULE:^(?:.*,)?CN=([^,]*)(?:,.*)?\$/\$1/,DEFAULT
		authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
		allow.everyone.if.no.acl.found=false
		# The admin listener, the controller and the broker itself.
		super.users=User:ANONYMOUS;User:admin
		auto.create.topics.enable=false
		num.partitions=3
		default.replication.factor=1
		offsets.topic.replication.factor=1
		offsets.topic.num.partitions=3
		transaction.state.log.replication.factor=1
		transaction.state.log.min.isr=1
		transaction.state.log.num.partitions=3
		group.initial.rebalance.delay.ms=0
		num.network.threads=2
		num.io.threads=2
		num.recovery.threads.per.data.dir=1
		log.cleaner.threads=1
		message.max.bytes=67108864
		replica.fetch.max.bytes=67108864
	CONF
}

if [[ -n $pid ]] && healthy; then
	state="reused (pid $pid)"
else
	if [[ -z $pid ]]; then
		write_config
		if [[ ! -f $DATA/meta.properties ]]; then
			cid=$("$(python3_bin)" -c 'import base64,os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    if s[0] != "-": print(s); break')
			"$STACK_SCRIPTS/kafka-class.sh" storage format --ignore-formatted -t "$cid" -c "$CONF" \
				--add-scram "SCRAM-SHA-512=[name=admin,password=$SECURE_ADMIN_PASSWORD]" \
				--add-scram "SCRAM-SHA-512=[name=imgsink,password=$SECURE_WORKER_PASSWORD]" \
				>>"$LOGFILE" 2>&1 || { tail -20 "$LOGFILE" >&2; die "kafka-secure: storage format failed"; }
		fi
		KAFKA_HEAP_OPTS="-Xms384m -Xmx384m" \
			KAFKA_JVM_OPTS="-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError" \
			KAFKA_LOG4J="$STACK_SCRIPTS/log4j-broker.properties" \
			spawn "$PIDFILE" "$LOGFILE" "$STACK_SCRIPTS/kafka-class.sh" server "$CONF"
		state=started
	else
		state="was starting"
	fi
	deadline=$((SECONDS + KAFKA_TIMEOUT))
	until healthy; do
		secure_pid >/dev/null || {
			grep -E 'ERROR|Exception' "$LOGFILE" | tail -20 >&2
			die "kafka-secure: broker exited during start-up (log: $LOGFILE)"
		}
		((SECONDS < deadline)) || die "kafka-secure: not ready after ${KAFKA_TIMEOUT}s (log: $LOGFILE)"
		sleep 0.5
	done
	state="$state (pid $(secure_pid))"
fi

umask 077
{
	echo "# Written by test/stack/kafka-secure.sh; source it."
	echo "SECURE_DIR=$S"
	echo "SECURE_ADMIN_BOOTSTRAP=127.0.0.1:$ADMIN_PORT"
	echo "SECURE_SASL_BOOTSTRAP=127.0.0.1:$SASL_PORT"
	echo "SECURE_MTLS_BOOTSTRAP=127.0.0.1:$MTLS_PORT"
	echo "SECURE_BADNAME_BOOTSTRAP=127.0.0.1:$BADNAME_PORT"
	echo "SECURE_CA=$CERTS/ca.pem"
	echo "SECURE_OTHER_CA=$CERTS/other-ca.pem"
	echo "SECURE_CLIENT_CERT=$CERTS/client.pem"
	echo "SECURE_CLIENT_KEY=$CERTS/client.key"
	echo "SECURE_OTHER_CLIENT_CERT=$CERTS/other-client.pem"
	echo "SECURE_OTHER_CLIENT_KEY=$CERTS/other-client.key"
	echo "SECURE_WORKER_USER=imgsink"
	echo "SECURE_MTLS_PRINCIPAL=User:imgsink-mtls"
	echo "SECURE_WORKER_PASSWORD=$SECURE_WORKER_PASSWORD"
	echo "SECURE_ADMIN_PASSWORD=$SECURE_ADMIN_PASSWORD"
	echo "SECURE_KEY_PASSPHRASE=$SECURE_KEY_PASSPHRASE"
} >"$S/env.tmp"
mv "$S/env.tmp" "$S/env"
umask 022
log "kafka-secure: $state; admin 127.0.0.1:$ADMIN_PORT, SASL_SSL $SASL_PORT, mTLS $MTLS_PORT, bad name $BADNAME_PORT; env: $S/env"
