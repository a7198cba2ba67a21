#!/usr/bin/env python3
"""Writes an Avro object container file of ImageEvents in a later version of
the schema: schemas/image_event.avsc plus one optional field, as a newer
worker would. Encoded here, not by imgsink or avro-c, so readers are tested
against an independent writer.

    event_v2.py SCHEMA OUT --rows N --tenant T --topic TOPIC --processed-at MS
"""
import argparse
import json
import os


def zz(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def s(x):
    b = x.encode()
    return zz(len(b)) + b


def some(enc):  # union branch 1 of ["null", T]
    return zz(1) + enc


NULL = zz(0)


def event(i, a):
    import struct
    out = some(s(f"v2-{i}")) + some(s(a.tenant)) + some(s("api"))
    out += zz(0)  # outcome: written
    out += NULL + NULL  # error class, message
    out += some(zz(a.processed_at - 60000)) + zz(a.processed_at)
    out += struct.pack("<d", 5.0)  # processing_ms
    out += some(s("png")) + some(zz(1000)) + some(zz(64)) + some(zz(48)) + some(zz(1)) + some(zz(1))
    out += NULL + NULL  # camera make, model
    out += some(zz(0x0F0F0F0F0F0F0F0F + i)) + some(s("#808080"))
    out += zz(1) + s("thumb") + s("jpg") + zz(32) + zz(24) + zz(500) + zz(0)  # renditions
    out += s(a.topic) + zz(0) + zz(1000000 + i) + s("9.9.9")
    out += some(s("label-" + str(i)))  # the new field
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("schema")
    p.add_argument("out")
    p.add_argument("--rows", type=int, default=3)
    p.add_argument("--tenant", default="newco")
    p.add_argument("--topic", default="images.events")
    p.add_argument("--processed-at", type=int, required=True)
    a = p.parse_args()
    schema = json.load(open(a.schema))
    schema["fields"].append({"name": "labels", "type": ["null", "string"], "default": None,
                             "doc": "Added in version 2."})
    sync = os.urandom(16)
    meta = {"avro.schema": json.dumps(schema).encode(), "avro.codec": b"null"}
    head = b"Obj\x01" + zz(len(meta))
    for k, v in meta.items():
        head += s(k) + zz(len(v)) + v
    head += zz(0) + sync
    body = b"".join(event(i, a) for i in range(a.rows))
    with open(a.out, "wb") as f:
        f.write(head + zz(a.rows) + zz(len(body)) + body + sync)


if __name__ == "__main__":
    main()
