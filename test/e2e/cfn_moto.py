"""Deploy deploy/aws/imgsink.yaml to a moto server with IAM enforcement on and
check, with boto3 as the worker's role, what it may and may not do.

    cfn_moto.py ENDPOINT TEMPLATE OUTDIR

The server must have been started with INITIAL_NO_AUTH_ACTION_COUNT=3: the
first three requests (create an admin user, its key and its policy) run
unauthenticated, every later one is checked against IAM. Prints TAP lines
("ok - ..." / "not ok - ...") and writes OUTDIR/worker.env (the worker role's
temporary credentials and the bucket names) for imgsink check.
"""

import ast
import json
import os
import re
import sys

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, template_path, outdir = sys.argv[1:4]
REGION = "us-east-1"
CFG = Config(retries={"max_attempts": 2}, connect_timeout=30, read_timeout=300)
failed = 0


def ok(what):
    print(f"ok - {what}", flush=True)


def notok(what):
    global failed
    failed += 1
    print(f"not ok - {what}", flush=True)


def check(what, cond):
    (ok if cond else notok)(what)


def cfn_loader():
    class L(yaml.SafeLoader):
        pass

    def tag(loader, suffix, node):
        if isinstance(node, yaml.ScalarNode):
            return {suffix: loader.construct_scalar(node)}
        if isinstance(node, yaml.SequenceNode):
            return {suffix: loader.construct_sequence(node, deep=True)}
        return {suffix: loader.construct_mapping(node, deep=True)}

    L.add_multi_constructor("!", tag)
    return L


def client(svc, creds=None):
    creds = creds or {"aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}
    return boto3.client(svc, endpoint_url=endpoint, region_name=REGION, config=CFG, **creds)


def code_of(fn, *a, **kw):
    """The error code of a call, or "OK"."""
    try:
        fn(*a, **kw)
        return "OK"
    except ClientError as e:
        return e.response["Error"]["Code"]


# --- the three unauthenticated calls: an administrator for the deployment --
iam0 = client("iam")
iam0.create_user(UserName="deployer")
key = iam0.create_access_key(UserName="deployer")["AccessKey"]
iam0.put_user_policy(
    UserName="deployer",
    PolicyName="admin",
    PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    ),
)
admin = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

# IAM enforcement is on: unknown credentials are refused.
code = code_of(client("s3").list_buckets)
check(f"IAM enforcement on: unknown credentials refused ({code})", code in ("InvalidAccessKeyId", "AccessDenied"))

# --- the stack --------------------------------------------------------------
cfn = client("cloudformation", admin)
body = open(template_path).read()
cfn.create_stack(StackName="imgsink", TemplateBody=body, Capabilities=["CAPABILITY_IAM"])
stack = cfn.describe_stacks(StackName="imgsink")["Stacks"][0]
status = stack["StackStatus"]
check(f"stack created: {status}", status == "CREATE_COMPLETE")
out = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
print(f"# outputs: {json.dumps(out, sort_keys=True)}")
resources = cfn.list_stack_resources(StackName="imgsink")["StackResourceSummaries"]
kinds = sorted({r["ResourceType"] for r in resources})
print("# %d resources: %s" % (len(resources), ", ".join(f"{r['LogicalResourceId']} ({r['ResourceType'] or '?'})" for r in resources)))
check("no MSK cluster by default (CreateMsk=false)", "AWS::MSK::Cluster" not in kinds)
processed, raw, logs = out["ProcessedBucketName"], out["RawBucketName"], out["LogBucketName"]
results = out["AthenaResultsBucketName"]

s3a = client("s3", admin)

# moto's CloudFormation creates the buckets but leaves out some of their
# properties and the bucket policies. What it left out is applied through
# the S3 API from the template itself (listed as such), then every property
# is read back through the S3 API.
tpl = yaml.load(body, Loader=cfn_loader())
params = {k: v.get("Default") for k, v in tpl["Parameters"].items()}
names = {"ProcessedBucket": processed, "RawBucket": raw, "LogBucket": logs, "AthenaResultsBucket": results}


