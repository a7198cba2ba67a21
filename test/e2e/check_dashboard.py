#!/usr/bin/env python3
"""Checks the Grafana dashboard against a /metrics scrape; prints TAP lines.

    check_dashboard.py DASHBOARD.json METRICS.txt [--rules OUT.yml] [--alerts ALERTS.yml]

The dashboard must parse as JSON, every panel that is not a row must have a query,
and every imgsink_* name in a query must be a sample name the scrape exposes
(histogram queries use the _bucket series). --alerts checks the names used by an
alerting rules file the same way. --rules writes the dashboard's queries, with Grafana's
variables replaced, as recording rules, for `promtool check rules` to parse the PromQL.
Exits 0; failures are "not ok" lines.
"""
import json
import re
import sys

dash_path, metrics_path = sys.argv[1:3]
opts = dict(zip(sys.argv[3::2], sys.argv[4::2]))
fails = 0


def check(cond, what):
    global fails
    print(("ok - " if cond else "not ok - ") + what)
    fails += 0 if cond else 1


try:
    dash = json.load(open(dash_path))
    check(True, f"{dash_path} parses as JSON")
except ValueError as e:
    check(False, f"{dash_path} parses as JSON: {e}")
    sys.exit(0)

exposed = set()
for line in open(metrics_path):
    if line.strip() and not line.startswith("#"):
        exposed.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))

exprs, empty, npanels = [], [], 0
for p in dash.get("panels", []):
    if p.get("type") == "row":
        continue
    npanels += 1
    targets = [t.get("expr", "") for t in p.get("targets", [])]
    if not targets or not all(targets):
        empty.append(p.get("title", "?"))
    exprs += targets
check(npanels and not empty, f"each of the {npanels} panels has a query"
      + (f" (not: {', '.join(empty)})" if empty else ""))
variables = []  # Grafana's label_values(...): not PromQL
for v in dash.get("templating", {}).get("list", []):
    q = v.get("query")
    variables.append(q.get("query", "") if isinstance(q, dict) else str(q or ""))

used = sorted({n for e in exprs + variables for n in re.findall(r"\bimgsink_[a-z0-9_]+", e)})
missing = [n for n in used if n not in exposed]
check(used and not missing,
      f"the dashboard uses {len(used)} metric names, all exposed by /metrics"
      + (f" (missing: {', '.join(missing)})" if missing else ""))
titles = " ".join(p.get("title", "").lower() for p in dash.get("panels", []))
wanted = ["throughput", "dlq", "retry", "put latency", "processing latency", "in-flight",
          "paused", "lag per partition", "rebalances"]
absent = [w for w in wanted if w not in titles]
check(not absent, "the dashboard has panels for " + ", ".join(wanted)
      + (f" (missing: {', '.join(absent)})" if absent else ""))

if "--alerts" in opts:
    text = open(opts["--alerts"]).read()
    used = sorted(set(re.findall(r"\bimgsink_[a-z0-9_]+", text)))
    missing = [n for n in used if n not in exposed]
    check(used and not missing,
          f"the alerting rules use {len(used)} metric names, all exposed by /metrics"
          + (f" (missing: {', '.join(missing)})" if missing else ""))

if "--rules" in opts:
    with open(opts["--rules"], "w") as out:
        out.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, e in enumerate(exprs):
            e = e.replace("$__rate_interval", "5m").replace("$instance", ".*")
            out.write(f"      - record: dashboard:query{i}\n        expr: {json.dumps(e)}\n")
