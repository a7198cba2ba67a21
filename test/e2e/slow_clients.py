#!/usr/bin/env python3
"""Holds many HTTP connections open against one server, as a careless or hostile client would.

    slow_clients.py HOST:PORT IDLE SLOW SECONDS

IDLE connections send nothing; SLOW connections send a partial GET request one byte
every 2 seconds and never finish it. A connection the server closes is opened again,
so the pressure stays for SECONDS (or until SIGTERM). Prints "open IDLE+SLOW" once every connect is
under way (the server may not have accepted them yet), then
"closed-by-server N" (how many times the server dropped one) at the end.
"""
import errno
import signal
import socket
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
n_idle, n_slow, duration = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000


def connect():
    # Non-blocking: a server that stops accepting leaves the connect pending
    # (the listen backlog full), which is pressure too.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex((host, int(port)))
    return s


conns = [[connect(), i >= n_idle, 0] for i in range(n_idle + n_slow)]  # sock, slow, bytes sent
print(f"open {len(conns)}", flush=True)
dropped = 0
end = time.monotonic() + duration


def on_term(signum, frame):
    global end
    end = 0


signal.signal(signal.SIGTERM, on_term)
next_trickle = time.monotonic()
while time.monotonic() < end:
    now = time.monotonic()
    for c in conns:
        s, slow, sent = c
        closed = False
        try:
            if s.recv(4096) == b"":
                closed = True
        except BlockingIOError:
            pass
        except OSError as e:
            closed = e.errno != errno.ENOTCONN  # ENOTCONN: still connecting
        if not closed and slow and now >= next_trickle:
            try:
                s.send(PARTIAL[sent % len(PARTIAL):][:1])
                c[2] = sent + 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                closed = e.errno != errno.ENOTCONN
        if closed:
            dropped += 1
            s.close()
            c[0], c[2] = connect(), 0
    if now >= next_trickle:
        next_trickle = now + 2
    time.sleep(0.2)
print(f"closed-by-server {dropped}", flush=True)