def resolve(v):
    """Ref, Sub and GetAtt of the template, for the bucket properties."""
    if isinstance(v, dict) and len(v) == 1:
        (k, a), = v.items()
        if k == "Ref":
            return names.get(a) or params.get(a) or {"AWS::AccountId": "123456789012"}.get(a, a)
        if k == "GetAtt":
            res, att = a.split(".") if isinstance(a, str) else a
            if att == "Arn" and res in names:
                return f"arn:aws:s3:::{names[res]}"
            if res == "DataKey":
                return out["DataKeyArn"]
        if k == "Sub":
            def sub(m):
                ref = m.group(1)
                if ref.startswith("!"):  # ${!name}: a literal ${name}
                    return "${" + ref[1:] + "}"
                if "." in ref:
                    return resolve({"GetAtt": ref})
                return str(resolve({"Ref": ref}))
            return re.sub(r"\$\{([^}]+)\}", sub, a)
    if isinstance(v, dict):
        return {k: resolve(x) for k, x in v.items()}
    if isinstance(v, list):
        return [resolve(x) for x in v]
    return v


def missing(fn, code, **kw):
    try:
        fn(**kw)
        return False
    except ClientError as e:
        if e.response["Error"]["Code"] == code:
            return True
        raise


applied = []
later = []
# Policies first: the log bucket's lets S3 deliver access logs, which a
# bucket's logging setting requires.
for logical, name in names.items():
    if missing(s3a.get_bucket_policy, "NoSuchBucketPolicy", Bucket=name):
        pol = resolve(tpl["Resources"][logical + "Policy"]["Properties"]["PolicyDocument"])
        # moto quirk: PutBucketLogging answers 500 when the target bucket's
        # policy has a statement with Principal "*" (it expects a dict).
        # Put the policy without those until logging is set, then whole.
        first = dict(pol, Statement=[st for st in pol["Statement"] if isinstance(st.get("Principal"), dict)])
        s3a.put_bucket_policy(Bucket=name, Policy=json.dumps(first if first["Statement"] else pol))
        later.append((name, pol))
        applied.append(f"{logical}Policy")
for logical, name in names.items():
    props = resolve(tpl["Resources"][logical]["Properties"])
    if missing(s3a.get_public_access_block, "NoSuchPublicAccessBlockConfiguration", Bucket=name):
        s3a.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
        applied.append(f"{logical}.PublicAccessBlockConfiguration")
    if missing(s3a.get_bucket_encryption, "ServerSideEncryptionConfigurationNotFoundError", Bucket=name):
        rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        s3a.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": r["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
                            **(
                                {"KMSMasterKeyID": r["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]}
                                if "KMSMasterKeyID" in r["ServerSideEncryptionByDefault"]
                                else {}
                            ),
                        },
                        "BucketKeyEnabled": r.get("BucketKeyEnabled", False),
                    }
                    for r in rules
                ]
            },
        )
        applied.append(f"{logical}.BucketEncryption")
    if "LoggingConfiguration" in props and not s3a.get_bucket_logging(Bucket=name).get("LoggingEnabled"):
        lc = props["LoggingConfiguration"]
        s3a.put_bucket_logging(
            Bucket=name,
            BucketLoggingStatus={
                "LoggingEnabled": {"TargetBucket": lc["DestinationBucketName"], "TargetPrefix": lc["LogFilePrefix"]}
            },
        )
        applied.append(f"{logical}.LoggingConfiguration")
    if s3a.get_bucket_versioning(Bucket=name).get("Status") != "Enabled":
        s3a.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        applied.append(f"{logical}.VersioningConfiguration")
for name, pol in later:
    s3a.put_bucket_policy(Bucket=name, Policy=json.dumps(pol))
print(f"# moto left out {len(applied)} bucket settings, applied from the template through the S3 API: "
      + (", ".join(applied) or "none"))

