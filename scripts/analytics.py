#!/usr/bin/env python3
"""Queries imgsink's analytics files with DuckDB, straight from the store.

    analytics.py query  [--date YYYY-MM-DD] [--json] SQL...
    analytics.py report  --date YYYY-MM-DD --out DIR

Connection from the environment: S3_ENDPOINT (http://host:port; empty for
AWS), S3_REGION, S3_BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY, and
ANALYTICS_PREFIX (default analytics/). Runs deploy/analytics/duckdb.sql
first, so every view there can be queried. DuckDB's extensions are LOADed
from the duckdb-extension-* packages' files: nothing is downloaded.

report writes DIR/report-DATE.html: volume per tenant and hour, failures by
class and processing latency percentiles, as inline SVG charts.
"""
import argparse
import glob
import html
import json
import os
import re
import sys

import duckdb

HERE = os.path.dirname(os.path.abspath(__file__))
VIEWS = os.path.join(HERE, "..", "deploy", "analytics", "duckdb.sql")


def connect(date=None):
    con = duckdb.connect()
    for ext in ("avro", "httpfs"):
        mod = __import__(f"duckdb_extension_{ext}")
        files = glob.glob(os.path.join(os.path.dirname(mod.__file__), "extensions", "*",
                                       f"{ext}.duckdb_extension"))
        if not files:
            sys.exit(f"analytics.py: no {ext}.duckdb_extension in the {mod.__name__} package")
        con.execute(f"LOAD '{files[0]}'")
    endpoint = os.environ.get("S3_ENDPOINT", "")
    opts = {"KEY_ID": os.environ["S3_ACCESS_KEY"], "SECRET": os.environ["S3_SECRET_KEY"],
            "REGION": os.environ.get("S3_REGION", "us-east-1")}
    if endpoint:
        scheme, _, hostport = endpoint.partition("://")
        opts.update(ENDPOINT=hostport.rstrip("/"), URL_STYLE="path",
                    USE_SSL="true" if scheme == "https" else "false")
    con.execute("CREATE SECRET (TYPE s3, " +
                ", ".join(f"{k} {v if v in ('true', 'false') else repr(v)}"
                          for k, v in opts.items()) + ")")
    prefix = os.environ.get("ANALYTICS_PREFIX", "analytics/")
    part = f"dt={date}/*" if date else "*/*"
    hourly = f"s3://{os.environ['S3_BUCKET']}/{prefix}events/{part}/*.avro"
    daily = f"s3://{os.environ['S3_BUCKET']}/{prefix}events_daily/{f'dt={date}' if date else '*'}/*.avro"
    have_hourly = con.execute("SELECT count(*) FROM glob(?)", [hourly]).fetchall()[0][0] > 0
    have_daily = con.execute("SELECT count(*) FROM glob(?)", [daily]).fetchall()[0][0] > 0
    # A view over no file at all cannot be created: a day that was rolled
    # up has only its daily file.
    con.execute("SET VARIABLE events_glob = ?", [hourly if have_hourly or not have_daily else daily])
    con.execute(open(VIEWS).read())
    if have_hourly:
        union_versions(con)
    if have_daily:
        with_daily(con, daily, have_hourly)
    return con


def with_daily(con, daily_glob, have_hourly):
    """Days that `imgsink analytics rollup` compacted are read from their
    daily file (events_daily/dt=DATE/DATE.avro), the other days from the
    hourly files: a day is never read from both, so its rows count once
    even while the rollup deletes the hourly files it merged. The hour
    column of a daily row is its processed_at hour, 'HH' as the hourly
    layout's Hive partition reads."""
    daily = [r[0] for r in con.execute("SELECT file FROM glob(?)", [daily_glob]).fetchall()]
    d = (f"SELECT *, strftime(processed_at, '%H') AS hour "
         f"FROM read_avro({daily!r}, hive_partitioning = true, filename = true)")
    if have_hourly:
        sql = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'events_raw'").fetchall()[0][0]
        con.execute(re.sub(r"^CREATE (OR REPLACE )?VIEW (main\.)?\"?events_raw\"?",
                           "CREATE OR REPLACE VIEW events_hourly_raw", sql.strip().rstrip(";")))
        con.execute(f"CREATE OR REPLACE VIEW events_raw AS {d} UNION ALL BY NAME "
                    f"SELECT * FROM events_hourly_raw WHERE dt NOT IN "
                    f"(SELECT DISTINCT dt FROM read_avro({daily!r}, hive_partitioning = true))")
    else:
        con.execute(f"CREATE OR REPLACE VIEW events_raw AS {d}")


def union_versions(con):
    """DuckDB's read_avro (1.5) takes the columns of the first file it reads
    and has no union_by_name: files of two schema versions in one glob fail
    (a column missing) or hide the newer column. When the files differ,
    events_raw becomes one read_avro per version, UNION ALL BY NAME, so old
    and new files read together, the new column NULL in the old rows. It
    reads every file's header: fine for a day, slow for years."""
    files = [r[0] for r in con.execute("SELECT file FROM glob(getvariable('events_glob'))").fetchall()]
    groups = {}
    for f in files:
        cols = tuple(r[0] for r in con.execute("DESCRIBE SELECT * FROM read_avro(?)", [f]).fetchall())
        groups.setdefault(cols, []).append(f)
    if len(groups) < 2:
        return
    parts = [f"SELECT * FROM read_avro({[*fs]!r}, hive_partitioning = true, filename = true)"
             for fs in groups.values()]
    con.execute("CREATE OR REPLACE VIEW events_raw AS " + " UNION ALL BY NAME ".join(parts))


