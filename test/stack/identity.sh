#!/usr/bin/env bash
# Create (or refresh) a least-privilege MinIO user on the local stack, with
# one of the production policies of deploy/minio/policies, and print its keys:
#
#   test/stack/identity.sh [--dir DIR --alias ALIAS] ROLE [BUCKET [RAW_BUCKET]]
#                                        # prints "ACCESS_KEY SECRET_KEY"
#
# ROLE is a policy file name (worker, api). The policy is the deploy file's
# Allow statements as they are (actions, prefixes): the worker may PutObject
# and PutObjectTagging under imgsink/processed/ and GetObject under
# raw/uploads/, nothing else. BUCKET replaces the example output bucket name
# "imgsink" (as an operator replaces it with theirs, see the README), for
# tests that write to a bucket of their own; the default is the stack's.
# RAW_BUCKET likewise replaces the example upload bucket "raw".
#
# The deploy files' Deny statements are left out here, and only those: they
# refuse requests without TLS (aws:SecureTransport) and, for the worker, PUTs
# without SSE, and this stack is plaintext MinIO without a KMS, so they would
# refuse everything. t74_least_privilege runs the policies whole on the HTTPS
# MinIO with a KMS key (test/stack/minio_tls.sh).
#
# Keys are generated once per state dir and role/bucket and kept in
# $STATE/identities/; the policy is created again on every call (it may have
# changed in deploy/). Setup and verification stay with the admin alias
# "local" (the root user), as an operator's would.
#
# By default the MinIO is the stack's: state dir $IMGSINK_STACK_DIR, mc
# configuration in its mc/ and the admin alias "local". Another MinIO (a
# test's own, e.g. test/stack/minio-notify.sh) is named by --dir DIR, whose
# mc/ holds the mc configuration with the admin alias ALIAS and whose
# identities/ gets the keys.
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage="usage: $0 [--dir DIR --alias ALIAS] ROLE [BUCKET [RAW_BUCKET]], ROLE a policy of deploy/minio/policies (worker, api, analytics, analytics-rollup)"
state_dir=$IMGSINK_STACK_DIR
mc_alias=local
while [[ ${1:-} == --* ]]; do
	[[ $# -ge 2 ]] || die "$usage"
	case $1 in
	--dir) state_dir=$2 ;;
	--alias) mc_alias=$2 ;;
	*) die "$usage" ;;
	esac
	shift 2
done
[[ $mc_alias =~ ^[a-z][a-z0-9-]*$ ]] || die "not an mc alias: $mc_alias"
role=${1:-}
bucket=${2:-imgsink}
raw_bucket=${3:-raw}
policy_file=$REPO_ROOT/deploy/minio/policies/$role.json
[[ $role =~ ^[a-z]+(-[a-z]+)?$ && -f $policy_file ]] || die "$usage"
for b in "$bucket" "$raw_bucket"; do
	[[ $b =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "not a bucket name: $b"
done
STATE=$(cd "$state_dir" && pwd)
MC=("$MC_BIN" --config-dir "$STATE/mc" --quiet --no-color)
name="imgsink-$role"
[[ $bucket == imgsink ]] || name="$name-$bucket"
[[ $raw_bucket == raw ]] || name="$name-raw-$raw_bucket"

mkdir -p "$STATE/identities"
creds=$STATE/identities/$name.creds
if [[ ! -s $creds ]]; then
	# MinIO access keys are at most 20 characters: a random one, the
	# user's role and bucket go in the policy name.
	"$(python3_bin)" - >"$creds.tmp" <<-'EOF'
		import secrets, string
		up = string.ascii_uppercase + string.digits
		al = string.ascii_letters + string.digits
		print("".join(secrets.choice(up) for _ in range(20)),
		      "".join(secrets.choice(al) for _ in range(40)))
	EOF
	chmod 600 "$creds.tmp"
	mv "$creds.tmp" "$creds"
fi
read -r access secret <"$creds"

"$(python3_bin)" - "$policy_file" "$bucket" "$raw_bucket" >"$STATE/identities/$name.json" <<-'EOF'
	import json, sys
	doc = json.load(open(sys.argv[1]))
	names = {"imgsink": sys.argv[2], "raw": sys.argv[3]}
	def rebucket(arn):
	    for example, bucket in names.items():
	        pre = "arn:aws:s3:::" + example
	        if arn == pre or arn.startswith(pre + "/"):
	            return "arn:aws:s3:::" + bucket + arn[len(pre):]
	    return arn
	out = []
	for st in doc["Statement"]:
	    if st["Effect"] != "Allow":
	        continue  # TLS and SSE conditions: see the header of identity.sh
	    st = dict(st)
	    st["Resource"] = [rebucket(r) for r in st["Resource"]]
	    out.append(st)
	doc["Statement"] = out
	print(json.dumps(doc, indent=2))
EOF
"${MC[@]}" admin policy create "$mc_alias" "$name" "$STATE/identities/$name.json" >/dev/null ||
	die "mc admin policy create $name"
"${MC[@]}" admin user add "$mc_alias" "$access" "$secret" >/dev/null || die "mc admin user add for $name"
# attach fails when the policy is attached already: check the result instead.
"${MC[@]}" admin policy attach "$mc_alias" "$name" --user "$access" >/dev/null 2>&1 || true
"${MC[@]}" admin user info "$mc_alias" "$access" --json 2>/dev/null |
	"$(python3_bin)" -c 'import json, sys
d = json.load(sys.stdin)
sys.exit(0 if sys.argv[1] in (d.get("policyName") or "").split(",") else 1)' "$name" ||
	die "policy $name is not attached to its user"
echo "$access $secret"
