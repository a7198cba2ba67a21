#!/usr/bin/env python3
"""Writes one day of hourly analytics files in the sink's layout, encoded
here (not by imgsink or avro-c): Avro object container files of
schemas/image_event.avsc, deflate, one per hour and partition,

    OUT/events/dt=DATE/hour=HH/{topic}+{partition}+{first offset}.avro

Rows: tenants acme and globex, one in 10 dead-lettered (class image),
processed_at spread over the hour, kafka_offset unique per partition.

    hourly_events.py SCHEMA OUT --date YYYY-MM-DD [--partitions 4] [--rows 200]
        [--topic images.events] [--hours 0-23]
"""
import argparse
import calendar
import json
import os
import struct
import time
import zlib

from event_v2 import NULL, s, some, zz


def event(i, part, t, topic):
    dead = i % 10 == 9
    tenant = "acme" if i % 3 else "globex"
    out = some(s(f"img-{part}-{i}")) + some(s(tenant)) + some(s("stream"))
    out += zz(1 if dead else 0)
    out += (some(s("image")) + some(s("not an image"))) if dead else NULL + NULL
    out += some(zz(t - 1000)) + zz(t)
    out += struct.pack("<d", 10.0 + (i * 37) % 400)
    if dead:
        out += NULL * 10 + zz(0)
    else:
        out += some(s("jpeg")) + some(zz(200000 + i)) + some(zz(1600)) + some(zz(1200))
        out += some(zz(1)) + some(zz(1)) + some(s("Canon")) + some(s("EOS"))
        out += some(zz(0x0123456789ABCDEF ^ i)) + some(s("#406080"))
        out += zz(2) + s("thumb") + s("webp") + zz(200) + zz(150) + zz(8000 + i)
        out += s("large") + s("webp") + zz(1600) + zz(1200) + zz(90000 + i) + zz(0)
    out += s(topic) + zz(part) + zz(i) + s("1.0.0")
    return out


def ocf(schema_text, rows):
    sync = os.urandom(16)
    meta = {"avro.schema": schema_text.encode(), "avro.codec": b"deflate"}
    head = b"Obj\x01" + zz(len(meta))
    for k, v in meta.items():
        head += s(k) + zz(len(v)) + v
    head += zz(0) + sync
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = c.compress(b"".join(rows)) + c.flush()
    return head + zz(len(rows)) + zz(len(body)) + body + sync


def main():
    p = argparse.ArgumentParser()
    p.add_argument("schema")
    p.add_argument("out")
    p.add_argument("--date", required=True)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--rows", type=int, default=200)
    p.add_argument("--topic", default="images.events")
    p.add_argument("--hours", default="0-23")
    a = p.parse_args()
    text = open(a.schema).read()
    json.loads(text)
    lo, _, hi = a.hours.partition("-")
    day = calendar.timegm(time.strptime(a.date, "%Y-%m-%d")) * 1000
    n = 0
    for h in range(int(lo), int(hi or lo) + 1):
        d = os.path.join(a.out, "events", f"dt={a.date}", f"hour={h:02d}")
        os.makedirs(d, exist_ok=True)
        for part in range(a.partitions):
            first = h * a.rows
            rows = [event(first + i, part, day + h * 3600000 + i * (3600000 // a.rows), a.topic)
                    for i in range(a.rows)]
            with open(os.path.join(d, f"{a.topic}+{part}+{first}.avro"), "wb") as f:
                f.write(ocf(text, rows))
            n += a.rows
    print(n)


if __name__ == "__main__":
    main()