for logical, name in names.items():
    pab = s3a.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    check(f"{logical}: public access blocked (4 settings)", all(pab.values()) and len(pab) == 4)
    ver = s3a.get_bucket_versioning(Bucket=name).get("Status")
    check(f"{logical}: versioning {ver}", ver == "Enabled")
    pol = json.loads(s3a.get_bucket_policy(Bucket=name)["Policy"])
    sids = sorted(st.get("Sid", "") for st in pol["Statement"])
    check(f"{logical}: bucket policy denies non-TLS requests (read back: {', '.join(sids)})", "DenyInsecureTransport" in sids)
    if logical == "LogBucket":
        continue
    enc = s3a.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    sse = enc["ApplyServerSideEncryptionByDefault"]
    check(
        f"{logical}: SSE-KMS with the stack's customer key by default",
        sse["SSEAlgorithm"] == "aws:kms" and sse.get("KMSMasterKeyID") == out["DataKeyArn"],
    )
    if logical != "AthenaResultsBucket":  # Athena writes results with the workgroup's SSE-KMS
        check(
            f"{logical}: bucket policy denies PUTs without SSE-KMS (read back)",
            {"DenyPutWithoutKms", "DenyPutWithoutEncryptionHeader"} <= set(sids),
        )
    logging = s3a.get_bucket_logging(Bucket=name).get("LoggingEnabled", {})
    check(f"{logical}: access logs to {logging.get('TargetBucket')}", logging.get("TargetBucket") == logs)
kms = client("kms", admin)
try:
    meta = kms.describe_key(KeyId=out["DataKeyArn"])["KeyMetadata"]
    rot = kms.get_key_rotation_status(KeyId=out["DataKeyArn"])["KeyRotationEnabled"]
    check(f"KMS key {meta['KeyManager']}-managed, rotation {rot}", meta["KeyManager"] == "CUSTOMER" and rot)
except ClientError as e:
    # moto 5.1's KMS answers 500 to signed requests when IAM enforcement
    # is on; the key's properties are then left to cfn-lint and checkov.
    print(f"ok - KMS key properties through the API # SKIP moto answered {e.response['Error']['Code']}")

# --- analytics: the Glue database and events table, the Athena workgroup ----
# First the template against deploy/analytics/athena.sql and
# schemas/image_event.avsc (the same table, whichever way it is made); then
# what the stack made in moto, read back with boto3's glue and athena
# clients. A type moto's CloudFormation does not create is a SKIP naming it;
# it is then created through its own API from the template's properties and
# read back, which checks that the API takes them.
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(template_path))))
sql = open(os.path.join(root, "deploy/analytics/athena.sql")).read()
avsc = json.load(open(os.path.join(root, "schemas/image_event.avsc")))
tin = tpl["Resources"]["EventsTable"]["Properties"]["TableInput"]
m = re.search(r"CREATE EXTERNAL TABLE IF NOT EXISTS \w+\.events \((.*?)\n\)\nPARTITIONED BY \((.*?)\)", sql, re.S)
sql_cols = [tuple(c.strip().rstrip(",").split(" ", 1)) for c in m.group(1).strip().splitlines()]
tpl_cols = [(c["Name"], c["Type"]) for c in tin["StorageDescriptor"]["Columns"]]
check(f"events table: the template's {len(tpl_cols)} columns are athena.sql's ({len(sql_cols)}), in order",
      tpl_cols == sql_cols)
sql_pk = [tuple(c.strip().split(" ")) for c in m.group(2).split(",")]
tpl_pk = [(c["Name"], c["Type"]) for c in tin["PartitionKeys"]]
check(f"events table: partitioned by {', '.join(n for n, _ in tpl_pk)} as in athena.sql", tpl_pk == sql_pk)
sql_props = dict(re.findall(r"'([a-z.]+)' = '([^']*)'", sql.split("TBLPROPERTIES", 1)[1].split("avro.schema.literal")[0]))
tpl_params = resolve(tin["Parameters"])
prefix_a = params["AnalyticsPrefix"]
diff = []
for k, v in sorted(sql_props.items()):
    want = v.replace("s3://BUCKET/analytics/", f"s3://{processed}/{prefix_a}")
    got = tpl_params.get(k, "(missing)")
    if got != want:
        diff.append(f"{k}: template {got}, athena.sql {want}")
check(f"events table: the {len(sql_props)} partition projection properties are athena.sql's"
      + (" (" + "; ".join(diff) + ")" if diff else ""), not diff)
check("events table: avro.schema.literal is schemas/image_event.avsc",
      json.loads(tin["Parameters"]["avro.schema.literal"]) == avsc)
