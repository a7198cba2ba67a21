#!/usr/bin/env bash
# docker-compose.yml, checked without an engine: `docker compose config` (or
# docker-compose's, which deps installs) accepts it; the workers' IMGSINK_*
# variables all name configuration keys and make a configuration imgsink
# accepts; it uses the Helm chart's values (every key of the chart's config:
# and the worker sizing, same values); its stop grace period exceeds
# shutdown.timeout.ms; the workers run hardened like the chart's pods; and
# ./samples holds images for the produce service.
. "$(dirname "$0")/lib.sh"

cd "$ROOT" || exit 1
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
else
    compose=()
fi
if [ ${#compose[@]} -gt 0 ]; then
    if "${compose[@]}" -f docker-compose.yml config >"$TMP/compose.yml" 2>"$TMP/compose.err"; then
        ok "${compose[*]} config accepts docker-compose.yml"
    else
        sed 's/^/# /' "$TMP/compose.err" | head -20
        notok "${compose[*]} config accepts docker-compose.yml"
        exit 1
    fi
else
    skip "docker compose config" "neither docker compose nor docker-compose installed"
    cp docker-compose.yml "$TMP/compose.yml"
fi

# The normalised file as JSON facts for the checks below.
python3 - "$TMP/compose.yml" deploy/helm/imgsink/values.yaml deploy/helm/values-laptop.yaml >"$TMP/facts" <<'EOF' || notok "parse the compose file and values.yaml"
import re, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
v = yaml.safe_load(open(sys.argv[2]))
lap = yaml.safe_load(open(sys.argv[3]))
# The laptop values reach Kafka's EXTERNAL listener and MinIO on ports
# compose publishes, the listener advertised on that port.
published = set()
for svc in ("kafka", "minio"):
    for p in c["services"][svc].get("ports", []):
        published.add(int(p["published"]) if isinstance(p, dict) else int(str(p).split(":")[-2]))
kenv = c["services"]["kafka"]["environment"]
kenv = dict(e.split("=", 1) for e in kenv) if isinstance(kenv, list) else kenv
kport = int(lap["config"]["kafka.bootstrap.servers"].rsplit(":", 1)[1])
sport = int(lap["config"]["s3.endpoint"].rsplit(":", 1)[1])
adv = re.search(r"EXTERNAL://[^,]*:(\d+)", kenv.get("KAFKA_ADVERTISED_LISTENERS", ""))
print("LAPTOP_PORTS='Kafka %d, MinIO %d; compose publishes %s; EXTERNAL advertised on %s'"
      % (kport, sport, sorted(published), adv.group(1) if adv else "none"))
print("LAPTOP_OK=%s" % (kport in published and sport in published and adv is not None
                        and int(adv.group(1)) == kport))
w = c["services"]["worker-1"]
env = w["environment"]
env = dict(e.split("=", 1) for e in env) if isinstance(env, list) else env
def secs(s):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", str(s))
    return int(m.group(1) or 0) * 60 + float(m.group(2) or 0)
print("GRACE=%d" % secs(w.get("stop_grace_period", "10s")))
print("SHUTDOWN_MS=%s" % env.get("IMGSINK_SHUTDOWN_TIMEOUT_MS", "30000"))
print("READ_ONLY=%s" % str(w.get("read_only", False)).lower())
print("CAP_DROP=%s" % ",".join(w.get("cap_drop", [])))
print("NO_NEW_PRIV=%s" % any("no-new-privileges" in s for s in w.get("security_opt", [])))
print("USER=%s" % w.get("user", ""))
print("WORKERS=%d" % sum(1 for s in c["services"] if s.startswith("worker-")))
# The chart's config keys and worker sizing, as IMGSINK_* names and values.
want = {k: str(val) for k, val in v["config"].items()}
want["worker.threads"] = str(v["worker"]["threads"])
want["worker.max.inflight.pixels"] = str(v["worker"]["maxInflightPixels"])
want["worker.max.inflight.bytes"] = "%sMiB" % v["worker"]["maxInflightMiB"]
# Kafka and the store are compose's own services on the compose network.
own = {"kafka.bootstrap.servers", "s3.bucket"}
bad = []
for k, val in sorted(want.items()):
    name = "IMGSINK_" + k.upper().replace(".", "_")
    if name not in env:
        bad.append("%s missing" % name)
    elif k not in own and str(env[name]) != val:
        bad.append("%s=%s, chart %s" % (name, env[name], val))
print("CHART_DIFF='%s'" % "; ".join(bad))
print("CHART_KEYS=%d" % len(want))
with open(sys.argv[1] + ".env", "w") as f:
    for k, val in env.items():
        f.write("%s=%s\n" % (k, val))
EOF
# shellcheck disable=SC1091
. "$TMP/facts"
note "compose workers: ${WORKERS:-?}; stop_grace_period ${GRACE:-?} s; shutdown.timeout.ms ${SHUTDOWN_MS:-?}"
check "stop_grace_period (${GRACE:-?} s) exceeds shutdown.timeout.ms (${SHUTDOWN_MS:-?} ms)" \
    test "$((${GRACE:-0} * 1000))" -gt "${SHUTDOWN_MS:-0}"
check "the compose workers use the chart's ${CHART_KEYS:-?} configuration values${CHART_DIFF:+ ($CHART_DIFF)}" \
    test -z "${CHART_DIFF-x}"
check "the laptop values (deploy/helm/values-laptop.yaml) reach compose's published ports: ${LAPTOP_PORTS:-?}" \
    test "${LAPTOP_OK:-}" = True
check "workers hardened like the chart: read_only, cap_drop ALL, no-new-privileges, user ${USER:-?}" \
    test "${READ_ONLY:-}" = true -a "${CAP_DROP:-}" = ALL -a "${NO_NEW_PRIV:-}" = True -a "${USER:-}" = 10001:10001

# Every IMGSINK_* variable names a key (imgsink warns about the others) and
# the whole makes a configuration `imgsink config` accepts.
mapfile -t compose_env < <(grep '^IMGSINK_' "$TMP/compose.yml.env")
env -i PATH="$PATH" "${compose_env[@]}" "$IMGSINK" config >"$TMP/config.out" 2>"$TMP/config.err"
rc=$?
check "imgsink config accepts the workers' environment (exit $rc)" test "$rc" = 0
if grep -q 'naming no configuration key' "$TMP/config.err"; then
    sed 's/^/# /' "$TMP/config.err" | head -5
    notok "every IMGSINK_* variable of the compose workers names a configuration key"
else
    ok "every IMGSINK_* variable of the compose workers names a configuration key"
fi
if grep -q 's3.secret.key=minioadmin' "$TMP/config.out"; then
    notok "the compose secret key is hidden by imgsink config"
else
    ok "the compose secret key is hidden by imgsink config"
fi
# A misspelt key in the environment is reported, not silently ignored (the
# check above can fail).
env -i PATH="$PATH" IMGSINK_S3_BUCKET=b IMGSINK_KAFKA_BOOTSTRAP_SERVERS=k:9092 \
    IMGSINK_SHUTDOWN_TIMEOUT=30000 "$IMGSINK" config >/dev/null 2>"$TMP/typo.err"
check "a misspelt IMGSINK_SHUTDOWN_TIMEOUT is reported by name" grep -q 'IMGSINK_SHUTDOWN_TIMEOUT' "$TMP/typo.err"

n=$(find samples -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' -o -name '*.webp' \) | wc -l)
check "./samples holds $n images for the produce service" test "$n" -gt 0
bad=0
for f in samples/*; do vipsheader "$f" >/dev/null 2>&1 || bad=$((bad + 1)); done
check "libvips reads every sample ($bad unreadable)" test "$bad" = 0
check "the produce service mounts ./samples" grep -q '\./samples:/samples' docker-compose.yml

[ "$N_FAIL" -eq 0 ]
