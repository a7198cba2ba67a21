#!/usr/bin/env python3
"""The DuckDB checks of an analytics test (test/e2e/lib.sh duckdb_checks):
runs the python script on stdin with these defined

    check(cond, what)  prints "ok - what" or "not ok - what" (TAP)
    analytics          scripts/analytics.py
    con                analytics.connect(): DuckDB with the views of
                       deploy/analytics/duckdb.sql over ANALYTICS_PREFIX in
                       the store (a script may connect again: con = ...)
    one(sql, *args)    the rows of sql with args on con

Environment: ROOT (the repository) and what scripts/analytics.py reads.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.environ["ROOT"], "scripts"))
import analytics  # noqa: E402


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)


def one(sql, *args):
    return con.execute(sql, list(args)).fetchall()


con = analytics.connect()
exec(compile(sys.stdin.read(), "<duckdb checks>", "exec"))