fmt = dict(re.findall(r"(SERDE|INPUTFORMAT|OUTPUTFORMAT) '([^']+)'", sql))
sd = tin["StorageDescriptor"]
check("events table: Avro SerDe, input and output formats as in athena.sql",
      (sd["SerdeInfo"]["SerializationLibrary"], sd["InputFormat"], sd["OutputFormat"])
      == (fmt["SERDE"], fmt["INPUTFORMAT"], fmt["OUTPUTFORMAT"]))
check(f"events table: location s3://{processed}/{prefix_a}events/ (the processed bucket, analytics.prefix)",
      resolve(sd["Location"]) == f"s3://{processed}/{prefix_a}events/")

glue = client("glue", admin)
athena = client("athena", admin)
made = {r["LogicalResourceId"]: r for r in resources}
dbname = params["AnalyticsDatabaseName"]
wgname = f"{params['BucketPrefix']}-analytics"
names["AnalyticsDatabase"] = dbname


def by_stack(logical, rtype, probe):
    """True if the stack made the resource (moto lists it and its API finds
    it); else a SKIP naming the type, and False."""
    listed = logical in made
    found = probe()
    if listed and found:
        ok(f"{logical} ({rtype}) created by the stack")
        return True
    print(f"ok - {logical} ({rtype}) created by the stack # SKIP moto's CloudFormation does not create "
          f"{rtype} ({'listed without the object' if listed else 'left out of the stack'}); "
          "created through its own API from the template instead", flush=True)
    return False


def glue_db():
    return code_of(glue.get_database, Name=dbname) == "OK"


def glue_table():
    return code_of(glue.get_table, DatabaseName=dbname, Name=tin["Name"]) == "OK"


def workgroup():
    # moto answers an unknown workgroup with an empty document, not an error
    try:
        return bool(athena.get_work_group(WorkGroup=wgname).get("WorkGroup"))
    except ClientError:
        return False


if not by_stack("AnalyticsDatabase", "AWS::Glue::Database", glue_db) and not glue_db():
    glue.create_database(DatabaseInput=resolve(tpl["Resources"]["AnalyticsDatabase"]["Properties"]["DatabaseInput"]))
if not by_stack("EventsTable", "AWS::Glue::Table", glue_table) and not glue_table():
    t_in = resolve(tin)
    glue.create_table(DatabaseName=dbname, TableInput=t_in)
wg_props = resolve(tpl["Resources"]["AnalyticsWorkGroup"]["Properties"])
if not by_stack("AnalyticsWorkGroup", "AWS::Athena::WorkGroup", workgroup) and not workgroup():
    conf = dict(wg_props["WorkGroupConfiguration"])
    conf["BytesScannedCutoffPerQuery"] = int(conf["BytesScannedCutoffPerQuery"])
    athena.create_work_group(Name=wgname, Description=wg_props["Description"], Configuration=conf)

db = glue.get_database(Name=dbname)["Database"]
check(f"glue get-database {db['Name']}", db["Name"] == dbname)
t = glue.get_table(DatabaseName=dbname, Name=tin["Name"])["Table"]
tp = t.get("Parameters", {})
tsd = t.get("StorageDescriptor", {})
print(f"#   glue table {dbname}.{t['Name']}: {len(tsd.get('Columns', []))} columns, partition keys "
      f"{[k['Name'] for k in t.get('PartitionKeys', [])]}, location {tsd.get('Location')}, "
      f"storage.location.template {tp.get('storage.location.template')}")
check("glue get-table: columns, partition keys (dt, hour) and location read back",
      [(c["Name"], c["Type"]) for c in tsd.get("Columns", [])] == sql_cols
      and [k["Name"] for k in t.get("PartitionKeys", [])] == ["dt", "hour"]
      and tsd.get("Location") == f"s3://{processed}/{prefix_a}events/")
want_tpl = f"s3://{processed}/{prefix_a}events/dt=${{dt}}/hour=${{hour}}/"
check(f"glue get-table: partition projection on, dt by day, hour 00..23, files at {want_tpl}",
      tp.get("projection.enabled") == "true" and tp.get("projection.dt.type") == "date"
      and tp.get("projection.hour.range") == "0,23" and tp.get("projection.hour.digits") == "2"
      and tp.get("storage.location.template") == want_tpl)
