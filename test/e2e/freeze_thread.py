#!/usr/bin/env python3
"""Stops one thread of a running process for a while; its other threads keep running.

    freeze_thread.py TID SECONDS

Used to stall a worker's poll loop (its main thread: TID = PID) while its HTTP thread
keeps answering, from outside and without any switch in imgsink. SIGSTOP cannot do this:
it stops every thread of the process. PTRACE_SEIZE + PTRACE_INTERRUPT act on one thread
and send no signal, so nothing is left pending after PTRACE_DETACH.

Prints "stopped" once the thread is stopped and "resumed" at the end. Exits 2 when
ptrace is not permitted (a container without CAP_SYS_PTRACE, Yama scope 3), so a test
can skip.
"""
import ctypes
import os
import sys
import time

PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207
WALL = 0x40000000  # __WALL: wait for a thread that is not our child

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long


def ptrace(req, tid):
    if libc.ptrace(req, tid, None, None) != 0:
        err = ctypes.get_errno()
        print(f"ptrace({req:#x}, {tid}): {os.strerror(err)}", file=sys.stderr)
        sys.exit(2)


tid, secs = int(sys.argv[1]), float(sys.argv[2])
ptrace(PTRACE_SEIZE, tid)
ptrace(PTRACE_INTERRUPT, tid)
os.waitpid(tid, WALL)
print("stopped", flush=True)
try:
    time.sleep(secs)
finally:
    ptrace(PTRACE_DETACH, tid)
print("resumed", flush=True)