def rows(con, sql):
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return cols, cur.fetchall()


def cmd_query(a):
    con = connect(a.date)
    for sql in a.sql:
        cols, rs = rows(con, sql)
        if a.json:
            for r in rs:
                print(json.dumps(dict(zip(cols, r)), default=str))
        else:
            print(con.sql(sql))


def bars(title, labels, series, colors, unit=""):
    """A grouped bar chart as SVG. series: [(name, [values])]."""
    w, h, left, bottom = 760, 260, 60, 40
    n = max(len(labels), 1)
    top = max([v for _, vs in series for v in vs if v is not None] + [1])
    bw = (w - left - 20) / n / (len(series) + 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h + 30}">',
           f'<text x="{left}" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>']
    for k in range(5):
        y = 30 + (h - bottom - 30) * k / 4
        out.append(f'<line x1="{left}" x2="{w - 10}" y1="{y}" y2="{y}" stroke="#ddd"/>'
                   f'<text x="{left - 5}" y="{y + 4}" font-size="10" text-anchor="end">'
                   f'{top * (4 - k) / 4:.4g}{unit}</text>')
    for i, lab in enumerate(labels):
        x0 = left + i * (w - left - 20) / n
        for j, (_, vs) in enumerate(series):
            v = vs[i] or 0
            bh = (h - bottom - 30) * v / top
            out.append(f'<rect x="{x0 + j * bw + bw / 2:.1f}" y="{h - bottom - bh:.1f}" '
                       f'width="{bw:.1f}" height="{bh:.1f}" fill="{colors[j]}">'
                       f'<title>{html.escape(str(lab))}: {v}</title></rect>')
        out.append(f'<text x="{x0 + (w - left - 20) / n / 2:.1f}" y="{h - bottom + 14}" '
                   f'font-size="10" text-anchor="middle">{html.escape(str(lab))}</text>')
    for j, (name, _) in enumerate(series):
        out.append(f'<rect x="{left + j * 140}" y="{h}" width="10" height="10" fill="{colors[j]}"/>'
                   f'<text x="{left + j * 140 + 14}" y="{h + 9}" font-size="11">'
                   f'{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def table(cols, rs):
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>"
                   for r in rs)
    return f"<table><tr>{head}</tr>{body}</table>"


def cmd_report(a):
    con = connect(a.date)
    colors = ["#3b7dd8", "#d8553b", "#3bb273", "#c9a227"]
    parts = []
    _, vol = rows(con, "SELECT strftime(hour, '%H') AS h, tenant, written, dead_lettered "
                       "FROM images_per_tenant_hour")
    hours = sorted({r[0] for r in vol})
    tenants = sorted({r[1] for r in vol})
    parts.append(bars(f"Records per hour (UTC) by tenant, {a.date}", hours,
                      [(t, [sum(r[2] + r[3] for r in vol if r[0] == h and r[1] == t)
                            for h in hours]) for t in tenants][:4], colors))
    cols, fail = rows(con, "SELECT * FROM failure_rate_by_class")
    parts.append(bars("Records by outcome and error class", [r[0] for r in fail],
                      [("records", [r[1] for r in fail])], ["#d8553b"]))
    parts.append(table(cols, fail))
    cols, lat = rows(con, "SELECT strftime(hour, '%H') AS hour, records, p50_ms, p90_ms, p99_ms, "
                          "max_ms FROM latency_percentiles")
    parts.append(bars("Processing latency percentiles per hour (ms)", [r[0] for r in lat],
                      [("p50", [r[2] for r in lat]), ("p90", [r[3] for r in lat]),
                       ("p99", [r[4] for r in lat])], colors, ""))
    parts.append(table(cols, lat))
    for view in ("images_per_tenant_day", "bytes_per_rendition", "top_cameras",
                 "near_duplicates"):
        cols, rs = rows(con, f"SELECT * FROM {view} LIMIT 50")
        parts.append(f"<h2>{view}</h2>" + table(cols, rs))
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"report-{a.date}.html")
    with open(path, "w") as f:
        f.write("<!doctype html><meta charset=utf-8><title>imgsink analytics "
                f"{html.escape(a.date)}</title><style>body{{font-family:sans-serif;margin:2em}}"
                "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
                "padding:2px 8px;font-size:12px}</style>"
                f"<h1>imgsink analytics, {html.escape(a.date)}</h1>\n" +
                "\n".join(f"<div>{p}</div>" for p in parts))
    print(path)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("query")
    q.add_argument("--date")
    q.add_argument("--json", action="store_true")
    q.add_argument("sql", nargs="+")
    r = sub.add_parser("report")
    r.add_argument("--date", required=True)
    r.add_argument("--out", default="build/report")
    a = p.parse_args()
    (cmd_query if a.cmd == "query" else cmd_report)(a)


if __name__ == "__main__":
    main()