wg = athena.get_work_group(WorkGroup=wgname)["WorkGroup"]
wc = wg.get("Configuration", {})
rc = wc.get("ResultConfiguration", {})
enc = rc.get("EncryptionConfiguration", {})
print(f"#   athena workgroup {wg['Name']}: {json.dumps(wc, sort_keys=True, default=str)}")
check(f"athena workgroup {wgname}: results in s3://{results}/results/, SSE_KMS with the stack's key",
      rc.get("OutputLocation") == f"s3://{results}/results/"
      and enc.get("EncryptionOption") == "SSE_KMS" and enc.get("KmsKey") == out["DataKeyArn"])
check(f"athena workgroup {wgname}: configuration enforced over the clients' "
      f"(EnforceWorkGroupConfiguration {wc.get('EnforceWorkGroupConfiguration')})",
      wc.get("EnforceWorkGroupConfiguration") is True)
# --- lifecycle rules: moto ignores them in a template; apply them through the
# S3 API from the template's own rules, then read them back ----------------


def val(v):
    if isinstance(v, dict) and "Ref" in v:
        return params[v["Ref"]]
    return v


def s3_rules(cfn_rules):
    rules = []
    for r in cfn_rules:
        rule = {"ID": r["Id"], "Status": r["Status"]}
        if "TagFilters" in r:
            t = r["TagFilters"][0]
            rule["Filter"] = {"Tag": {"Key": t["Key"], "Value": t["Value"]}}
        else:
            rule["Filter"] = {"Prefix": val(r.get("Prefix", ""))}
        exp = {}
        if "ExpirationInDays" in r:
            exp["Days"] = int(val(r["ExpirationInDays"]))
        if r.get("ExpiredObjectDeleteMarker"):
            exp["ExpiredObjectDeleteMarker"] = True
        if exp:
            rule["Expiration"] = exp
        if "NoncurrentVersionExpiration" in r:
            rule["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": int(val(r["NoncurrentVersionExpiration"]["NoncurrentDays"]))
            }
        if "AbortIncompleteMultipartUpload" in r:
            rule["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": int(r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
            }
        rules.append(rule)
    return rules


for logical, name in (("ProcessedBucket", processed), ("RawBucket", raw), ("AthenaResultsBucket", results)):
    want = s3_rules(tpl["Resources"][logical]["Properties"]["LifecycleConfiguration"]["Rules"])
    s3a.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": want})
    got = s3a.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    got_ids = sorted(r["ID"] for r in got)
    check(
        f"{logical}: {len(got)} lifecycle rules read back ({', '.join(got_ids)})",
        got_ids == sorted(r["ID"] for r in want),
    )
    for r in got:
        print(f"#   {logical} {r['ID']}: {json.dumps({k: v for k, v in r.items() if k != 'ID'}, sort_keys=True)}")

# moto quirk: it applies a bucket policy's Deny statements without
# evaluating their conditions (aws:SecureTransport,
# s3:x-amz-server-side-encryption): every PUT would be refused, with or
# without TLS and SSE-KMS. The Deny statements were read back above; they are
# removed for the identity-policy checks below (the Allow statements stay).
for name, pol in later:
    rest = [st for st in pol["Statement"] if st.get("Effect") != "Deny"]
    if rest:
        s3a.put_bucket_policy(Bucket=name, Policy=json.dumps(dict(pol, Statement=rest)))
    else:
        s3a.delete_bucket_policy(Bucket=name)

# An upload for the claim-check read below (the API's job).
s3a.put_object(
    Bucket=raw, Key="uploads/acme/a.jpg", Body=b"\xff\xd8raw", ServerSideEncryption="aws:kms"
)

# --- as the worker's role ---------------------------------------------------
sts = client("sts", admin)
# EKS gives a pod its role through AssumeRoleWithWebIdentity, an unsigned
# call that moto's IAM enforcement cannot take (it answers 500: no
# Authorization header). The roles' trust policies are read back, then the
# deployer is added as a trusted principal to stand in for the OIDC
# federation; the roles' permission policies, which are under test, stay.
iam = client("iam", admin)


def role_policies(name):
    """The inline policies of a role as IAM returns them: {name: document}."""
    docs = {}
    for pname in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=name, PolicyName=pname)["PolicyDocument"]
        if isinstance(doc, str):
            try:
                doc = json.loads(doc)
            except ValueError:
                doc = ast.literal_eval(doc)  # moto returns the dict's repr
        docs[pname] = doc
    return docs


