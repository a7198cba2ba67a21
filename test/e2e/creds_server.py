#!/usr/bin/env python3
"""A local credentials endpoint for the tests: the ECS/EKS container
credentials protocol or EC2 IMDSv2, handing out real temporary credentials
from MinIO's STS (AssumeRole as a MinIO user), with a short declared
Expiration so a worker has to refresh often.

    creds_server.py container|imds --port P --sts URL --user U --secret S
                    [--lifetime SECONDS] [--auth-token-file F] [--issued FILE]

Each answer is a new AssumeRole call, so every refresh gets new keys and a
new session token. --issued appends every secret handed out (one a line)
so the test can check none of them leaks.

The test steers it with POST /_mode?m=MODE (loopback only):
  good        the protocol as AWS speaks it
  badjson     a body that is not JSON
  missing     a JSON object without Token
  huge        a 10 MiB body
  badexpiry   an Expiration that is not a time
  corrupt1    the next answer's session token is damaged once (the store
              refuses it with InvalidTokenId), then good again
  wrongtoken  IMDS: every GET answers 401 as for a wrong session token
  fail        500 on everything
"""
import argparse
import datetime
import http.server
import json
import secrets
import sys
import threading

import boto3

MODE = {"m": "good"}
LOCK = threading.Lock()
IMDS_TOKENS = set()
ROLE = "imgsink-test-role"


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("protocol", choices=["container", "imds"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sts", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--lifetime", type=int, default=20)
    p.add_argument("--auth-token-file")
    p.add_argument("--issued")
    return p.parse_args()


A = parse()
STS = boto3.client("sts", endpoint_url=A.sts, region_name="us-east-1",
                   aws_access_key_id=A.user, aws_secret_access_key=A.secret)


def issue():
    r = STS.assume_role(RoleArn="arn:aws:iam::123456789012:role/imgsink", RoleSessionName="imgsink-test",
                        DurationSeconds=900)
    c = r["Credentials"]
    exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=A.lifetime)
    doc = {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
           "Token": c["SessionToken"], "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}
    with LOCK:
        m = MODE["m"]
        if m == "corrupt1":
            doc["Token"] = doc["Token"][:-4] + "AAAA"
            MODE["m"] = "good"
    if A.issued:
        with open(A.issued, "a") as f:
            f.write(c["SecretAccessKey"] + "\n" + c["SessionToken"] + "\n" + doc["Token"] + "\n")
    print(f"issued {c['AccessKeyId']} expiring {doc['Expiration']} mode {m}", flush=True)
    return doc


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.command, self.path))
        sys.stdout.flush()

    def send(self, code, body, ctype="application/json"):
        b = body if isinstance(body, bytes) else body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def creds_body(self):
        m = MODE["m"]
        if m == "fail":
            return 500, "internal error"
        if m == "badjson":
            return 200, "{\"AccessKeyId\": \"AK\", oops"
        if m == "huge":
            return 200, "{\"AccessKeyId\": \"" + "A" * (10 << 20) + "\"}"
        doc = issue()
        if m == "missing":
            del doc["Token"]
        if m == "badexpiry":
            doc["Expiration"] = "in a while"
        if A.protocol == "imds":
            doc.update({"Code": "Success", "Type": "AWS-HMAC", "LastUpdated": doc["Expiration"]})
        return 200, json.dumps(doc)

    def do_POST(self):
        if self.path.startswith("/_mode?m="):
            MODE["m"] = self.path.split("=", 1)[1]
            print(f"mode {MODE['m']}", flush=True)
            return self.send(200, "ok\n", "text/plain")
        self.send(404, "not found\n", "text/plain")

    def do_PUT(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        if A.protocol != "imds" or self.path != "/latest/api/token":
            return self.send(404, "not found\n", "text/plain")
        if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.send(400, "missing ttl\n", "text/plain")
        tok = secrets.token_urlsafe(32)
        IMDS_TOKENS.add(tok)
        self.send(200, tok, "text/plain")

    def do_GET(self):
        if A.protocol == "container":
            if A.auth_token_file:
                with open(A.auth_token_file) as f:
                    want = f.read().strip()
                if self.headers.get("Authorization") != want:
                    return self.send(401, "{\"message\": \"bad authorization\"}")
            if self.path != "/creds":
                return self.send(404, "not found\n", "text/plain")
            return self.send(*self.creds_body())
        # IMDSv2: every GET needs a token from the PUT.
        tok = self.headers.get("X-aws-ec2-metadata-token")
        if MODE["m"] == "wrongtoken" or tok not in IMDS_TOKENS:
            return self.send(401, "", "text/plain")
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path == base:
            return self.send(200, ROLE, "text/plain")
        if self.path == base + ROLE:
            return self.send(*self.creds_body())
        self.send(404, "not found\n", "text/plain")


srv = http.server.ThreadingHTTPServer(("127.0.0.1", A.port), H)
print(f"{A.protocol} credentials endpoint on 127.0.0.1:{A.port}", flush=True)
srv.serve_forever()
