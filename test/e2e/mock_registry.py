#!/usr/bin/env python3
"""A hostile Confluent-compatible Schema Registry for test t66.

    mock_registry.py PORT SCHEMA_FILE USER:PASSWORD [CERT KEY]

Serves https when CERT and KEY are given. Every request must carry basic
auth USER:PASSWORD (401 otherwise). Writes its hit counts to stdout, one
line per request. GET /schemas/ids/N answers:
  1  the bundled schema (SCHEMA_FILE)
  2  a 2 MiB body (over the client's 1 MiB cap)
  3  not JSON
  4  JSON whose "schema" is not valid Avro
  5  schemaType PROTOBUF
  6  a valid Avro schema of another record (cannot be resolved)
  7  JSON nested 100000 levels deep
  8  500 twice, then the bundled schema (transient, then fine)
  9  404 without error_code twice (a wrong path, not "unknown id"), then
     the bundled schema
  10 {"schema": 42}
  other: 404 {"error_code": 40403}
POST /subjects/S/versions answers by subject: neg-value {"id": -5},
str-value {"id": "7"}, huge-value {"id": 1e30}, conflict-value 409,
anything else {"id": 1}.
"""
import base64
import json
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, schema_file, userinfo = int(sys.argv[1]), sys.argv[2], sys.argv[3]
SCHEMA = open(schema_file).read()
AUTH = "Basic " + base64.b64encode(userinfo.encode()).decode()
hits = {}


class H(BaseHTTPRequestHandler):
    def send(self, code, body, ctype="application/vnd.schemaregistry.v1+json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def authorized(self):
        if self.headers.get("Authorization") == AUTH:
            return True
        self.send(401, {"error_code": 40101, "message": "Unauthorized"})
        return False

    def do_GET(self):
        print("GET", self.path, flush=True)
        if not self.authorized():
            return
        parts = self.path.split("/")
        if len(parts) != 4 or parts[1:3] != ["schemas", "ids"] or not parts[3].isdigit():
            return self.send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
        n = int(parts[3])
        hits[n] = hits.get(n, 0) + 1
        if n == 1:
            self.send(200, {"schema": SCHEMA})
        elif n == 2:
            self.send(200, '{"schema": "' + "x" * (2 << 20) + '"}')
        elif n == 3:
            self.send(200, "<html>this is not json</html>")
        elif n == 4:
            self.send(200, {"schema": '{"type": "nonsense"}'})
        elif n == 5:
            self.send(200, {"schemaType": "PROTOBUF", "schema": 'syntax = "proto3";'})
        elif n == 6:
            self.send(200, {"schema": json.dumps({"type": "record", "name": "Other",
                                                   "fields": [{"name": "x", "type": "int"}]})})
        elif n == 7:
            self.send(200, "[" * 100000 + "]" * 100000)
        elif n == 8:
            if hits[n] <= 2:
                self.send(500, {"error_code": 50001, "message": "storage unavailable"})
            else:
                self.send(200, {"schema": SCHEMA})
        elif n == 9:
            if hits[n] <= 2:
                self.send(404, "<html>no such path</html>", "text/html")
            else:
                self.send(200, {"schema": SCHEMA})
        elif n == 10:
            self.send(200, {"schema": 42})
        else:
            self.send(404, {"error_code": 40403, "message": f"Schema {n} not found"})

    def do_POST(self):
        print("POST", self.path, flush=True)
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not self.authorized():
            return
        subject = self.path.split("/")[2] if self.path.count("/") == 3 else ""
        if subject == "neg-value":
            self.send(200, '{"id": -5}')
        elif subject == "str-value":
            self.send(200, '{"id": "7"}')
        elif subject == "huge-value":
            self.send(200, '{"id": 1e30}')
        elif subject == "conflict-value":
            self.send(409, {"error_code": 409, "message": "Schema being registered is incompatible"})
        else:
            self.send(200, {"id": 1})

    def log_message(self, *a):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", port), H)
if len(sys.argv) > 5:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening", port, flush=True)
srv.serve_forever()