def statements(doc):
    """A policy's statements by Sid, each reduced to what it grants: effect,
    actions, resources and condition values as sorted lists."""
    def as_list(v):
        return sorted(v) if isinstance(v, list) else [v]

    out = {}
    for st in doc["Statement"]:
        cond = {op: {k: as_list(v) for k, v in kv.items()} for op, kv in st.get("Condition", {}).items()}
        out[st.get("Sid", "")] = {"Effect": st["Effect"], "Action": as_list(st["Action"]),
                                  "Resource": as_list(st["Resource"]), "Condition": cond}
    return out


def matches_policy_file(arn, path):
    """Checks that the role's inline policies, as IAM has them, grant what
    deploy/aws/policies/FILE grants, with the file's example names (bucket
    imgsink-processed and imgsink-raw, the example KMS key and region, the
    default prefixes) made the stack's."""
    name = arn.rsplit("/", 1)[1]
    text = open(path).read()
    text = text.replace("arn:aws:s3:::imgsink-processed", f"arn:aws:s3:::{processed}")
    text = text.replace("arn:aws:s3:::imgsink-raw", f"arn:aws:s3:::{raw}")
    text = re.sub(r"arn:aws:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]+", out["DataKeyArn"], text)
    text = re.sub(r"s3\.[a-z0-9-]+\.amazonaws\.com", f"s3.{REGION}.amazonaws.com", text)
    want = statements(json.loads(text))
    got = {}
    for doc in role_policies(name).values():
        got.update(statements(doc))
    diff = [f"{sid}: role {json.dumps(got.get(sid))}, file {json.dumps(want.get(sid))}"
            for sid in sorted(set(want) | set(got)) if want.get(sid) != got.get(sid)]
    rel = os.path.relpath(path, root)
    check(f"{name}: its policy grants what {rel} grants ({len(want)} statements: {', '.join(sorted(want))})"
          + ("" if not diff else "; differs: " + " | ".join(diff)), not diff)


def web_identity(arn, sa):
    name = arn.rsplit("/", 1)[1]
    trust = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    st = trust["Statement"][0]
    cond = st["Condition"]["StringEquals"]
    want_sub = f"system:serviceaccount:{params['Namespace']}:{sa}"
    check(
        f"{name}: trusts only {want_sub} through the cluster's OIDC provider",
        st["Action"] == "sts:AssumeRoleWithWebIdentity"
        and st["Principal"]["Federated"].endswith(f"oidc-provider/{params['OidcProvider']}")
        and cond.get(f"{params['OidcProvider']}:sub") == want_sub
        and cond.get(f"{params['OidcProvider']}:aud") == "sts.amazonaws.com",
    )
    if failed:
        print(f"# trust policy: {json.dumps(trust)}")
    # moto keeps the inline policies a template gives a role in a form its
    # own IAM enforcement cannot read (KeyError 'policy_document'): put the
    # same documents again through the IAM API.
    for pname, doc in role_policies(name).items():
        doc = json.dumps(doc)
        print(f"# {name} policy {pname}: {doc}")
        iam.put_role_policy(RoleName=name, PolicyName=pname, PolicyDocument=doc)
    trust["Statement"].append(
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/deployer"}, "Action": "sts:AssumeRole"}
    )
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
    return sts.assume_role(RoleArn=arn, RoleSessionName=sa)["Credentials"]


role = web_identity(out["WorkerRoleArn"], params["WorkerServiceAccount"])
worker = {
    "aws_access_key_id": role["AccessKeyId"],
    "aws_secret_access_key": role["SecretAccessKey"],
    "aws_session_token": role["SessionToken"],
}
s3w = client("s3", worker)
prefix = params["ProcessedPrefix"]
key = f"{prefix}acme/2026/11/30/rec-1/thumb.jpg"
code = code_of(
    s3w.put_object,
    Bucket=processed,
    Key=key,
    Body=b"\xff\xd8thumb",
    Tagging="retention=7d",
    ServerSideEncryption="aws:kms",
)
check(f"worker role writes a tagged object under {prefix} ({code})", code == "OK")
if code == "OK":
    tags = s3a.get_object_tagging(Bucket=processed, Key=key)["TagSet"]
    check(f"the object carries its tag (admin reads {tags})", tags == [{"Key": "retention", "Value": "7d"}])
refused = {
    "PUT outside its prefix": (
        s3w.put_object,
        dict(Bucket=processed, Key="other/acme/x.jpg", Body=b"x", Tagging="retention=7d"),
    ),
    "PUT into the raw bucket": (s3w.put_object, dict(Bucket=raw, Key="uploads/acme/x.jpg", Body=b"x")),
    "PUT into the log bucket": (s3w.put_object, dict(Bucket=logs, Key="x", Body=b"x")),
    "DELETE its own object": (s3w.delete_object, dict(Bucket=processed, Key=key)),
    "GET its own object (write-only)": (s3w.get_object, dict(Bucket=processed, Key=key)),
    "change the lifecycle rules": (
        s3w.put_bucket_lifecycle_configuration,
        dict(Bucket=processed, LifecycleConfiguration={"Rules": []}),
    ),
    "delete the bucket policy": (s3w.delete_bucket_policy, dict(Bucket=processed)),
    "list all buckets": (s3w.list_buckets, {}),
    "IAM: create a user": (client("iam", worker).create_user, dict(UserName="mallory")),
}
for what, (fn, kw) in refused.items():
    code = code_of(fn, **kw)
    check(f"worker role refused: {what} ({code})", code == "AccessDenied")
code = code_of(client("glue", worker).get_table, DatabaseName=dbname, Name=tin["Name"])
# moto's Glue names its refusal by the HTTP status alone.
check(f"worker role refused: the analytics catalog (glue get-table: {code})",
      code in ("AccessDenied", "AccessDeniedException", "403"))
code = code_of(s3w.get_object, Bucket=raw, Key="uploads/acme/a.jpg")
check(f"worker role reads a claim-check upload under uploads/ ({code})", code == "OK")
code = code_of(s3w.get_bucket_lifecycle_configuration, Bucket=processed)
check(f"worker role reads the lifecycle rules, as imgsink check does ({code})", code == "OK")

# The API role stores uploads and nothing else.
arole = web_identity(out["ApiRoleArn"], params["ApiServiceAccount"])
s3p = client(
    "s3",
    {
        "aws_access_key_id": arole["AccessKeyId"],
        "aws_secret_access_key": arole["SecretAccessKey"],
        "aws_session_token": arole["SessionToken"],
    },
)
code = code_of(s3p.put_object, Bucket=raw, Key="uploads/acme/b.jpg", Body=b"b", ServerSideEncryption="aws:kms")
check(f"API role stores an upload ({code})", code == "OK")
code = code_of(s3p.put_object, Bucket=processed, Key=f"{prefix}acme/x.jpg", Body=b"x")
check(f"API role refused: PUT into the processed bucket ({code})", code == "AccessDenied")

# --- the analytics sink's and the rollup's roles -----------------------------
# Their policies are those of deploy/aws/policies (analytics.json,
# analytics-rollup.json), which parliament lints and t75 reads; then what
# each may do, as itself, against the processed bucket.
ap = params["AnalyticsPrefix"]
check(f"the stack's AnalyticsPrefix is the policy files' analytics/ ({ap})", ap == "analytics/")
for output, sa_param, fname in (("AnalyticsRoleArn", "AnalyticsServiceAccount", "analytics.json"),
                                ("AnalyticsRollupRoleArn", "AnalyticsRollupServiceAccount", "analytics-rollup.json")):
    check(f"output {output}: {out.get(output)}", output in out and ":role/" in out[output])
    if output in out:
        matches_policy_file(out[output], os.path.join(root, "deploy/aws/policies", fname))


def as_role(output, sa):
    r = web_identity(out[output], params[sa])
    return client("s3", {"aws_access_key_id": r["AccessKeyId"], "aws_secret_access_key": r["SecretAccessKey"],
                         "aws_session_token": r["SessionToken"]})


day = "2026-11-30"
# The sink's keys are .../dt=DAY/hour=HH/{topic}+{partition}+{offset}.avro;
# moto 5.1 answers SignatureDoesNotMatch to a key with '=' when IAM is
# enforced, so these keys leave out the "dt=" and "hour=" (the prefixes the
# policies name, events/, events_hourly/ and events_daily/, are the real ones).
hourly = f"{ap}events/{day}/07/images.events-0-100.avro"
daily = f"{ap}events_daily/{day}/{day}.avro"
if "AnalyticsRoleArn" in out:
    s3s = as_role("AnalyticsRoleArn", "AnalyticsServiceAccount")
    for k, tag in ((hourly, "retention=7d&source=analytics"),
                   (f"{ap}events_hourly/{day}/07/images.events-0-100.avro", "retention=keep&source=analytics-aggregate")):
        code = code_of(s3s.put_object, Bucket=processed, Key=k, Body=b"Obj\x01", Tagging=tag,
                       ServerSideEncryption="aws:kms")
        check(f"analytics role writes a tagged file {k} ({code})", code == "OK")
    for what, (fn, kw) in {
        "PUT outside analytics.prefix": (s3s.put_object, dict(Bucket=processed, Key=f"{prefix}acme/x.avro", Body=b"x")),
        "PUT into the raw bucket": (s3s.put_object, dict(Bucket=raw, Key="uploads/acme/x.jpg", Body=b"x")),
        "GET its own file (write-only)": (s3s.get_object, dict(Bucket=processed, Key=hourly)),
        "DELETE its own file": (s3s.delete_object, dict(Bucket=processed, Key=hourly)),
    }.items():
        code = code_of(fn, **kw)
        check(f"analytics role refused: {what} ({code})", code == "AccessDenied")
if "AnalyticsRollupRoleArn" in out:
    s3r = as_role("AnalyticsRollupRoleArn", "AnalyticsRollupServiceAccount")
    for what, (fn, kw) in {
        "GET an hourly events file": (s3r.get_object, dict(Bucket=processed, Key=hourly)),
        "PUT the daily file with its tags": (s3r.put_object, dict(Bucket=processed, Key=daily, Body=b"Obj\x01",
                                                                  Tagging="retention=7d&source=analytics",
                                                                  ServerSideEncryption="aws:kms")),
        "GET the daily file": (s3r.get_object, dict(Bucket=processed, Key=daily)),
        "DELETE a merged hourly file": (s3r.delete_object, dict(Bucket=processed, Key=hourly)),
    }.items():
        code = code_of(fn, **kw)
        check(f"rollup role: {what} ({code})", code == "OK")
    for what, (fn, kw) in {
        "PUT under events/ (the sink's)": (s3r.put_object, dict(Bucket=processed, Key=hourly, Body=b"x")),
        "DELETE the daily file": (s3r.delete_object, dict(Bucket=processed, Key=daily)),
        "GET an image's output": (s3r.get_object, dict(Bucket=processed, Key=key)),
        "GET a kept aggregate (events_hourly/)": (s3r.get_object, dict(
            Bucket=processed, Key=f"{ap}events_hourly/{day}/07/images.events-0-100.avro")),
        "PUT into the raw bucket": (s3r.put_object, dict(Bucket=raw, Key="uploads/acme/x.jpg", Body=b"x")),
    }.items():
        code = code_of(fn, **kw)
        check(f"rollup role refused: {what} ({code})", code == "AccessDenied")

with open(f"{outdir}/worker.env", "w") as f:
    f.write(f"PROCESSED={processed}\nRAW={raw}\nPREFIX={prefix}\n")
    f.write(f"IMGSINK_S3_ACCESS_KEY={role['AccessKeyId']}\n")
    f.write(f"IMGSINK_S3_SECRET_KEY={role['SecretAccessKey']}\n")
    f.write(f"IMGSINK_S3_SESSION_TOKEN={role['SessionToken']}\n")
sys.exit(1 if failed else 0)
